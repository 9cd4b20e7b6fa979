"""Attestation policy (none | any | metadata | allowlist) and metadata status, against our own
test CA and a metadata BLOB we sign ourselves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from authserver.errors import AttestationRejected, AuthenticatorCompromised
from authserver.metadata import MetadataStore, load_blob
from authserver.methods.webauthn import WebAuthnMethod, relying_party
from authserver.methods.webauthn_attestation import AttestationPolicy
from authserver.methods.webauthn_parse import parse_registration
from tests.support.mds import build_blob, make_entry, make_signer
from tests.support.softauthn import DEFAULT_AAGUID, SoftAuthenticator, TestCA

ORIGIN = "http://localhost:8000"
AAGUID = str(uuid.UUID(bytes=DEFAULT_AAGUID))
OTHER_AAGUID = "0132d110-bf4e-4208-a403-ab4f5f12efe5"
NOW = datetime.now(UTC)


def metadata(ca: TestCA, *statuses: tuple[str, str | None]) -> MetadataStore:
    signer = make_signer()
    entry = make_entry(AAGUID, "Authserver SoftKey", statuses=statuses or (("FIDO_CERTIFIED_L1", "2020-01-01"),),
                       attestation_root_pems=[ca.pem])
    blob = build_blob([entry], no=7, next_update="2099-01-01", signer=signer)
    return load_blob(blob, trust_root_pem_or_der=signer.root.pem, now=NOW)


def registration(key: SoftAuthenticator):
    method = WebAuthnMethod(relying_party(rp_id="localhost", rp_name="t", origins=[ORIGIN]), attestation="direct")
    options = method.registration_options(challenge=b"c" * 32, user_handle=b"u" * 32, user_name="a",
                                          display_name="a", kind="security-key", exclude=[])
    return method.verify_registration(parse_registration(key.create(options, origin=ORIGIN)),
                                      expected_challenge=b"c" * 32, now=NOW, resident_key_required=False)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.create()


@pytest.fixture(scope="module")
def attested(ca):
    return registration(SoftAuthenticator(attestation="packed-x5c", attestation_ca=ca))


@pytest.fixture(scope="module")
def unattested():
    return registration(SoftAuthenticator())


@pytest.fixture(scope="module")
def self_attested():
    return registration(SoftAuthenticator(attestation="packed-self"))


def test_policy_none_accepts_everything_and_records_the_trust(ca, attested, unattested, self_attested):
    policy = AttestationPolicy(mode="none")
    assert policy.judge(unattested, metadata=None, now=NOW).trust == "none"
    assert policy.judge(self_attested, metadata=None, now=NOW).trust == "self"
    assert policy.judge(attested, metadata=None, now=NOW).trust == "basic"
    verdict = policy.judge(attested, metadata=metadata(ca), now=NOW)
    assert (verdict.trust, verdict.authenticator_name, verdict.metadata_status) == (
        "metadata", "Authserver SoftKey", "FIDO_CERTIFIED_L1")


def test_policy_any_refuses_only_a_missing_attestation(attested, unattested, self_attested):
    policy = AttestationPolicy(mode="any")
    with pytest.raises(AttestationRejected) as caught:
        policy.judge(unattested, metadata=None, now=NOW)
    assert caught.value.code == "attestation_rejected"
    assert policy.judge(self_attested, metadata=None, now=NOW).trust == "self"
    assert policy.judge(attested, metadata=None, now=NOW).trust == "basic"


def test_policy_metadata_needs_a_path_to_a_listed_root(ca, attested, self_attested):
    policy = AttestationPolicy(mode="metadata")
    assert policy.judge(attested, metadata=metadata(ca), now=NOW).trust == "metadata"
    for reg, store in ((attested, None), (attested, metadata(TestCA.create("Unrelated Root"))),
                       (self_attested, metadata(ca))):
        with pytest.raises(AttestationRejected, match="metadata root"):
            policy.judge(reg, metadata=store, now=NOW)


def test_policy_allowlist_needs_an_attested_listed_aaguid(attested, unattested):
    assert AttestationPolicy(mode="allowlist", allowlist=[AAGUID.upper()]).judge(
        attested, metadata=None, now=NOW).trust == "basic"
    with pytest.raises(AttestationRejected, match="not on the allowlist"):
        AttestationPolicy(mode="allowlist", allowlist=[OTHER_AAGUID]).judge(attested, metadata=None, now=NOW)
    with pytest.raises(AttestationRejected, match="not attested"):
        AttestationPolicy(mode="allowlist", allowlist=[AAGUID]).judge(unattested, metadata=None, now=NOW)


@pytest.mark.parametrize("status", ["REVOKED", "USER_VERIFICATION_BYPASS", "ATTESTATION_KEY_COMPROMISE",
                                    "USER_KEY_REMOTE_COMPROMISE", "USER_KEY_PHYSICAL_COMPROMISE"])
def test_a_compromised_model_is_refused_under_every_policy(ca, attested, status):
    store = metadata(ca, ("FIDO_CERTIFIED_L1", "2020-01-01"), (status, "2021-06-01"))
    for mode in ("none", "any", "metadata"):
        with pytest.raises(AuthenticatorCompromised) as caught:
            AttestationPolicy(mode=mode).judge(attested, metadata=store, now=NOW)
        assert caught.value.code == "authenticator_compromised" and status in caught.value.log_detail


def test_a_compromise_reported_for_the_future_is_not_yet_effective(ca, attested):
    store = metadata(ca, ("FIDO_CERTIFIED_L1", "2020-01-01"), ("REVOKED", "2099-01-01"))
    assert AttestationPolicy(mode="metadata").judge(attested, metadata=store, now=NOW).trust == "metadata"


def test_an_unknown_policy_is_a_configuration_error():
    with pytest.raises(ValueError):
        AttestationPolicy(mode="strict")
