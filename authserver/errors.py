"""One exception tree for everything authserver refuses.

Every class carries the stable machine-readable ``code`` of DESIGN §6 and the HTTP status
the API answers with. ``detail`` is the sentence a client sees and must not help an
attacker; ``log_detail`` names the check that failed and goes only to the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class AuthError(Exception):
    """Base of every refusal; the API turns it into RFC 9457 problem+json."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request refused"
    # Set on an instance whose transaction must commit although it is raised (store/db.py).
    commit_transaction: bool = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        log_detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.log_detail = log_detail or self.detail
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})
        super().__init__(self.log_detail)


class ValidationFailed(AuthError):
    code = "validation_error"
    status = 400
    title = "The request is not valid"

    def __init__(self, detail: str | None = None, *, field: str | None = None, **kw: Any) -> None:
        extra = dict(kw.pop("extra", None) or {})
        if field is not None:
            extra.setdefault("errors", [{"field": field, "message": detail or self.title}])
        super().__init__(detail, extra=extra, **kw)


class PayloadTooLarge(AuthError):
    code = "payload_too_large"
    status = 413
    title = "The request body is too large"


class Unauthorized(AuthError):
    """No valid session token was presented."""

    code = "unauthorized"
    status = 401
    title = "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="authserver"'})
        super().__init__(detail, **kw)


class InvalidCredentials(AuthError):
    code = "invalid_credentials"
    status = 401
    title = "The username or password is wrong"


class AccountDisabled(AuthError):
    code = "account_disabled"
    status = 403
    title = "This account is disabled"


class Forbidden(AuthError):
    code = "forbidden"
    status = 403
    title = "You may not do this"


class NotFound(AuthError):
    code = "not_found"
    status = 404
    title = "Not found"


class UsernameTaken(AuthError):
    code = "username_taken"
    status = 409
    title = "This username is taken"


class LastFactor(AuthError):
    code = "last_factor"
    status = 409
    title = "This is the last way to sign in to the account and cannot be removed"


class MfaRequired(AuthError):
    """A first factor succeeded but policy needs another; the body carries the flow.

    Every such 401 names the methods still open in ``WWW-Authenticate`` (DESIGN §6), so
    the header is made here from ``extra["methods"]`` when the raiser did not set one.
    """

    code = "mfa_required"
    status = 401
    title = "A second factor is required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        headers = dict(kw.pop("headers", None) or {})
        if not any(name.lower() == "www-authenticate" for name in headers):
            methods = (kw.get("extra") or {}).get("methods") or []
            headers["WWW-Authenticate"] = mfa_challenge(methods)
        super().__init__(detail, headers=headers, **kw)


def mfa_challenge(methods: list[str]) -> str:
    """``WWW-Authenticate: MFA realm="authserver", methods="totp sms ..."`` (DESIGN §6)."""
    return f'MFA realm="authserver", methods="{" ".join(methods)}"'


class StepUpRequired(AuthError):
    code = "step_up_required"
    status = 401
    title = "This action needs a fresh second factor"


class InvalidCode(AuthError):
    code = "invalid_code"
    status = 401
    title = "The code is wrong or expired"


class CodeReused(AuthError):
    code = "code_reused"
    status = 401
    title = "This code was already used"


class RateLimited(AuthError):
    code = "rate_limited"
    status = 429
    title = "Too many attempts; try again later"

    def __init__(self, retry_after: int, detail: str | None = None, **kw: Any) -> None:
        self.retry_after = max(1, int(retry_after))
        headers = dict(kw.pop("headers", None) or {})
        headers["Retry-After"] = str(self.retry_after)
        extra = dict(kw.pop("extra", None) or {})
        extra["retry_after"] = self.retry_after
        super().__init__(detail, headers=headers, extra=extra, **kw)


class FlowExpired(AuthError):
    code = "flow_expired"
    status = 400
    title = "This flow is finished or expired; start again"


class ChallengeExpired(AuthError):
    code = "challenge_expired"
    status = 400
    title = "The challenge is used or expired; start again"


class MethodNotAllowed(AuthError):
    code = "method_not_allowed"
    status = 400
    title = "This method is not available for this flow"


class CredentialExpired(AuthError):
    code = "credential_expired"
    status = 401
    title = "This security key registration has expired; register it again"


class CredentialRevoked(AuthError):
    code = "credential_revoked"
    status = 401
    title = "This credential was revoked"


class UnknownCredential(AuthError):
    code = "unknown_credential"
    status = 401
    title = "This credential is not registered for this account"


class PossibleClone(AuthError):
    code = "possible_clone"
    status = 401
    title = "This authenticator looks cloned; the credential was flagged"


class WebAuthnFailed(AuthError):
    code = "webauthn_failed"
    status = 400
    title = "The WebAuthn response could not be verified"


class AttestationRejected(AuthError):
    code = "attestation_rejected"
    status = 400
    title = "This authenticator is not accepted by policy"


class AuthenticatorCompromised(AuthError):
    code = "authenticator_compromised"
    status = 400
    title = "This authenticator model is reported compromised and cannot be registered"


class AlreadyRegistered(AuthError):
    code = "credential_exists"
    status = 409
    title = "This authenticator is already registered"


class NotEnrolled(AuthError):
    code = "not_enrolled"
    status = 400
    title = "This factor is not enrolled"


class Conflict(AuthError):
    code = "conflict"
    status = 409
    title = "The request conflicts with the current state"
