"""Admin routes: role admin, AAL2+, a fresh second factor (DESIGN §6)."""

from __future__ import annotations

import uuid

import pytest

from authserver.policy.risk import UNKNOWN_CLIENT
from tests.api.test_login import enrol_second_factor_row
from tests.conftest import services_of
from tests.support.api import PASSWORD, assert_problem, bearer, login, signup, table_counts, uniq
from tests.support.factors import enrol_totp, totp_code


async def admin_session(client, *, aal: int = 2, fresh: bool = True) -> str:
    """An admin whose session already passed two factors (how it got them is tested in the
    factor suites); returns its bearer token."""
    services = services_of(client)
    account, _ = await services.accounts.signup(username=uniq("admin"), display_name=None, email=None,
                                                password=PASSWORD, client=UNKNOWN_CLIENT, role="admin")
    await enrol_second_factor_row(client, account.username)
    now = services.ctx.clock.now()
    async with services.ctx.db.transaction() as conn:
        issued = await services.sessions.issue(conn, account=account, aal=aal, amr=["otp", "pwd"], auth_time=now,
                                               last_mfa_at=now if fresh else None, device_id=None, ip=None,
                                               user_agent=None)
    return issued.token


async def stale_admin_with_totp(client, clock) -> tuple[str, str]:
    """An admin with an authenticator app enrolled through the API, holding an AAL1 session
    that never passed a second factor; returns (that session's token, the TOTP secret)."""
    services = services_of(client)
    account, signed_up = await services.accounts.signup(username=uniq("admin"), display_name=None, email=None,
                                                        password=PASSWORD, client=UNKNOWN_CLIENT, role="admin")
    assert signed_up is not None
    secret = await enrol_totp(client, signed_up.token, clock)
    async with services.ctx.db.transaction() as conn:
        issued = await services.sessions.issue(conn, account=account, aal=1, amr=["pwd"],
                                               auth_time=services.ctx.clock.now(), last_mfa_at=None, device_id=None,
                                               ip=None, user_agent=None)
    return issued.token, secret


async def test_non_admins_are_forbidden(client):
    _, token = await signup(client)
    assert_problem(await client.get("/api/v1/admin/accounts", headers=bearer(token)), 403, "forbidden")


async def test_admin_needs_aal2_and_a_fresh_factor(client, clock):
    low = await admin_session(client, aal=1)
    r = await client.get("/api/v1/admin/accounts", headers=bearer(low))
    assert_problem(r, 401, "step_up_required")
    assert 'acr_values="aal2"' in r.headers["www-authenticate"]
    token = await admin_session(client)
    assert (await client.get("/api/v1/admin/accounts", headers=bearer(token))).status_code == 200
    clock.advance(301)
    assert_problem(await client.get("/api/v1/admin/accounts", headers=bearer(token)), 401, "step_up_required")


async def test_find_unlock_disable(client):
    token = await admin_session(client)
    account, user_token = await signup(client, uniq("target"), email="target@example.com")
    found = (await client.get("/api/v1/admin/accounts", params={"query": account["username"]},
                              headers=bearer(token))).json()["accounts"]
    assert [a["id"] for a in found] == [account["id"]]
    for _ in range(3):
        await login(client, account["username"], "wrong password")
    assert (await login(client, account["username"])).status_code == 429
    detail = (await client.get(f"/api/v1/admin/accounts/{account['id']}", headers=bearer(token))).json()
    assert detail["locked_until"] is not None and detail["factors"] == ["password"]
    r = await client.post(f"/api/v1/admin/accounts/{account['id']}/unlock", headers=bearer(token))
    assert r.status_code == 200
    assert (await login(client, account["username"])).status_code == 200
    r = await client.post(f"/api/v1/admin/accounts/{account['id']}/disable", headers=bearer(token))
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    assert_problem(await client.get("/api/v1/session", headers=bearer(user_token)), 401, "unauthorized")
    assert_problem(await login(client, account["username"]), 403, "account_disabled")
    events = (await client.get("/api/v1/admin/events", params={"account": account["id"]},
                               headers=bearer(token))).json()["events"]
    types = [e["type"] for e in events]
    assert "account_disabled" in types and "account_unlocked" in types and "account_locked" in types
    assert_problem(await client.post(f"/api/v1/admin/accounts/{uuid.uuid4()}/disable", headers=bearer(token)),
                   404, "not_found")


