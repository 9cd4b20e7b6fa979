"""FIDO Metadata Service (MDS3): verify the BLOB, answer "what is this authenticator?".

Why this module exists: attestation only means something when we know *which* roots an
authenticator model's attestation certificates chain to, and whether the FIDO Alliance
has since flagged that model as revoked or compromised.  The FIDO Alliance publishes both
in one signed JWT (the "metadata BLOB"), which we download out of band
(``authserver mds-refresh``) and load at start-up.

Trust flows strictly downwards:

1. The operator configures the FIDO MDS root certificate (``AUTHSERVER_MDS_ROOT_CERT``).
2. :func:`load_blob` accepts a BLOB only when its ``x5c`` chain leads to that root, every
   certificate is valid *now*, and the JWS signature verifies with the chain's leaf.
   python-fido2's :func:`fido2.mds3.parse_blob` then verifies once more and parses the
   payload; our own checks in front of it exist to give an operator a precise reason
   (wrong root, expired chain, bad signature, not a JWS at all) instead of a bare
   exception, and to close gaps fido2 leaves open: it checks no validity periods or CA
   flags, and it expects DER-encoded ECDSA signatures where RFC 7518 §3.4 mandates the
   raw ``R || S`` form.
3. :class:`MetadataStore` is built only from such a verified payload; its attestation
   roots are then the trust anchors for :meth:`MetadataStore.verify_attestation_chain`.

Not covered, deliberately: certificate revocation lists for the BLOB chain (the FIDO
root's CRLs would need network access at load time), and metadata entries without an
AAGUID (UAF ``aaid`` and U2F key-identifier entries), since WebAuthn looks up by AAGUID.

This package does no HTTP serving and no database work; :func:`fetch_blob` is the one
network client and is only used by the CLI.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar, Final
from uuid import UUID

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fido2.attestation.base import InvalidSignature as ChainSignatureInvalid
from fido2.mds3 import MetadataBlobPayload, MetadataBlobPayloadEntry, parse_blob

__all__ = [
    "COMPROMISED_STATUSES",
    "MAX_BLOB_BYTES",
    "AuthenticatorInfo",
    "MetadataError",
    "MetadataStore",
    "fetch_blob",
    "load_blob",
    "load_blob_file",
    "normalize_aaguid",
]

logger = logging.getLogger(__name__)

COMPROMISED_STATUSES: Final[frozenset[str]] = frozenset(
    {
        "REVOKED",
        "USER_VERIFICATION_BYPASS",
        "ATTESTATION_KEY_COMPROMISE",
        "USER_KEY_REMOTE_COMPROMISE",
        "USER_KEY_PHYSICAL_COMPROMISE",
    }
)
"""Statuses after which an authenticator model must no longer be trusted.

