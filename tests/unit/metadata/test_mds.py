"""Tests for ``authserver.metadata``: BLOB verification, status evaluation, attestation
chains, and the download-and-install path.

Every BLOB here is really signed (``tests/support/mds.py`` runs its own CAs), and
``fetch_blob`` talks real HTTP to a server on 127.0.0.1, so nothing the code under test
depends on is replaced by a double.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from authserver.metadata import (
    COMPROMISED_STATUSES,
    AuthenticatorInfo,
    MetadataError,
    MetadataStore,
    fetch_blob,
    load_blob,
    load_blob_file,
    normalize_aaguid,
)
from tests.support.mds import (
    BlobSigner,
    CertAuthority,
    b64url,
    build_blob,
    make_entry,
    make_signer,
    tamper_payload,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
AAGUID = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
OTHER_AAGUID = "ee882879-721c-4913-9775-3dfcce97072a"
ICON = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture(scope="module")
def signer() -> BlobSigner:
    return make_signer(alg="ES256")


@pytest.fixture(scope="module")
def attestation_root() -> CertAuthority:
    return CertAuthority.create("Vendor Attestation Root")


@pytest.fixture(scope="module")
def foreign_root() -> CertAuthority:
    return CertAuthority.create("Some Other Vendor Root")


def load(blob: bytes, signer: BlobSigner, now: datetime = NOW) -> MetadataStore:
    return load_blob(blob, trust_root_pem_or_der=signer.root.pem, now=now)


def store_with(signer: BlobSigner, *entries: dict[str, Any], no: int = 7) -> MetadataStore:
    return load(build_blob(list(entries), no=no, next_update="2025-07-01", signer=signer), signer)


def refused(blob: bytes, signer: BlobSigner, now: datetime = NOW) -> str:
    with pytest.raises(MetadataError) as info:
        load(blob, signer, now)
    assert info.value.code == "metadata_invalid"
    return str(info.value)


# --------------------------------------------------------------------------------------
# Loading and verification


def test_signed_blob_loads_and_names_the_aaguid(signer: BlobSigner, attestation_root: CertAuthority) -> None:
    entry = make_entry(AAGUID, "Test Key 5", attestation_root_pems=[attestation_root.pem], icon=ICON)
    store = store_with(signer, entry, no=42)

    assert store.no == 42
    assert store.next_update is not None and store.next_update.isoformat() == "2025-07-01"
    assert len(store) == 1
    info = store.lookup(AAGUID)
    assert info == AuthenticatorInfo(
        aaguid=AAGUID,
        name="Test Key 5",
        icon=ICON,
        status="FIDO_CERTIFIED_L1",
        compromised=False,
        compromise_reason=None,
        attestation_root_certificates=(attestation_root.der,),
    )
    assert store.roots_for(AAGUID) == [attestation_root.der]
    assert store.lookup(OTHER_AAGUID) is None
    assert store.roots_for(OTHER_AAGUID) == []


@pytest.mark.parametrize(
    "key",
    [
        AAGUID,
        AAGUID.upper(),
        AAGUID.replace("-", ""),
        UUID(AAGUID),
        UUID(AAGUID).bytes,
    ],
    ids=["canonical", "upper", "undashed", "uuid", "bytes"],
)
def test_lookup_accepts_every_aaguid_form(signer: BlobSigner, key: str | bytes | UUID) -> None:
    store = store_with(signer, make_entry(AAGUID, "Test Key"))
    info = store.lookup(key)
    assert info is not None and info.aaguid == AAGUID
    assert key in store


def test_malformed_aaguid_is_a_caller_error(signer: BlobSigner) -> None:
    store = store_with(signer, make_entry(AAGUID, "Test Key"))
    with pytest.raises(ValueError):
        store.lookup(b"\x00" * 15)
    with pytest.raises(ValueError):
        normalize_aaguid("not-a-uuid")


@pytest.mark.parametrize("alg", ["RS256", "ES384"])
def test_other_algorithms_and_an_intermediate_are_accepted(alg: Any) -> None:
    signer = make_signer(alg=alg, intermediate=True)
    store = store_with(signer, make_entry(AAGUID, "Test Key"))
    assert store.lookup(AAGUID) is not None


def test_trust_root_may_be_der(signer: BlobSigner) -> None:
    blob = build_blob([make_entry(AAGUID, "Test Key")], no=1, next_update="2025-07-01", signer=signer)
    store = load_blob(blob, trust_root_pem_or_der=signer.root.der, now=NOW)
    assert store.lookup(AAGUID) is not None


def test_x5c_may_carry_the_root_itself(signer: BlobSigner) -> None:
    x5c = [*signer.x5c, base64.b64encode(signer.root.der).decode()]
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer, header={"x5c": x5c})
    assert load(blob, signer).no == 1


def test_without_x5c_the_root_itself_must_have_signed(signer: BlobSigner) -> None:
    """FIDO MDS 3.0 processing rules: no x5c means the trust anchor is the signer."""
    by_root = BlobSigner(alg="ES256", key=signer.root.key, chain=(signer.root.cert,), root=signer.root)
    assert (
        load(build_blob([], no=2, next_update="2025-07-01", signer=by_root, header={"x5c": None}), signer).no
        == 2
    )
    by_leaf = build_blob([], no=2, next_update="2025-07-01", signer=signer, header={"x5c": None})
    assert "signature does not verify" in refused(by_leaf, signer)


def test_blob_signed_under_another_root_is_refused(signer: BlobSigner) -> None:
    stranger = make_signer(alg="ES256")
    blob = build_blob([make_entry(AAGUID, "Test Key")], no=1, next_update="2025-07-01", signer=stranger)
    message = refused(blob, signer)
    assert "configured MDS root" in message


def test_forged_chain_naming_the_right_root_is_refused(signer: BlobSigner) -> None:
    """An attacker's CA with the same subject as the real root must not pass."""
    impostor = make_signer(alg="ES256", root=CertAuthority.create("Test MDS Root"))
    assert impostor.root.cert.subject == signer.root.cert.subject
    blob = build_blob([], no=1, next_update="2025-07-01", signer=impostor)
    assert "configured MDS root" in refused(blob, signer)


