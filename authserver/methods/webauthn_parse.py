"""Strict parsing of the credential JSON a client sends back (``PublicKeyCredential.toJSON()``).

Why this exists: py_webauthn parses leniently (padded or standard base64, trailing bytes
after CBOR, any JSON value where it expects a string) and some of its failures surface as
``TypeError`` or ``KeyError``. DESIGN §6 wants every malformed input refused with 400
``validation_error`` before anything is verified or written, so this module checks shape,
types, sizes and encodings first, and hands py_webauthn only well-formed structures.

Nothing here decides whether a response is *valid* (challenge, origin, signature...):
that is :mod:`authserver.methods.webauthn`. This module only decides whether it is
*well formed*.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from webauthn.helpers import parse_authenticator_data
from webauthn.helpers.parse_attestation_statement import parse_attestation_statement
from webauthn.helpers.structs import (
    AttestationObject,
    AuthenticationCredential,
    AuthenticatorAssertionResponse,
    AuthenticatorAttestationResponse,
    AuthenticatorData,
    RegistrationCredential,
)

from authserver.crypto import b64url_decode, b64url_encode
from authserver.errors import ValidationFailed

MAX_CREDENTIAL_ID = 1023  # WebAuthn L3 §5.8.3: credential IDs are at most 1023 bytes
MAX_CLIENT_DATA = 4096
MAX_ATTESTATION_OBJECT = 32768
MAX_AUTHENTICATOR_DATA = 4096
MAX_SIGNATURE = 1024  # RS256 with a 4096-bit key is 512 bytes; ES256 DER at most 72
MAX_USER_HANDLE = 64  # WebAuthn L3 §5.4.3: user.id is at most 64 bytes
MAX_TRANSPORTS = 8
MAX_STRING = 256
CBOR_MAX_DEPTH = 16

KNOWN_TRANSPORTS = frozenset({"usb", "nfc", "ble", "smart-card", "hybrid", "internal", "cable"})
ATTACHMENTS = frozenset({"platform", "cross-platform"})


@dataclass(frozen=True, kw_only=True)
class ClientData:
    """CollectedClientData (WebAuthn L3 §5.8.1), with the raw bytes the signature covers."""

    type: str
    challenge: bytes
    origin: str
    cross_origin: bool
    top_origin: str | None
    raw: bytes


@dataclass(frozen=True, kw_only=True)
class RegistrationResponse:
    """A well-formed answer to ``navigator.credentials.create()``."""

    credential_id: bytes
    client_data: ClientData
    attestation_object: bytes
    attestation: AttestationObject
    transports: tuple[str, ...]
    attachment: str | None
    cred_props_rk: bool | None  # credProps extension (L3 §10.1.3), None when not reported

    def for_library(self) -> RegistrationCredential:
        return RegistrationCredential(
            id=b64url_encode(self.credential_id), raw_id=self.credential_id,
            response=AuthenticatorAttestationResponse(client_data_json=self.client_data.raw,
                                                      attestation_object=self.attestation_object))

    @property
    def x5c(self) -> list[bytes]:
        return list(self.attestation.att_stmt.x5c or [])


@dataclass(frozen=True, kw_only=True)
class AssertionResponse:
    """A well-formed answer to ``navigator.credentials.get()``."""

    credential_id: bytes
    client_data: ClientData
    authenticator_data_raw: bytes
    authenticator_data: AuthenticatorData
    signature: bytes
    user_handle: bytes | None
    attachment: str | None
    appid_used: bool  # the client says it used the legacy FIDO AppID (L3 §10.1.1)

    def for_library(self) -> AuthenticationCredential:
        return AuthenticationCredential(
            id=b64url_encode(self.credential_id), raw_id=self.credential_id,
            response=AuthenticatorAssertionResponse(
                client_data_json=self.client_data.raw, authenticator_data=self.authenticator_data_raw,
                signature=self.signature, user_handle=self.user_handle))


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, field=f"credential.{field}", log_detail=f"credential.{field}: {message}")


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _invalid(field, "must be an object")
    return value


def _binary(container: Mapping[str, Any], key: str, field: str, *, max_bytes: int, optional: bool = False,
            min_bytes: int = 1) -> bytes | None:
    value = container.get(key)
    if value is None:
        if optional:
            return None
        raise _invalid(field, "is required")
    if not isinstance(value, str):
        raise _invalid(field, "must be a base64url string")
    if len(value) > (max_bytes * 4 + 2) // 3:
        raise _invalid(field, f"is longer than {max_bytes} bytes")
    try:
        data = b64url_decode(value)
    except ValueError as exc:
        raise _invalid(field, "is not strict base64url (URL alphabet, no padding)") from exc
    if len(data) < min_bytes:
        raise _invalid(field, "is empty")
    return data


def _required_binary(container: Mapping[str, Any], key: str, field: str, *, max_bytes: int) -> bytes:
    data = _binary(container, key, field, max_bytes=max_bytes)
    assert data is not None  # noqa: S101 - not optional, so never None
    return data


def decode_cbor(data: bytes, field: str) -> Any:
    """Exactly one CBOR item, no duplicate map keys, nothing after it (RFC 8949 §5.3)."""
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(stream, allow_duplicate_keys=False, max_depth=CBOR_MAX_DEPTH, read_size=1)
        value = decoder.decode()
    except Exception as exc:  # cbor2 raises assorted types for truncated or hostile input
        raise _invalid(field, "is not valid CBOR") from exc
    if stream.tell() != len(data):
        raise _invalid(field, "has bytes after the CBOR item")
    return value


def _client_data(response: Mapping[str, Any], expected_type: str) -> ClientData:
    raw = _required_binary(response, "clientDataJSON", "response.clientDataJSON", max_bytes=MAX_CLIENT_DATA)
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _invalid("response.clientDataJSON", "is not UTF-8 JSON") from exc
    if not isinstance(parsed, dict):
        raise _invalid("response.clientDataJSON", "is not a JSON object")
    kind, challenge, origin = parsed.get("type"), parsed.get("challenge"), parsed.get("origin")
    if not isinstance(kind, str) or not isinstance(challenge, str) or not isinstance(origin, str):
        raise _invalid("response.clientDataJSON", "needs string type, challenge and origin")
    if kind != expected_type:
        raise _invalid("response.clientDataJSON", f"type must be {expected_type}")
    try:
        challenge_bytes = b64url_decode(challenge)
    except ValueError as exc:
        raise _invalid("response.clientDataJSON", "challenge is not strict base64url") from exc
    cross_origin = parsed.get("crossOrigin", False)
    top_origin = parsed.get("topOrigin")
    if not isinstance(cross_origin, bool) or not (top_origin is None or isinstance(top_origin, str)):
        raise _invalid("response.clientDataJSON", "crossOrigin must be a boolean and topOrigin a string")
    return ClientData(type=kind, challenge=challenge_bytes, origin=origin, cross_origin=cross_origin,
                      top_origin=top_origin, raw=raw)


def _authenticator_data(raw: bytes, field: str, *, attested: bool) -> AuthenticatorData:
    """WebAuthn L3 §6.1: rpIdHash(32) flags(1) signCount(4) [attestedCredentialData] [extensions]."""
    if len(raw) < 37:
        raise _invalid(field, "is shorter than 37 bytes")
    flags = raw[32]
    has_attested = bool(flags & 0x40)
    if has_attested != attested:
        raise _invalid(field, "attested credential data flag (AT) is " + ("missing" if attested else "unexpected"))
    if has_attested:
        if len(raw) < 37 + 16 + 2:
            raise _invalid(field, "attested credential data is truncated")
        id_length = int.from_bytes(raw[53:55], "big")
        if id_length == 0 or id_length > MAX_CREDENTIAL_ID or len(raw) < 55 + id_length + 1:
            raise _invalid(field, "credential ID length is out of range or truncated")
        key = raw[55 + id_length:]
        # The COSE key (and any extensions) must decode; trailing garbage is refused by
        # py_webauthn's own "leftover bytes" check below.
        try:
            cbor2.CBORDecoder(io.BytesIO(key), max_depth=CBOR_MAX_DEPTH, allow_duplicate_keys=False).decode()
        except Exception as exc:
            raise _invalid(field, "credential public key is not valid CBOR") from exc
    try:
        return parse_authenticator_data(raw)
    except Exception as exc:
        raise _invalid(field, "is malformed") from exc


def _extension_results(credential: Mapping[str, Any]) -> Mapping[str, Any]:
    results = credential.get("clientExtensionResults")
    if results is None:
        return {}
    return _object(results, "clientExtensionResults")


def _common(credential: Any) -> tuple[Mapping[str, Any], bytes, Mapping[str, Any], str | None]:
    cred = _object(credential, "")
    if cred.get("type", "public-key") != "public-key":
        raise _invalid("type", "must be public-key")
    credential_id = _required_binary(cred, "id", "id", max_bytes=MAX_CREDENTIAL_ID)
    raw_id = _binary(cred, "rawId", "rawId", max_bytes=MAX_CREDENTIAL_ID, optional=True)
    if raw_id is not None and raw_id != credential_id:
        raise _invalid("rawId", "must equal id")
    attachment = cred.get("authenticatorAttachment")
    if attachment is not None and (not isinstance(attachment, str) or len(attachment) > MAX_STRING):
        raise _invalid("authenticatorAttachment", "must be a string")
    return cred, credential_id, _object(cred.get("response"), "response"), (
        attachment if attachment in ATTACHMENTS else None)


def parse_registration(credential: Any) -> RegistrationResponse:
    """Parse a registration response or raise :class:`ValidationFailed` naming the field."""
    cred, credential_id, response, attachment = _common(credential)
    client_data = _client_data(response, "webauthn.create")
    attestation_raw = _required_binary(response, "attestationObject", "response.attestationObject",
                                       max_bytes=MAX_ATTESTATION_OBJECT)
    top = decode_cbor(attestation_raw, "response.attestationObject")
    if not isinstance(top, dict):
        raise _invalid("response.attestationObject", "is not a CBOR map")
    fmt, statement, auth_data = top.get("fmt"), top.get("attStmt"), top.get("authData")
    if not isinstance(fmt, str) or not isinstance(statement, dict) or not isinstance(auth_data, bytes):
        raise _invalid("response.attestationObject", "needs text fmt, map attStmt and bytes authData")
    if len(auth_data) > MAX_AUTHENTICATOR_DATA:
        raise _invalid("response.attestationObject", "authData is too long")
    parsed_auth_data = _authenticator_data(auth_data, "response.attestationObject.authData", attested=True)
    attested = parsed_auth_data.attested_credential_data
    if attested is None or attested.credential_id != credential_id:
        raise _invalid("id", "does not match the credential ID in the attestation")
    x5c = statement.get("x5c")
    if x5c is not None and (not isinstance(x5c, list) or not x5c or len(x5c) > 8
                            or not all(isinstance(c, bytes) for c in x5c)):
        raise _invalid("response.attestationObject", "attStmt.x5c must be a list of certificates")
    for key, kind in (("sig", bytes), ("alg", int), ("ver", str), ("certInfo", bytes), ("pubArea", bytes),
                      ("response", bytes)):
        if key in statement and not isinstance(statement[key], kind):
            raise _invalid("response.attestationObject", f"attStmt.{key} has the wrong type")
    attestation = AttestationObject(fmt=fmt, auth_data=parsed_auth_data,  # type: ignore[arg-type]
                                    att_stmt=parse_attestation_statement(statement))
    transports_raw = response.get("transports", cred.get("transports"))
    transports: list[str] = []
    if transports_raw is not None:
        if not isinstance(transports_raw, list) or len(transports_raw) > MAX_TRANSPORTS or not all(
                isinstance(t, str) and len(t) <= 32 for t in transports_raw):
            raise _invalid("response.transports", f"must be a list of at most {MAX_TRANSPORTS} short strings")
        transports = sorted({t for t in transports_raw if t in KNOWN_TRANSPORTS})
    rk: bool | None = None
    cred_props = _extension_results(cred).get("credProps")
    if cred_props is not None:
        rk_value = _object(cred_props, "clientExtensionResults.credProps").get("rk")
        if rk_value is not None and not isinstance(rk_value, bool):
            raise _invalid("clientExtensionResults.credProps.rk", "must be a boolean")
        rk = rk_value
    return RegistrationResponse(credential_id=credential_id, client_data=client_data,
                                attestation_object=attestation_raw, attestation=attestation,
                                transports=tuple(transports), attachment=attachment, cred_props_rk=rk)


def parse_assertion(credential: Any) -> AssertionResponse:
    """Parse an authentication response or raise :class:`ValidationFailed` naming the field."""
    cred, credential_id, response, attachment = _common(credential)
    client_data = _client_data(response, "webauthn.get")
    auth_raw = _required_binary(response, "authenticatorData", "response.authenticatorData",
                                max_bytes=MAX_AUTHENTICATOR_DATA)
    auth_data = _authenticator_data(auth_raw, "response.authenticatorData", attested=False)
    signature = _required_binary(response, "signature", "response.signature", max_bytes=MAX_SIGNATURE)
    user_handle = _binary(response, "userHandle", "response.userHandle", max_bytes=MAX_USER_HANDLE,
                          optional=True, min_bytes=0) or None
    appid = _extension_results(cred).get("appid", False)
    if not isinstance(appid, bool):
        raise _invalid("clientExtensionResults.appid", "must be a boolean")
    return AssertionResponse(credential_id=credential_id, client_data=client_data, authenticator_data_raw=auth_raw,
                             authenticator_data=auth_data, signature=signature, user_handle=user_handle,
                             attachment=attachment, appid_used=appid)
