"""Our own FIDO metadata BLOBs, signed by our own CAs, for tests.

Why this exists: the real MDS3 BLOB is signed by the FIDO Alliance under a GlobalSign
root, changes monthly and names real devices, so tests cannot choose what it says
(a REVOKED model, a status that takes effect next year, a lower serial number) or sign
a broken one.  This module builds a certificate hierarchy with ``cryptography`` and
emits compact JWS BLOBs in the MDS3 wire format: header ``{"alg", "typ", "x5c"}`` with
standard-base64 DER certificates, payload ``{"legalHeader", "no", "nextUpdate",
"entries"}``, and RFC 7518 signatures (ECDSA as raw ``R || S``).  Entries carry every
field python-fido2's ``MetadataStatement`` parser requires.

Written from the FIDO MDS 3.0 and RFC 7515/7518 specifications.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

__all__ = [
    "DEFAULT_NOT_AFTER",
    "DEFAULT_NOT_BEFORE",
    "LEGAL_HEADER",
    "Alg",
    "BlobSigner",
    "CertAuthority",
    "Issued",
    "b64url",
    "build_blob",
    "make_entry",
    "make_signer",
    "tamper_payload",
]

Alg: TypeAlias = Literal["ES256", "ES384", "RS256"]
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

DEFAULT_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
DEFAULT_NOT_AFTER = datetime(2040, 1, 1, tzinfo=UTC)
LEGAL_HEADER = "Test metadata. Not the FIDO Alliance's; signed by a throwaway test CA."

_HASHES: dict[Alg, hashes.HashAlgorithm] = {
    "ES256": hashes.SHA256(),
    "ES384": hashes.SHA384(),
    "RS256": hashes.SHA256(),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_key(alg: Alg) -> PrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP384R1() if alg == "ES384" else ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "authserver tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _build_cert(
    *,
    subject: x509.Name,
    subject_key: PrivateKey,
    issuer: x509.Name,
    issuer_key: PrivateKey,
    ca: bool,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None = None,
    basic_constraints: bool = True,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_key_usage(ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
    )
    if basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True, kw_only=True)
class Issued:
    """An end-entity certificate and its key."""

    key: PrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, kw_only=True)
class CertAuthority:
    """A CA (root or intermediate) that can issue leaves and further intermediates."""

    key: PrivateKey
    cert: x509.Certificate

    @classmethod
    def create(
        cls,
        common_name: str,
        *,
        alg: Alg = "ES256",
        not_before: datetime = DEFAULT_NOT_BEFORE,
        not_after: datetime = DEFAULT_NOT_AFTER,
    ) -> CertAuthority:
        """A self-signed root."""
        key = generate_key(alg)
        name = _name(common_name)
        cert = _build_cert(
            subject=name,
            subject_key=key,
            issuer=name,
            issuer_key=key,
            ca=True,
            not_before=not_before,
            not_after=not_after,
        )
        return cls(key=key, cert=cert)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        alg: Alg = "ES256",
        not_before: datetime = DEFAULT_NOT_BEFORE,
        not_after: datetime = DEFAULT_NOT_AFTER,
        key: PrivateKey | None = None,
    ) -> Issued:
        """An end-entity (``CA:FALSE``) certificate signed by this CA."""
        subject_key = key or generate_key(alg)
        cert = _build_cert(
            subject=_name(common_name),
            subject_key=subject_key,
            issuer=self.cert.subject,
            issuer_key=self.key,
            ca=False,
            not_before=not_before,
            not_after=not_after,
        )
        return Issued(key=subject_key, cert=cert)

    def intermediate(
        self,
        common_name: str,
        *,
        alg: Alg = "ES256",
        not_before: datetime = DEFAULT_NOT_BEFORE,
        not_after: datetime = DEFAULT_NOT_AFTER,
        ca_flag: bool = True,
        basic_constraints: bool = True,
    ) -> CertAuthority:
        """A subordinate CA.  ``ca_flag=False`` / ``basic_constraints=False`` build the
        broken "intermediates" a verifier must refuse to chain through."""
        key = generate_key(alg)
        cert = _build_cert(
            subject=_name(common_name),
            subject_key=key,
            issuer=self.cert.subject,
            issuer_key=self.key,
            ca=ca_flag,
            not_before=not_before,
            not_after=not_after,
            basic_constraints=basic_constraints,
        )
        return CertAuthority(key=key, cert=cert)


@dataclass(frozen=True, kw_only=True)
class BlobSigner:
    """The key that signs a BLOB, the ``x5c`` chain it sends, and the root it chains to."""

    alg: Alg
    key: PrivateKey
    chain: tuple[x509.Certificate, ...]  # leaf first, then intermediates; never the root
    root: CertAuthority

    @property
    def x5c(self) -> list[str]:
        # RFC 7515 §4.1.6: standard base64 with padding, not base64url.
        return [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii") for c in self.chain
        ]

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature value (RFC 7518 §3): PKCS#1 v1.5 for RS256, ``R || S`` for ES*."""
        hash_alg = _HASHES[self.alg]
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(signing_input, padding.PKCS1v15(), hash_alg)
        der = self.key.sign(signing_input, ec.ECDSA(hash_alg))
        r, s = decode_dss_signature(der)
        size = (self.key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def make_signer(
    *,
    alg: Alg = "ES256",
    root: CertAuthority | None = None,
    intermediate: bool = False,
    leaf_not_before: datetime = DEFAULT_NOT_BEFORE,
    leaf_not_after: datetime = DEFAULT_NOT_AFTER,
) -> BlobSigner:
    """A BLOB signer under ``root`` (a fresh root of the same algorithm by default),
    optionally through one intermediate CA, like the real MDS chain."""
    root = root or CertAuthority.create("Test MDS Root", alg=alg)
    issuer = root.intermediate("Test MDS Intermediate", alg=alg) if intermediate else root
    leaf = issuer.issue("mds.test", alg=alg, not_before=leaf_not_before, not_after=leaf_not_after)
    chain = (leaf.cert, issuer.cert) if intermediate else (leaf.cert,)
    return BlobSigner(alg=alg, key=leaf.key, chain=chain, root=root)


def build_blob(
    entries: Sequence[Mapping[str, Any]],
    *,
    no: int,
    next_update: str,
    signer: BlobSigner,
    legal_header: str = LEGAL_HEADER,
    header: Mapping[str, Any] | None = None,
    payload: Mapping[str, Any] | None = None,
) -> bytes:
    """A compact JWS metadata BLOB.

    ``header`` and ``payload`` are merged over the generated ones, to build BLOBs that
    are correctly signed but wrong in some other way (``{"alg": "none"}``, a payload
    that is not MDS3); a ``None`` header value removes that parameter (``{"x5c": None}``).
    """
    jws_header: dict[str, Any] = {"alg": signer.alg, "typ": "JWT", "x5c": signer.x5c}
    jws_header.update(header or {})
    jws_header = {k: v for k, v in jws_header.items() if v is not None}
    body: dict[str, Any] = {
        "legalHeader": legal_header,
        "no": no,
        "nextUpdate": next_update,
        "entries": [dict(e) for e in entries],
    }
    body.update(payload or {})
    signing_input = (
        b64url(json.dumps(jws_header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(body, separators=(",", ":")).encode())
    ).encode("ascii")
    return signing_input + b"." + b64url(signer.sign(signing_input)).encode("ascii")


def tamper_payload(blob: bytes, mutate: Callable[[dict[str, Any]], None]) -> bytes:
    """Change the payload of a signed BLOB but keep the original header and signature."""
    header, payload, signature = blob.decode("ascii").split(".")
    body = json.loads(_b64url_decode(payload))
    mutate(body)
    return f"{header}.{b64url(json.dumps(body).encode())}.{signature}".encode("ascii")


def _pem_to_b64_der(pem: bytes | str) -> str:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    der = x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode("ascii")


def make_entry(
    aaguid: str,
    description: str,
    statuses: Sequence[tuple[str, str | None]] = (("FIDO_CERTIFIED_L1", "2020-01-01"),),
    attestation_root_pems: Sequence[bytes | str] = (),
    icon: str | None = None,
) -> dict[str, Any]:
    """One MDS3 ``entries`` element for a FIDO2 authenticator.

    ``statuses`` are ``(status, effectiveDate)`` pairs; a ``None`` date omits
    ``effectiveDate``.  The metadata statement carries every field fido2 requires, with
    values typical of a USB security key.
    """
    reports: list[dict[str, Any]] = []
    for status, effective in statuses:
        report: dict[str, Any] = {"status": status}
        if effective is not None:
            report["effectiveDate"] = effective
        reports.append(report)
    dates = [date.fromisoformat(d) for _, d in statuses if d is not None]
    statement: dict[str, Any] = {
        "legalHeader": LEGAL_HEADER,
        "aaguid": aaguid,
        "description": description,
        "authenticatorVersion": 1,
        "protocolFamily": "fido2",
        "schema": 3,
        "upv": [{"major": 1, "minor": 0}],
        "authenticationAlgorithms": ["secp256r1_ecdsa_sha256_raw"],
        "publicKeyAlgAndEncodings": ["cose"],
        "attestationTypes": ["basic_full"],
        "userVerificationDetails": [[{"userVerificationMethod": "presence_internal"}]],
        "keyProtection": ["hardware", "secure_element"],
        "matcherProtection": ["on_chip"],
        "attachmentHint": ["external", "wired"],
        "tcDisplay": [],
        "attestationRootCertificates": [_pem_to_b64_der(p) for p in attestation_root_pems],
    }
    if icon is not None:
        statement["icon"] = icon
    return {
        "aaguid": aaguid,
        "metadataStatement": statement,
        "statusReports": reports,
        "timeOfLastStatusChange": (max(dates) if dates else date(2020, 1, 1)).isoformat(),
    }