def test_tampered_payload_is_refused(signer: BlobSigner) -> None:
    blob = build_blob(
        [make_entry(AAGUID, "Test Key", statuses=[("REVOKED", "2021-01-01")])],
        no=3,
        next_update="2025-07-01",
        signer=signer,
    )
    assert load(blob, signer).lookup(AAGUID) is not None

    def unrevoke(body: dict[str, Any]) -> None:
        body["entries"][0]["statusReports"] = [{"status": "FIDO_CERTIFIED_L2", "effectiveDate": "2021-01-01"}]

    assert "signature does not verify" in refused(tamper_payload(blob, unrevoke), signer)


def test_tampered_signature_is_refused(signer: BlobSigner) -> None:
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer)
    head, _, signature = blob.rpartition(b".")
    raw = bytearray(base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4)))
    raw[5] ^= 0x01
    assert "signature does not verify" in refused(head + b"." + b64url(bytes(raw)).encode(), signer)


def test_der_encoded_ecdsa_signature_is_not_a_valid_jws(signer: BlobSigner) -> None:
    """RFC 7518 §3.4: ES256 is ``R || S``; fido2 alone would accept DER, we must not."""
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer)
    head, _, signature = blob.rpartition(b".")
    raw = base64.urlsafe_b64decode(signature + b"=" * (-len(signature) % 4))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    assert isinstance(signer.key, ec.EllipticCurvePrivateKey)
    assert "signature does not verify" in refused(head + b"." + b64url(der).encode(), signer)


def test_expired_signing_certificate_is_refused() -> None:
    signer = make_signer(leaf_not_after=datetime(2024, 1, 1, tzinfo=UTC))
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer)
    assert "expired" in refused(blob, signer)
    assert load(blob, signer, now=datetime(2023, 6, 1, tzinfo=UTC)).no == 1


def test_signing_certificate_not_yet_valid_is_refused() -> None:
    signer = make_signer(leaf_not_before=datetime(2026, 1, 1, tzinfo=UTC))
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer)
    assert "not valid before" in refused(blob, signer)


