"""Responses recorded from real authenticators, through the whole API: a flow is opened, its
challenge set to the recorded one, and the recorded credential sent as a browser would. The
clock is set to each recording's time when its certificates need it (DESIGN: time comes
from the injected clock). A tampered copy of each is refused and writes nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from authserver.crypto import hash_token
from authserver.store.repositories import accounts, flows
from authserver.store.repositories import webauthn_credentials as credentials
from tests.conftest import services_of
from tests.support.api import assert_problem, table_counts, uniq
from tests.support.softauthn import b64url_decode, b64url_encode
from tests.support.webauthn import API, credential_rows

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webauthn"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def origins_of(fx: dict[str, Any]) -> str:
    origin = fx["expected_origin"]
    return ",".join(origin) if isinstance(origin, list) else origin


async def set_challenge(client, flow_token: str, challenge: str) -> None:
    services = services_of(client)
    now = services.ctx.clock.now()
    async with services.ctx.db.transaction() as conn:
        flow = await flows.get_by_token_hash(conn, hash_token(flow_token))
        assert flow is not None
        await flows.set_challenge(conn, flow.id, b64url_decode(challenge), now + timedelta(minutes=5))


def tamper_client_data(credential: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(credential))
    client_data = json.loads(b64url_decode(copied["response"]["clientDataJSON"]))
    client_data["tampered"] = True
    copied["response"]["clientDataJSON"] = b64url_encode(json.dumps(client_data).encode())
    return copied


@pytest.mark.parametrize("name", [
    "registration-packed-yubikey-firefox.json",  # YubiKey, packed attestation with a batch certificate
    "registration-fido-u2f-yubikey-firefox.json",  # YubiKey, legacy fido-u2f attestation
    "registration-apple-passkey.json",  # Apple platform passkey; certificate valid three days in 2021
    "registration-android-key-pixel-8a.json",  # Pixel 8a platform authenticator; pinned to Jan 2025
])
async def test_recorded_registration_signs_up_through_the_api(make_client, clock, name):
    fx = fixture(name)
    if fx["verify_at"]:
        clock.set(datetime.strptime(fx["verify_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))
    client = await make_client(rp_id=fx["expected_rp_id"], origins=origins_of(fx))
    engine = services_of(client).ctx.db.engine

    async def attempt(credential: dict[str, Any]):
        r = await client.post(f"{API}/registration/passkey/options", json={"username": uniq("rec")})
        assert r.status_code == 200, r.text
        flow_token = r.json()["flow_token"]
        await set_challenge(client, flow_token, fx["expected_challenge"])
        return await client.post(f"{API}/registration/passkey/verify",
                                 json={"flow_token": flow_token, "credential": credential})

    before = await table_counts(engine)
    assert_problem(await attempt(tamper_client_data(fx["credential"])), 400, "webauthn_failed")
    after = await table_counts(engine)
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {"flows": 1}  # only the flow
    r = await attempt(fx["credential"])
    assert r.status_code == 201, r.text
    credential = r.json()["credential"]
    assert credential["attestation_format"] == fx["expected"]["fmt"]
    reported = (fx["credential"].get("clientExtensionResults") or {}).get("credProps", {}).get("rk")
    # credProps when the client reported it; else residentKey "required" makes it discoverable
    assert credential["kind"] == "passkey" and credential["discoverable"] is (True if reported is None else reported)
    rows = [r for r in await credential_rows(client)
            if r["credential_id"] == b64url_decode(fx["expected"]["credential_id"])]
    assert [str(r["id"]) for r in rows] == [credential["id"]]


async def _account_with(client, *, public_key: str, credential_id: bytes, sign_count: int,
                        user_handle: bytes | None) -> tuple[str, uuid.UUID]:
    services = services_of(client)
    now = services.ctx.clock.now()
    username = uniq("rec")
    async with services.ctx.db.transaction() as conn:
        account = await accounts.insert_account(conn, username=username, display_name=username, email=None,
                                                password_hash=None, now=now,
                                                webauthn_user_id=user_handle or uuid.uuid4().bytes)
        row = await credentials.insert_credential(
            conn, account_id=account.id, credential_id=credential_id, public_key=b64url_decode(public_key),
            sign_count=sign_count, transports=[], aaguid="00000000-0000-0000-0000-000000000000",
            kind="security-key", attestation_format="none", attestation_trust="none", authenticator_name=None,
            discoverable=user_handle is not None, backup_eligible=False, backup_state=False, user_verified=False,
            nickname=None, now=now, expires_at=now + timedelta(days=730), device_id=None)
    return username, row.id


@pytest.mark.parametrize(("name", "usernameless", "aal", "amr"), [
    ("authentication-rsa-rs256-with-rsa-public-key.json", True, 3, ["hwk", "user"]),
    ("authentication-ec2-es256-with-ec2-public-key.json", False, 1, ["hwk"]),
])
async def test_recorded_assertion_signs_in_through_the_api(make_client, name, usernameless, aal, amr):
    fx = fixture(name)
    client = await make_client(rp_id=fx["expected_rp_id"], origins=origins_of(fx))
    credential = fx["credential"]
    handle = credential["response"].get("userHandle")
    username, row_id = await _account_with(client, public_key=fx["credential_public_key"],
                                           credential_id=b64url_decode(credential["rawId"]),
                                           sign_count=fx["credential_current_sign_count"],
                                           user_handle=b64url_decode(handle) if handle else None)

    async def attempt(sent: dict[str, Any]):
        r = await client.post(f"{API}/login/webauthn/options", json={} if usernameless else {"username": username})
        flow_token = r.json()["flow_token"]
        await set_challenge(client, flow_token, fx["expected_challenge"])
        return await client.post(f"{API}/login/webauthn/verify", json={"flow_token": flow_token, "credential": sent})

    assert_problem(await attempt(tamper_client_data(credential)), 400, "webauthn_failed")
    r = await attempt(credential)
    assert r.status_code == 200, r.text
    assert (r.json()["session"]["aal"], r.json()["session"]["amr"]) == (aal, amr)
    [row] = [r for r in await credential_rows(client) if r["id"] == row_id]
    assert row["sign_count"] == fx["expected"]["new_sign_count"]  # the assertion's counter, not stored + 1
    assert_problem(await attempt(credential), 401, "possible_clone")  # the same counter again
