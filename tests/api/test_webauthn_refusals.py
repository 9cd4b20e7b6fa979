"""Every refusal of the WebAuthn routes has its own test and its own code, and malformed
credentials are 400 problem+json that write nothing."""

from __future__ import annotations

import base64
import json
import uuid
from types import SimpleNamespace

import pytest

from authserver.store.repositories import webauthn_credentials as repo
from authserver.store.repositories.accounts import get_account
from tests.conftest import services_of
from tests.support import softauthn
from tests.support.api import assert_problem, bearer, login, signup, table_counts, uniq
from tests.support.softauthn import SoftAuthenticator, b64url_decode, b64url_encode
from tests.support.webauthn import (
    API,
    ORIGIN,
    add_credential,
    credential_rows,
    event_types,
    login_options,
    login_verify,
    passkey_login,
    passkey_signup,
    signup_options,
)


async def _registration(client, key, **create_kw):
    begun = await signup_options(client)
    create_kw.setdefault("origin", ORIGIN)
    return begun["flow_token"], key.create(begun["options"], **create_kw)


async def _verify_signup(client, flow_token, credential):
    return await client.post(f"{API}/registration/passkey/verify",
                             json={"flow_token": flow_token, "credential": credential})


async def test_reused_challenge_is_refused(client):
    key = SoftAuthenticator()
    await passkey_signup(client, key)
    begun = await login_options(client)
    good = key.get(begun["options"], origin=ORIGIN)
    bad = key.get(begun["options"], origin="https://evil.example")
    assert_problem(await login_verify(client, begun["flow_token"], bad), 400, "webauthn_failed")
    # The failed attempt used the challenge up: the genuine response to it is refused too.
    assert_problem(await login_verify(client, begun["flow_token"], good), 400, "challenge_expired")


async def test_a_replayed_response_to_a_finished_flow_is_refused(client):
    key = SoftAuthenticator()
    await passkey_signup(client, key)
    begun = await login_options(client)
    credential = key.get(begun["options"], origin=ORIGIN)
    assert (await login_verify(client, begun["flow_token"], credential)).status_code == 200
    assert_problem(await login_verify(client, begun["flow_token"], credential), 400, "flow_expired")
    fresh = await login_options(client)  # replayed against a new challenge: not the challenge it signed
    body = assert_problem(await login_verify(client, fresh["flow_token"], credential), 400, "webauthn_failed")
    assert "challenge" not in json.dumps(body).lower()  # the client learns no detail


async def test_expired_challenge_is_refused(client, clock):
    key = SoftAuthenticator()
    await passkey_signup(client, key)
    begun = await login_options(client)
    credential = key.get(begun["options"], origin=ORIGIN)
    clock.advance(301)  # challenge lives 5 min, the flow 10
    assert_problem(await login_verify(client, begun["flow_token"], credential), 400, "challenge_expired")
    flow_token, created = await _registration(client, SoftAuthenticator())
    clock.advance(301)
    assert_problem(await _verify_signup(client, flow_token, created), 400, "challenge_expired")


async def test_expired_flow_is_refused(client, clock):
    flow_token, created = await _registration(client, SoftAuthenticator())
    clock.advance(601)
    assert_problem(await _verify_signup(client, flow_token, created), 400, "flow_expired")
    assert_problem(await login_verify(client, "asf_unknown", {"id": "AA"}), 400, "validation_error")


async def test_wrong_origin_is_refused(client):
    flow_token, created = await _registration(client, SoftAuthenticator(), origin="https://evil.example")
    assert_problem(await _verify_signup(client, flow_token, created), 400, "webauthn_failed")
    key = SoftAuthenticator()
    await passkey_signup(client, key)
    assert_problem(await passkey_login(client, key, origin="http://localhost:8001"), 400, "webauthn_failed")


async def test_wrong_rp_id_is_refused(client):
    flow_token, created = await _registration(client, SoftAuthenticator(), rp_id="evil.example")
    assert_problem(await _verify_signup(client, flow_token, created), 400, "webauthn_failed")
    key = SoftAuthenticator()
    await passkey_signup(client, key)
    assert_problem(await passkey_login(client, key, rp_id="localhost.evil"), 400, "webauthn_failed")


