"""A software WebAuthn authenticator (plus client) for tests.

Why this exists: passkeys and security keys are our *primary* factors, so the server's
registration and login code paths must be exercised end to end with data that is
byte-for-byte what a browser hands over — real CBOR attestation objects, real COSE keys,
real signatures — without a browser or a USB key in the loop.  Recorded fixtures
(``tests/fixtures/webauthn``) cover "does our verifier accept what real devices send";
this module covers everything that needs *fresh* ceremonies: our own challenges, our own
RP ID, a chosen algorithm / attestation format / flag combination, counter behaviour, and
deliberately broken responses (wrong RP ID, UP missing, cloned-key counter regression).

The :class:`SoftAuthenticator` plays both halves of the WebAuthn stack:

* the *client* (browser) half: it takes the ``PublicKeyCredential*OptionsJSON`` dicts the
  server sends (as produced by py_webauthn's ``options_to_json``), builds
  ``clientDataJSON`` and returns what ``PublicKeyCredential.toJSON()`` returns; and
* the *authenticator* half (WebAuthn L3 §6): it keeps credential sources, builds
  authenticator data, signs, and produces the attestation statement.

It is intentionally *more permissive than a browser* where that helps negative tests: it
does not check that the origin matches the RP ID, it can emit an RP ID hash for an RP ID
it was not asked for, it can omit the UP flag, and it can omit UV even when the RP
required it.  Everything else follows the spec so that a response the server accepts
from it is one it would also accept from a real browser.

Written from the WebAuthn Level 3 and CTAP 2.1 specifications; py_webauthn and
python-fido2 were only read to confirm the wire formats they expect.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from fido2 import cbor

__all__ = [
    "ALG_EDDSA",
    "ALG_ES256",
    "ALG_RS256",
    "DEFAULT_AAGUID",
    "FIDO_AAGUID_OID",
    "FLAG_AT",
    "FLAG_BE",
    "FLAG_BS",
    "FLAG_ED",
    "FLAG_UP",
    "FLAG_UV",
    "ConstraintError",
    "InvalidStateError",
    "NotAllowedError",
    "NotSupportedError",
    "SoftAuthenticator",
    "SoftAuthnError",
    "StoredCredential",
    "TestCA",
    "b64url_decode",
    "b64url_encode",
]

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

#: COSE algorithm identifiers (IANA "COSE Algorithms" registry) that we can generate.
ALG_ES256 = -7
ALG_EDDSA = -8
ALG_RS256 = -257

#: Authenticator data flag bits, WebAuthn L3 §6.1.
FLAG_UP = 0x01  # user present
FLAG_UV = 0x04  # user verified
FLAG_BE = 0x08  # backup eligible
FLAG_BS = 0x10  # backup state (currently backed up)
FLAG_AT = 0x40  # attested credential data included
FLAG_ED = 0x80  # extension data included

#: id-fido-gen-ce-aaguid: the X.509 extension carrying the AAGUID in attestation certs.
FIDO_AAGUID_OID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")

#: A fixed, recognisable, non-zero AAGUID so tests can assert on it and so nobody mistakes
#: it for the all-zero AAGUID that anonymised ("none") attestation uses in the wild.
DEFAULT_AAGUID = bytes.fromhex("5e1f7a0c0de54a4e8b5a7e57a17d0001")

# The COSE key type / curve labels we emit (RFC 9052/9053, WebAuthn §5.8.5 examples).
_KTY_OKP = 1
_KTY_EC2 = 2
_KTY_RSA = 3
_CRV_P256 = 1
_CRV_ED25519 = 6

# WebAuthn §5.1.3 step 10: an empty pubKeyCredParams means "ES256 or RS256".
_DEFAULT_PUB_KEY_ALGS = (ALG_ES256, ALG_RS256)

AttestationMode: TypeAlias = Literal["none", "packed-self", "packed-x5c"]
CounterMode: TypeAlias = Literal["increment", "zero"]
Attachment: TypeAlias = Literal["platform", "cross-platform"]
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
CoseKey: TypeAlias = dict[int, int | bytes]


# --------------------------------------------------------------------------------------
# Errors — named after the DOMExceptions a browser would reject the promise with, so a
# test reads like the browser behaviour it simulates.
# --------------------------------------------------------------------------------------


class SoftAuthnError(Exception):
    """Base class for ceremony failures; ``name`` is the equivalent DOMException name."""

    name = "Error"


class InvalidStateError(SoftAuthnError):
    """A credential listed in ``excludeCredentials`` is already on this authenticator."""

    name = "InvalidStateError"


class NotSupportedError(SoftAuthnError):
    """None of ``pubKeyCredParams`` is the algorithm this authenticator is configured for."""

    name = "NotSupportedError"


class NotAllowedError(SoftAuthnError):
    """No usable credential (or authenticator) for the request; browsers hide the reason."""

    name = "NotAllowedError"


class ConstraintError(SoftAuthnError):
    """``residentKey: "required"`` but this authenticator cannot store discoverable keys.

    WebAuthn L3 §6.3.2 step 4 has the authenticator return an error "equivalent to
    ConstraintError" here; surfacing it (instead of the browser's eventual generic
    NotAllowedError) tells the test author exactly which knob to turn.
    """

    name = "ConstraintError"


# --------------------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url, the encoding of every binary field in WebAuthn JSON."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(data: str) -> bytes:
    """Decode base64url with or without padding (servers and browsers differ on padding)."""
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _int_to_bytes(value: int, length: int | None = None) -> bytes:
    """Big-endian unsigned encoding; minimal length unless ``length`` is given."""
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def _generate_key(alg: int) -> PrivateKey:
    """Make a fresh credential key pair for a COSE algorithm we support."""
    if alg == ALG_ES256:
        return ec.generate_private_key(ec.SECP256R1())
    if alg == ALG_EDDSA:
        return ed25519.Ed25519PrivateKey.generate()
    if alg == ALG_RS256:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unsupported COSE algorithm {alg}")


def _sign(key: PrivateKey, alg: int, data: bytes) -> bytes:
    """Sign ``data`` the way WebAuthn §6.5.6 / the COSE algorithm defines for ``alg``.

    ES256 signatures are ASN.1 DER (not raw r||s) because that is what WebAuthn mandates
    for ECDSA in both assertions and packed attestation.
    """
    if alg == ALG_ES256 and isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if alg == ALG_EDDSA and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if alg == ALG_RS256 and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise ValueError(f"key type {type(key).__name__} does not match COSE algorithm {alg}")


def _cose_public_key(key: PrivateKey, alg: int) -> CoseKey:
    """Encode the public half of ``key`` as a COSE_Key map (WebAuthn §6.5.1.1)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers = key.public_key().public_numbers()
        # EC2 coordinates are fixed-length (32 bytes for P-256), left-padded with zeros.
        return {
            1: _KTY_EC2,
            3: alg,
            -1: _CRV_P256,
            -2: _int_to_bytes(numbers.x, 32),
            -3: _int_to_bytes(numbers.y, 32),
        }
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {1: _KTY_OKP, 3: alg, -1: _CRV_ED25519, -2: raw}
    rsa_numbers = key.public_key().public_numbers()
    return {1: _KTY_RSA, 3: alg, -1: _int_to_bytes(rsa_numbers.n), -2: _int_to_bytes(rsa_numbers.e)}


