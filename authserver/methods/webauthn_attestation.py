"""Attestation trust and policy: which authenticators may be registered.

py_webauthn verifies that an attestation statement is internally valid for its format
(signature over authData and clientDataHash, certificate requirements of each format).
What it leaves to us is WebAuthn L3 §7.1 steps 21-22: *which trust anchors* vouch for the
statement, and whether that is trustworthy enough. That is this module, fed by the FIDO
metadata (``authserver.metadata``), under ``AUTHSERVER_ATTESTATION_POLICY``:

* ``none``: register anything (the attestation is still recorded);
* ``any``: require an attestation statement that verified (self attestation included);
* ``metadata``: require a certificate path to a root the FIDO MDS lists for the AAGUID;
* ``allowlist``: require an attested (non-``none``) AAGUID from ``AUTHSERVER_ATTESTATION_ALLOWLIST``.

Whatever the policy, a model the metadata reports as compromised is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from authserver.errors import AttestationRejected, AuthenticatorCompromised
from authserver.metadata import AuthenticatorInfo, MetadataStore, normalize_aaguid
from authserver.methods.webauthn import VerifiedRegistration

TRUST_NONE: Final = "none"  # fmt "none": nothing is attested
TRUST_SELF: Final = "self"  # packed self attestation: proves only that the key signed
TRUST_UNANCHORED: Final = "basic"  # a certificate path we could not anchor to a known root
TRUST_VENDOR: Final = "vendor_root"  # apple/android: py_webauthn checks the vendor's own root
TRUST_METADATA: Final = "metadata"  # a certificate path to a root the FIDO MDS lists

ZERO_AAGUID: Final = "00000000-0000-0000-0000-000000000000"
VENDOR_ROOTED_FORMATS: Final = frozenset({"apple", "android-key", "android-safetynet"})
POLICIES: Final = frozenset({"none", "any", "metadata", "allowlist"})


@dataclass(frozen=True, kw_only=True)
class AttestationVerdict:
    """How far a registration's attestation can be trusted, and what we know of the model."""

    trust: str
    authenticator_name: str | None
    metadata_status: str | None


def authenticator_info(metadata: MetadataStore | None, aaguid: str, now: datetime) -> AuthenticatorInfo | None:
    if metadata is None or aaguid == ZERO_AAGUID:
        return None
    try:
        return metadata.lookup(aaguid, now=now)
    except ValueError:
        return None


class AttestationPolicy:
    def __init__(self, *, mode: str, allowlist: Iterable[str] = ()) -> None:
        if mode not in POLICIES:
            raise ValueError(f"unknown attestation policy {mode!r}")
        self.mode = mode
        self.allowlist = frozenset(normalize_aaguid(a) for a in allowlist)

    @property
    def wants_attestation(self) -> bool:
        """A policy other than ``none`` is pointless unless authenticators are asked to attest."""
        return self.mode != "none"

    def judge(self, registration: VerifiedRegistration, *, metadata: MetadataStore | None,
              now: datetime) -> AttestationVerdict:
        """Refuse a compromised model (``authenticator_compromised``) or an attestation the
        policy does not accept (``attestation_rejected``); otherwise say how it is trusted."""
        info = authenticator_info(metadata, registration.aaguid, now)
        if info is not None and info.compromised:
            raise AuthenticatorCompromised(log_detail=f"AAGUID {registration.aaguid} ({info.name}) is reported "
                                                      f"{info.compromise_reason}")
        trust = self._trust(registration, metadata, now)
        refusal = self._refusal(registration, trust)
        if refusal is not None:
            raise AttestationRejected(log_detail=f"policy {self.mode}: {refusal} (fmt {registration.fmt}, "
                                                 f"trust {trust}, AAGUID {registration.aaguid})")
        return AttestationVerdict(trust=trust, authenticator_name=info.name if info else None,
                                  metadata_status=info.status if info else None)

    @staticmethod
    def _trust(registration: VerifiedRegistration, metadata: MetadataStore | None, now: datetime) -> str:
        if registration.fmt == "none":
            return TRUST_NONE
        if registration.self_attested or not registration.x5c:
            return TRUST_SELF
        if (metadata is not None and registration.aaguid != ZERO_AAGUID
                and metadata.verify_attestation_chain(registration.aaguid, registration.x5c, now)):
            return TRUST_METADATA
        if registration.fmt in VENDOR_ROOTED_FORMATS:
            return TRUST_VENDOR
        return TRUST_UNANCHORED

    def _refusal(self, registration: VerifiedRegistration, trust: str) -> str | None:
        if self.mode == "any" and trust == TRUST_NONE:
            return "no attestation statement"
        if self.mode == "metadata" and trust != TRUST_METADATA:
            return "no certificate path to a metadata root"
        if self.mode == "allowlist":
            if trust == TRUST_NONE:
                return "the AAGUID is not attested"
            if registration.aaguid not in self.allowlist:
                return "the AAGUID is not on the allowlist"
        return None