async def test_missing_user_presence_is_refused(client):
    key = SoftAuthenticator(user_presence=False)
    flow_token, created = await _registration(client, key)
    assert_problem(await _verify_signup(client, flow_token, created), 400, "webauthn_failed")
    key = SoftAuthenticator()
    body = await passkey_signup(client, key)
    key.user_presence = False
    assert_problem(await passkey_login(client, key), 400, "webauthn_failed")
    rows = await credential_rows(client, body["account"]["id"])
    assert rows[0]["last_used_at"] is None and rows[0]["sign_count"] == 0


async def test_credential_of_another_account_is_refused(client):
    alice_key, bob_key = SoftAuthenticator(resident_keys=False), SoftAuthenticator()
    alice, alice_token = await signup(client)
    await add_credential(client, alice_token, alice_key)
    bob = await passkey_signup(client, bob_key)
    # second step of Alice's password login, answered with Bob's passkey
    flow_token = (await login(client, alice["username"])).json()["flow_token"]
    r = await client.post(f"{API}/login/mfa/webauthn/options", json={"flow_token": flow_token})
    forged = bob_key.get(r.json()["options"], origin=ORIGIN, credential_id=bob_key.credentials[0].credential_id)
    r = await client.post(f"{API}/login/mfa/webauthn/verify", json={"flow_token": flow_token, "credential": forged})
    assert_problem(r, 401, "unknown_credential")
    # passkey-first for Alice by name, answered with Bob's passkey
    begun = await login_options(client, alice["username"])
    forged = bob_key.get(begun["options"], origin=ORIGIN, credential_id=bob_key.credentials[0].credential_id)
    assert_problem(await login_verify(client, begun["flow_token"], forged), 401, "unknown_credential")
    # usernameless, Bob's credential claiming Alice's user handle
    async with services_of(client).ctx.db.read() as conn:
        alice_row = await get_account(conn, uuid.UUID(alice["id"]))
    begun = await login_options(client)
    forged = bob_key.get(begun["options"], origin=ORIGIN)
    forged["response"]["userHandle"] = b64url_encode(alice_row.webauthn_user_id)
    assert_problem(await login_verify(client, begun["flow_token"], forged), 401, "unknown_credential")
    assert bob["account"]["id"] != alice["id"]


async def test_revoked_credential_is_refused(client):
    key, spare = SoftAuthenticator(), SoftAuthenticator()
    body = await passkey_signup(client, key)
    token = body["session"]["token"]
    await add_credential(client, token, spare, kind="passkey")
    r = await client.delete(f"{API}/me/credentials/webauthn/{body['credential']['id']}", headers=bearer(token))
    assert r.status_code == 204, r.text
    assert_problem(await passkey_login(client, key), 401, "credential_revoked")
    assert (await passkey_login(client, spare)).status_code == 200


async def test_expired_credential_is_refused_but_other_factors_work(client, clock):
    account, token = await signup(client)
    passkey = SoftAuthenticator()
    await add_credential(client, token, passkey, kind="passkey")
    assert (await passkey_login(client, passkey, account["username"])).status_code == 200
    clock.advance(days=731)  # credentials live 2 years
    assert_problem(await passkey_login(client, passkey, account["username"]), 401, "credential_expired")
    assert_problem(await passkey_login(client, passkey), 401, "credential_expired")  # usernameless
    r = await login(client, account["username"])  # the expired key no longer counts as a second factor
    assert r.status_code == 200 and r.json()["session"]["aal"] == 1


async def test_counter_regression_is_refused_and_the_credential_flagged(client):
    key = SoftAuthenticator(resident_keys=False)
    account, token = await signup(client)
    await add_credential(client, token, key)
    for _ in range(3):
        assert (await passkey_login(client, key, account["username"])).status_code == 200
    credential_id = key.credentials[0].credential_id
    key.set_sign_count(credential_id, 1)  # a copy of the key that fell behind: reports 2 after 3
    assert_problem(await passkey_login(client, key, account["username"]), 401, "possible_clone")
    [row] = await credential_rows(client, account["id"])
    assert row["clone_flagged_at"] is not None and row["at_risk"] is True and row["sign_count"] == 3
    assert "webauthn_clone_flagged" in await event_types(client, account["id"])
    key.set_sign_count(credential_id, 10)  # even the genuine key is refused until replaced
    assert_problem(await passkey_login(client, key, account["username"]), 401, "possible_clone")


