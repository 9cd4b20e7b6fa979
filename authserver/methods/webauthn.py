"""WebAuthn (passkeys and security keys): ceremony options and response verification.

This module knows the protocol and nothing about HTTP or storage: flows hand it a
challenge they keep in the flow row and a parsed client response, and get back a frozen
result or one of our exceptions. The checks follow WebAuthn Level 3 §7.1 (registration)
and §7.2 (authentication); the cryptography (signatures, attestation statement formats)
is py_webauthn's. We run the protocol checks ourselves *before* calling py_webauthn, so
that each failure names the step that failed and so the challenge is compared in
constant time (py_webauthn compares it with ``!=``).

Assurance (DESIGN §4): an assertion with user verification from a device-bound credential
(BE=0) reaches AAL3, from a synced one (BE=1) AAL2, and one without UV AAL1. ``amr`` holds
``hwk`` or ``swk`` plus ``user`` when UV was performed (RFC 8176).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AttestationFormat,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialHint,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authserver.crypto import constant_time_equals
from authserver.errors import WebAuthnFailed
from authserver.methods.base import Proof
from authserver.methods.webauthn_parse import AssertionResponse, ClientData, RegistrationResponse
from authserver.methods.webauthn_time import verification_time

CredentialKind = Literal["passkey", "security-key"]
KINDS: Final[frozenset[str]] = frozenset({"passkey", "security-key"})

ALGORITHMS: Final[tuple[COSEAlgorithmIdentifier, ...]] = (
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
)
CHALLENGE_BYTES: Final = 32  # WebAuthn L3 §13.4.3: at least 16 random bytes
USER_HANDLE_BYTES: Final = 32


@dataclass(frozen=True, kw_only=True)
class RelyingParty:
    """Who we are to authenticators: the RP ID, and every origin allowed to speak for it
    (web origins, ``android:apk-key-hash:`` origins of our apps, related origins)."""

    id: str
    name: str
    origins: tuple[str, ...]
    u2f_appid: str | None = None

    @property
    def id_hash(self) -> bytes:
        return hashlib.sha256(self.id.encode("utf-8")).digest()


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    """A credential to list in ``allowCredentials`` / ``excludeCredentials``."""

    id: bytes
    transports: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class VerifiedRegistration:
    """What a verified registration established (WebAuthn L3 §7.1 steps 25-27 inputs)."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    aaguid: str
    fmt: str
    x5c: list[bytes] = field(repr=False)
    self_attested: bool
    user_verified: bool
    backup_eligible: bool
    backup_state: bool
    discoverable: bool | None
    transports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class VerifiedAssertion:
    """What a verified assertion established; the caller still checks the counter."""

    credential_id: bytes
    sign_count: int
    user_verified: bool
    backup_eligible: bool
    backup_state: bool
    user_handle: bytes | None
    used_appid: bool


def assertion_proof(*, user_verified: bool, backup_eligible: bool) -> Proof:
    """DESIGN §4: UV + BE=0 → AAL3 (hwk user); UV + BE=1 → AAL2 (swk user); no UV → AAL1."""
    possession = "swk" if backup_eligible else "hwk"
    if not user_verified:
        return Proof(method="webauthn", amr=frozenset({possession}), aal=1, factor_class="have")
    return Proof(method="webauthn", amr=frozenset({possession, "user"}), aal=2 if backup_eligible else 3,
                 factor_class="have")


def is_counter_regression(*, stored: int, received: int) -> bool:
    """WebAuthn L3 §6.1.1 / §7.2 step 23: when either counter is non-zero, the new one must be
    greater than the stored one, or the authenticator may be cloned. Authenticators that
    always report zero (most synced passkeys) never trip this."""
    return (stored != 0 or received != 0) and received <= stored


def _fail(step: str, detail: str) -> WebAuthnFailed:
    return WebAuthnFailed(log_detail=f"{step}: {detail}")