def test_intermediate_that_is_not_a_ca_is_refused() -> None:
    root = CertAuthority.create("Test MDS Root")
    bogus = root.intermediate("Not A CA", ca_flag=False)
    leaf = bogus.issue("mds.test")
    signer = BlobSigner(alg="ES256", key=leaf.key, chain=(leaf.cert, bogus.cert), root=root)
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer)
    assert "not a CA" in refused(blob, signer)


def test_signing_certificate_must_allow_signatures() -> None:
    root = CertAuthority.create("Test MDS Root")
    ca_only = root.intermediate("Certificate Signing Only")  # keyUsage keyCertSign, cRLSign
    signer = BlobSigner(alg="ES256", key=ca_only.key, chain=(ca_only.cert,), root=root)
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer)
    assert "keyUsage" in refused(blob, signer)


GARBAGE: list[bytes] = [
    b"",
    b"   \n",
    b"not a jwt",
    b"a.b.c",
    b"a.b.c.d",
    b"\xff\xfe\x00binary\x00garbage",
    b"..",
    (b64url(b"[1,2]") + "." + b64url(b"{}") + ".AAAA").encode(),
    (b64url(b'{"alg":"ES256"}') + "." + b64url(b"not json") + ".AAAA").encode(),
    (b64url(b"\xff\xff") + "." + b64url(b"{}") + ".AAAA").encode(),
    (b64url(b'{"alg":"ES256","x5c":["!!"]}') + "." + b64url(b'{"no":1}') + ".AAAA").encode(),
    (
        b64url(b'{"alg":"ES256","x5c":["' + base64.b64encode(b"junk") + b'"]}')
        + "."
        + b64url(b'{"no":1}')
        + ".AAAA"
    ).encode(),
]


@pytest.mark.parametrize("blob", GARBAGE)
def test_garbage_is_refused_with_metadata_error(signer: BlobSigner, blob: bytes) -> None:
    refused(blob, signer)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"alg": "none"}, "unsupported signature algorithm"),
        ({"alg": "HS256"}, "unsupported signature algorithm"),
        ({"alg": "UnsupportedKey"}, "unsupported signature algorithm"),
        ({"alg": "RS256"}, "certificate has no RSA key"),
        ({"alg": "ES384"}, "does not match"),
        ({"x5c": []}, "no x5c"),
        ({"x5u": "https://example.test/chain.pem"}, "x5u"),
        ({"x5c": "MIIB"}, "no x5c"),
        ({"crit": ["exp"]}, "critical"),
    ],
)
def test_bad_header_is_refused(signer: BlobSigner, header: dict[str, Any], expected: str) -> None:
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer, header=header)
    assert expected in refused(blob, signer)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"no": "7"}, "serial number"),
        ({"no": -1}, "serial number"),
        ({"no": True}, "serial number"),
        ({"nextUpdate": "soon"}, "not valid MDS3"),
        ({"entries": [{"aaguid": AAGUID}]}, "not valid MDS3"),
        ({"entries": "everything"}, "not valid MDS3"),
        (
            {"entries": [{**make_entry(AAGUID, "x"), "metadataStatement": {"description": "x"}}]},
            "not valid MDS3",
        ),
    ],
)
def test_signed_but_malformed_payload_is_refused(
    signer: BlobSigner, payload: dict[str, Any], expected: str
) -> None:
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer, payload=payload)
    assert expected in refused(blob, signer)


def test_missing_entries_field_is_refused(signer: BlobSigner) -> None:
    def drop(body: dict[str, Any]) -> None:
        del body["entries"]

    # Re-sign so the only fault is the missing field.
    header, payload, _ = build_blob([], no=1, next_update="2025-07-01", signer=signer).decode().split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    drop(body)
    signing_input = f"{header}.{b64url(json.dumps(body).encode())}".encode()
    blob = signing_input + b"." + b64url(signer.sign(signing_input)).encode()
    assert "not valid MDS3" in refused(blob, signer)


@pytest.mark.parametrize(
    "root", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_unusable_trust_root_is_refused(signer: BlobSigner, root: bytes) -> None:
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer)
    with pytest.raises(MetadataError, match="trust root"):
        load_blob(blob, trust_root_pem_or_der=root, now=NOW)


