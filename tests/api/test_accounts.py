"""Sign-up, password change, account deletion (issue 2)."""

from __future__ import annotations

from sqlalchemy import select

from authserver.store.models import Account, SecurityEvent
from tests.conftest import services_of
from tests.support.api import PASSWORD, assert_problem, bearer, login, signup, uniq


async def test_signup_returns_account_and_aal1_session(client):
    name = uniq("Alice")
    r = await client.post("/api/v1/accounts", json={"username": name, "password": PASSWORD,
                                                    "email": "alice@example.com", "display_name": "Alice A."})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["account"]["username"] == name.casefold()
    assert body["account"]["display_name"] == "Alice A."
    assert body["account"]["has_password"] is True
    assert body["session"]["aal"] == 1
    assert body["session"]["amr"] == ["pwd"]
    assert body["session"]["token"].startswith("ass_")
    me = await client.get("/api/v1/session", headers=bearer(body["session"]["token"]))
    assert me.json()["account"]["id"] == body["account"]["id"]


async def test_usernames_are_case_folded_and_unique(client):
    name = uniq("bob")
    await signup(client, name)
    r = await client.post("/api/v1/accounts", json={"username": name.upper(), "password": PASSWORD})
    assert_problem(r, 409, "username_taken")
    r = await login(client, name.upper())
    assert r.status_code == 200


async def test_signup_validation_names_the_field(client):
    r = await client.post("/api/v1/accounts", json={"username": "has space", "password": PASSWORD})
    body = assert_problem(r, 400, "validation_error")
    assert body["errors"][0]["field"] == "username"
    r = await client.post("/api/v1/accounts", json={"username": uniq(), "password": "short"})
    assert assert_problem(r, 400, "validation_error")["errors"][0]["field"] == "password"
    r = await client.post("/api/v1/accounts", json={"username": uniq(), "password": PASSWORD, "email": "nope"})
    assert assert_problem(r, 400, "validation_error")["errors"][0]["field"] == "email"
    r = await client.post("/api/v1/accounts", json={"username": uniq()})
    assert assert_problem(r, 400, "validation_error")["errors"][0]["field"] == "password"


async def test_password_is_stored_as_argon2id(client):
    account, _ = await signup(client)
    async with services_of(client).ctx.db.read() as conn:
        stored = await conn.scalar(select(Account.password_hash).where(Account.username == account["username"]))
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_password_change_revokes_other_sessions(client):
    account, token = await signup(client)
    other = (await login(client, account["username"])).json()["session"]["token"]
    r = await client.put("/api/v1/me/password", json={"current_password": "wrong one!", "new_password": "new pass 123"},
                         headers=bearer(token))
    assert_problem(r, 401, "invalid_credentials")
    r = await client.put("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "new pass 123"},
                         headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["sessions_revoked"] == 1
    assert_problem(await client.get("/api/v1/session", headers=bearer(other)), 401, "unauthorized")
    assert (await client.get("/api/v1/session", headers=bearer(token))).status_code == 200
    assert_problem(await login(client, account["username"]), 401, "invalid_credentials")
    assert (await login(client, account["username"], "new pass 123")).status_code == 200


async def test_sensitive_call_on_a_stale_session_needs_step_up(client, clock):
    _, token = await signup(client)
    clock.advance(301)
    r = await client.put("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "new pass 123"},
                         headers=bearer(token))
    body = assert_problem(r, 401, "step_up_required")
    assert r.headers["www-authenticate"] == ('Bearer error="insufficient_user_authentication", max_age="300", '
                                             'acr_values="aal2"')
    assert body["methods"] == ["login"]
    assert_problem(await client.delete("/api/v1/me", headers=bearer(token)), 401, "step_up_required")


async def test_delete_account_removes_it_and_its_sessions(client):
    account, token = await signup(client)
    r = await client.delete("/api/v1/me", headers=bearer(token))
    assert r.status_code == 204
    assert_problem(await client.get("/api/v1/session", headers=bearer(token)), 401, "unauthorized")
    assert_problem(await login(client, account["username"]), 401, "invalid_credentials")
    async with services_of(client).ctx.db.read() as conn:
        assert await conn.scalar(select(Account.id).where(Account.username == account["username"])) is None
        kinds = (await conn.execute(select(SecurityEvent.type).where(
            SecurityEvent.details["username"].as_string() == account["username"]))).scalars().all()
    assert "account_deleted" in kinds
    # the name is free again
    await signup(client, account["username"])