def _spki_der(key: PrivateKey) -> bytes:
    """SubjectPublicKeyInfo DER, what L3 ``getPublicKey()`` / ``response.publicKey`` carries."""
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _client_data_json(
    *, ceremony: str, challenge: str, origin: str, cross_origin: bool, top_origin: str | None
) -> bytes:
    """Serialise CollectedClientData in the member order of WebAuthn L3 §5.8.1.1.

    Browsers emit exactly ``type, challenge, origin, crossOrigin[, topOrigin]`` compactly;
    matching that keeps responses faithful for anyone parsing with the "limited
    verification algorithm" instead of a full JSON parser.
    """
    data: dict[str, Any] = {
        "type": ceremony,
        "challenge": b64url_encode(b64url_decode(challenge)),  # normalise away any padding
        "origin": origin,
        "crossOrigin": cross_origin,
    }
    if top_origin is not None:
        data["topOrigin"] = top_origin
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _default_rp_id(origin: str) -> str:
    """The RP ID a browser uses when the options omit it: the origin's effective domain."""
    host = urlsplit(origin).hostname
    if not host:
        raise ValueError(f"cannot derive an RP ID from origin {origin!r}")
    return host


# --------------------------------------------------------------------------------------
# Test certificate authority (for packed-x5c attestation)
# --------------------------------------------------------------------------------------


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class TestCA:
    """A throw-away attestation root, so x5c attestation can be verified against a trust anchor.

    Real security keys chain to a vendor root published in the FIDO MDS; tests need a root
    whose private key they hold, both to build a chain the server *should* trust and a
    second, unrelated one it must *not*.
    """

    __test__ = False  # not a pytest test class despite the name

    name: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    certificate: x509.Certificate = field(repr=False)

    @classmethod
    def create(cls, name: str = "Authserver Test Root") -> TestCA:
        """Generate a self-signed ES256 (P-256 / SHA-256) root CA certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Authserver Tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        now = _utcnow()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(name=name, private_key=key, certificate=cert)

    @property
    def der(self) -> bytes:
        """The root certificate, DER-encoded (as stored in MDS ``attestationRootCertificates``)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """The root certificate, PEM-encoded (what py_webauthn's ``pem_root_certs_bytes_by_fmt`` takes)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_attestation_cert(self, aaguid: bytes | None) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
        """Issue a batch attestation key + leaf cert meeting WebAuthn §8.2.1 requirements.

        Version 3; subject with C, O, OU="Authenticator Attestation" and CN; Basic
        Constraints CA=false; and, when ``aaguid`` is given, the non-critical
        id-fido-gen-ce-aaguid extension whose value is the AAGUID as an OCTET STRING —
        so verifiers that cross-check the AAGUID against authData can be tested too.
        Returns ``(private_key, certificate_der)``.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = _utcnow()
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Authserver Tests"),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "Authserver SoftAuthn Batch Attestation"),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
        )
        if aaguid is not None:
            if len(aaguid) != 16:
                raise ValueError("AAGUID must be 16 bytes")
            # extnValue holds the DER of an OCTET STRING containing the 16 AAGUID bytes.
            builder = builder.add_extension(
                x509.UnrecognizedExtension(FIDO_AAGUID_OID, b"\x04\x10" + aaguid), critical=False
            )
        cert = builder.sign(self.private_key, hashes.SHA256())
        return key, cert.public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------------------
