"""FIDO metadata in the WebAuthn routes: names by AAGUID, the metadata attestation policy,
compromised models refused at registration, and existing credentials re-checked whenever a
new BLOB is loaded. The BLOBs are signed by our own test CA (tests/support/mds.py)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from authserver.metadata import load_blob
from tests.conftest import services_of
from tests.support.api import assert_problem, bearer
from tests.support.mds import BlobSigner, build_blob, make_entry, make_signer
from tests.support.softauthn import DEFAULT_AAGUID, SoftAuthenticator, TestCA
from tests.support.webauthn import (
    API,
    ORIGIN,
    credential_rows,
    event_types,
    passkey_login,
    passkey_signup,
    signup_options,
)

AAGUID = str(uuid.UUID(bytes=DEFAULT_AAGUID))
NAME = "Authserver Test Key"


class Mds:
    """A BLOB file plus its root certificate on disk, as ``authserver mds-refresh`` leaves them."""

    def __init__(self, tmp_path: Path, attestation_ca: TestCA) -> None:
        self.signer: BlobSigner = make_signer()
        self.attestation_ca = attestation_ca
        self.blob_path = tmp_path / "mds.jwt"
        self.root_path = tmp_path / "mds-root.pem"
        self.root_path.write_bytes(self.signer.root.pem)
        self.no = 0

    def blob(self, *statuses: tuple[str, str | None]) -> bytes:
        self.no += 1
        entry = make_entry(AAGUID, NAME, statuses=statuses or (("FIDO_CERTIFIED_L1", "2020-01-01"),),
                           attestation_root_pems=[self.attestation_ca.pem])
        return build_blob([entry], no=self.no, next_update="2099-01-01", signer=self.signer)

    def write(self, *statuses: tuple[str, str | None]) -> None:
        self.blob_path.write_bytes(self.blob(*statuses))
        stamp = 1_700_000_000 + self.no  # a new mtime even within one clock tick
        os.utime(self.blob_path, (stamp, stamp))

    def settings(self, **extra: object) -> dict[str, object]:
        return {"mds_blob_path": str(self.blob_path), "mds_root_cert": str(self.root_path), **extra}


@pytest.fixture(scope="module")
def attestation_ca() -> TestCA:
    return TestCA.create("Test Key Vendor Root")


@pytest.fixture
def mds(tmp_path: Path, attestation_ca: TestCA) -> Mds:
    store = Mds(tmp_path, attestation_ca)
    store.write()
    return store


async def _signup(client, key):
    begun = await signup_options(client)
    return await client.post(f"{API}/registration/passkey/verify", json={
        "flow_token": begun["flow_token"], "credential": key.create(begun["options"], origin=ORIGIN)})


async def test_metadata_policy_accepts_a_chain_to_a_listed_root_and_names_the_model(make_client, mds):
    client = await make_client(**mds.settings(attestation_policy="metadata"))
    key = SoftAuthenticator(attestation="packed-x5c", attestation_ca=mds.attestation_ca)
    r = await _signup(client, key)
    assert r.status_code == 201, r.text
    credential = r.json()["credential"]
    assert (credential["authenticator_name"], credential["attestation_trust"]) == (NAME, "metadata")
    assert credential["aaguid"] == AAGUID


async def test_metadata_policy_refuses_attestation_outside_it(make_client, mds):
    client = await make_client(**mds.settings(attestation_policy="metadata"))
    for key in (SoftAuthenticator(attestation="packed-x5c", attestation_ca=TestCA.create("Unknown Vendor")),
                SoftAuthenticator(attestation="packed-self"), SoftAuthenticator()):
        assert_problem(await _signup(client, key), 400, "attestation_rejected")


async def test_a_revoked_model_is_refused_whatever_the_policy(make_client, mds):
    mds.write(("FIDO_CERTIFIED_L1", "2020-01-01"), ("REVOKED", "2024-05-01"))
    client = await make_client(**mds.settings())
    for key in (SoftAuthenticator(), SoftAuthenticator(attestation="packed-x5c", attestation_ca=mds.attestation_ca)):
        body = assert_problem(await _signup(client, key), 400, "authenticator_compromised")
        assert "REVOKED" not in str(body)  # the log names the status, the client gets the code
    other = SoftAuthenticator(aaguid=uuid.uuid4().bytes)  # another model is fine
    assert (await _signup(client, other)).status_code == 201


async def test_a_new_blob_marks_existing_credentials_at_risk(make_client, mds):
    client = await make_client(**mds.settings())
    key = SoftAuthenticator()
    body = await passkey_signup(client, key)
    account_id, token = body["account"]["id"], body["session"]["token"]
    assert body["credential"]["authenticator_name"] == NAME and body["credential"]["at_risk"] is False

    mds.write(("FIDO_CERTIFIED_L1", "2020-01-01"), ("USER_KEY_PHYSICAL_COMPROMISE", "2024-05-01"))
    listed = (await client.get(f"{API}/me/credentials", headers=bearer(token))).json()["webauthn"]
    assert listed[0]["at_risk"] is True
    [row] = await credential_rows(client, account_id)
    assert row["at_risk_reason"] == "metadata:USER_KEY_PHYSICAL_COMPROMISE"
    assert (await event_types(client, account_id)).count("webauthn_credential_at_risk") == 1
    # loading it again (another replica, a restart) reports nothing twice
    second = await make_client(**mds.settings())
    assert (await second.get(f"{API}/me/credentials", headers=bearer(token))).status_code == 200
    assert (await event_types(client, account_id)).count("webauthn_credential_at_risk") == 1
    # an at-risk credential still signs in (the user is told to replace it)
    assert (await passkey_login(client, key)).status_code == 200


async def test_load_metadata_rechecks_credentials_immediately(client, mds):
    body = await passkey_signup(client, SoftAuthenticator())
    service = services_of(client).extra["webauthn"]
    assert service.metadata is None
    store = load_blob(mds.blob(("ATTESTATION_KEY_COMPROMISE", "2023-01-01")),
                      trust_root_pem_or_der=mds.signer.root.pem, now=services_of(client).ctx.clock.now())
    flagged = await service.load_metadata(store)
    assert flagged >= 1
    [row] = await credential_rows(client, body["account"]["id"])
    assert row["at_risk"] is True and row["authenticator_name"] == NAME
    assert await service.load_metadata(store) == 0


async def test_a_blob_that_does_not_verify_is_not_used(make_client, mds, tmp_path):
    wrong_root = tmp_path / "other-root.pem"
    wrong_root.write_bytes(make_signer().root.pem)
    client = await make_client(mds_blob_path=str(mds.blob_path), mds_root_cert=str(wrong_root),
                               attestation_policy="metadata")
    assert services_of(client).extra["webauthn"].metadata is None
    key = SoftAuthenticator(attestation="packed-x5c", attestation_ca=mds.attestation_ca)
    assert_problem(await _signup(client, key), 400, "attestation_rejected")