async def test_an_always_zero_counter_keeps_working(client):
    key = SoftAuthenticator(counter_mode="zero", backup_eligible=True, backup_state=True)
    body = await passkey_signup(client, key)
    for _ in range(2):
        assert (await passkey_login(client, key)).status_code == 200
    [row] = await credential_rows(client, body["account"]["id"])
    assert row["sign_count"] == 0 and row["clone_flagged_at"] is None


async def test_changed_backup_eligibility_is_refused(client):
    key = SoftAuthenticator()
    await passkey_signup(client, key)
    key.backup_eligible = True
    assert_problem(await passkey_login(client, key), 400, "webauthn_failed")


async def test_backup_state_change_is_recorded(client):
    key = SoftAuthenticator(backup_eligible=True, backup_state=False)
    body = await passkey_signup(client, key)
    key.backup_state = True  # the passkey got synced after registration
    assert (await passkey_login(client, key)).status_code == 200
    [row] = await credential_rows(client, body["account"]["id"])
    assert row["backup_state"] is True
    assert "webauthn_backup_state_changed" in await event_types(client, body["account"]["id"])


async def test_attestation_outside_policy_is_refused(make_client):
    client = await make_client(attestation_policy="any")
    begun = await signup_options(client)
    assert begun["options"]["attestation"] == "direct"  # a policy needs an attestation to judge
    created = SoftAuthenticator().create(begun["options"], origin=ORIGIN)  # attests "none"
    before = await table_counts(services_of(client).ctx.db.engine)
    assert_problem(await _verify_signup(client, begun["flow_token"], created), 400, "attestation_rejected")
    assert await table_counts(services_of(client).ctx.db.engine) == before
    flow_token, created = await _registration(client, SoftAuthenticator(attestation="packed-self"))
    assert (await _verify_signup(client, flow_token, created)).status_code == 201
    allow = await make_client(attestation_policy="allowlist",
                              attestation_allowlist="0132d110-bf4e-4208-a403-ab4f5f12efe5")
    flow_token, created = await _registration(allow, SoftAuthenticator(attestation="packed-self"))
    assert_problem(await _verify_signup(allow, flow_token, created), 400, "attestation_rejected")


async def test_a_credential_id_registered_to_another_account_is_refused(client, monkeypatch):
    fixed = b"\x42" * 32
    monkeypatch.setattr(softauthn, "secrets", SimpleNamespace(token_bytes=lambda n: fixed[:n]))
    first = await passkey_signup(client, SoftAuthenticator())
    flow_token, created = await _registration(client, SoftAuthenticator())
    assert b64url_decode(created["id"]) == fixed
    assert_problem(await _verify_signup(client, flow_token, created), 409, "credential_exists")
    rows = [r for r in await credential_rows(client) if r["credential_id"] == fixed]
    assert [str(r["account_id"]) for r in rows] == [first["account"]["id"]]


# ---- malformed credentials ------------------------------------------------------------------

def _std(text: str) -> str:
    return base64.b64encode(b64url_decode(text)).decode()


def _malformed_registrations(created: dict) -> list[tuple[str, object]]:
    response = created["response"]
    att = b64url_decode(response["attestationObject"])
    cases: list[tuple[str, object]] = [
        ("padded base64url", {**created, "id": created["id"] + "="}),
        ("standard base64", {**created, "response": {**response, "clientDataJSON": _std(response["clientDataJSON"])
                                                     + "+/"}}),
        ("truncated CBOR", {**created, "response": {**response, "attestationObject": b64url_encode(att[:-7])}}),
        ("trailing CBOR", {**created, "response": {**response, "attestationObject": b64url_encode(att + b"\x00")}}),
        ("non-JSON clientDataJSON", {**created, "response": {**response, "clientDataJSON": b64url_encode(b"{x")}}),
        ("wrong type: id", {**created, "id": 7}),
        ("wrong type: response", {**created, "response": ["x"]}),
        ("wrong type: transports", {**created, "response": {**response, "transports": "usb"}}),
        ("wrong type: credProps", {**created, "clientExtensionResults": {"credProps": 1}}),
        ("oversized id", {**created, "id": b64url_encode(b"i" * 1100), "rawId": b64url_encode(b"i" * 1100)}),
        ("oversized clientDataJSON", {**created, "response": {**response,
                                                              "clientDataJSON": b64url_encode(b" " * 6000)}}),
        ("missing attestationObject", {**created, "response": {"clientDataJSON": response["clientDataJSON"]}}),
        ("empty object", {}),
    ]
    return cases