async def test_event_paging(client):
    token = await admin_session(client)
    account, _ = await signup(client)
    for _ in range(2):
        await login(client, account["username"], "wrong password")
    page = (await client.get("/api/v1/admin/events", params={"account": account["id"], "limit": 1},
                             headers=bearer(token))).json()
    assert len(page["events"]) == 1 and page["next_cursor"]
    nxt = (await client.get("/api/v1/admin/events", params={"account": account["id"], "limit": 1,
                                                            "cursor": page["next_cursor"]},
                            headers=bearer(token))).json()
    assert nxt["events"][0]["id"] < page["events"][0]["id"]


async def test_aal1_admin_repeats_the_request_with_x_mfa_code(client, clock):
    """RFC 9470: after step_up_required the client repeats the same call with X-MFA-Code;
    the code lifts the same session to AAL2 (no new token)."""
    token, secret = await stale_admin_with_totp(client, clock)
    r = await client.get("/api/v1/admin/accounts", headers=bearer(token))
    assert assert_problem(r, 401, "step_up_required")["methods"] == ["totp"]
    r = await client.get("/api/v1/admin/accounts",
                         headers={**bearer(token), "X-MFA-Code": totp_code(secret, clock.now())})
    assert r.status_code == 200, r.text
    me = (await client.get("/api/v1/session", headers=bearer(token))).json()
    assert me["aal"] == 2 and "otp" in me["amr"] and me["last_mfa_at"] is not None
    assert (await client.get("/api/v1/admin/events", headers=bearer(token))).status_code == 200


async def test_aal1_admin_with_a_wrong_or_hostile_x_mfa_code_is_refused(client, clock):
    token, secret = await stale_admin_with_totp(client, clock)
    wrong = str((int(totp_code(secret, clock.now())) + 1) % 10**6).zfill(6)
    for code in [wrong, "12\x003456", "\x00" * 6]:
        r = await client.get("/api/v1/admin/accounts", headers={**bearer(token), "X-MFA-Code": code})
        assert_problem(r, 401, "invalid_code")
    assert (await client.get("/api/v1/session", headers=bearer(token))).json()["aal"] == 1


async def test_aal1_admin_without_a_second_factor_is_not_lifted_by_x_mfa_code(client):
    """A recent sign-in is "fresh" for an account with no second factor, so the step-up
    passes without looking at the code: the session must still be refused (AAL1)."""
    services = services_of(client)
    _, issued = await services.accounts.signup(username=uniq("admin"), display_name=None, email=None,
                                               password=PASSWORD, client=UNKNOWN_CLIENT, role="admin")
    assert issued is not None
    r = await client.get("/api/v1/admin/accounts", headers={**bearer(issued.token), "X-MFA-Code": "123456"})
    assert assert_problem(r, 401, "step_up_required")["methods"] == ["enrol_second_factor"]
    assert (await client.get("/api/v1/session", headers=bearer(issued.token))).json()["aal"] == 1


@pytest.mark.parametrize(("path", "param"), [("/api/v1/admin/events", "type"), ("/api/v1/admin/events", "cursor"),
                                             ("/api/v1/admin/accounts", "query")])
async def test_free_text_parameters_refuse_nul(client, path, param):
    """PostgreSQL text cannot hold NUL: it must be a 400, never reach the database (a 500)."""
    token = await admin_session(client)
    before = await table_counts(services_of(client).ctx.db.engine)
    for value in ["\x00", "login\x00", "\x00x"]:
        assert_problem(await client.get(path, params={param: value}, headers=bearer(token)), 400,
                       "validation_error")
    assert await table_counts(services_of(client).ctx.db.engine) == before


async def test_disabling_an_account_ends_its_pending_logins(client):
    from authserver.errors import FlowExpired
    from tests.api.test_login import enrol_second_factor_row

    token = await admin_session(client)
    account, _ = await signup(client)
    await enrol_second_factor_row(client, account["username"])
    flow_token = (await login(client, account["username"])).json()["flow_token"]
    assert (await client.post(f"/api/v1/admin/accounts/{account['id']}/disable", headers=bearer(token))).status_code == 200
    services = services_of(client)
    try:
        async with services.ctx.db.transaction() as conn:
            await services.login.load_mfa_flow(conn, flow_token, "totp")
    except FlowExpired:
        return
    raise AssertionError("a pending login of a disabled account was still open")
