"""Strict parsing of credential JSON: malformed input is a ValidationFailed naming the field."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from fido2 import cbor

from authserver.errors import ValidationFailed
from authserver.methods.webauthn_parse import parse_assertion, parse_registration
from tests.support.softauthn import SoftAuthenticator, b64url_decode, b64url_encode

ORIGIN = "http://localhost:8000"
CREATION = {
    "rp": {"id": "localhost", "name": "t"}, "user": {"id": b64url_encode(b"u" * 32), "name": "u", "displayName": "u"},
    "challenge": b64url_encode(b"c" * 32), "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
    "authenticatorSelection": {"residentKey": "required", "userVerification": "preferred"},
}
REQUEST = {"challenge": b64url_encode(b"d" * 32), "rpId": "localhost", "allowCredentials": []}


@pytest.fixture(scope="module")
def responses() -> tuple[dict, dict]:
    key = SoftAuthenticator()
    return key.create(CREATION, origin=ORIGIN), key.get(REQUEST, origin=ORIGIN)


def test_well_formed_responses_parse(responses):
    created, asserted = responses
    reg = parse_registration(created)
    assert reg.credential_id == b64url_decode(created["id"])
    assert reg.client_data.challenge == b"c" * 32 and reg.client_data.origin == ORIGIN
    assert reg.cred_props_rk is True and reg.transports == ("usb",)
    assert reg.attestation.fmt == "none"
    got = parse_assertion(asserted)
    assert got.credential_id == reg.credential_id and got.user_handle == b"u" * 32
    assert got.authenticator_data.flags.up and got.appid_used is False


def _mutated(response: dict, path: list, value) -> dict:
    copied = copy.deepcopy(response)
    target = copied
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return copied


_DELETE = object()


def _std_b64(text: str) -> str:
    return base64.b64encode(b64url_decode(text)).decode()


@pytest.mark.parametrize(("path", "value", "field"), [
    (["id"], "not*base64", "credential.id"),
    (["id"], 12345, "credential.id"),
    (["id"], b64url_encode(b"x" * 1024), "credential.id"),
    (["rawId"], b64url_encode(b"other"), "credential.rawId"),
    (["type"], "password", "credential.type"),
    (["response"], "x", "credential.response"),
    (["response", "clientDataJSON"], b64url_encode(b"not json"), "credential.response.clientDataJSON"),
    (["response", "clientDataJSON"], b64url_encode(b"\xff\xfe"), "credential.response.clientDataJSON"),
    (["response", "clientDataJSON"], b64url_encode(b"[1,2]"), "credential.response.clientDataJSON"),
    (["response", "clientDataJSON"], b64url_encode(json.dumps({"type": "webauthn.create", "challenge": 5,
                                                               "origin": ORIGIN}).encode()),
     "credential.response.clientDataJSON"),
    (["response", "clientDataJSON"], b64url_encode(b"x" * 5000), "credential.response.clientDataJSON"),
    (["response", "attestationObject"], _DELETE, "credential.response.attestationObject"),
    (["response", "transports"], "usb", "credential.response.transports"),
    (["response", "transports"], ["usb"] * 20, "credential.response.transports"),
    (["clientExtensionResults"], [], "credential.clientExtensionResults"),
    (["clientExtensionResults", "credProps"], {"rk": "yes"}, "credential.clientExtensionResults.credProps.rk"),
])
def test_registration_field_errors(responses, path, value, field):
    with pytest.raises(ValidationFailed) as caught:
        parse_registration(_mutated(responses[0], path, value))
    assert caught.value.extra["errors"][0]["field"] == field
    assert caught.value.status == 400 and caught.value.code == "validation_error"


def test_padded_or_standard_base64_is_refused(responses):
    created = responses[0]
    padded = created["response"]["clientDataJSON"] + "=" * (-len(created["response"]["clientDataJSON"]) % 4 or 4)
    for bad in (padded, _std_b64(created["response"]["attestationObject"]) + "+/"):
        with pytest.raises(ValidationFailed):
            parse_registration(_mutated(created, ["response", "clientDataJSON"], bad))


def test_truncated_and_trailing_cbor_is_refused(responses):
    created = responses[0]
    raw = b64url_decode(created["response"]["attestationObject"])
    for bad in (raw[: len(raw) // 2], raw[:-1], raw + b"\x00", b"\xa1", b"\xff"):
        with pytest.raises(ValidationFailed) as caught:
            parse_registration(_mutated(created, ["response", "attestationObject"], b64url_encode(bad)))
        assert caught.value.extra["errors"][0]["field"].startswith("credential.response.attestationObject")


def test_attestation_object_with_wrong_member_types_is_refused(responses):
    created = responses[0]
    top = cbor.decode(b64url_decode(created["response"]["attestationObject"]))
    for change in ({"fmt": 5}, {"attStmt": []}, {"authData": "text"}, {"attStmt": {"x5c": [b"", 7]}},
                   {"attStmt": {"alg": "ES256"}}, {"authData": top["authData"][:40]}):
        bad = cbor.encode({**top, **change})
        with pytest.raises(ValidationFailed):
            parse_registration(_mutated(created, ["response", "attestationObject"], b64url_encode(bad)))


def test_attested_credential_id_must_match_id(responses):
    created = responses[0]
    with pytest.raises(ValidationFailed) as caught:
        parse_registration(_mutated(_mutated(created, ["id"], b64url_encode(b"z" * 32)), ["rawId"], _DELETE))
    assert caught.value.extra["errors"][0]["field"] == "credential.id"


@pytest.mark.parametrize(("path", "value", "field"), [
    (["response", "authenticatorData"], b64url_encode(b"short"), "credential.response.authenticatorData"),
    (["response", "authenticatorData"], "pad==", "credential.response.authenticatorData"),
    (["response", "signature"], _DELETE, "credential.response.signature"),
    (["response", "signature"], b64url_encode(b"s" * 2000), "credential.response.signature"),
    (["response", "userHandle"], b64url_encode(b"h" * 65), "credential.response.userHandle"),
    (["response", "userHandle"], 42, "credential.response.userHandle"),
    (["response", "clientDataJSON"], b64url_encode(json.dumps({"type": "webauthn.create", "challenge": "AA",
                                                               "origin": ORIGIN}).encode()),
     "credential.response.clientDataJSON"),
    (["clientExtensionResults", "appid"], "true", "credential.clientExtensionResults.appid"),
])
def test_assertion_field_errors(responses, path, value, field):
    with pytest.raises(ValidationFailed) as caught:
        parse_assertion(_mutated(responses[1], path, value))
    assert caught.value.extra["errors"][0]["field"] == field


def test_assertion_with_attested_data_is_refused(responses):
    created, asserted = responses
    auth_data = cbor.decode(b64url_decode(created["response"]["attestationObject"]))["authData"]
    with pytest.raises(ValidationFailed):
        parse_assertion(_mutated(asserted, ["response", "authenticatorData"], b64url_encode(auth_data)))


def test_empty_user_handle_counts_as_absent(responses):
    assert parse_assertion(_mutated(responses[1], ["response", "userHandle"], "")).user_handle is None
    assert parse_assertion(_mutated(responses[1], ["response", "userHandle"], None)).user_handle is None
