"""Sign-up, password change, account deletion (issue 2)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from authserver.store.models import Account, Device, SecurityEvent, Session
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


async def stored_client_columns(client, account_id: str) -> list[tuple[str | None, str | None]]:
    """(user_agent, ip) of every session, device and event row of the account."""
    services = services_of(client)
    account_id = uuid.UUID(str(account_id))
    async with services.ctx.db.read() as conn:
        rows = [(r.user_agent, r.ip) for r in (await conn.execute(
            select(Session.user_agent, Session.ip).where(Session.account_id == account_id))).all()]
        rows += [(r.user_agent, r.last_ip) for r in (await conn.execute(
            select(Device.user_agent, Device.last_ip).where(Device.account_id == account_id))).all()]
        rows += [(r.user_agent, r.ip) for r in (await conn.execute(
            select(SecurityEvent.user_agent, SecurityEvent.ip).where(SecurityEvent.account_id == account_id))).all()]
    assert rows
    return rows


async def test_control_characters_in_user_agent_and_device_id_are_not_stored(client):
    """PostgreSQL text cannot hold NUL (a 500 there); the other controls forge log lines."""
    r = await client.post("/api/v1/accounts", json={"username": uniq(), "password": PASSWORD},
                          headers=[(b"user-agent", b"evil\x00agent\x1b[31m\r\x7f\xad/1.0"),
                                   (b"x-device-id", b"\x00dev\x01ice\x00")])
    assert r.status_code == 201, r.text
    token = r.json()["session"]["token"]
    devices = (await client.get("/api/v1/me/devices", headers=bearer(token))).json()["devices"]
    assert [d["user_agent"] for d in devices] == ["evilagent[31m/1.0"]
    assert {ua for ua, _ in await stored_client_columns(client, r.json()["account"]["id"])} == {"evilagent[31m/1.0"}
    # the same device id, cleaned the same way, is the same device
    again = await client.post("/api/v1/login/password", json={"username": r.json()["account"]["username"],
                                                               "password": PASSWORD},
                              headers=[(b"user-agent", b"evil\x00agent\x1b[31m\r\x7f\xad/1.0"),
                                       (b"x-device-id", b"device")])
    assert again.status_code == 200, again.text
    devices = (await client.get("/api/v1/me/devices", headers=bearer(token))).json()["devices"]
    assert len(devices) == 1


async def test_user_agent_is_capped_and_a_control_only_one_is_none(client):
    r = await client.post("/api/v1/accounts", json={"username": uniq(), "password": PASSWORD},
                          headers=[(b"user-agent", b"\xe9" * 5000), (b"x-device-id", b"d" * 5000)])
    assert r.status_code == 201, r.text
    assert {ua for ua, _ in await stored_client_columns(client, r.json()["account"]["id"])} == {"\u00e9" * 512}
    r = await client.post("/api/v1/accounts", json={"username": uniq(), "password": PASSWORD},
                          headers=[(b"user-agent", b"\x00\x01\x02"), (b"x-device-id", b"\x00")])
    assert r.status_code == 201, r.text
    assert {ua for ua, _ in await stored_client_columns(client, r.json()["account"]["id"])} == {None}


async def test_forwarded_for_that_is_not_a_plain_address_is_not_stored(make_client):
    """``ipaddress`` takes any text after an IPv6 ``%`` (scope id), NUL included; such a
    hop, or garbage, leaves the address at the proxy's."""
    proxied = await make_client(peer="10.0.0.5", trusted_proxies=["10.0.0.0/8"])
    for forwarded, expected in [(b"fe80::1%evil\x00zone", "10.0.0.5"), (b"fe80::1%" + b"z" * 200, "10.0.0.5"),
                                (b"\x00, 10.0.0.9", "10.0.0.5"), (b"x" * 10000, "10.0.0.5"),
                                (b"203.0.113.7, " * 100 + b"10.0.0.9", "203.0.113.7"),
                                (b"2001:DB8::0001, 10.0.0.9", "2001:db8::1"), (b"10.0.0.7", "10.0.0.7")]:
        r = await proxied.post("/api/v1/accounts", json={"username": uniq(), "password": PASSWORD},
                               headers=[(b"x-forwarded-for", forwarded), (b"x-country-code", b"\xdf\x00"),
                                        (b"x-device-id", b"proxy-test")])
        assert r.status_code == 201, (forwarded[:40], r.text)
        assert {ip for _, ip in await stored_client_columns(proxied, r.json()["account"]["id"])} == {expected}, \
            forwarded[:40]