def test_naive_now_is_rejected(signer: BlobSigner) -> None:
    blob = build_blob([], no=1, next_update="2025-07-01", signer=signer)
    with pytest.raises(ValueError, match="timezone-aware"):
        load_blob(blob, trust_root_pem_or_der=signer.root.pem, now=datetime(2025, 6, 1))


def test_entries_without_aaguid_and_remote_icons_are_ignored(signer: BlobSigner) -> None:
    u2f = make_entry(OTHER_AAGUID, "U2F key")
    del u2f["aaguid"]
    del u2f["metadataStatement"]["aaguid"]
    u2f["attestationCertificateKeyIdentifiers"] = ["ab" * 20]
    remote_icon = make_entry(AAGUID, "Key", icon="https://evil.example/track.png")
    store = store_with(signer, u2f, remote_icon)
    assert len(store) == 1
    info = store.lookup(AAGUID)
    assert info is not None and info.icon is None


def test_empty_store_knows_nothing() -> None:
    store = MetadataStore.empty()
    assert store.no == 0
    assert store.next_update is None
    assert store.lookup(AAGUID) is None
    assert store.compromised_aaguids() == frozenset()
    assert store.roots_for(AAGUID) == []
    assert store.verify_attestation_chain(AAGUID, [], NOW) is False
    assert not store.is_stale(NOW)


def test_staleness_follows_next_update(signer: BlobSigner) -> None:
    store = store_with(signer)
    assert not store.is_stale(datetime(2025, 7, 1, 23, 0, tzinfo=UTC))
    assert store.is_stale(datetime(2025, 7, 2, tzinfo=UTC))


def test_load_blob_file(tmp_path: Path, signer: BlobSigner) -> None:
    blob_path = tmp_path / "blob.jwt"
    root_path = tmp_path / "root.pem"
    blob_path.write_bytes(
        build_blob([make_entry(AAGUID, "Key")], no=9, next_update="2025-07-01", signer=signer) + b"\n"
    )
    root_path.write_bytes(signer.root.pem)
    store = load_blob_file(blob_path, root_cert_path=root_path, now=NOW)
    assert store.no == 9 and store.lookup(AAGUID) is not None

    with pytest.raises(MetadataError, match="cannot read the metadata BLOB"):
        load_blob_file(tmp_path / "missing.jwt", root_cert_path=root_path, now=NOW)
    with pytest.raises(MetadataError, match="cannot read the MDS root certificate"):
        load_blob_file(blob_path, root_cert_path=tmp_path / "missing.pem", now=NOW)


# --------------------------------------------------------------------------------------
# Statuses


@pytest.mark.parametrize("status", sorted(COMPROMISED_STATUSES))
def test_compromised_statuses_taint_the_model(signer: BlobSigner, status: str) -> None:
    entry = make_entry(
        AAGUID, "Bad Key", statuses=[("FIDO_CERTIFIED_L1", "2020-01-01"), (status, "2023-03-04")]
    )
    store = store_with(signer, entry, make_entry(OTHER_AAGUID, "Good Key"))
    info = store.lookup(AAGUID)
    assert info is not None
    assert info.compromised is True
    assert info.status == status
    assert info.compromise_reason is not None and status in info.compromise_reason
    assert "2023-03-04" in info.compromise_reason
    assert store.compromised_aaguids() == frozenset({AAGUID})


@pytest.mark.parametrize(
    "status",
    ["FIDO_CERTIFIED", "FIDO_CERTIFIED_L1", "FIDO_CERTIFIED_L2", "NOT_FIDO_CERTIFIED", "UPDATE_AVAILABLE"],
)
def test_certified_model_is_not_compromised(signer: BlobSigner, status: str) -> None:
    store = store_with(signer, make_entry(AAGUID, "Good Key", statuses=[(status, "2020-01-01")]))
    info = store.lookup(AAGUID)
    assert info is not None
    assert info.compromised is False and info.compromise_reason is None
    assert info.status == status
    assert store.compromised_aaguids() == frozenset()