# Credential storage
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredCredential:
    """One public key credential source held by the authenticator (WebAuthn §6.2).

    Frozen so tests cannot accidentally desynchronise it from the authenticator; state
    changes (the signature counter) go through :meth:`SoftAuthenticator.set_sign_count`.
    """

    credential_id: bytes
    private_key: PrivateKey = field(repr=False)
    alg: int
    rp_id: str
    user_handle: bytes | None
    sign_count: int
    discoverable: bool

    @property
    def public_key_cose(self) -> bytes:
        """The CBOR COSE_Key exactly as it appears in attested credential data."""
        return cbor.encode(_cose_public_key(self.private_key, self.alg))

    @property
    def id_b64url(self) -> str:
        """The credential ID as it appears in JSON (``id`` / ``rawId``)."""
        return b64url_encode(self.credential_id)


# --------------------------------------------------------------------------------------
# The authenticator
# --------------------------------------------------------------------------------------


class SoftAuthenticator:
    """A configurable software authenticator that produces genuine WebAuthn responses.

    Each knob maps to a property of a real device class, so a test can say "a synced
    passkey that does UV" or "an old U2F-style key with a zero counter" directly:

    * ``alg`` — the one COSE algorithm it makes keys for (-7 ES256, -8 EdDSA, -257 RS256).
    * ``attestation`` — ``"none"``, ``"packed-self"`` (signed with the credential key) or
      ``"packed-x5c"`` (signed with a batch key whose cert is issued by ``attestation_ca``).
    * ``aaguid`` — the 16-byte model identifier put in attested credential data.
    * ``user_verification`` — whether it performs UV (PIN/biometric) when not discouraged.
    * ``backup_eligible`` / ``backup_state`` — the BE/BS flags (synced passkey vs.
      device-bound key).  BS without BE is invalid per spec but allowed, for negative tests.
    * ``resident_keys`` — whether it can store discoverable credentials.
    * ``counter_mode`` — ``"increment"`` (+1 per assertion) or ``"zero"`` (always 0, like
      most synced passkeys).
    * ``user_presence`` — set False to emit responses without the UP flag (negative tests).
    * ``attachment`` / ``transports`` — what ``authenticatorAttachment`` and
      ``response.transports`` report; transports default from the attachment.

    All knobs are plain attributes afterwards, so a test can e.g. flip ``backup_state``
    to simulate a passkey that got synced after registration.
    """

    def __init__(
        self,
        *,
        alg: int = ALG_ES256,
        attestation: AttestationMode = "none",
        attestation_ca: TestCA | None = None,
        aaguid: bytes = DEFAULT_AAGUID,
        user_verification: bool = True,
        backup_eligible: bool = False,
        backup_state: bool = False,
        resident_keys: bool = True,
        counter_mode: CounterMode = "increment",
        user_presence: bool = True,
        attachment: Attachment = "cross-platform",
        transports: Sequence[str] | None = None,
    ) -> None:
        if alg not in (ALG_ES256, ALG_EDDSA, ALG_RS256):
            raise ValueError(f"unsupported COSE algorithm {alg}; use -7, -8 or -257")
        if attestation not in ("none", "packed-self", "packed-x5c"):
            raise ValueError(f"unknown attestation mode {attestation!r}")
        if len(aaguid) != 16:
            raise ValueError("AAGUID must be exactly 16 bytes")
        if counter_mode not in ("increment", "zero"):
            raise ValueError(f"unknown counter mode {counter_mode!r}")
        if attachment not in ("platform", "cross-platform"):
            raise ValueError(f"unknown attachment {attachment!r}")
        if attestation == "packed-x5c" and attestation_ca is None:
            raise ValueError('attestation="packed-x5c" needs attestation_ca=TestCA.create()')
        if attestation != "packed-x5c" and attestation_ca is not None:
            raise ValueError('attestation_ca is only used with attestation="packed-x5c"')

        self.alg = alg
        self.attestation: AttestationMode = attestation
        self.aaguid = aaguid
        self.user_verification = user_verification
        self.backup_eligible = backup_eligible
        self.backup_state = backup_state
        self.resident_keys = resident_keys
        self.counter_mode: CounterMode = counter_mode
        self.user_presence = user_presence
        self.attachment: Attachment = attachment
        if transports is None:
            transports = ["internal"] if attachment == "platform" else ["usb"]
        self.transports: list[str] = list(transports)

        # One batch key/cert per authenticator instance, like a production batch of keys.
        self._attestation_key: ec.EllipticCurvePrivateKey | None = None
        self._attestation_cert_der: bytes | None = None
        if attestation_ca is not None:
            self._attestation_key, self._attestation_cert_der = attestation_ca.issue_attestation_cert(aaguid)

        # Insertion-ordered, so "first discoverable credential" is deterministic.
        self._credentials: dict[bytes, StoredCredential] = {}

    # ---------------------------------------------------------------- credential access

    @property
    def credentials(self) -> list[StoredCredential]:
        """Snapshot of the credential sources held, oldest first."""
        return list(self._credentials.values())

    @property
    def attestation_cert_der(self) -> bytes | None:
        """The batch attestation leaf (packed-x5c only), for tests that inspect the chain."""
        return self._attestation_cert_der

    def get_credential(self, credential_id: bytes) -> StoredCredential:
        """Look up a held credential by ID (``KeyError`` if absent)."""
        return self._credentials[credential_id]

    def set_sign_count(self, credential_id: bytes, n: int) -> None:
        """Overwrite a credential's stored signature counter.

        The next assertion reports ``n + 1`` in "increment" mode, so setting a value below
        what the server has stored simulates a cloned authenticator (§6.1.1) whose copy
        has fallen behind.
        """
        if not 0 <= n < 2**32:
            raise ValueError("sign count is an unsigned 32-bit integer")
        cred = self._credentials[credential_id]
        self._credentials[credential_id] = replace(cred, sign_count=n)

    # ---------------------------------------------------------------- ceremonies

    def create(
        self,
        options: Mapping[str, Any],
        *,
        origin: str,
        rp_id: str | None = None,
        include_cred_props: bool = True,
        cross_origin: bool = False,
        top_origin: str | None = None,
    ) -> dict[str, Any]:
        """Run ``navigator.credentials.create()`` on these options; return ``toJSON()`` of the result.

        ``options`` is ``PublicKeyCredentialCreationOptionsJSON`` (e.g.
        ``json.loads(webauthn.options_to_json(generate_registration_options(...)))``).
        ``rp_id``, if given, replaces the RP ID used for the rpIdHash only — the way to
        forge a response for the wrong RP; the credential is still stored under the
        options' RP ID.  ``include_cred_props`` controls the ``credProps`` client
        extension output (browsers report it when asked; we report it unless told not
        to, since servers use it to learn whether the key is discoverable).

        Raises :class:`NotSupportedError`, :class:`InvalidStateError` or
        :class:`NotAllowedError` as a browser would, and :class:`ConstraintError` (the
        authenticator-level error a browser turns into NotAllowedError) when a
        discoverable credential is required but ``resident_keys`` is False.
        """
        rp = options.get("rp") or {}
        scope_rp_id: str = rp.get("id") or _default_rp_id(origin)
        hash_rp_id = rp_id if rp_id is not None else scope_rp_id
        selection: Mapping[str, Any] = options.get("authenticatorSelection") or {}

        # Attachment filter: a browser never offers an authenticator of the wrong kind.
        wanted_attachment = selection.get("authenticatorAttachment")
        if wanted_attachment in ("platform", "cross-platform") and wanted_attachment != self.attachment:
            raise NotAllowedError(
                f"RP asked for a {wanted_attachment} authenticator; this one is {self.attachment}"
            )

        # §6.3.2 step 2: we make keys for one algorithm only, so it must be on the RP's list.
        params = options.get("pubKeyCredParams") or [
            {"type": "public-key", "alg": a} for a in _DEFAULT_PUB_KEY_ALGS
        ]
        offered = [p.get("alg") for p in params if p.get("type") == "public-key"]
        if self.alg not in offered:
            raise NotSupportedError(f"authenticator only does alg {self.alg}; RP offered {offered}")
        alg = self.alg

        # §6.3.2 step 3: refuse to make a second credential for an excluded one.
        for descriptor in options.get("excludeCredentials") or []:
            if descriptor.get("type", "public-key") != "public-key":
                continue
            held = self._credentials.get(b64url_decode(descriptor["id"]))
            if held is not None and held.rp_id == scope_rp_id:
                raise InvalidStateError("authenticator already holds an excluded credential")

        # Discoverability: residentKey wins; otherwise the legacy requireResidentKey boolean.
        resident_key = selection.get("residentKey")
        if resident_key not in ("required", "preferred", "discouraged"):
            resident_key = "required" if selection.get("requireResidentKey") else "discouraged"
        if resident_key == "required":
            if not self.resident_keys:
                raise ConstraintError("discoverable credential required but resident_keys=False")
            discoverable = True
        elif resident_key == "preferred":
            discoverable = self.resident_keys
        else:
            discoverable = False

        uv = self._does_uv(selection.get("userVerification"))

        user = options.get("user") or {}
        user_handle = b64url_decode(user["id"]) if user.get("id") else None

        # CTAP2: a new discoverable credential replaces one for the same RP + user handle.
        if discoverable:
            for old_id, old in list(self._credentials.items()):
                if old.discoverable and old.rp_id == scope_rp_id and old.user_handle == user_handle:
                    del self._credentials[old_id]

        key = _generate_key(alg)
        credential = StoredCredential(
            credential_id=secrets.token_bytes(32),
            private_key=key,
            alg=alg,
            rp_id=scope_rp_id,
            user_handle=user_handle,
            sign_count=0,
            discoverable=discoverable,
        )
        self._credentials[credential.credential_id] = credential

        client_data = _client_data_json(
            ceremony="webauthn.create",
            challenge=options["challenge"],
            origin=origin,
            cross_origin=cross_origin,
            top_origin=top_origin,
        )
        cose_key = cbor.encode(_cose_public_key(key, alg))
        attested = (
            self.aaguid
            + len(credential.credential_id).to_bytes(2, "big")
            + credential.credential_id
            + cose_key
        )
        auth_data = self._authenticator_data(hash_rp_id, uv=uv, sign_count=0, attested=attested)
        fmt, att_stmt = self._attestation_statement(credential, auth_data + _sha256(client_data))
        attestation_object = cbor.encode({"fmt": fmt, "attStmt": att_stmt, "authData": auth_data})

        client_extension_results: dict[str, Any] = {}
        if include_cred_props:
            client_extension_results["credProps"] = {"rk": discoverable}

        return {
            "id": credential.id_b64url,
            "rawId": credential.id_b64url,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url_encode(client_data),
                "authenticatorData": b64url_encode(auth_data),
                "transports": list(self.transports),
                "publicKey": b64url_encode(_spki_der(key)),
                "publicKeyAlgorithm": alg,
                "attestationObject": b64url_encode(attestation_object),
            },
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": client_extension_results,
        }

    def get(
        self,
        options: Mapping[str, Any],
        *,
        origin: str,
        rp_id: str | None = None,
        credential_id: bytes | None = None,
        cross_origin: bool = False,
        top_origin: str | None = None,
    ) -> dict[str, Any]:
        """Run ``navigator.credentials.get()`` on these options; return ``toJSON()`` of the result.

        ``options`` is ``PublicKeyCredentialRequestOptionsJSON``.  With an empty
        ``allowCredentials`` the oldest discoverable credential for the RP is used (the
        account picker's choice); otherwise the first allowed credential we hold.
        ``credential_id`` forces a specific held credential and skips both filters — a
        test hook for "user picked account B" or "client sent a credential the RP did
        not allow".  ``rp_id`` only changes the rpIdHash (wrong-RP negative tests).

        Raises :class:`NotAllowedError` when no credential can be used.
        """
        scope_rp_id: str = options.get("rpId") or _default_rp_id(origin)
        hash_rp_id = rp_id if rp_id is not None else scope_rp_id

        credential = self._select_credential(options, scope_rp_id, credential_id)
        uv = self._does_uv(options.get("userVerification"))

        if self.counter_mode == "increment":
            sign_count = (credential.sign_count + 1) % 2**32
            credential = replace(credential, sign_count=sign_count)
            self._credentials[credential.credential_id] = credential
        else:
            sign_count = 0

        client_data = _client_data_json(
            ceremony="webauthn.get",
            challenge=options["challenge"],
            origin=origin,
            cross_origin=cross_origin,
            top_origin=top_origin,
        )
        auth_data = self._authenticator_data(hash_rp_id, uv=uv, sign_count=sign_count)
        signature = _sign(credential.private_key, credential.alg, auth_data + _sha256(client_data))

        # Non-discoverable credentials have no stored user handle on a real authenticator,
        # and CTAP omits it; the JSON then carries null.
        user_handle = credential.user_handle if credential.discoverable else None
        return {
            "id": credential.id_b64url,
            "rawId": credential.id_b64url,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url_encode(client_data),
                "authenticatorData": b64url_encode(auth_data),
                "signature": b64url_encode(signature),
                "userHandle": b64url_encode(user_handle) if user_handle is not None else None,
            },
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {},
        }

    # ---------------------------------------------------------------- internals

    def _does_uv(self, requirement: str | None) -> bool:
        """Whether this ceremony sets UV.

        UV happens only if the device can do it and the RP did not discourage it.  A
        ``"required"`` request to a non-UV device still yields a UV-less response rather
        than an error, so tests can check the server enforces its own requirement.
        """
        return self.user_verification and requirement != "discouraged"

    def _select_credential(
        self, options: Mapping[str, Any], scope_rp_id: str, credential_id: bytes | None
    ) -> StoredCredential:
        if credential_id is not None:
            try:
                return self._credentials[credential_id]
            except KeyError:
                raise NotAllowedError("requested credential is not on this authenticator") from None

        allowed = [
            b64url_decode(d["id"])
            for d in options.get("allowCredentials") or []
            if d.get("type", "public-key") == "public-key"
        ]
        if not allowed:
            for cred in self._credentials.values():
                if cred.discoverable and cred.rp_id == scope_rp_id:
                    return cred
            raise NotAllowedError(f"no discoverable credential for RP {scope_rp_id!r}")

        for cred_id in allowed:
            held = self._credentials.get(cred_id)
            if held is not None and held.rp_id == scope_rp_id:
                return held
        raise NotAllowedError("none of allowCredentials is on this authenticator")

    def _authenticator_data(
        self, rp_id: str, *, uv: bool, sign_count: int, attested: bytes | None = None
    ) -> bytes:
        """Build authenticator data (§6.1): rpIdHash | flags | signCount | [attestedCredData]."""
        flags = 0
        if self.user_presence:
            flags |= FLAG_UP
        if uv:
            flags |= FLAG_UV
        if self.backup_eligible:
            flags |= FLAG_BE
        if self.backup_state:
            flags |= FLAG_BS
        if attested is not None:
            flags |= FLAG_AT
        data = _sha256(rp_id.encode("utf-8")) + bytes([flags]) + sign_count.to_bytes(4, "big")
        if attested is not None:
            data += attested
        return data

    def _attestation_statement(
        self, credential: StoredCredential, signed_data: bytes
    ) -> tuple[str, dict[str, Any]]:
        """Produce ``(fmt, attStmt)`` for the configured attestation mode (§8.2, §8.7)."""
        if self.attestation == "none":
            return "none", {}
        if self.attestation == "packed-self":
            sig = _sign(credential.private_key, credential.alg, signed_data)
            return "packed", {"alg": credential.alg, "sig": sig}
        if self._attestation_key is None or self._attestation_cert_der is None:
            raise RuntimeError("packed-x5c attestation without a batch key; was attestation changed?")
        sig = _sign(self._attestation_key, ALG_ES256, signed_data)
        return "packed", {"alg": ALG_ES256, "sig": sig, "x5c": [self._attestation_cert_der]}
