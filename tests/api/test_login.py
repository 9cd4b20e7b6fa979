"""Password login: with and without the second-factor seam, lockout, devices (issue 2)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from authserver.methods.base import Proof
from authserver.store.models import Account, SecurityEvent, TotpSecret
from tests.conftest import services_of
from tests.support.api import PASSWORD, assert_problem, bearer, login, read_outbox, signup, uniq


async def enrol_second_factor_row(client, username: str) -> None:
    """Put a confirmed second factor on the account straight into storage, so the login
    flow's seam can be tested on its own (the TOTP routes are tested elsewhere)."""
    services = services_of(client)
    async with services.ctx.db.transaction() as conn:
        account_id = await conn.scalar(select(Account.id).where(Account.username == username))
        await conn.execute(TotpSecret.__table__.insert().values(
            account_id=account_id, secret_sealed=services.ctx.keyring.seal(b"A" * 20, aad=f"totp:{account_id}".encode()),
            algorithm="SHA1", digits=6, period=30, last_used_step=-1, created_at=services.ctx.clock.now()))


async def test_login_without_second_factor_gives_a_session(client):
    account, _ = await signup(client)
    r = await login(client, account["username"])
    assert r.status_code == 200, r.text
    session = r.json()["session"]
    assert session["aal"] == 1 and session["amr"] == ["pwd"]
    me = await client.get("/api/v1/session", headers=bearer(session["token"]))
    assert me.json()["aal"] == 1


async def test_login_with_second_factor_answers_mfa_required(client, clock):
    account, _ = await signup(client)
    await enrol_second_factor_row(client, account["username"])
    r = await login(client, account["username"])
    body = assert_problem(r, 401, "mfa_required")
    assert r.headers["www-authenticate"].startswith('MFA realm="authserver", methods="')
    assert "totp" in r.headers["www-authenticate"]
    assert "totp" in body["methods"]
    assert body["flow_token"].startswith("asf_")
    assert body["expires_at"].endswith("Z")
    assert "token" not in body and "session" not in body


async def test_mfa_flow_finishes_into_an_aal2_session(client):
    """The flow seam: a proof handed to the pending flow ends it with a two-factor session,
    and the flow cannot be finished twice."""
    account, _ = await signup(client)
    await enrol_second_factor_row(client, account["username"])
    flow_token = (await login(client, account["username"])).json()["flow_token"]
    services = services_of(client)
    from authserver.errors import FlowExpired
    from authserver.policy.risk import UNKNOWN_CLIENT

    proof = Proof(method="totp", amr=frozenset({"otp"}), aal=1, factor_class="have")
    async with services.ctx.db.transaction() as conn:
        flow, acct, _ = await services.login.load_mfa_flow(conn, flow_token, "totp")
        issued = await services.login.finish_mfa(conn, flow, acct, proof, UNKNOWN_CLIENT)
    assert issued.row.aal == 2 and issued.row.amr == ["otp", "pwd"]
    assert issued.row.last_mfa_at is not None
    try:
        async with services.ctx.db.transaction() as conn:
            await services.login.load_mfa_flow(conn, flow_token, "totp")
    except FlowExpired:
        pass
    else:
        raise AssertionError("a finished flow was accepted again")


async def test_expired_flow_is_refused(client, clock):
    account, _ = await signup(client)
    await enrol_second_factor_row(client, account["username"])
    flow_token = (await login(client, account["username"])).json()["flow_token"]
    clock.advance(601)
    services = services_of(client)
    from authserver.errors import FlowExpired

    try:
        async with services.ctx.db.transaction() as conn:
            await services.login.load_mfa_flow(conn, flow_token, "totp")
    except FlowExpired:
        return
    raise AssertionError("an expired flow was accepted")


async def test_unknown_user_and_wrong_password_look_the_same(client):
    account, _ = await signup(client)
    a = await login(client, account["username"], "wrong password")
    b = await login(client, uniq("ghost"), "wrong password")
    assert assert_problem(a, 401, "invalid_credentials") == assert_problem(b, 401, "invalid_credentials")


async def test_three_failures_lock_the_account_with_backoff(client, clock):
    account, _ = await signup(client)
    name = account["username"]
    for _ in range(3):
        assert_problem(await login(client, name, "wrong password"), 401, "invalid_credentials")
    r = await login(client, name)  # even the right password is refused while locked
    body = assert_problem(r, 429, "rate_limited")
    assert r.headers["retry-after"] == "30" and body["retry_after"] == 30
    clock.advance(31)
    # without a success in between, the next lock lasts longer (30 s, 1 min, 2 min, 5 min)
    for _ in range(3):
        await login(client, name, "wrong password")
    r = await login(client, name)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) == 60
    clock.advance(61)
    assert (await login(client, name)).status_code == 200
    # a success resets the count: one failure no longer locks
    assert_problem(await login(client, name, "wrong password"), 401, "invalid_credentials")
    assert (await login(client, name)).status_code == 200
    async with services_of(client).ctx.db.read() as conn:
        account_id = uuid.UUID(account["id"])
        types = (await conn.execute(select(SecurityEvent.type).where(SecurityEvent.account_id == account_id)))
        assert "account_locked" in types.scalars().all()