def test_any_report_counts_not_just_the_latest(signer: BlobSigner) -> None:
    entry = make_entry(
        AAGUID,
        "Key",
        # Deliberately out of order: the list position must not decide "latest".
        statuses=[("FIDO_CERTIFIED_L2", "2024-01-01"), ("ATTESTATION_KEY_COMPROMISE", "2022-05-01")],
    )
    info = store_with(signer, entry).lookup(AAGUID)
    assert info is not None
    assert info.status == "FIDO_CERTIFIED_L2"
    assert info.compromised is True
    assert info.compromise_reason == "ATTESTATION_KEY_COMPROMISE (effective 2022-05-01)"


def test_future_status_is_not_yet_compromising(signer: BlobSigner) -> None:
    entry = make_entry(
        AAGUID, "Key", statuses=[("FIDO_CERTIFIED_L1", "2020-01-01"), ("REVOKED", "2025-09-01")]
    )
    store = store_with(signer, entry)
    info = store.lookup(AAGUID)
    assert info is not None
    assert info.compromised is False
    assert info.status == "FIDO_CERTIFIED_L1"
    assert store.compromised_aaguids() == frozenset()

    # A long-running server can ask again later without reloading the BLOB.
    later = datetime(2025, 9, 1, tzinfo=UTC)
    later_info = store.lookup(AAGUID, now=later)
    assert later_info is not None and later_info.compromised is True and later_info.status == "REVOKED"
    assert store.compromised_aaguids(now=later) == frozenset({AAGUID})
    day_before = store.lookup(AAGUID, now=later - timedelta(seconds=1))
    assert day_before is not None and day_before.compromised is False


def test_report_without_effective_date_counts(signer: BlobSigner) -> None:
    entry = make_entry(
        AAGUID, "Key", statuses=[("FIDO_CERTIFIED_L1", "2020-01-01"), ("USER_VERIFICATION_BYPASS", None)]
    )
    info = store_with(signer, entry).lookup(AAGUID)
    assert info is not None
    assert info.compromised is True
    assert info.compromise_reason == "USER_VERIFICATION_BYPASS"
    # An undated report sorts as the oldest, so the dated certification stays "latest".
    assert info.status == "FIDO_CERTIFIED_L1"


def test_model_with_only_future_reports_is_not_certified_yet(signer: BlobSigner) -> None:
    entry = make_entry(AAGUID, "Key", statuses=[("FIDO_CERTIFIED_L1", "2030-01-01")])
    info = store_with(signer, entry).lookup(AAGUID)
    assert info is not None and info.status == "NOT_FIDO_CERTIFIED" and not info.compromised


def test_unknown_status_values_are_skipped(signer: BlobSigner) -> None:
    entry = make_entry(
        AAGUID, "Key", statuses=[("FIDO_CERTIFIED_L1", "2020-01-01"), ("SOMETHING_NEW", "2024-01-01")]
    )
    info = store_with(signer, entry).lookup(AAGUID)
    assert info is not None and info.status == "FIDO_CERTIFIED_L1"


# --------------------------------------------------------------------------------------
# Attestation chains


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def chain_store(signer: BlobSigner, attestation_root: CertAuthority) -> MetadataStore:
    return store_with(
        signer,
        make_entry(AAGUID, "Key", attestation_root_pems=[attestation_root.pem]),
        make_entry(OTHER_AAGUID, "No roots"),
    )


def test_leaf_issued_by_the_entry_root_is_accepted(
    chain_store: MetadataStore, attestation_root: CertAuthority
) -> None:
    leaf = attestation_root.issue("Batch Attestation")
    assert chain_store.verify_attestation_chain(AAGUID, [leaf.der], NOW) is True
    assert chain_store.verify_attestation_chain(UUID(AAGUID).bytes, [leaf.der], NOW) is True


def test_chain_through_an_intermediate_is_accepted(
    chain_store: MetadataStore, attestation_root: CertAuthority
) -> None:
    intermediate = attestation_root.intermediate("Vendor Attestation CA 2")
    leaf = intermediate.issue("Batch Attestation")
    assert chain_store.verify_attestation_chain(AAGUID, [leaf.der, der(intermediate.cert)], NOW) is True
    # Some authenticators also send the root; that must not hurt.
    full = [leaf.der, der(intermediate.cert), attestation_root.der]
    assert chain_store.verify_attestation_chain(AAGUID, full, NOW) is True
    # Without the intermediate there is no path.
    assert chain_store.verify_attestation_chain(AAGUID, [leaf.der], NOW) is False