class WebAuthnMethod:
    """Options and verification for one relying party."""

    name = "webauthn"

    def __init__(self, rp: RelyingParty, *, attestation: str = "none", timeout_ms: int = 300_000) -> None:
        self.rp = rp
        self.attestation = AttestationConveyancePreference(attestation)
        self.timeout_ms = timeout_ms

    @staticmethod
    def new_challenge() -> bytes:
        return secrets.token_bytes(CHALLENGE_BYTES)

    @staticmethod
    def new_user_handle() -> bytes:
        """WebAuthn L3 §14.6.1: a random user handle, not derived from the username."""
        return secrets.token_bytes(USER_HANDLE_BYTES)

    # ---- options -----------------------------------------------------------------------

    def registration_options(self, *, challenge: bytes, user_handle: bytes, user_name: str, display_name: str,
                             kind: CredentialKind, exclude: Sequence[Descriptor]) -> dict[str, Any]:
        """``PublicKeyCredentialCreationOptionsJSON`` (L3 §5.4) for a passkey or a security key.

        Passkeys must be discoverable and prefer UV; security keys need neither (a YubiKey
        without a PIN refuses both) and carry the ``security-key`` hint (L3 §5.8.7).
        ``credProps`` (§10.1.3) tells us afterwards whether the key is discoverable.
        """
        if kind == "passkey":
            selection = AuthenticatorSelectionCriteria(resident_key=ResidentKeyRequirement.REQUIRED,
                                                       user_verification=UserVerificationRequirement.PREFERRED)
            hints = None
        else:
            selection = AuthenticatorSelectionCriteria(resident_key=ResidentKeyRequirement.DISCOURAGED,
                                                       user_verification=UserVerificationRequirement.DISCOURAGED)
            hints = [PublicKeyCredentialHint.SECURITY_KEY]
        options = generate_registration_options(
            rp_id=self.rp.id, rp_name=self.rp.name, user_name=user_name, user_id=user_handle,
            user_display_name=display_name, challenge=challenge, timeout=self.timeout_ms,
            attestation=self.attestation, authenticator_selection=selection,
            exclude_credentials=[_descriptor(d) for d in exclude], supported_pub_key_algs=list(ALGORITHMS),
            hints=hints)
        data: dict[str, Any] = json.loads(options_to_json(options))
        data["extensions"] = {"credProps": True}
        return data

    def authentication_options(self, *, challenge: bytes, allow: Sequence[Descriptor],
                               user_verification: Literal["required", "preferred", "discouraged"]) -> dict[str, Any]:
        """``PublicKeyCredentialRequestOptionsJSON`` (L3 §5.5); an empty ``allow`` asks for a
        discoverable credential (usernameless and conditional UI). With a legacy U2F AppID
        configured the ``appid`` extension (§10.1.1) lets old U2F registrations sign in."""
        options = generate_authentication_options(
            rp_id=self.rp.id, challenge=challenge, timeout=self.timeout_ms,
            allow_credentials=[_descriptor(d) for d in allow],
            user_verification=UserVerificationRequirement(user_verification))
        data: dict[str, Any] = json.loads(options_to_json(options))
        if self.rp.u2f_appid:
            data["extensions"] = {"appid": self.rp.u2f_appid}
        return data

    # ---- verification ------------------------------------------------------------------

    def _check_client_data(self, client_data: ClientData, expected_challenge: bytes, ceremony: str) -> None:
        # L3 §7.1 step 8 / §7.2 step 12: the challenge we issued, compared in constant time.
        if not constant_time_equals(client_data.challenge, expected_challenge):
            raise _fail(f"{ceremony} challenge", "clientDataJSON.challenge is not the challenge of this flow")
        # L3 §7.1 step 9 / §7.2 step 13: one of our origins (web, android:apk-key-hash:, related).
        if client_data.origin not in self.rp.origins:
            raise _fail(f"{ceremony} origin", f"origin {client_data.origin!r} is not allowed")
        # L3 §7.1 step 10 / §7.2 step 14: we are never embedded in a third-party frame.
        if client_data.cross_origin and client_data.top_origin not in self.rp.origins:
            raise _fail(f"{ceremony} topOrigin", f"cross-origin request from {client_data.top_origin!r}")

    @staticmethod
    def _check_flags(up: bool, uv: bool, be: bool, bs: bool, *, require_uv: bool, ceremony: str) -> None:
        if not up:  # L3 §7.1 step 14 / §7.2 step 16
            raise _fail(f"{ceremony} user presence", "the UP flag is not set")
        if require_uv and not uv:  # L3 §7.1 step 15 / §7.2 step 17
            raise _fail(f"{ceremony} user verification", "UV was required but the UV flag is not set")
        if bs and not be:  # L3 §6.1.3, §7.1 step 16 / §7.2 step 18: BS requires BE
            raise _fail(f"{ceremony} backup flags", "BS is set without BE")

    def verify_registration(self, response: RegistrationResponse, *, expected_challenge: bytes, now: datetime,
                            resident_key_required: bool, require_uv: bool = False) -> VerifiedRegistration:
        """WebAuthn L3 §7.1. The attestation statement is verified for its format; whether
        its *trust path* is acceptable is policy (see ``webauthn_attestation``).

        ``now`` is when certificates are judged (our clock, so recorded responses whose
        certificates have expired since can be verified at their recording time).
        """
        self._check_client_data(response.client_data, expected_challenge, "registration")
        auth_data = response.attestation.auth_data
        # L3 §7.1 step 13: the RP ID hash is ours.
        if not constant_time_equals(auth_data.rp_id_hash, self.rp.id_hash):
            raise _fail("registration rpIdHash", "authenticator data is for another RP ID")
        flags = auth_data.flags
        self._check_flags(flags.up, flags.uv, flags.be, flags.bs, require_uv=require_uv, ceremony="registration")
        try:
            with verification_time(now):
                verified = verify_registration_response(
                    credential=response.for_library(), expected_challenge=expected_challenge,
                    expected_rp_id=self.rp.id, expected_origin=list(self.rp.origins),
                    require_user_verification=require_uv, supported_pub_key_algs=list(ALGORITHMS))
        except WebAuthnException as exc:
            raise _fail("registration attestation", str(exc)) from exc
        except Exception as exc:  # malformed attestation statements surface as assorted built-in errors
            raise _fail("registration attestation", f"{type(exc).__name__}: {exc}") from exc
        # L3 §7.1 step 18 and §10.1.3: discoverability from credProps; a required resident key
        # that the client did not report is discoverable by construction.
        discoverable = response.cred_props_rk
        if discoverable is None and resident_key_required:
            discoverable = True
        fmt = verified.fmt.value if isinstance(verified.fmt, AttestationFormat) else str(verified.fmt)
        x5c = response.x5c
        return VerifiedRegistration(
            credential_id=verified.credential_id, public_key=verified.credential_public_key,
            sign_count=verified.sign_count, aaguid=verified.aaguid, fmt=fmt, x5c=x5c,
            self_attested=fmt == "packed" and not x5c, user_verified=verified.user_verified,
            backup_eligible=flags.be, backup_state=flags.bs, discoverable=discoverable,
            transports=response.transports)

    def verify_assertion(self, response: AssertionResponse, *, expected_challenge: bytes, public_key: bytes,
                         require_uv: bool = False) -> VerifiedAssertion:
        """WebAuthn L3 §7.2 steps 11-22. Steps 5-7 (is this credential allowed, whose is it),
        step 19 (backup eligibility unchanged) and step 23 (signature counter) need the stored
        credential record and are the flow's."""
        self._check_client_data(response.client_data, expected_challenge, "authentication")
        auth_data = response.authenticator_data
        # L3 §7.2 step 15, and §10.1.1: with the appid extension the hash may be of the AppID.
        rp_id = self.rp.id
        if not constant_time_equals(auth_data.rp_id_hash, self.rp.id_hash):
            appid = self.rp.u2f_appid
            appid_hash = hashlib.sha256(appid.encode("utf-8")).digest() if appid else b""
            if not (appid and response.appid_used and constant_time_equals(auth_data.rp_id_hash, appid_hash)):
                raise _fail("authentication rpIdHash", "authenticator data is for another RP ID")
            rp_id = appid
        flags = auth_data.flags
        self._check_flags(flags.up, flags.uv, flags.be, flags.bs, require_uv=require_uv, ceremony="authentication")
        try:
            verified = verify_authentication_response(
                credential=response.for_library(), expected_challenge=expected_challenge, expected_rp_id=rp_id,
                expected_origin=list(self.rp.origins), credential_public_key=public_key,
                # The counter is checked by the flow against the stored value (step 23), after
                # the signature: a forged low counter must not flag a genuine credential.
                credential_current_sign_count=0, require_user_verification=require_uv)
        except WebAuthnException as exc:
            raise _fail("authentication signature", str(exc)) from exc
        except Exception as exc:  # a stored key or signature the library cannot digest
            raise _fail("authentication signature", f"{type(exc).__name__}: {exc}") from exc
        return VerifiedAssertion(credential_id=response.credential_id, sign_count=verified.new_sign_count,
                                 user_verified=verified.user_verified, backup_eligible=flags.be,
                                 backup_state=flags.bs, user_handle=response.user_handle,
                                 used_appid=rp_id != self.rp.id)


def _descriptor(d: Descriptor) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in d.transports if t in _TRANSPORT_VALUES]
    return PublicKeyCredentialDescriptor(id=d.id, transports=transports or None)


_TRANSPORT_VALUES = frozenset(t.value for t in AuthenticatorTransport)


def relying_party(*, rp_id: str, rp_name: str, origins: Sequence[str], related_origins: Sequence[str] = (),
                  u2f_appid: str | None = None) -> RelyingParty:
    """Related origins (L3 §5.11) may run ceremonies for our RP ID, so they are accepted too."""
    merged = tuple(dict.fromkeys([*origins, *related_origins]))
    return RelyingParty(id=rp_id, name=rp_name, origins=merged, u2f_appid=u2f_appid or None)

