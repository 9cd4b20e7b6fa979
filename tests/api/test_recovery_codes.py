"""Recovery codes through the API (issue 4): shown once, stored hashed, each works once
(also under twenty concurrent uses on PostgreSQL), every use emails the user and alerts
the admins through the outbox."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

from sqlalchemy import func, select

from authserver.api.mfa import recovery_factor
from authserver.app import create_app
from authserver.clock import MovableClock
from authserver.errors import CodeReused, InvalidCode
from authserver.policy.risk import UNKNOWN_CLIENT
from authserver.store.models import RecoveryCode, SecurityEvent
from authserver.store.repositories import accounts
from authserver.wiring import build_services
from tests.conftest import AppClient, make_settings, services_of
from tests.support.api import assert_problem, bearer, login, read_outbox, signup
from tests.support.factors import mfa_flow

CODE_SHAPE = re.compile(r"^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$")


async def make_codes(client, token: str, mfa_code: str | None = None) -> list[str]:
    headers = {**bearer(token), **({"X-MFA-Code": mfa_code} if mfa_code else {})}
    r = await client.post("/api/v1/me/recovery-codes", headers=headers)
    assert r.status_code == 201, r.text
    codes: list[str] = r.json()["codes"]
    return codes


async def test_ten_codes_shown_once_and_stored_hashed(client):
    account, token = await signup(client)
    codes = await make_codes(client, token)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(CODE_SHAPE.match(c) for c in codes), codes
    assert (await client.get("/api/v1/me/recovery-codes", headers=bearer(token))).json() == {"left": 10}
    async with services_of(client).ctx.db.read() as conn:
        stored = (await conn.execute(select(RecoveryCode.code_hash)
                                     .where(RecoveryCode.account_id == uuid.UUID(account["id"])))).scalars().all()
    assert len(stored) == 10
    for code in codes:
        plain = code.encode()
        assert all(plain not in h and plain.replace(b"-", b"") not in h for h in stored)


async def test_each_code_works_once(client):
    account, token = await signup(client)
    codes = await make_codes(client, token)
    flow = await mfa_flow(client, account["username"])
    assert "recovery_code" in flow["methods"]
    r = await client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": flow["flow_token"], "code": codes[0]})
    assert r.status_code == 200, r.text
    assert r.json()["recovery_codes_left"] == 9
    assert r.json()["session"]["aal"] == 2 and r.json()["session"]["amr"] == ["pwd", "rc"]

    flow = await mfa_flow(client, account["username"])
    r = await client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": flow["flow_token"], "code": codes[0]})
    assert_problem(r, 401, "code_reused")

    # the REST shortcut takes them too, typed loosely (upper case, no hyphen)
    loose = codes[1].replace("-", "").upper()
    assert (await login(client, account["username"], X_MFA_Code=loose)).status_code == 200
    assert_problem(await login(client, account["username"], X_MFA_Code=codes[1]), 401, "code_reused")
    assert (await client.get("/api/v1/me/recovery-codes", headers=bearer(token))).json() == {"left": 8}


async def test_a_new_set_replaces_the_old(client):
    account, token = await signup(client)
    old = await make_codes(client, token)
    # the account now has a second factor, so regenerating needs a fresh one: an old code will do
    assert_problem(await client.post("/api/v1/me/recovery-codes", headers=bearer(token)), 401, "step_up_required")
    new = await make_codes(client, token, mfa_code=old[0])
    assert not set(old) & set(new)
    flow = await mfa_flow(client, account["username"])
    r = await client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": flow["flow_token"], "code": old[3]})
    assert_problem(r, 401, "invalid_code")
    r = await client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": flow["flow_token"], "code": new[3]})
    assert r.status_code == 200
    assert r.json()["recovery_codes_left"] == 9


async def test_use_emails_the_user_and_alerts_the_admins(make_client, outbox_file):
    client = await make_client(admin_alert_to="security@example.com")
    account, token = await signup(client, email="owner@example.com")
    codes = await make_codes(client, token)
    await services_of(client).ctx.outbox.drain()
    before = len(read_outbox(outbox_file))
    flow = await mfa_flow(client, account["username"])
    r = await client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": flow["flow_token"], "code": codes[0]},
                          headers={"X-Device-Id": "test-device"})
    assert r.status_code == 200, r.text
    await services_of(client).ctx.outbox.drain()
    sent = read_outbox(outbox_file)[before:]
    user_mail = [m for m in sent if m["channel"] == "email" and m["to"] == "owner@example.com"]
    admin_alert = [m for m in sent if m["channel"] == "admin" and m["to"] == "security@example.com"]
    assert len(user_mail) == 1 and "recovery code was used" in user_mail[0]["body"] and "9 codes" in user_mail[0]["body"]
    assert len(admin_alert) == 1 and account["username"] in admin_alert[0]["body"]
    assert codes[0] not in str(sent)  # the code itself never leaves
    async with services_of(client).ctx.db.read() as conn:
        events = (await conn.execute(select(SecurityEvent.type, SecurityEvent.details)
                                     .where(SecurityEvent.account_id == uuid.UUID(account["id"]),
                                            SecurityEvent.type == "recovery_code_used"))).all()
    assert len(events) == 1 and events[0].details == {"left": 9}


async def test_admin_alert_goes_to_admin_accounts_without_a_configured_address(client, outbox_file):
    services = services_of(client)
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    await services.accounts.signup(username=f"adm{uuid.uuid4().hex[:8]}", display_name=None, email=admin_email,
                                   password="correct horse battery", client=UNKNOWN_CLIENT, role="admin")
    account, token = await signup(client)
    codes = await make_codes(client, token)
    assert (await login(client, account["username"], X_MFA_Code=codes[5])).status_code == 200
    await services.ctx.outbox.drain()
    alerts = [m for m in read_outbox(outbox_file) if m["channel"] == "admin" and m["to"] == admin_email]
    assert len(alerts) == 1 and account["username"] in alerts[0]["subject"]


async def test_twenty_concurrent_uses_of_one_code_on_postgresql(pg_url: str, outbox_file: Path, clock: MovableClock):
    """Exactly one of twenty simultaneous uses of the same code gets through: the code is
    consumed by one conditional UPDATE, not a read-then-write. (Through the service: each
    use is its own transaction on its own connection, as twenty requests would be.)"""
    settings = make_settings(pg_url, outbox_file, database_pool_size=20)
    services = build_services(settings, clock=clock)
    client = AppClient(create_app(settings, services=services))
    try:
        account, token = await signup(client)
        code = (await make_codes(client, token))[0]
        async with services.ctx.db.read() as conn:
            row = await accounts.get_account(conn, uuid.UUID(account["id"]))
        assert row is not None
        factor = recovery_factor(services)

        async def use_once() -> str:
            try:
                async with services.ctx.db.transaction() as conn:
                    used = await factor.use(services.ctx, conn, account=row, code=code)
            except (CodeReused, InvalidCode) as exc:
                return exc.code
            return f"ok:{used.left}"

        outcomes = await asyncio.gather(*[use_once() for _ in range(20)])
        assert sorted(outcomes).count("ok:9") == 1, outcomes
        assert set(outcomes) == {"ok:9", "code_reused"}, outcomes
        async with services.ctx.db.read() as conn:
            used = await conn.scalar(select(func.count()).select_from(RecoveryCode).where(
                RecoveryCode.account_id == row.id, RecoveryCode.used_at.is_not(None)))
            announced = await conn.scalar(select(func.count()).select_from(SecurityEvent).where(
                SecurityEvent.account_id == row.id, SecurityEvent.type == "recovery_code_used"))
        assert used == 1 and announced == 1
        # and the API agrees: the code is spent
        flow = await mfa_flow(client, account["username"])
        r = await client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": flow["flow_token"], "code": code})
        assert_problem(r, 401, "code_reused")
    finally:
        await client.aclose()
        await services.ctx.db.dispose()


async def test_bad_recovery_code_input(client):
    account, token = await signup(client)
    await make_codes(client, token)
    flow = (await mfa_flow(client, account["username"]))["flow_token"]
    for code in ("abcde-1234", "abcde_12345", "uuuuu-uuuuu", "abcde-123456"):
        r = await client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": flow, "code": code})
        assert_problem(r, 400, "validation_error")
    r = await client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": "asf_x", "code": "abcde-12345"})
    assert_problem(r, 400, "flow_expired")
    r = await client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": flow, "code": "abcde-12345"})
    assert_problem(r, 401, "invalid_code")


async def test_twenty_concurrent_api_requests_with_one_code_on_postgresql(pg_url: str, outbox_file: Path,
                                                                         clock: MovableClock):
    """The same race through HTTP: twenty pending logins, one code, sent at once. Exactly one
    session comes back; the others are refused cleanly (never a 500)."""
    settings = make_settings(pg_url, outbox_file, database_pool_size=25, lockout_threshold=100)
    services = build_services(settings, clock=clock)
    client = AppClient(create_app(settings, services=services))
    try:
        account, token = await signup(client)
        code = (await make_codes(client, token))[0]
        flows = [(await mfa_flow(client, account["username"]))["flow_token"] for _ in range(20)]
        responses = await asyncio.gather(*(
            client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": f, "code": code}) for f in flows))
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(200) == 1, statuses
        assert set(statuses) <= {200, 401}, statuses
        assert {r.json()["code"] for r in responses if r.status_code == 401} <= {"code_reused", "invalid_code"}
    finally:
        await client.aclose()
        await services.ctx.db.dispose()