async def test_malformed_registration_is_a_validation_error_and_writes_nothing(client):
    begun = await signup_options(client, uniq("malformed"))
    created = SoftAuthenticator().create(begun["options"], origin=ORIGIN)
    engine = services_of(client).ctx.db.engine
    before = await table_counts(engine)
    for name, bad in _malformed_registrations(created):
        r = await _verify_signup(client, begun["flow_token"], bad)
        body = assert_problem(r, 400, "validation_error")
        assert body["errors"][0]["field"].startswith("credential"), name
    for wrong in ("not an object", 5, None, ["x"]):
        r = await _verify_signup(client, begun["flow_token"], wrong)
        assert_problem(r, 400, "validation_error")
    assert await table_counts(engine) == before
    # none of that burnt the challenge: the genuine response still completes the sign-up
    assert (await _verify_signup(client, begun["flow_token"], created)).status_code == 201


async def test_malformed_assertion_is_a_validation_error_and_writes_nothing(client):
    key = SoftAuthenticator()
    body = await passkey_signup(client, key)
    token = body["session"]["token"]
    begun = await login_options(client)
    good = key.get(begun["options"], origin=ORIGIN)
    response = good["response"]
    auth_data = b64url_decode(response["authenticatorData"])
    cases = [
        {**good, "response": {**response, "authenticatorData": b64url_encode(auth_data[:20])}},
        {**good, "response": {**response, "signature": response["signature"] + "=="}},
        {**good, "response": {**response, "signature": b64url_encode(b"s" * 4096)}},
        {**good, "response": {**response, "userHandle": b64url_encode(b"u" * 100)}},
        {**good, "response": {**response, "clientDataJSON": b64url_encode(b"\x00\x01")}},
        {**good, "clientExtensionResults": {"appid": "yes"}},
        {**good, "rawId": 12},
    ]
    engine = services_of(client).ctx.db.engine
    before = await table_counts(engine)
    routes = [("/login/webauthn/verify", begun["flow_token"], {}),
              ("/session/step-up/webauthn/verify", "asf_x", bearer(token))]
    for path, flow_token, headers in routes:
        for bad in cases:
            r = await client.post(f"{API}{path}", json={"flow_token": flow_token, "credential": bad}, headers=headers)
            assert_problem(r, 400, "validation_error")
    assert await table_counts(engine) == before
    assert (await login_verify(client, begun["flow_token"], good)).status_code == 200


@pytest.mark.parametrize("path", ["/registration/passkey/verify", "/login/webauthn/verify",
                                  "/login/mfa/webauthn/verify"])
async def test_oversized_body_is_413(client, path):
    r = await client.post(f"{API}{path}", content=json.dumps({"flow_token": "x", "credential": {
        "id": "A" * 70000}}).encode(), headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "payload_too_large")


async def test_the_counter_update_itself_refuses_to_go_backwards(client):
    """The conditional UPDATE is the last line against two copies of a key racing on two
    replicas: only a counter above the stored one (or zero after zero) is written."""
    body = await passkey_signup(client, SoftAuthenticator())
    services = services_of(client)
    now = services.ctx.clock.now()
    row_id = uuid.UUID(body["credential"]["id"])
    async with services.ctx.db.transaction() as conn:
        assert await repo.record_use(conn, row_id, sign_count=0, backup_state=False, now=now)
        assert await repo.record_use(conn, row_id, sign_count=5, backup_state=False, now=now)
        assert not await repo.record_use(conn, row_id, sign_count=5, backup_state=False, now=now)
        assert not await repo.record_use(conn, row_id, sign_count=3, backup_state=False, now=now)
        assert not await repo.record_use(conn, row_id, sign_count=0, backup_state=False, now=now)
    [row] = await credential_rows(client, body["account"]["id"])
    assert row["sign_count"] == 5