def test_leaf_from_another_root_is_refused(chain_store: MetadataStore, foreign_root: CertAuthority) -> None:
    leaf = foreign_root.issue("Batch Attestation")
    assert chain_store.verify_attestation_chain(AAGUID, [leaf.der], NOW) is False
    # Appending the foreign root does not make it trusted.
    assert chain_store.verify_attestation_chain(AAGUID, [leaf.der, foreign_root.der], NOW) is False


def test_forged_issuer_name_is_refused(chain_store: MetadataStore, attestation_root: CertAuthority) -> None:
    impostor = CertAuthority.create("Vendor Attestation Root")  # same subject, other key
    assert impostor.cert.subject == attestation_root.cert.subject
    leaf = impostor.issue("Batch Attestation")
    assert chain_store.verify_attestation_chain(AAGUID, [leaf.der], NOW) is False


def test_expired_attestation_certificate_is_refused(
    chain_store: MetadataStore, attestation_root: CertAuthority
) -> None:
    leaf = attestation_root.issue("Batch Attestation", not_after=datetime(2024, 1, 1, tzinfo=UTC))
    assert chain_store.verify_attestation_chain(AAGUID, [leaf.der], NOW) is False
    assert chain_store.verify_attestation_chain(AAGUID, [leaf.der], datetime(2023, 1, 1, tzinfo=UTC)) is True


def test_non_ca_intermediate_is_refused(chain_store: MetadataStore, attestation_root: CertAuthority) -> None:
    for bogus in (
        attestation_root.intermediate("Leaf Posing As CA", ca_flag=False),
        attestation_root.intermediate("No Constraints", basic_constraints=False),
    ):
        leaf = bogus.issue("Batch Attestation")
        assert chain_store.verify_attestation_chain(AAGUID, [leaf.der, der(bogus.cert)], NOW) is False


@pytest.mark.parametrize("x5c", [[], [b"garbage"], [b""]], ids=["empty", "garbage", "blank"])
def test_malformed_chain_is_refused(chain_store: MetadataStore, x5c: list[bytes]) -> None:
    assert chain_store.verify_attestation_chain(AAGUID, x5c, NOW) is False


def test_unknown_or_rootless_aaguid_is_refused(
    chain_store: MetadataStore, attestation_root: CertAuthority
) -> None:
    leaf = attestation_root.issue("Batch Attestation")
    assert chain_store.verify_attestation_chain(OTHER_AAGUID, [leaf.der], NOW) is False
    assert (
        chain_store.verify_attestation_chain("00000000-0000-0000-0000-000000000000", [leaf.der], NOW) is False
    )


def test_roots_are_per_aaguid(
    signer: BlobSigner, attestation_root: CertAuthority, foreign_root: CertAuthority
) -> None:
    store = store_with(
        signer,
        make_entry(AAGUID, "Key A", attestation_root_pems=[attestation_root.pem]),
        make_entry(OTHER_AAGUID, "Key B", attestation_root_pems=[foreign_root.pem]),
    )
    leaf = foreign_root.issue("Batch Attestation")
    assert store.verify_attestation_chain(OTHER_AAGUID, [leaf.der], NOW) is True
    assert store.verify_attestation_chain(AAGUID, [leaf.der], NOW) is False


# --------------------------------------------------------------------------------------
# fetch_blob over real HTTP


class _BlobServer:
    """Serves whatever ``body`` currently is at every path, with ``status``."""

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/jwt")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/blob.jwt"


@pytest.fixture
def blob_server() -> Iterator[_BlobServer]:
    server = _BlobServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def root_file(tmp_path: Path, signer: BlobSigner) -> Path:
    path = tmp_path / "mds-root.pem"
    path.write_bytes(signer.root.pem)
    return path


def _fetch(server: _BlobServer, destination: Path, root_file: Path) -> MetadataStore:
    return fetch_blob(server.url, destination, root_cert_path=root_file, now=NOW, timeout=10)


