"""The exception tree's own guarantees (authserver/errors.py)."""

from __future__ import annotations

from authserver.errors import MfaRequired


def test_mfa_required_always_names_its_methods_in_www_authenticate():
    """DESIGN §6: every 401 mfa_required carries the MFA challenge, whoever raised it."""
    exc = MfaRequired("sign in with your password first", extra={"methods": ["password"]})
    assert exc.headers == {"WWW-Authenticate": 'MFA realm="authserver", methods="password"'}
    assert exc.extra == {"methods": ["password"]}


def test_mfa_required_keeps_a_challenge_its_raiser_set():
    exc = MfaRequired(headers={"www-authenticate": 'MFA realm="authserver", methods="totp sms"'},
                      extra={"methods": ["totp"]})
    assert exc.headers == {"www-authenticate": 'MFA realm="authserver", methods="totp sms"'}