Any one of them, once effective, taints the model for good: a later
``FIDO_CERTIFIED_*`` report does not undo a key compromise already in the field.
"""

MAX_BLOB_BYTES: Final = 64 * 1024 * 1024
"""Download cap.  The real BLOB is a few MiB; the cap only stops a misbehaving server
from filling memory."""

_NO_STATUS: Final = "NOT_FIDO_CERTIFIED"
"""What we call a model none of whose status reports is effective yet: nothing vouches
for it, which is exactly what this status means."""

_MIN_RSA_BITS: Final = 2048

# JWS algorithms we accept for the BLOB signature, with the hash and (for ECDSA) the
# curve the signing key must be on.  Anything else — "none", HMAC, PS256 (whose salt
# length fido2 verifies differently from RFC 7518) — is refused before any crypto runs.
_JWS_ALGORITHMS: Final[Mapping[str, tuple[hashes.HashAlgorithm, type[ec.EllipticCurve] | None]]] = {
    "RS256": (hashes.SHA256(), None),
    "ES256": (hashes.SHA256(), ec.SECP256R1),
    "ES384": (hashes.SHA384(), ec.SECP384R1),
    "ES512": (hashes.SHA512(), ec.SECP521R1),
}

_B64URL_SEGMENT: Final = re.compile(rb"[A-Za-z0-9_-]+")


class MetadataError(Exception):
    """A metadata BLOB (or the configuration needed to trust one) was refused.

    The message says which check failed so an operator running ``mds-refresh`` can act
    on it.  It will be re-parented under ``authserver.errors.AuthError`` later; ``code``
    already carries the stable machine-readable name.
    """

    code: ClassVar[str] = "metadata_invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, kw_only=True)
class AuthenticatorInfo:
    """What the metadata says about one authenticator model (one AAGUID).

    ``status`` is the newest status report already in effect at the evaluation time;
    ``compromised`` is true when *any* effective report is in
    :data:`COMPROMISED_STATUSES`, with ``compromise_reason`` naming those reports.
    ``icon`` is only ever a ``data:`` URL so that rendering it never makes us (or a
    user's browser) fetch something from an address chosen by a metadata entry.
    """

    aaguid: str
    name: str
    icon: str | None
    status: str
    compromised: bool
    compromise_reason: str | None
    attestation_root_certificates: tuple[bytes, ...]


@dataclass(frozen=True, kw_only=True)
class _StatusReport:
    status: str
    effective_date: date | None


@dataclass(frozen=True, kw_only=True)
class _Entry:
    """The parts of a fido2 payload entry we use, parsed once at load time."""

    aaguid: str
    name: str
    icon: str | None
    status_reports: tuple[_StatusReport, ...]
    root_ders: tuple[bytes, ...]
    root_certs: tuple[x509.Certificate, ...]


def normalize_aaguid(aaguid: str | bytes | UUID) -> str:
    """Return the canonical form (lowercase, dashed) every lookup key is stored under.

    Accepts the 16 raw bytes from authenticator data (including fido2's ``Aaguid``), a
    :class:`uuid.UUID`, or any textual UUID form :class:`uuid.UUID` understands.
    Raises :class:`ValueError` for anything else: a malformed AAGUID is a caller bug,
    not an "unknown authenticator".
    """
    if isinstance(aaguid, UUID):
        return str(aaguid)
    if isinstance(aaguid, bytes):
        if len(aaguid) != 16:
            raise ValueError(f"an AAGUID is 16 bytes, got {len(aaguid)}")
        return str(UUID(bytes=bytes(aaguid)))
    if isinstance(aaguid, str):
        return str(UUID(aaguid.strip()))
    raise ValueError(f"cannot interpret {type(aaguid).__name__} as an AAGUID")


def _require_aware(now: datetime) -> datetime:
    """Certificates and status dates are UTC; a naive ``now`` would silently shift by
    the host's offset, so it is refused rather than guessed."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(UTC)


def _is_effective(report: _StatusReport, today: date) -> bool:
    # A report without a date has no "not yet" — it has always applied.
    return report.effective_date is None or report.effective_date <= today


def _describe(report: _StatusReport) -> str:
    if report.effective_date is None:
        return report.status
    return f"{report.status} (effective {report.effective_date.isoformat()})"


def _evaluate(entry: _Entry, now: datetime) -> AuthenticatorInfo:
    today = now.astimezone(UTC).date()
    effective = [r for r in entry.status_reports if _is_effective(r, today)]
    # Reports are not guaranteed to be ordered; undated ones sort as the oldest, and
    # among equal dates the later list position wins (sorted() is stable).
    ordered = sorted(effective, key=lambda r: r.effective_date or date.min)
    status = ordered[-1].status if ordered else _NO_STATUS
    compromising = [r for r in ordered if r.status in COMPROMISED_STATUSES]
    return AuthenticatorInfo(
        aaguid=entry.aaguid,
        name=entry.name,
        icon=entry.icon,
        status=status,
        compromised=bool(compromising),
        compromise_reason="; ".join(_describe(r) for r in compromising) or None,
        attestation_root_certificates=entry.root_ders,
    )


def _entry_from_fido2(raw: MetadataBlobPayloadEntry) -> _Entry | None:
    if not raw.aaguid:  # None, or the all-zero AAGUID of U2F/UAF entries
        return None
    aaguid = str(raw.aaguid)
    statement = raw.metadata_statement
    reports = tuple(
        _StatusReport(status=str(r.status.value), effective_date=r.effective_date)
        for r in raw.status_reports
        # fido2 maps status values it does not know to None; such a report can be
        # neither "the latest known status" nor one of our compromise statuses.
        if r.status is not None
    )
    root_ders: tuple[bytes, ...] = ()
    root_certs: list[x509.Certificate] = []
    name = aaguid
    icon: str | None = None
    if statement is not None:
        name = statement.description
        if statement.icon and statement.icon.startswith("data:"):
            icon = statement.icon
        root_ders = tuple(bytes(der) for der in statement.attestation_root_certificates)
        for der in root_ders:
            try:
                root_certs.append(x509.load_der_x509_certificate(der))
            except ValueError:
                logger.warning("metadata entry %s lists an unparseable attestation root; ignoring it", aaguid)
    return _Entry(
        aaguid=aaguid,
        name=name,
        icon=icon,
        status_reports=reports,
        root_ders=root_ders,
        root_certs=tuple(root_certs),
    )


# --------------------------------------------------------------------------------------
# Certificate paths


def _describe_cert(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {cert.serial_number:x}"


def _validity_problem(cert: x509.Certificate, now: datetime) -> str | None:
    if cert.not_valid_before_utc > now:
        return (
            f"certificate {_describe_cert(cert)} is not valid before {cert.not_valid_before_utc.isoformat()}"
        )
    if cert.not_valid_after_utc < now:
        return f"certificate {_describe_cert(cert)} expired at {cert.not_valid_after_utc.isoformat()}"
    return None


def _issuer_problem(issuer: x509.Certificate, *, intermediates_below: int, is_anchor: bool) -> str | None:
    """Why ``issuer`` may not sign the certificate below it, or None.

    Intermediates must say ``CA:TRUE``.  A trust anchor is trusted by configuration, so
    a missing basicConstraints is tolerated (some vendor attestation roots predate the
    rule), but one that explicitly says it is not a CA, or that forbids certificate
    signing in keyUsage, is still refused.
    """
    try:
        constraints: x509.BasicConstraints | None = issuer.extensions.get_extension_for_class(
            x509.BasicConstraints
        ).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None:
        if not is_anchor:
            return f"intermediate {_describe_cert(issuer)} has no basicConstraints"
    else:
        if not constraints.ca:
            return f"{_describe_cert(issuer)} is not a CA certificate"
        if constraints.path_length is not None and intermediates_below > constraints.path_length:
            return f"{_describe_cert(issuer)} path length constraint exceeded"
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not usage.key_cert_sign:
        return f"{_describe_cert(issuer)} may not sign certificates (keyUsage)"
    return None


def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _chain_problem(
    chain: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: datetime,
) -> str | None:
    """Why ``chain`` (leaf first) does not lead to one of ``anchors`` at ``now``, or None.

    A chain may carry a trust anchor itself (some authenticators include the root in
    ``x5c``; some metadata lists an intermediate as the "root"); trust stops at the
    first certificate that is an anchor, exactly as if the rest were absent.  Every
    certificate on the path, anchor included, must be within its validity period.
    """
    if not chain:
        return "the certificate chain is empty"
    path: list[x509.Certificate] = []
    anchor: x509.Certificate | None = None
    for cert in chain:
        if cert in anchors:
            anchor = cert
            break
        path.append(cert)

    for cert in path:
        problem = _validity_problem(cert, now)
        if problem:
            return problem
    # Each certificate must be issued by the next one; position i's issuer has i
    # intermediates below it (the leaf is not counted).
    for index, (child, issuer) in enumerate(pairwise(path)):
        problem = _issuer_problem(issuer, intermediates_below=index, is_anchor=False)
        if problem:
            return problem
        if not _signed_by(child, issuer):
            return f"certificate {_describe_cert(child)} is not signed by {_describe_cert(issuer)}"

    if anchor is not None:
        candidates = [anchor]
    else:
        top = path[-1]
        candidates = [a for a in anchors if a.subject == top.issuer]
        if not candidates:
            return f"certificate {_describe_cert(top)} was not issued by a trusted root"
    problems: list[str] = []
    for candidate in candidates:
        problem = _validity_problem(candidate, now)
        if problem is None and path:
            problem = _issuer_problem(candidate, intermediates_below=len(path) - 1, is_anchor=True)
            if problem is None and not _signed_by(path[-1], candidate):
                problem = f"certificate {_describe_cert(path[-1])} is not signed by trusted root {_describe_cert(candidate)}"
        if problem is None:
            return None
        problems.append(problem)
    return "; ".join(problems)


# --------------------------------------------------------------------------------------
# The store


class MetadataStore:
    """Verified metadata, indexed by AAGUID.

    Build one with :func:`load_blob` (or :meth:`from_payload` for a payload already
    verified elsewhere); :meth:`empty` stands in when no BLOB is configured, so callers
    need no ``None`` checks — every lookup simply finds nothing.

    Statuses are evaluated at the ``now`` the store was built with.  Because a status can
    take effect later (a scheduled revocation), :meth:`lookup` and
    :meth:`compromised_aaguids` accept a newer ``now`` so a long-running server need not
    reload the BLOB to honour it.
    """

    def __init__(
        self,
        *,
        no: int,
        next_update: date | None,
        entries: Iterable[_Entry],
        evaluated_at: datetime,
    ) -> None:
        self._no = no
        self._next_update = next_update
        self._evaluated_at = _require_aware(evaluated_at)
        self._entries: dict[str, _Entry] = {}
        for entry in entries:
            if entry.aaguid in self._entries:
                logger.warning("metadata lists AAGUID %s more than once; the last entry wins", entry.aaguid)
            self._entries[entry.aaguid] = entry
        self._infos = {
            aaguid: _evaluate(entry, self._evaluated_at) for aaguid, entry in self._entries.items()
        }

    @classmethod
    def from_payload(cls, payload: MetadataBlobPayload, *, now: datetime) -> MetadataStore:
        """Index a payload whose signature has already been verified (never an unverified one)."""
        entries = (_entry_from_fido2(raw) for raw in payload.entries)
        return cls(
            no=payload.no,
            next_update=payload.next_update,
            entries=(e for e in entries if e is not None),
            evaluated_at=now,
        )

    @classmethod
    def empty(cls) -> MetadataStore:
        """A store that knows no authenticators (serial number 0, no next update)."""
        return cls(no=0, next_update=None, entries=(), evaluated_at=datetime.now(UTC))

    @property
    def no(self) -> int:
        """The BLOB serial number; it only ever increases, which is what rollback
        protection in :func:`fetch_blob` relies on."""
        return self._no

    @property
    def next_update(self) -> date | None:
        """The date by which FIDO promises a newer BLOB (None for :meth:`empty`)."""
        return self._next_update

    def is_stale(self, now: datetime) -> bool:
        """True once ``nextUpdate`` has passed: revocations may be missing, refresh."""
        if self._next_update is None:
            return False
        return _require_aware(now).date() > self._next_update

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, aaguid: object) -> bool:
        if not isinstance(aaguid, str | bytes | UUID):
            return False
        try:
            return normalize_aaguid(aaguid) in self._entries
        except ValueError:
            return False

    def lookup(self, aaguid: str | bytes | UUID, *, now: datetime | None = None) -> AuthenticatorInfo | None:
        """What the metadata says about ``aaguid``, or None if it has no entry."""
        key = normalize_aaguid(aaguid)
        if now is None:
            return self._infos.get(key)
        entry = self._entries.get(key)
        return None if entry is None else _evaluate(entry, _require_aware(now))

    def compromised_aaguids(self, *, now: datetime | None = None) -> frozenset[str]:
        """Every AAGUID whose model is compromised (see :data:`COMPROMISED_STATUSES`).

        Lets a periodic job find existing credentials of a model revoked after they
        were registered.
        """
        if now is None:
            return frozenset(aaguid for aaguid, info in self._infos.items() if info.compromised)
        at = _require_aware(now)
        return frozenset(aaguid for aaguid, e in self._entries.items() if _evaluate(e, at).compromised)

    def roots_for(self, aaguid: str | bytes | UUID) -> list[bytes]:
        """The DER attestation root certificates the metadata lists for ``aaguid``."""
        entry = self._entries.get(normalize_aaguid(aaguid))
        return [] if entry is None else list(entry.root_ders)

    def verify_attestation_chain(
        self, aaguid: str | bytes | UUID, x5c: Sequence[bytes], now: datetime
    ) -> bool:
        """Does the attestation chain ``x5c`` (leaf first, DER) lead to a root the
        metadata lists for ``aaguid``, with every certificate valid at ``now``?

        Only the certificate path is checked.  Whether the model is compromised is a
        separate question: ask :meth:`lookup`.  Whether the leaf's key signed the
        attestation statement is the WebAuthn verifier's job.
        """
        at = _require_aware(now)
        key = normalize_aaguid(aaguid)
        entry = self._entries.get(key)
        if entry is None or not entry.root_certs:
            logger.debug("no attestation roots in metadata for %s", key)
            return False
        try:
            chain = [x509.load_der_x509_certificate(bytes(der)) for der in x5c]
        except (ValueError, TypeError):
            logger.debug("attestation chain for %s contains an unparseable certificate", key)
            return False
        problem = _chain_problem(chain, entry.root_certs, at)
        if problem is not None:
            logger.debug("attestation chain for %s refused: %s", key, problem)
            return False
        return True


# --------------------------------------------------------------------------------------
# Loading the BLOB


@dataclass(frozen=True, kw_only=True)
class _CompactJws:
    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    signing_input: bytes
    signature: bytes


def _b64url_decode(segment: bytes) -> bytes:
    if not _B64URL_SEGMENT.fullmatch(segment):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def _b64url_encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _json_object(segment: bytes, what: str) -> Mapping[str, Any]:
    try:
        value = json.loads(_b64url_decode(segment))
    except (ValueError, RecursionError) as exc:
        raise MetadataError(f"the metadata BLOB {what} is not base64url-encoded JSON") from exc
    if not isinstance(value, dict):
        raise MetadataError(f"the metadata BLOB {what} is not a JSON object")
    return value


def _split_jws(blob: bytes) -> _CompactJws:
    if not isinstance(blob, bytes):
        raise MetadataError("the metadata BLOB must be bytes")
    parts = blob.strip().split(b".")
    if len(parts) != 3 or not all(parts):
        raise MetadataError("the metadata BLOB is not a compact JWS (expected header.payload.signature)")
    header = _json_object(parts[0], "header")
    payload = _json_object(parts[1], "payload")
    try:
        signature = _b64url_decode(parts[2])
    except ValueError as exc:
        raise MetadataError("the metadata BLOB signature is not base64url") from exc
    return _CompactJws(
        header=header,
        payload=payload,
        signing_input=parts[0] + b"." + parts[1],
        signature=signature,
    )


def _header_chain(header: Mapping[str, Any], root: x509.Certificate) -> list[x509.Certificate]:
    """The BLOB signing chain, leaf first.

    FIDO MDS 3.0, "Metadata BLOB object processing rules": without ``x5c`` (and we do
    not fetch ``x5u``) the trust anchor itself is the signing certificate.
    """
    if "x5u" in header:
        raise MetadataError("the metadata BLOB names its chain by URL (x5u), which we do not fetch")
    if "x5c" not in header:
        return [root]
    x5c = header["x5c"]
    if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
        raise MetadataError("the metadata BLOB header has no x5c certificate chain")
    try:
        # RFC 7515 §4.1.6: x5c holds standard (not URL-safe) base64 DER.
        return [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c]
    except (ValueError, binascii.Error) as exc:
        raise MetadataError("the metadata BLOB x5c chain contains an unparseable certificate") from exc


def _verify_signature(alg: str, leaf: x509.Certificate, jws: _CompactJws) -> bytes:
    """Verify the JWS signature; return it in the encoding fido2's verifier expects.

    fido2 hands ECDSA signatures straight to ``cryptography``, which wants DER, while
    a conforming JWS carries ``R || S``; we convert after verifying the JWS form.
    """
    hash_alg, curve = _JWS_ALGORITHMS[alg]
    public_key = leaf.public_key()
    try:
        if curve is None:
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise MetadataError(
                    f"the metadata BLOB is signed with {alg} but its certificate has no RSA key"
                )
            if public_key.key_size < _MIN_RSA_BITS:
                raise MetadataError(f"the metadata BLOB signing key is only {public_key.key_size} bits")
            public_key.verify(jws.signature, jws.signing_input, padding.PKCS1v15(), hash_alg)
            return jws.signature
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(public_key.curve, curve):
            raise MetadataError(
                f"the metadata BLOB is signed with {alg} but its certificate key does not match"
            )
        size = (public_key.curve.key_size + 7) // 8
        if len(jws.signature) != 2 * size:
            raise InvalidSignature()
        der = encode_dss_signature(
            int.from_bytes(jws.signature[:size], "big"), int.from_bytes(jws.signature[size:], "big")
        )
        public_key.verify(der, jws.signing_input, ec.ECDSA(hash_alg))
        return der
    except InvalidSignature as exc:
        raise MetadataError(
            "the metadata BLOB signature does not verify (tampered or wrongly signed)"
        ) from exc


def _load_trust_root(data: bytes) -> x509.Certificate:
    stripped = data.strip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(stripped)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise MetadataError("the configured MDS trust root is not a PEM or DER X.509 certificate") from exc


def _payload_serial(payload: Mapping[str, Any]) -> int:
    no = payload.get("no")
    if isinstance(no, bool) or not isinstance(no, int) or no < 0:
        raise MetadataError("the metadata BLOB payload has no valid serial number (no)")
    return no


def load_blob(blob: bytes, *, trust_root_pem_or_der: bytes, now: datetime) -> MetadataStore:
    """Verify a metadata BLOB against the configured root and index it.

    Refuses, with a :class:`MetadataError` naming the reason: input that is not a
    compact JWS, an algorithm outside RS256/ES256/ES384/ES512, a chain that does not
    lead to ``trust_root_pem_or_der`` or has a certificate outside its validity period
    at ``now``, a signature that does not verify, and a payload that is not MDS3.
    """
    at = _require_aware(now)
    root = _load_trust_root(trust_root_pem_or_der)
    jws = _split_jws(blob)

    alg = jws.header.get("alg")
    if not isinstance(alg, str) or alg not in _JWS_ALGORITHMS:
        raise MetadataError(f"the metadata BLOB uses an unsupported signature algorithm {alg!r}")
    if "crit" in jws.header:
        # RFC 7515 §4.1.11: extensions we do not understand must not be ignored.
        raise MetadataError("the metadata BLOB header has critical extensions we do not support")
    chain = _header_chain(jws.header, root)
    problem = _chain_problem(chain, [root], at)
    if problem is not None:
        raise MetadataError(f"the metadata BLOB is not signed under the configured MDS root: {problem}")
    leaf = chain[0]
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    # The configured root is trusted as is, whatever its keyUsage says; a certificate it
    # vouches for may only sign what its keyUsage allows.
    if leaf != root and usage is not None and not usage.digital_signature:
        raise MetadataError("the metadata BLOB signing certificate may not make signatures (keyUsage)")
    signature = _verify_signature(alg, leaf, jws)
    _payload_serial(jws.payload)

    # fido2 re-checks chain and signature, then parses the payload.  Hand it the very
    # bytes we verified, with the ECDSA signature in the encoding it expects.
    for_fido2 = jws.signing_input + b"." + _b64url_encode(signature)
    root_der = root.public_bytes(serialization.Encoding.DER)
    try:
        payload = parse_blob(for_fido2, root_der)
    except (InvalidSignature, ChainSignatureInvalid) as exc:
        raise MetadataError(
            "the metadata BLOB signature does not verify (tampered or wrongly signed)"
        ) from exc
    except Exception as exc:  # fido2 raises assorted types (TypeError, ValueError, ...) for bad payloads
        raise MetadataError(
            f"the metadata BLOB payload is not valid MDS3: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(payload.no, int) or not isinstance(payload.next_update, date):
        raise MetadataError("the metadata BLOB payload lacks no or nextUpdate")
    store = MetadataStore.from_payload(payload, now=at)
    logger.info(
        "loaded metadata BLOB no. %d with %d authenticators (next update %s)",
        store.no,
        len(store),
        store.next_update,
    )
    return store


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc


def load_blob_file(path: Path | str, *, root_cert_path: Path | str, now: datetime) -> MetadataStore:
    """:func:`load_blob` for a BLOB and a root certificate stored in files."""
    root = _read(Path(root_cert_path), "MDS root certificate")
    return load_blob(_read(Path(path), "metadata BLOB"), trust_root_pem_or_der=root, now=now)


def _installed_serial(destination: Path) -> int | None:
    """The serial number of the BLOB already at ``destination``, if there is a readable one.

    The signature is not re-checked: only :func:`fetch_blob` writes this file and only
    after verification, and re-checking would break refreshes after a root rotation.  A
    corrupt file is reported and then replaced, so a refresh can repair it.
    """
    try:
        data = destination.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MetadataError(
            f"cannot read the installed metadata BLOB {destination}: {exc.strerror or exc}"
        ) from exc
    try:
        return _payload_serial(_split_jws(data).payload)
    except MetadataError as exc:
        logger.warning("installed metadata BLOB %s is unreadable (%s); it will be replaced", destination, exc)
        return None


def _download(url: str, timeout: float) -> bytes:
    try:
        with (
            httpx.Client(
                timeout=timeout, follow_redirects=True, headers={"User-Agent": "authserver-mds"}
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise MetadataError(
                    f"downloading the metadata BLOB from {url} failed: HTTP {response.status_code}"
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_BLOB_BYTES:
                    raise MetadataError(f"the metadata BLOB at {url} is larger than {MAX_BLOB_BYTES} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise MetadataError(f"downloading the metadata BLOB from {url} failed: {exc}") from exc
    return b"".join(chunks)


def _replace_atomically(destination: Path, data: bytes) -> None:
    """Write next to ``destination`` and rename over it: readers (a starting server)
    see the old BLOB or the new one, never half of one."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # The BLOB is public data; the server may run as another user than the CLI.
        tmp.chmod(0o644)
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(destination.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename already happened
    finally:
        os.close(dir_fd)


def fetch_blob(
    url: str,
    destination: Path,
    *,
    root_cert_path: Path | str,
    now: datetime,
    timeout: float = 30,
) -> MetadataStore:
    """Download the BLOB from ``url``, verify it, and install it at ``destination``.

    The download is verified in memory before anything touches ``destination``, and a
    BLOB whose serial number is lower than the installed one is refused (FIDO MDS 3.0,
    "Metadata BLOB object processing rules": ``no`` must not go backwards): otherwise
    anyone able to answer for ``url`` could replay an old, validly signed BLOB from
    before a revocation.  An equal serial number is accepted so that running the
    refresh twice is not an error; FIDO never signs two BLOBs with one number.
    """
    root = _read(Path(root_cert_path), "MDS root certificate")
    data = _download(url, timeout)
    store = load_blob(data, trust_root_pem_or_der=root, now=now)
    destination = Path(destination)
    installed = _installed_serial(destination)
    if installed is not None and store.no < installed:
        raise MetadataError(
            f"refusing metadata BLOB no. {store.no} from {url}: no. {installed} is already installed (rollback)"
        )
    try:
        _replace_atomically(destination, data)
    except OSError as exc:
        raise MetadataError(
            f"cannot write the metadata BLOB to {destination}: {exc.strerror or exc}"
        ) from exc
    return store