async def test_disabled_account_cannot_log_in(client):
    account, token = await signup(client)
    services = services_of(client)
    from authserver.store.repositories.accounts import set_status

    async with services.ctx.db.transaction() as conn:
        await set_status(conn, uuid.UUID(account["id"]), "disabled", services.ctx.clock.now())
    assert_problem(await login(client, account["username"]), 403, "account_disabled")
    assert_problem(await client.get("/api/v1/session", headers=bearer(token)), 401, "unauthorized")


async def test_password_rehashed_when_parameters_change(make_client):
    weak = await make_client(argon2_time_cost=1)
    account, _ = await signup(weak)
    async with services_of(weak).ctx.db.read() as conn:
        before = await conn.scalar(select(Account.password_hash).where(Account.username == account["username"]))
    stronger = await make_client(argon2_time_cost=2)
    assert (await login(stronger, account["username"])).status_code == 200
    async with services_of(stronger).ctx.db.read() as conn:
        after = await conn.scalar(select(Account.password_hash).where(Account.username == account["username"]))
    assert "t=1" in before and "t=2" in after


async def test_new_device_is_recorded_and_emailed(client, outbox_file):
    account, _ = await signup(client, email="dev@example.com")
    assert (await login(client, account["username"], X_Device_Id="laptop-1")).status_code == 200
    assert (await login(client, account["username"], X_Device_Id="laptop-1")).status_code == 200
    assert (await login(client, account["username"], X_Device_Id="phone-2")).status_code == 200
    await services_of(client).ctx.outbox.drain()
    mails = [m for m in read_outbox(outbox_file) if m["to"] == "dev@example.com"]
    assert len(mails) == 2, mails  # laptop-1 and phone-2 once each; the sign-up device was not news
    assert all(m["channel"] == "email" and "new device" in m["body"] for m in mails)
    token = (await login(client, account["username"], X_Device_Id="laptop-1")).json()["session"]["token"]
    devices = (await client.get("/api/v1/me/devices", headers=bearer(token))).json()["devices"]
    assert len(devices) == 3


async def test_browser_login_sets_httponly_cookies(client):
    account, _ = await signup(client)
    r = await client.post("/api/v1/login/password", json={"username": account["username"], "password": PASSWORD})
    assert r.status_code == 200
    cookies = r.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("authserver_session="))
    assert "HttpOnly" in session_cookie and "Secure" in session_cookie and "samesite=lax" in session_cookie.lower()
    assert any(c.startswith("authserver_device=") for c in cookies)


async def test_forwarded_for_is_trusted_only_from_configured_proxies(make_client):
    proxied = await make_client(peer="10.0.0.5", trusted_proxies=["10.0.0.0/8"])
    account, _ = await signup(proxied)
    r = await login(proxied, account["username"], X_Forwarded_For="203.0.113.7, 10.0.0.9", X_Country_Code="de",
                    X_Device_Id="d-proxy")
    token = r.json()["session"]["token"]
    devices = (await proxied.get("/api/v1/me/devices", headers=bearer(token))).json()["devices"]
    d = next(d for d in devices if d["last_ip"] == "203.0.113.7")
    assert d["last_country"] == "DE"
    direct = await make_client(peer="198.51.100.1")
    r = await login(direct, account["username"], X_Forwarded_For="203.0.113.99", X_Country_Code="FR",
                    X_Device_Id="d-direct")
    token = r.json()["session"]["token"]
    devices = (await direct.get("/api/v1/me/devices", headers=bearer(token))).json()["devices"]
    d = next(d for d in devices if d["last_ip"] == "198.51.100.1")
    assert d["last_country"] is None


async def test_outbox_worker_delivers_by_itself(client, outbox_file):
    """The background worker the app starts in its lifespan delivers without drain()."""
    import asyncio

    outbox = services_of(client).ctx.outbox
    outbox.start()
    try:
        account, _ = await signup(client, email="bg@example.com")
        assert (await login(client, account["username"], X_Device_Id="new-one")).status_code == 200
        for _ in range(100):
            if any(m["to"] == "bg@example.com" for m in read_outbox(outbox_file)):
                break
            await asyncio.sleep(0.05)
        assert any(m["to"] == "bg@example.com" and m["channel"] == "email" for m in read_outbox(outbox_file))
    finally:
        await outbox.stop()
