"""The WebAuthn method without HTTP or storage: options, verification checks, AAL rules."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime

import pytest

from authserver.errors import WebAuthnFailed
from authserver.methods.webauthn import (
    Descriptor,
    WebAuthnMethod,
    assertion_proof,
    is_counter_regression,
    relying_party,
)
from authserver.methods.webauthn_parse import parse_assertion, parse_registration
from authserver.methods.webauthn_time import current_time, verification_time
from tests.support.softauthn import (
    ALG_EDDSA,
    ALG_ES256,
    ALG_RS256,
    SoftAuthenticator,
    TestCA,
    b64url_decode,
)

ORIGIN = "http://localhost:8000"
ANDROID = "android:apk-key-hash:pNiP5iKyQ8JwgGOaKA1zGPUAy7E2BZ0Z9rGwzakvaj0"
NOW = datetime.now(UTC)


@pytest.fixture
def method() -> WebAuthnMethod:
    rp = relying_party(rp_id="localhost", rp_name="authserver", origins=[ORIGIN, ANDROID],
                       related_origins=["https://other.example"])
    return WebAuthnMethod(rp)


def _create_options(method: WebAuthnMethod, kind: str = "passkey", exclude=()):
    return method.registration_options(challenge=b"c" * 32, user_handle=b"u" * 32, user_name="alice",
                                       display_name="Alice", kind=kind, exclude=list(exclude))


def _register(method: WebAuthnMethod, key: SoftAuthenticator, *, origin: str = ORIGIN, kind: str = "passkey", **kw):
    options = _create_options(method, kind)
    response = parse_registration(key.create(options, origin=origin, **kw))
    return method.verify_registration(response, expected_challenge=b"c" * 32, now=NOW,
                                      resident_key_required=kind == "passkey")


def _assert(method: WebAuthnMethod, key: SoftAuthenticator, public_key: bytes, *, origin: str = ORIGIN,
            challenge: bytes = b"d" * 32, **kw):
    options = method.authentication_options(challenge=b"d" * 32, allow=[], user_verification="preferred")
    response = parse_assertion(key.get(options, origin=origin, **kw))
    return method.verify_assertion(response, expected_challenge=challenge, public_key=public_key)


def test_passkey_options_are_the_json_form_a_browser_parses(method):
    options = _create_options(method)
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-8, -7, -257]
    assert options["extensions"] == {"credProps": True}
    assert options["rp"] == {"name": "authserver", "id": "localhost"}
    assert b64url_decode(options["challenge"]) == b"c" * 32 and b64url_decode(options["user"]["id"]) == b"u" * 32
    assert "hints" not in options


def test_security_key_options_do_not_require_rk_or_uv_and_exclude_existing(method):
    options = _create_options(method, "security-key", exclude=[Descriptor(id=b"old", transports=("usb", "bogus"))])
    selection = options["authenticatorSelection"]
    assert selection["residentKey"] == "discouraged" and selection["requireResidentKey"] is False
    assert selection["userVerification"] == "discouraged"
    assert options["hints"] == ["security-key"]
    assert options["excludeCredentials"] == [{"id": "b2xk", "type": "public-key", "transports": ["usb"]}]


def test_request_options_carry_appid_only_when_configured(method):
    plain = method.authentication_options(challenge=b"d" * 32, allow=[], user_verification="preferred")
    assert plain["allowCredentials"] == [] and "extensions" not in plain
    legacy = WebAuthnMethod(relying_party(rp_id="localhost", rp_name="a", origins=[ORIGIN],
                                          u2f_appid="https://localhost/appid.json"))
    options = legacy.authentication_options(challenge=b"d" * 32, allow=[Descriptor(id=b"k")],
                                            user_verification="discouraged")
    assert options["extensions"] == {"appid": "https://localhost/appid.json"}
    assert options["userVerification"] == "discouraged" and options["allowCredentials"][0]["id"] == "aw"


@pytest.mark.parametrize("alg", [ALG_ES256, ALG_EDDSA, ALG_RS256])
@pytest.mark.parametrize("attestation", ["none", "packed-self", "packed-x5c"])
def test_each_algorithm_registers_and_asserts(method, alg, attestation):
    ca = TestCA.create() if attestation == "packed-x5c" else None
    key = SoftAuthenticator(alg=alg, attestation=attestation, attestation_ca=ca)
    reg = _register(method, key)
    assert reg.fmt == ("none" if attestation == "none" else "packed")
    assert reg.self_attested is (attestation == "packed-self")
    assert len(reg.x5c) == (1 if attestation == "packed-x5c" else 0)
    assert reg.discoverable is True and reg.user_verified is True and reg.sign_count == 0
    got = _assert(method, key, reg.public_key)
    assert got.credential_id == reg.credential_id and got.sign_count == 1 and got.user_verified


def test_discoverability_comes_from_cred_props(method):
    non_resident = _register(method, SoftAuthenticator(resident_keys=False), kind="security-key")
    assert non_resident.discoverable is False
    unreported = _register(method, SoftAuthenticator(resident_keys=False), kind="security-key",
                           include_cred_props=False)
    assert unreported.discoverable is None
    required = _register(method, SoftAuthenticator(), include_cred_props=False)
    assert required.discoverable is True  # residentKey "required" and no credProps: discoverable


def test_android_and_related_origins_are_accepted(method):
    assert _register(method, SoftAuthenticator(), origin=ANDROID).fmt == "none"
    assert _register(method, SoftAuthenticator(), origin="https://other.example").fmt == "none"


@pytest.mark.parametrize(("make", "step"), [
    (lambda m, k: _register(m, k, origin="https://evil.example"), "registration origin"),
    (lambda m, k: _register(m, k, rp_id="evil.example"), "registration rpIdHash"),
    (lambda m, k: _register(m, k, cross_origin=True, top_origin="https://evil.example"), "registration topOrigin"),
])
def test_registration_refusals_name_the_check(method, make, step):
    with pytest.raises(WebAuthnFailed) as caught:
        make(method, SoftAuthenticator())
    assert caught.value.code == "webauthn_failed" and caught.value.log_detail.startswith(step)


def test_registration_without_user_presence_is_refused(method):
    with pytest.raises(WebAuthnFailed, match="registration user presence"):
        _register(method, SoftAuthenticator(user_presence=False))


def test_registration_for_another_challenge_is_refused(method):
    response = parse_registration(SoftAuthenticator().create(_create_options(method), origin=ORIGIN))
    with pytest.raises(WebAuthnFailed, match="registration challenge"):
        method.verify_registration(response, expected_challenge=b"x" * 32, now=NOW, resident_key_required=True)


def test_backup_state_without_eligibility_is_refused(method):
    with pytest.raises(WebAuthnFailed, match="backup flags"):
        _register(method, SoftAuthenticator(backup_eligible=False, backup_state=True))


def test_required_user_verification_is_enforced(method):
    key = SoftAuthenticator(user_verification=False)
    response = parse_registration(key.create(_create_options(method), origin=ORIGIN))
    with pytest.raises(WebAuthnFailed, match="user verification"):
        method.verify_registration(response, expected_challenge=b"c" * 32, now=NOW, resident_key_required=True,
                                   require_uv=True)


@pytest.mark.parametrize(("kw", "step"), [
    ({"origin": "https://evil.example"}, "authentication origin"),
    ({"rp_id": "evil.example"}, "authentication rpIdHash"),
    ({"challenge": b"e" * 32}, "authentication challenge"),
])
def test_assertion_refusals_name_the_check(method, kw, step):
    key = SoftAuthenticator()
    reg = _register(method, key)
    with pytest.raises(WebAuthnFailed) as caught:
        _assert(method, key, reg.public_key, **kw)
    assert caught.value.log_detail.startswith(step)


def test_assertion_without_user_presence_or_with_another_key_is_refused(method):
    key = SoftAuthenticator()
    reg = _register(method, key)
    key.user_presence = False
    with pytest.raises(WebAuthnFailed, match="user presence"):
        _assert(method, key, reg.public_key)
    key.user_presence = True
    other = _register(method, SoftAuthenticator())
    with pytest.raises(WebAuthnFailed, match="authentication signature"):
        _assert(method, key, other.public_key)


def test_u2f_appid_hash_is_accepted_only_when_the_client_used_appid():
    appid = "https://localhost:8000/u2f-appid.json"
    method = WebAuthnMethod(relying_party(rp_id="localhost", rp_name="a", origins=[ORIGIN], u2f_appid=appid))
    key = SoftAuthenticator(counter_mode="zero")
    reg = _register(method, key)
    options = method.authentication_options(challenge=b"d" * 32, allow=[], user_verification="discouraged")
    credential = key.get(options, origin=ORIGIN, rp_id=appid)
    assert credential["response"]["authenticatorData"]
    with pytest.raises(WebAuthnFailed, match="rpIdHash"):
        method.verify_assertion(parse_assertion(credential), expected_challenge=b"d" * 32,
                                public_key=reg.public_key)
    credential["clientExtensionResults"] = {"appid": True}
    got = method.verify_assertion(parse_assertion(credential), expected_challenge=b"d" * 32,
                                  public_key=reg.public_key)
    assert got.used_appid is True
    assert hashlib.sha256(appid.encode()).digest() == parse_assertion(credential).authenticator_data.rp_id_hash


@pytest.mark.parametrize(("uv", "be", "aal", "amr"), [
    (True, False, 3, {"hwk", "user"}),
    (True, True, 2, {"swk", "user"}),
    (False, False, 1, {"hwk"}),
    (False, True, 1, {"swk"}),
])
def test_assurance_of_an_assertion(uv, be, aal, amr):
    proof = assertion_proof(user_verified=uv, backup_eligible=be)
    assert (proof.aal, set(proof.amr), proof.method, proof.factor_class) == (aal, amr, "webauthn", "have")


@pytest.mark.parametrize(("stored", "received", "regression"), [
    (0, 0, False), (0, 1, False), (5, 6, False), (5, 5, True), (5, 4, True), (5, 0, True), (0, 2**32 - 1, False),
])
def test_counter_regression(stored, received, regression):
    assert is_counter_regression(stored=stored, received=received) is regression


async def test_verification_time_is_per_task_and_restored():
    past = datetime(2021, 9, 1, tzinfo=UTC)

    async def pinned() -> float:
        with verification_time(past):
            await asyncio.sleep(0)
            return current_time()

    async def unpinned() -> float:
        await asyncio.sleep(0)
        return current_time()

    seen_pinned, seen_now = await asyncio.gather(pinned(), unpinned())
    assert seen_pinned == past.timestamp()
    assert abs(seen_now - time.time()) < 5
    assert abs(current_time() - time.time()) < 5
