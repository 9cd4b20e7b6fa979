"""Responses recorded from real authenticators (tests/fixtures/webauthn, see its README) verify
with our method at the time they were recorded, and a tampered copy of each is refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from authserver.errors import ValidationFailed, WebAuthnFailed
from authserver.methods.webauthn import WebAuthnMethod, is_counter_regression, relying_party
from authserver.methods.webauthn_parse import parse_assertion, parse_registration
from tests.support.softauthn import b64url_decode, b64url_encode

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "webauthn"
ML_DSA = "ml-dsa"
# Three TPM recordings carry standard base64 (with '+', '/', '='); DESIGN §6 decodes strictly.
STANDARD_BASE64 = {"registration-tpm-dell-xps-13.json", "registration-tpm-lenovo-carbon-x1.json",
                   "registration-tpm-surface-pro-4.json"}


def _load(name: str) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return fixture


def _names(prefix: str) -> list[str]:
    return sorted(p.name for p in FIXTURES.glob(f"{prefix}-*.json") if ML_DSA not in p.name)


def _method(fixture: dict[str, Any]) -> WebAuthnMethod:
    origins = fixture["expected_origin"]
    origins = origins if isinstance(origins, list) else [origins]
    return WebAuthnMethod(relying_party(rp_id=fixture["expected_rp_id"], rp_name="fixture", origins=origins))


def _when(fixture: dict[str, Any]) -> datetime:
    if fixture["verify_at"]:
        return datetime.strptime(fixture["verify_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return datetime.now(UTC)


def _to_base64url(value: str) -> str:
    return b64url_encode(base64.b64decode(value + "=" * (-len(value) % 4)))


def _strict_credential(fixture: dict[str, Any]) -> dict[str, Any]:
    credential: dict[str, Any] = json.loads(json.dumps(fixture["credential"]))
    if fixture["_name"] in STANDARD_BASE64:
        response = credential["response"]
        for key in ("clientDataJSON", "attestationObject"):
            response[key] = _to_base64url(response[key])
    return credential


def _verify_registration(fixture: dict[str, Any], credential: dict[str, Any], when: datetime | None = None):
    return _method(fixture).verify_registration(
        parse_registration(credential), expected_challenge=b64url_decode(fixture["expected_challenge"]),
        now=when or _when(fixture), resident_key_required=False,
        require_uv=bool(fixture.get("require_user_verification")))


def _fixture(name: str) -> dict[str, Any]:
    return {**_load(name), "_name": name}


@pytest.mark.parametrize("name", _names("registration"))
def test_recorded_registration_verifies(name):
    fixture = _fixture(name)
    result = _verify_registration(fixture, _strict_credential(fixture))
    expected = fixture["expected"]
    assert result.fmt == expected.get("fmt", result.fmt)
    assert result.fmt != "" and result.public_key
    if "credential_id" in expected:
        assert b64url_encode(result.credential_id) == expected["credential_id"]
    if "aaguid" in expected:
        assert result.aaguid == expected["aaguid"]
    if "sign_count" in expected:
        assert result.sign_count == expected["sign_count"]


def _tampered_registration(fixture: dict[str, Any]) -> dict[str, Any]:
    """Change what the attestation signs (clientDataJSON) or, for "none" (which signs
    nothing), the RP ID hash; both are detectable only by verification."""
    credential = _strict_credential(fixture)
    response = credential["response"]
    if fixture["expected"].get("fmt") == "none":
        from fido2 import cbor

        top = cbor.decode(b64url_decode(response["attestationObject"]))
        auth_data = bytearray(top["authData"])
        auth_data[0] ^= 0x01
        top["authData"] = bytes(auth_data)
        response["attestationObject"] = b64url_encode(cbor.encode(top))
        return credential
    client_data = json.loads(b64url_decode(response["clientDataJSON"]))
    client_data["tampered"] = True
    response["clientDataJSON"] = b64url_encode(json.dumps(client_data).encode())
    return credential


@pytest.mark.parametrize("name", _names("registration"))
def test_tampered_recorded_registration_is_refused(name):
    fixture = _fixture(name)
    with pytest.raises(WebAuthnFailed) as caught:
        _verify_registration(fixture, _tampered_registration(fixture))
    assert caught.value.code == "webauthn_failed"
    assert caught.value.log_detail.startswith(("registration attestation", "registration rpIdHash"))


@pytest.mark.parametrize("name", sorted(STANDARD_BASE64))
def test_recorded_standard_base64_is_a_validation_error_as_sent(name):
    with pytest.raises(ValidationFailed):
        parse_registration(_fixture(name)["credential"])


@pytest.mark.parametrize("name", ["registration-apple-passkey.json", "registration-android-key-pixel-8a.json",
                                  "registration-android-safetynet-chrome-android.json"])
def test_pinned_recordings_fail_at_the_current_time(name):
    """Their certificates (or SafetyNet timestamp) were valid only when recorded: the time
    comes from our clock, so verifying "now" must fail where verify_at succeeds."""
    fixture = _fixture(name)
    assert fixture["verify_at"]
    with pytest.raises(WebAuthnFailed, match="registration attestation"):
        _verify_registration(fixture, _strict_credential(fixture), when=datetime.now(UTC))


def test_ml_dsa_registrations_are_refused_as_not_one_of_our_algorithms():
    for path in sorted(FIXTURES.glob("registration-none-ml-dsa-*.json")):
        fixture = _fixture(path.name)
        with pytest.raises(WebAuthnFailed, match="alg"):
            _verify_registration(fixture, fixture["credential"])


def _verify_assertion(fixture: dict[str, Any], credential: dict[str, Any]):
    return _method(fixture).verify_assertion(
        parse_assertion(credential), expected_challenge=b64url_decode(fixture["expected_challenge"]),
        public_key=b64url_decode(fixture["credential_public_key"]),
        require_uv=bool(fixture.get("require_user_verification")))


@pytest.mark.parametrize("name", _names("authentication"))
def test_recorded_assertion_verifies(name):
    fixture = _fixture(name)
    result = _verify_assertion(fixture, fixture["credential"])
    expected = fixture["expected"]
    if "new_sign_count" in expected:
        assert result.sign_count == expected["new_sign_count"]
    if "user_verified" in expected:
        assert result.user_verified is expected["user_verified"]
    assert not is_counter_regression(stored=fixture["credential_current_sign_count"], received=result.sign_count)
    assert result.credential_id == b64url_decode(fixture["credential"]["rawId"])


@pytest.mark.parametrize("name", _names("authentication"))
def test_tampered_recorded_assertion_is_refused(name):
    fixture = _fixture(name)
    credential = json.loads(json.dumps(fixture["credential"]))
    signature = bytearray(b64url_decode(credential["response"]["signature"]))
    signature[-1] ^= 0x01
    credential["response"]["signature"] = b64url_encode(bytes(signature))
    with pytest.raises(WebAuthnFailed, match="authentication signature"):
        _verify_assertion(fixture, credential)


@pytest.mark.parametrize("name", _names("authentication"))
def test_recorded_assertion_with_changed_authenticator_data_is_refused(name):
    """The signature covers authenticatorData: a raised counter (byte 36, the counter's last
    byte, WebAuthn L3 §6.1) must break it."""
    fixture = _fixture(name)
    credential = json.loads(json.dumps(fixture["credential"]))
    auth_data = bytearray(b64url_decode(credential["response"]["authenticatorData"]))
    auth_data[36] ^= 0x01
    credential["response"]["authenticatorData"] = b64url_encode(bytes(auth_data))
    with pytest.raises(WebAuthnFailed, match="authentication signature"):
        _verify_assertion(fixture, credential)


def test_recorded_assertion_replayed_at_its_stored_counter_is_a_regression():
    fixture = _fixture("authentication-ec2-es256-with-ec2-public-key.json")
    result = _verify_assertion(fixture, fixture["credential"])
    assert is_counter_regression(stored=result.sign_count, received=result.sign_count)
