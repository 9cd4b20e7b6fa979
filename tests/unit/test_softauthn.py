"""Tests for the software authenticator in ``tests/support/softauthn.py``.

Everything the SoftAuthenticator emits is checked with an independent verifier
(py_webauthn, plus python-fido2 for the attestation-certificate rules), because a test
double that only agrees with itself would let server bugs through.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fido2 import cbor
from fido2.attestation.packed import PackedAttestation
from fido2.webauthn import AttestationObject
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import decode_credential_public_key
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AttestationFormat,
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.registration.verify_registration_response import VerifiedRegistration

# tests/unit has no __init__.py and pytest is not configured with ``pythonpath``, so under
# the default "prepend" import mode the repository root is not importable; make it so.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.support.softauthn import (  # noqa: E402
    ALG_EDDSA,
    ALG_ES256,
    ALG_RS256,
    DEFAULT_AAGUID,
    FIDO_AAGUID_OID,
    ConstraintError,
    InvalidStateError,
    NotAllowedError,
    NotSupportedError,
    SoftAuthenticator,
    TestCA,
    b64url_decode,
    b64url_encode,
)

RP_ID = "auth.example.test"
ORIGIN = "https://auth.example.test"
USER_ID = b"user-0001-handle"
ALL_ALGS = [ALG_ES256, ALG_EDDSA, ALG_RS256]

# RSA key generation dominates runtime, so the RSA-heavy parametrisations are kept few.


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.create()


@pytest.fixture(scope="module")
def other_ca() -> TestCA:
    return TestCA.create(name="Some Other Root")


# --------------------------------------------------------------------------- helpers


def registration_options(
    *,
    algs: Sequence[int] = (ALG_ES256,),
    user_id: bytes = USER_ID,
    user_name: str = "alice",
    resident_key: ResidentKeyRequirement | None = ResidentKeyRequirement.PREFERRED,
    user_verification: UserVerificationRequirement = UserVerificationRequirement.PREFERRED,
    exclude: Sequence[bytes] = (),
    attestation: AttestationConveyancePreference = AttestationConveyancePreference.NONE,
) -> tuple[bytes, dict[str, Any]]:
    """Options JSON exactly as the server would send it, plus the raw challenge."""
    selection = AuthenticatorSelectionCriteria(resident_key=resident_key, user_verification=user_verification)
    opts = generate_registration_options(
        rp_id=RP_ID,
        rp_name="Authserver Test",
        user_name=user_name,
        user_id=user_id,
        authenticator_selection=selection,
        supported_pub_key_algs=[COSEAlgorithmIdentifier(a) for a in algs],
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude],
        attestation=attestation,
    )
    return opts.challenge, json.loads(options_to_json(opts))


def authentication_options(
    *,
    allow: Sequence[bytes] = (),
    user_verification: UserVerificationRequirement = UserVerificationRequirement.PREFERRED,
) -> tuple[bytes, dict[str, Any]]:
    opts = generate_authentication_options(
        rp_id=RP_ID,
        allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in allow],
        user_verification=user_verification,
    )
    return opts.challenge, json.loads(options_to_json(opts))


def register(
    auth: SoftAuthenticator,
    *,
    algs: Sequence[int] | None = None,
    pem_roots: list[bytes] | None = None,
    require_user_verification: bool = False,
    **option_kwargs: Any,
) -> tuple[dict[str, Any], VerifiedRegistration]:
    """Run a registration ceremony through the authenticator and verify it with py_webauthn."""
    algs = list(algs or [auth.alg])
    challenge, options = registration_options(algs=algs, **option_kwargs)
    response = auth.create(options, origin=ORIGIN)
    verified = verify_registration_response(
        credential=response,
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=require_user_verification,
        supported_pub_key_algs=[COSEAlgorithmIdentifier(a) for a in algs],
        pem_root_certs_bytes_by_fmt={AttestationFormat.PACKED: pem_roots} if pem_roots else None,
    )
    return response, verified


def authenticate(
    auth: SoftAuthenticator,
    reg: VerifiedRegistration,
    *,
    current_sign_count: int,
    allow: Sequence[bytes] | None = None,
    user_verification: UserVerificationRequirement = UserVerificationRequirement.PREFERRED,
    require_user_verification: bool = False,
) -> tuple[dict[str, Any], Any]:
    allow_list = [reg.credential_id] if allow is None else list(allow)
    challenge, options = authentication_options(allow=allow_list, user_verification=user_verification)
    response = auth.get(options, origin=ORIGIN)
    verified = verify_authentication_response(
        credential=response,
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=reg.credential_public_key,
        credential_current_sign_count=current_sign_count,
        require_user_verification=require_user_verification,
    )
    return response, verified


def decode_b64_json(value: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(b64url_decode(value))
    return result


# --------------------------------------------------------------------------- encoding


def test_b64url_round_trip_without_padding() -> None:
    for raw in (b"", b"\x00", b"\xff\xfe", bytes(range(33))):
        encoded = b64url_encode(raw)
        assert "=" not in encoded and "+" not in encoded and "/" not in encoded
        assert b64url_decode(encoded) == raw
    assert b64url_decode("_-8=") == b"\xff\xef"  # tolerates padding


# --------------------------------------------------------------------------- algorithms


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_register_and_authenticate_each_algorithm(alg: int) -> None:
    auth = SoftAuthenticator(alg=alg)
    response, reg = register(auth)

    assert decode_credential_public_key(reg.credential_public_key).alg == alg
    assert reg.fmt == AttestationFormat.NONE
    assert reg.aaguid == "5e1f7a0c-0de5-4a4e-8b5a-7e57a17d0001"
    assert reg.sign_count == 0
    assert response["id"] == response["rawId"] == b64url_encode(reg.credential_id)
    assert response["type"] == "public-key"

    # L3 toJSON extras agree with the attested key.
    body = response["response"]
    assert body["publicKeyAlgorithm"] == alg
    spki = serialization.load_der_public_key(b64url_decode(body["publicKey"]))
    stored = auth.get_credential(reg.credential_id)
    assert spki.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == stored.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert stored.public_key_cose == reg.credential_public_key
    att_obj = AttestationObject(b64url_decode(body["attestationObject"]))
    assert bytes(att_obj.auth_data) == b64url_decode(body["authenticatorData"])

    _, auth_result = authenticate(auth, reg, current_sign_count=reg.sign_count)
    assert auth_result.credential_id == reg.credential_id
    assert auth_result.new_sign_count == 1


def test_cbor_is_canonical_and_cose_layout_matches_spec() -> None:
    auth = SoftAuthenticator(alg=ALG_ES256)
    response, _ = register(auth)
    raw = b64url_decode(response["response"]["attestationObject"])
    assert cbor.encode(cbor.decode(raw)) == raw  # canonical CTAP2 encoding round-trips

    att_obj = AttestationObject(raw)
    cred_data = att_obj.auth_data.credential_data
    assert cred_data is not None
    cose: dict[int, Any] = dict(cred_data.public_key)
    assert set(cose) == {1, 3, -1, -2, -3}
    assert (cose[1], cose[3], cose[-1]) == (2, -7, 1)
    assert len(cose[-2]) == len(cose[-3]) == 32


@pytest.mark.parametrize(
    ("alg", "expected_keys"),
    [(ALG_EDDSA, {1: 1, 3: -8, -1: 6}), (ALG_RS256, {1: 3, 3: -257})],
)
def test_okp_and_rsa_cose_keys(alg: int, expected_keys: dict[int, int]) -> None:
    auth = SoftAuthenticator(alg=alg)
    _, reg = register(auth)
    cose = cbor.decode(reg.credential_public_key)
    assert isinstance(cose, dict)
    for label, value in expected_keys.items():
        assert cose[label] == value
    if alg == ALG_RS256:
        assert cose[-2] == b"\x01\x00\x01" and len(cose[-1]) == 256
    else:
        assert set(cose) == {1, 3, -1, -2} and len(cose[-2]) == 32


def test_picks_configured_alg_among_several_offered() -> None:
    auth = SoftAuthenticator(alg=ALG_EDDSA)
    _, reg = register(auth, algs=[ALG_ES256, ALG_EDDSA, ALG_RS256])
    assert decode_credential_public_key(reg.credential_public_key).alg == ALG_EDDSA


def test_unsupported_alg_raises_not_supported() -> None:
    auth = SoftAuthenticator(alg=ALG_EDDSA)
    _, options = registration_options(algs=[ALG_ES256, ALG_RS256])
    with pytest.raises(NotSupportedError):
        auth.create(options, origin=ORIGIN)
    assert auth.credentials == []


# --------------------------------------------------------------------------- attestation


@pytest.mark.parametrize("alg", ALL_ALGS)
def test_packed_self_attestation(alg: int) -> None:
    auth = SoftAuthenticator(alg=alg, attestation="packed-self")
    response, reg = register(auth)
    assert reg.fmt == AttestationFormat.PACKED
    att_obj = AttestationObject(b64url_decode(response["response"]["attestationObject"]))
    assert set(att_obj.att_stmt) == {"alg", "sig"}
    assert att_obj.att_stmt["alg"] == alg


def test_packed_x5c_attestation_chains_to_ca(ca: TestCA, other_ca: TestCA) -> None:
    auth = SoftAuthenticator(attestation="packed-x5c", attestation_ca=ca)
    response, reg = register(auth, pem_roots=[ca.pem])
    assert reg.fmt == AttestationFormat.PACKED

    # Same authenticator, untrusted root: py_webauthn must refuse the chain.
    with pytest.raises(InvalidRegistrationResponse, match="Certificate chain"):
        register(auth, pem_roots=[other_ca.pem])

    # The leaf meets WebAuthn §8.2.1 — checked independently by python-fido2.
    att_obj = AttestationObject(b64url_decode(response["response"]["attestationObject"]))
    assert att_obj.att_stmt["alg"] == ALG_ES256
    client_data_hash = hashlib.sha256(b64url_decode(response["response"]["clientDataJSON"])).digest()
    PackedAttestation().verify(att_obj.att_stmt, att_obj.auth_data, client_data_hash)

    leaf = x509.load_der_x509_certificate(att_obj.att_stmt["x5c"][0])
    assert leaf.issuer == ca.certificate.subject
    ou = leaf.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)
    assert [a.value for a in ou] == ["Authenticator Attestation"]
    ext = leaf.extensions.get_extension_for_oid(FIDO_AAGUID_OID)
    assert not ext.critical
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    assert ext.value.value == b"\x04\x10" + DEFAULT_AAGUID
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert x509.load_der_x509_certificate(ca.der) == ca.certificate


def test_packed_x5c_with_rsa_credential_still_signs_with_batch_key(ca: TestCA) -> None:
    auth = SoftAuthenticator(alg=ALG_RS256, attestation="packed-x5c", attestation_ca=ca)
    _, reg = register(auth, pem_roots=[ca.pem])
    assert decode_credential_public_key(reg.credential_public_key).alg == ALG_RS256


def test_attestation_config_is_validated(ca: TestCA) -> None:
    with pytest.raises(ValueError, match="attestation_ca"):
        SoftAuthenticator(attestation="packed-x5c")
    with pytest.raises(ValueError, match="attestation_ca"):
        SoftAuthenticator(attestation="none", attestation_ca=ca)
    with pytest.raises(ValueError, match="16 bytes"):
        SoftAuthenticator(aaguid=b"short")


# --------------------------------------------------------------------------- flags


@pytest.mark.parametrize(
    ("can_uv", "requirement", "expected"),
    [
        (True, UserVerificationRequirement.PREFERRED, True),
        (True, UserVerificationRequirement.REQUIRED, True),
        (True, UserVerificationRequirement.DISCOURAGED, False),
        (False, UserVerificationRequirement.PREFERRED, False),
        (False, UserVerificationRequirement.REQUIRED, False),
    ],
)
def test_user_verification_flag(
    can_uv: bool, requirement: UserVerificationRequirement, expected: bool
) -> None:
    auth = SoftAuthenticator(user_verification=can_uv)
    _, reg = register(auth, user_verification=requirement)
    assert reg.user_verified is expected
    _, result = authenticate(auth, reg, current_sign_count=0, user_verification=requirement)
    assert result.user_verified is expected


def test_server_side_uv_requirement_rejects_non_uv_authenticator() -> None:
    auth = SoftAuthenticator(user_verification=False)
    with pytest.raises(InvalidRegistrationResponse, match="User verification"):
        register(auth, user_verification=UserVerificationRequirement.REQUIRED, require_user_verification=True)
    _, reg = register(auth)
    with pytest.raises(InvalidAuthenticationResponse, match="User verification"):
        authenticate(
            auth,
            reg,
            current_sign_count=0,
            user_verification=UserVerificationRequirement.REQUIRED,
            require_user_verification=True,
        )


@pytest.mark.parametrize(
    ("be", "bs", "device_type"),
    [
        (False, False, CredentialDeviceType.SINGLE_DEVICE),
        (True, False, CredentialDeviceType.MULTI_DEVICE),
        (True, True, CredentialDeviceType.MULTI_DEVICE),
    ],
)
def test_backup_flags(be: bool, bs: bool, device_type: CredentialDeviceType) -> None:
    auth = SoftAuthenticator(backup_eligible=be, backup_state=bs, attachment="platform", counter_mode="zero")
    response, reg = register(auth)
    assert reg.credential_device_type == device_type
    assert reg.credential_backed_up is bs
    assert response["authenticatorAttachment"] == "platform"
    assert response["response"]["transports"] == ["internal"]
    _, result = authenticate(auth, reg, current_sign_count=0)
    assert result.credential_device_type == device_type
    assert result.credential_backed_up is bs


def test_user_presence_missing_is_rejected() -> None:
    auth = SoftAuthenticator(user_presence=False)
    with pytest.raises(InvalidRegistrationResponse, match="User presence"):
        register(auth)

    auth.user_presence = True
    _, reg = register(auth)
    auth.user_presence = False
    with pytest.raises(InvalidAuthenticationResponse, match="not present"):
        authenticate(auth, reg, current_sign_count=0)


# --------------------------------------------------------------------------- counter


def test_counter_increments_per_assertion() -> None:
    auth = SoftAuthenticator(counter_mode="increment")
    _, reg = register(auth)
    count = reg.sign_count
    for expected in (1, 2, 3):
        _, result = authenticate(auth, reg, current_sign_count=count)
        assert result.new_sign_count == expected
        count = result.new_sign_count
    assert auth.get_credential(reg.credential_id).sign_count == 3


def test_counter_zero_mode_always_reports_zero() -> None:
    auth = SoftAuthenticator(counter_mode="zero")
    _, reg = register(auth)
    for _ in range(3):
        response, result = authenticate(auth, reg, current_sign_count=0)
        assert result.new_sign_count == 0
        assert b64url_decode(response["response"]["authenticatorData"])[33:37] == b"\x00" * 4


def test_counter_regression_simulates_cloned_key() -> None:
    auth = SoftAuthenticator()
    _, reg = register(auth)
    _, first = authenticate(auth, reg, current_sign_count=0)
    _, second = authenticate(auth, reg, current_sign_count=first.new_sign_count)
    assert second.new_sign_count == 2

    auth.set_sign_count(reg.credential_id, 0)  # the clone is behind: next assertion says 1
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        authenticate(auth, reg, current_sign_count=second.new_sign_count)
    with pytest.raises(ValueError):
        auth.set_sign_count(reg.credential_id, -1)


# --------------------------------------------------------------------------- discoverable credentials


def test_discoverable_credential_used_with_empty_allow_credentials() -> None:
    auth = SoftAuthenticator(resident_keys=True)
    response, reg = register(auth, resident_key=ResidentKeyRequirement.REQUIRED)
    assert response["clientExtensionResults"] == {"credProps": {"rk": True}}
    assert auth.get_credential(reg.credential_id).discoverable

    assertion, result = authenticate(auth, reg, current_sign_count=0, allow=[])
    assert result.credential_id == reg.credential_id
    assert b64url_decode(assertion["response"]["userHandle"]) == USER_ID
    assert assertion["clientExtensionResults"] == {}


def test_credential_id_picks_among_discoverable_credentials() -> None:
    auth = SoftAuthenticator(counter_mode="zero")
    _, first = register(auth, user_id=b"user-a", user_name="a", resident_key=ResidentKeyRequirement.REQUIRED)
    _, second = register(auth, user_id=b"user-b", user_name="b", resident_key=ResidentKeyRequirement.REQUIRED)
    _, options = authentication_options()
    assert auth.get(options, origin=ORIGIN)["rawId"] == b64url_encode(first.credential_id)
    chosen = auth.get(options, origin=ORIGIN, credential_id=second.credential_id)
    assert b64url_decode(chosen["response"]["userHandle"]) == b"user-b"
    with pytest.raises(NotAllowedError):
        auth.get(options, origin=ORIGIN, credential_id=b"not-held")


def test_new_discoverable_credential_replaces_same_user() -> None:
    auth = SoftAuthenticator()
    register(auth, resident_key=ResidentKeyRequirement.REQUIRED)
    _, again = register(auth, resident_key=ResidentKeyRequirement.REQUIRED)
    assert [c.credential_id for c in auth.credentials] == [again.credential_id]


@pytest.mark.parametrize(
    ("capable", "requirement", "expected_rk"),
    [
        (True, ResidentKeyRequirement.PREFERRED, True),
        (False, ResidentKeyRequirement.PREFERRED, False),
        (True, ResidentKeyRequirement.DISCOURAGED, False),
        (True, None, False),
    ],
)
def test_resident_key_decision(
    capable: bool, requirement: ResidentKeyRequirement | None, expected_rk: bool
) -> None:
    auth = SoftAuthenticator(resident_keys=capable)
    response, reg = register(auth, resident_key=requirement)
    assert response["clientExtensionResults"]["credProps"] == {"rk": expected_rk}
    assert auth.get_credential(reg.credential_id).discoverable is expected_rk


def test_resident_key_required_but_unsupported() -> None:
    auth = SoftAuthenticator(resident_keys=False)
    _, options = registration_options(resident_key=ResidentKeyRequirement.REQUIRED)
    with pytest.raises(ConstraintError):
        auth.create(options, origin=ORIGIN)


def test_non_discoverable_needs_allow_credentials() -> None:
    auth = SoftAuthenticator(resident_keys=False)
    response, reg = register(auth)
    assert response["clientExtensionResults"]["credProps"] == {"rk": False}
    _, options = authentication_options()
    with pytest.raises(NotAllowedError):
        auth.get(options, origin=ORIGIN)
    assertion, _ = authenticate(auth, reg, current_sign_count=0)
    assert assertion["response"]["userHandle"] is None


def test_cred_props_can_be_left_out() -> None:
    auth = SoftAuthenticator()
    _, options = registration_options()
    assert auth.create(options, origin=ORIGIN, include_cred_props=False)["clientExtensionResults"] == {}


def test_unknown_allow_credentials_not_allowed() -> None:
    auth = SoftAuthenticator()
    register(auth)
    _, options = authentication_options(allow=[b"some-other-credential"])
    with pytest.raises(NotAllowedError):
        auth.get(options, origin=ORIGIN)


# --------------------------------------------------------------------------- exclusion, RP ID, client data


def test_exclude_credentials_honoured() -> None:
    auth = SoftAuthenticator()
    _, reg = register(auth, resident_key=ResidentKeyRequirement.DISCOURAGED)
    _, options = registration_options(exclude=[reg.credential_id], user_id=b"someone-else")
    with pytest.raises(InvalidStateError):
        auth.create(options, origin=ORIGIN)
    assert len(auth.credentials) == 1

    # Excluding a credential held by a *different* authenticator does not block.
    fresh = SoftAuthenticator()
    fresh.create(options, origin=ORIGIN)
    assert len(fresh.credentials) == 1


def test_wrong_rp_id_rejected() -> None:
    auth = SoftAuthenticator()
    challenge, options = registration_options()
    response = auth.create(options, origin=ORIGIN, rp_id="evil.example.test")
    with pytest.raises(InvalidRegistrationResponse, match="RP ID"):
        verify_registration_response(
            credential=response, expected_challenge=challenge, expected_rp_id=RP_ID, expected_origin=ORIGIN
        )

    _, reg = register(auth)
    challenge, options = authentication_options(allow=[reg.credential_id])
    assertion = auth.get(options, origin=ORIGIN, rp_id="evil.example.test")
    with pytest.raises(InvalidAuthenticationResponse, match="RP ID"):
        verify_authentication_response(
            credential=assertion,
            expected_challenge=challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            credential_public_key=reg.credential_public_key,
            credential_current_sign_count=0,
        )


def test_client_data_json_matches_browser_serialisation() -> None:
    auth = SoftAuthenticator()
    challenge, options = registration_options()
    response = auth.create(options, origin=ORIGIN)
    raw = b64url_decode(response["response"]["clientDataJSON"])
    expected_prefix = (
        f'{{"type":"webauthn.create","challenge":"{b64url_encode(challenge)}","origin":"{ORIGIN}"'
    )
    assert raw.decode().startswith(expected_prefix)
    assert decode_b64_json(response["response"]["clientDataJSON"])["crossOrigin"] is False

    _, req = authentication_options()
    assertion = auth.get(req, origin=ORIGIN, cross_origin=True, top_origin="https://top.example")
    client_data = decode_b64_json(assertion["response"]["clientDataJSON"])
    assert client_data["type"] == "webauthn.get"
    assert client_data["crossOrigin"] is True
    assert client_data["topOrigin"] == "https://top.example"


def test_stored_credential_bookkeeping() -> None:
    auth = SoftAuthenticator(aaguid=bytes(range(1, 17)))
    _, reg = register(auth)
    (cred,) = auth.credentials
    assert cred.rp_id == RP_ID
    assert cred.user_handle == USER_ID
    assert cred.credential_id == reg.credential_id
    assert reg.aaguid == "01020304-0506-0708-090a-0b0c0d0e0f10"
    with pytest.raises(AttributeError):
        cred.sign_count = 5  # type: ignore[misc]
