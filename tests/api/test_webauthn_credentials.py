"""Managing credentials while signed in: list, rename, revoke (never the last way in),
lifetimes, re-registration after expiry, related origins, and the legacy U2F AppID."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from types import SimpleNamespace

from authserver.store.models import Phone, TotpSecret
from authserver.store.models.base import table_of
from tests.api.test_admin import admin_session
from tests.conftest import services_of
from tests.support import softauthn
from tests.support.api import assert_problem, bearer, login, signup
from tests.support.softauthn import SoftAuthenticator
from tests.support.webauthn import (
    API,
    DEVICE,
    ORIGIN,
    add_credential,
    credential_rows,
    event_types,
    login_options,
    login_verify,
    passkey_login,
    passkey_signup,
    signup_options,
    step_up,
)

FIELDS = {"id", "nickname", "authenticator_name", "aaguid", "kind", "discoverable", "backup_eligible",
          "backup_state", "transports", "created_at", "last_used_at", "expires_at", "expires_soon", "at_risk"}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_list_shows_every_factor(client, clock):
    account, token = await signup(client)
    key = SoftAuthenticator(resident_keys=False, attachment="cross-platform", transports=["usb", "nfc"])
    added = await add_credential(client, token, key, nickname="Blue key")
    r = await client.get(f"{API}/me/credentials", headers=bearer(token))
    assert r.status_code == 200, r.text
    body = r.json()
    [item] = body["webauthn"]
    assert FIELDS <= set(item)
    assert (item["id"], item["nickname"], item["kind"], item["discoverable"]) == (
        added["id"], "Blue key", "security-key", False)
    assert item["aaguid"] == "5e1f7a0c-0de5-4a4e-8b5a-7e57a17d0001" and item["transports"] == ["nfc", "usb"]
    assert item["last_used_at"] is None and item["expires_soon"] is False and item["at_risk"] is False
    assert _at(item["expires_at"]) - _at(item["created_at"]) == timedelta(days=730)
    assert body["totp"] is None and body["phones"] == [] and body["recovery_codes_left"] == 0

    clock.advance(days=701)  # within 30 days of the end
    r = await login(client, account["username"])
    flow_token = r.json()["flow_token"]
    r = await client.post(f"{API}/login/mfa/webauthn/options", json={"flow_token": flow_token})
    credential = key.get(r.json()["options"], origin=ORIGIN)
    r = await client.post(f"{API}/login/mfa/webauthn/verify", json={"flow_token": flow_token,
                                                                     "credential": credential})
    token = r.json()["session"]["token"]
    codes = await client.post(f"{API}/me/recovery-codes", headers=bearer(token))
    assert codes.status_code == 201
    body = (await client.get(f"{API}/me/credentials", headers=bearer(token))).json()
    [item] = body["webauthn"]
    assert item["expires_soon"] is True and item["last_used_at"] is not None
    assert body["recovery_codes_left"] == 10


async def test_lifetime_per_kind_is_configurable(make_client):
    client = await make_client(passkey_lifetime_days=30)
    body = await passkey_signup(client, SoftAuthenticator())
    credential = body["credential"]
    assert _at(credential["expires_at"]) - _at(credential["created_at"]) == timedelta(days=30)
    assert credential["expires_soon"] is True


async def test_rename(client):
    body = await passkey_signup(client, SoftAuthenticator())
    token, cid = body["session"]["token"], body["credential"]["id"]
    r = await client.patch(f"{API}/me/credentials/webauthn/{cid}", json={"nickname": "  Laptop  "},
                           headers=bearer(token))
    assert r.status_code == 200 and r.json()["nickname"] == "Laptop"
    r = await client.patch(f"{API}/me/credentials/webauthn/{cid}", json={"nickname": "bad\u0007name"},
                           headers=bearer(token))
    assert_problem(r, 400, "validation_error")
    r = await client.patch(f"{API}/me/credentials/webauthn/{cid}", json={"nickname": None}, headers=bearer(token))
    assert r.status_code == 200 and r.json()["nickname"] is None
    other = await passkey_signup(client, SoftAuthenticator())
    r = await client.patch(f"{API}/me/credentials/webauthn/{cid}", json={"nickname": "mine"},
                           headers=bearer(other["session"]["token"]))
    assert_problem(r, 404, "not_found")


async def test_the_last_way_into_a_passwordless_account_cannot_be_removed(client):
    key, spare = SoftAuthenticator(), SoftAuthenticator()
    body = await passkey_signup(client, key)
    token, cid = body["session"]["token"], body["credential"]["id"]
    r = await client.delete(f"{API}/me/credentials/webauthn/{cid}", headers=bearer(token))
    assert_problem(r, 409, "last_factor")
    added = await add_credential(client, token, spare, kind="passkey")
    assert (await client.delete(f"{API}/me/credentials/webauthn/{cid}", headers=bearer(token))).status_code == 204
    r = await client.delete(f"{API}/me/credentials/webauthn/{added['id']}", headers=bearer(token))
    assert_problem(r, 409, "last_factor")
    r = await client.delete(f"{API}/me/credentials/webauthn/{cid}", headers=bearer(token))
    assert_problem(r, 404, "not_found")  # already removed
    listed = (await client.get(f"{API}/me/credentials", headers=bearer(token))).json()["webauthn"]
    assert [c["id"] for c in listed] == [added["id"]]
    assert "webauthn_credential_revoked" in await event_types(client, body["account"]["id"])


async def test_a_password_account_may_remove_its_only_key(client):
    account, token = await signup(client)
    key = SoftAuthenticator(resident_keys=False)
    added = await add_credential(client, token, key)
    r = await client.delete(f"{API}/me/credentials/webauthn/{added['id']}", headers=bearer(token))
    assert_problem(r, 401, "step_up_required")
    assert (await step_up(client, token, key))[1].status_code == 200
    r = await client.delete(f"{API}/me/credentials/webauthn/{added['id']}", headers=bearer(token))
    assert r.status_code == 204, r.text
    [row] = await credential_rows(client, account["id"])
    assert row["revoked_at"] is not None and row["revoked_reason"] == "removed_by_user"


async def test_an_expired_credential_registered_again_replaces_the_old_row(client, clock, monkeypatch):
    fixed = b"\x17" * 32  # a U2F-style key derives the same credential ID again
    monkeypatch.setattr(softauthn, "secrets", SimpleNamespace(token_bytes=lambda n: fixed[:n]))
    account, token = await signup(client)
    old = await add_credential(client, token, SoftAuthenticator(resident_keys=False))
    r = await client.post(f"{API}/me/credentials/webauthn/options", json={"kind": "security-key"},
                          headers=bearer(token))
    assert_problem(r, 401, "step_up_required")
    clock.advance(days=731)
    token = (await login(client, account["username"])).json()["session"]["token"]
    key = SoftAuthenticator(resident_keys=False)
    new = await add_credential(client, token, key)
    rows = await credential_rows(client, account["id"])
    assert [str(r["id"]) for r in rows] == [new["id"]] and new["id"] != old["id"]
    assert rows[0]["credential_id"] == fixed and not new["expires_soon"]
    assert "webauthn_credential_replaced" in await event_types(client, account["id"])
    assert (await passkey_login(client, key, account["username"])).status_code == 200


async def test_a_live_credential_cannot_be_registered_twice(client, monkeypatch):
    fixed = b"\x18" * 32
    monkeypatch.setattr(softauthn, "secrets", SimpleNamespace(token_bytes=lambda n: fixed[:n]))
    body = await passkey_signup(client, SoftAuthenticator())
    token = body["session"]["token"]
    r = await client.post(f"{API}/me/credentials/webauthn/options", json={"kind": "passkey"}, headers=bearer(token))
    created = SoftAuthenticator().create(r.json()["options"], origin=ORIGIN)
    r = await client.post(f"{API}/me/credentials/webauthn/verify",
                          json={"flow_token": r.json()["flow_token"], "credential": created}, headers=bearer(token))
    assert_problem(r, 409, "credential_exists")


async def test_register_options_validate_kind_and_nickname(client):
    body = await passkey_signup(client, SoftAuthenticator())
    token = body["session"]["token"]
    r = await client.post(f"{API}/me/credentials/webauthn/options", json={"kind": "fingerprint"},
                          headers=bearer(token))
    assert_problem(r, 400, "validation_error")
    r = await client.post(f"{API}/me/credentials/webauthn/options", json={"kind": "passkey", "nickname": "x" * 65},
                          headers=bearer(token))
    assert_problem(r, 400, "validation_error")
    r = await client.post(f"{API}/me/credentials/webauthn/options", json={"kind": "passkey"})
    assert_problem(r, 401, "unauthorized")


async def test_well_known_webauthn_lists_related_origins(make_client):
    client = await make_client(origins="http://localhost:8000,android:apk-key-hash:abc",
                               related_origins="https://shop.example,https://example.co.uk")
    r = await client.get("/.well-known/webauthn")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {"origins": ["http://localhost:8000", "https://shop.example", "https://example.co.uk"]}
    # a related origin and an Android app may run ceremonies for our RP ID
    key = SoftAuthenticator()
    begun = await signup_options(client)
    r = await client.post(f"{API}/registration/passkey/verify", json={
        "flow_token": begun["flow_token"], "credential": key.create(begun["options"], origin="https://shop.example")})
    assert r.status_code == 201, r.text
    assert (await passkey_login(client, key, origin="android:apk-key-hash:abc")).status_code == 200


async def test_legacy_u2f_registration_signs_in_through_the_appid_extension(make_client):
    appid = "https://localhost:8000/u2f-appid.json"
    client = await make_client(u2f_appid=appid)
    account, token = await signup(client, headers=DEVICE)
    key = SoftAuthenticator(resident_keys=False, user_verification=False, counter_mode="zero")
    await add_credential(client, token, key)
    begun = await login_options(client, account["username"])
    assert begun["options"]["extensions"] == {"appid": appid}
    credential = key.get(begun["options"], origin=ORIGIN, rp_id=appid)  # signed for the AppID's hash
    r = await login_verify(client, begun["flow_token"], credential)
    assert_problem(r, 400, "webauthn_failed")  # the client did not say it used the AppID
    begun = await login_options(client, account["username"])
    credential = key.get(begun["options"], origin=ORIGIN, rp_id=appid)
    credential["clientExtensionResults"] = {"appid": True}
    r = await login(client, account["username"])
    flow_token = r.json()["flow_token"]
    r = await client.post(f"{API}/login/mfa/webauthn/options", json={"flow_token": flow_token})
    assert r.json()["options"]["extensions"] == {"appid": appid}
    credential = key.get(r.json()["options"], origin=ORIGIN, rp_id=appid)
    credential["clientExtensionResults"] = {"appid": True}
    r = await client.post(f"{API}/login/mfa/webauthn/verify", json={"flow_token": flow_token,
                                                                     "credential": credential})
    assert r.status_code == 200, r.text
    assert r.json()["session"]["aal"] == 2


async def test_an_admin_removes_a_users_last_key(client):
    key = SoftAuthenticator()
    body = await passkey_signup(client, key)
    account_id, cid = body["account"]["id"], body["credential"]["id"]
    url = f"{API}/admin/accounts/{account_id}/credentials/webauthn/{cid}"
    assert_problem(await client.delete(url, headers=bearer(body["session"]["token"])), 403, "forbidden")
    admin = await admin_session(client)
    r = await client.delete(url, headers=bearer(admin))
    assert r.status_code == 204, r.text  # no last_factor for an admin: a compromised key must go
    assert_problem(await passkey_login(client, key), 401, "credential_revoked")
    assert_problem(await client.delete(url, headers=bearer(admin)), 404, "not_found")
    other = await passkey_signup(client, SoftAuthenticator())
    wrong = f"{API}/admin/accounts/{other['account']['id']}/credentials/webauthn/{cid}"
    assert_problem(await client.delete(wrong, headers=bearer(admin)), 404, "not_found")
    [row] = await credential_rows(client, account_id)
    assert row["revoked_reason"] == "revoked_by_admin"


async def test_list_summarises_totp_and_phones(client):
    body = await passkey_signup(client, SoftAuthenticator())
    account_id, token = uuid.UUID(body["account"]["id"]), body["session"]["token"]
    services = services_of(client)
    now = services.ctx.clock.now()
    async with services.ctx.db.transaction() as conn:
        await conn.execute(table_of(TotpSecret).insert().values(
            account_id=account_id, secret_sealed="v1.k1.x", algorithm="SHA1", digits=6, period=30,
            last_used_step=-1, created_at=now))
        await conn.execute(table_of(Phone).insert().values(id=uuid.uuid4(), account_id=account_id,
                                                           number="+447700900123", verified_at=now, created_at=now))
    listed = (await client.get(f"{API}/me/credentials", headers=bearer(token))).json()
    assert listed["totp"]["enrolled"] is True and listed["totp"]["created_at"]
    [phone] = listed["phones"]
    assert phone["verified"] is True and phone["phone_masked"].endswith("23")
    assert "7700900" not in phone["phone_masked"]