def test_fetch_installs_a_verified_blob(
    tmp_path: Path, blob_server: _BlobServer, root_file: Path, signer: BlobSigner
) -> None:
    destination = tmp_path / "var" / "mds" / "blob.jwt"
    blob_server.body = build_blob([make_entry(AAGUID, "Key")], no=10, next_update="2025-07-01", signer=signer)

    store = _fetch(blob_server, destination, root_file)

    assert store.no == 10 and store.lookup(AAGUID) is not None
    assert destination.read_bytes() == blob_server.body
    assert blob_server.requests == 1
    assert load_blob_file(destination, root_cert_path=root_file, now=NOW).no == 10
    assert sorted(p.name for p in destination.parent.iterdir()) == ["blob.jwt"]


def test_fetch_accepts_newer_and_equal_serials(
    tmp_path: Path, blob_server: _BlobServer, root_file: Path, signer: BlobSigner
) -> None:
    destination = tmp_path / "blob.jwt"
    for no in (10, 11, 11):
        blob_server.body = build_blob([], no=no, next_update="2025-07-01", signer=signer)
        assert _fetch(blob_server, destination, root_file).no == no
        assert destination.read_bytes() == blob_server.body


def test_fetch_refuses_rollback_and_leaves_destination_alone(
    tmp_path: Path, blob_server: _BlobServer, root_file: Path, signer: BlobSigner
) -> None:
    destination = tmp_path / "blob.jwt"
    blob_server.body = build_blob([], no=12, next_update="2025-07-01", signer=signer)
    _fetch(blob_server, destination, root_file)
    installed = destination.read_bytes()

    # An old but validly signed BLOB (say, from before a revocation) is replayed.
    blob_server.body = build_blob(
        [make_entry(AAGUID, "Key", statuses=[("FIDO_CERTIFIED_L1", "2020-01-01")])],
        no=11,
        next_update="2025-06-01",
        signer=signer,
    )
    with pytest.raises(MetadataError, match="rollback"):
        _fetch(blob_server, destination, root_file)

    assert destination.read_bytes() == installed
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_fetch_refuses_unverifiable_blob_and_leaves_destination_alone(
    tmp_path: Path, blob_server: _BlobServer, root_file: Path, signer: BlobSigner
) -> None:
    destination = tmp_path / "blob.jwt"
    blob_server.body = build_blob([], no=5, next_update="2025-07-01", signer=signer)
    _fetch(blob_server, destination, root_file)
    installed = destination.read_bytes()

    for body in (
        build_blob([], no=99, next_update="2025-07-01", signer=make_signer()),  # another root
        tamper_payload(
            build_blob([], no=6, next_update="2025-07-01", signer=signer), lambda b: b.update(no=99)
        ),
        b"<html>maintenance</html>",
    ):
        blob_server.body = body
        with pytest.raises(MetadataError):
            _fetch(blob_server, destination, root_file)
        assert destination.read_bytes() == installed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.jwt", "mds-root.pem"]


def test_fetch_replaces_an_unreadable_installed_blob(
    tmp_path: Path, blob_server: _BlobServer, root_file: Path, signer: BlobSigner
) -> None:
    destination = tmp_path / "blob.jwt"
    destination.write_bytes(b"half-written garbage")
    blob_server.body = build_blob([], no=3, next_update="2025-07-01", signer=signer)
    assert _fetch(blob_server, destination, root_file).no == 3
    assert destination.read_bytes() == blob_server.body


def test_fetch_reports_http_errors(tmp_path: Path, blob_server: _BlobServer, root_file: Path) -> None:
    blob_server.status = 503
    destination = tmp_path / "blob.jwt"
    with pytest.raises(MetadataError, match="HTTP 503"):
        _fetch(blob_server, destination, root_file)
    assert not destination.exists()


def test_fetch_reports_unreachable_server(tmp_path: Path, root_file: Path) -> None:
    # Bind and close a socket to get a port nothing listens on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MetadataError, match="downloading the metadata BLOB"):
        fetch_blob(
            f"http://127.0.0.1:{port}/blob.jwt",
            tmp_path / "blob.jwt",
            root_cert_path=root_file,
            now=NOW,
            timeout=5,
        )
