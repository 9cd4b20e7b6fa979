"""SMS codes through the API (issue 4): phone enrolment, login by text, expiry, three tries,
replacement by a new send, send limits, bad input. Codes are read from the outbox file."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from authserver.errors import RateLimited
from authserver.methods.sms import SmsFactor
from authserver.store.models import OtpCode, OutboxMessage, Phone
from authserver.store.repositories import accounts, phones
from tests.conftest import services_of
from tests.support.api import assert_problem, bearer, login, read_outbox, signup
from tests.support.factors import add_verified_phone, last_text, mfa_flow, texts_to, unique_phone


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


async def send_login_code(client, outbox_file, flow_token: str, number: str) -> str:
    r = await client.post("/api/v1/login/mfa/sms/send", json={"flow_token": flow_token})
    assert r.status_code == 202, r.text
    return await last_text(client, outbox_file, number)


async def test_phone_enrolment_and_sms_login(client, outbox_file):
    phone = unique_phone()
    account, token = await signup(client, email="sms@example.com")
    spaced = f"{phone[:3]} ({phone[3:6]}) {phone[6:10]}-{phone[10:]}"
    r = await client.post("/api/v1/me/phones", json={"phone": spaced}, headers=bearer(token))
    assert r.status_code == 202, r.text
    added = r.json()
    assert added["verified"] is False
    assert added["phone_masked"].startswith("+49") and added["phone_masked"].endswith(phone[-2:])
    assert phone[5:-2] not in added["phone_masked"]
    assert (await login(client, account["username"])).status_code == 200  # unverified: not a factor yet

    code = await last_text(client, outbox_file, phone)  # stored and texted in E.164
    assert len(code) == 6
    r = await client.post("/api/v1/me/phones/verify", json={"phone": phone, "code": code}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == added["id"] and r.json()["verified"] is True
    await services_of(client).ctx.outbox.drain()
    assert any(m["to"] == "sms@example.com" and "phone number" in m["subject"] for m in read_outbox(outbox_file))

    flow = await mfa_flow(client, account["username"])
    assert "sms" in flow["methods"]
    code = await send_login_code(client, outbox_file, flow["flow_token"], phone)
    r = await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow["flow_token"], "code": code})
    assert r.status_code == 200, r.text
    assert r.json()["session"]["aal"] == 2 and r.json()["session"]["amr"] == ["pwd", "sms"]

    # used once: a second flow cannot reuse it
    flow2 = await mfa_flow(client, account["username"])
    r = await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow2["flow_token"], "code": code})
    assert_problem(r, 401, "code_reused")


async def test_sms_code_expires_after_ten_minutes(client, outbox_file, clock):
    phone = unique_phone()
    account, token = await signup(client)
    await add_verified_phone(client, token, outbox_file, phone)
    flow = await mfa_flow(client, account["username"])
    code = await send_login_code(client, outbox_file, flow["flow_token"], phone)
    clock.advance(601)
    flow = await mfa_flow(client, account["username"])  # the first flow died too (10 min)
    r = await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow["flow_token"], "code": code})
    assert_problem(r, 401, "invalid_code")


async def test_sms_code_dies_after_three_wrong_tries(client, outbox_file, clock):
    phone = unique_phone()
    account, token = await signup(client)
    await add_verified_phone(client, token, outbox_file, phone)
    flow = (await mfa_flow(client, account["username"]))["flow_token"]
    code = await send_login_code(client, outbox_file, flow, phone)
    for _ in range(3):
        r = await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow, "code": wrong(code)})
        assert_problem(r, 401, "invalid_code")
    # three failures also lock the account for 30 s; wait that out, well inside the code's 10 minutes
    assert_problem(await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow, "code": code}),
                   429, "rate_limited")
    clock.advance(31)
    r = await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow, "code": code})
    assert_problem(r, 401, "invalid_code")  # the right code, but it is dead
    async with services_of(client).ctx.db.read() as conn:
        attempts = await conn.scalar(select(OtpCode.attempts).where(OtpCode.account_id == uuid.UUID(account["id"]),
                                                                    OtpCode.scope == "login"))
    assert attempts == 3
    # a fresh code works
    code = await send_login_code(client, outbox_file, flow, phone)
    r = await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow, "code": code})
    assert r.status_code == 200, r.text


async def test_a_new_send_kills_the_previous_code(client, outbox_file):
    phone = unique_phone()
    account, token = await signup(client)
    await add_verified_phone(client, token, outbox_file, phone)
    flow = (await mfa_flow(client, account["username"]))["flow_token"]
    first = await send_login_code(client, outbox_file, flow, phone)
    second = await send_login_code(client, outbox_file, flow, phone)
    while second == first:  # one chance in a million; send again so the test means something
        second = await send_login_code(client, outbox_file, flow, phone)
    r = await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow, "code": first})
    assert_problem(r, 401, "invalid_code")
    r = await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow, "code": second})
    assert r.status_code == 200, r.text


async def test_sends_are_limited_per_account_and_per_number(client, outbox_file, clock):
    phone = unique_phone()
    account, token = await signup(client)
    await add_verified_phone(client, token, outbox_file, phone)  # send 1 of 5 this hour
    flow = (await mfa_flow(client, account["username"]))["flow_token"]
    for _ in range(4):
        assert (await client.post("/api/v1/login/mfa/sms/send", json={"flow_token": flow})).status_code == 202
    r = await client.post("/api/v1/login/mfa/sms/send", json={"flow_token": flow})
    body = assert_problem(r, 429, "rate_limited")
    assert 3500 <= int(r.headers["retry-after"]) <= 3600 and body["retry_after"] == int(r.headers["retry-after"])
    assert len(await texts_to(client, outbox_file, phone)) == 5

    other_phone = unique_phone()
    # the number itself is protected: another account cannot make it receive more this hour
    _, other = await signup(client)
    r = await client.post("/api/v1/me/phones", json={"phone": phone}, headers=bearer(other))
    assert_problem(r, 429, "rate_limited")
    assert (await client.post("/api/v1/me/phones", json={"phone": other_phone}, headers=bearer(other))).status_code \
        == 202

    clock.advance(3601)
    flow = (await mfa_flow(client, account["username"]))["flow_token"]
    assert (await client.post("/api/v1/login/mfa/sms/send", json={"flow_token": flow})).status_code == 202


async def test_removing_a_phone(client, outbox_file, clock):
    phone = unique_phone()
    account, token = await signup(client)
    phone_id = await add_verified_phone(client, token, outbox_file, phone)
    # adding the phone refreshed this session's step-up time; once stale, removal needs a fresh factor
    clock.advance(301)
    r = await client.delete(f"/api/v1/me/phones/{phone_id}", headers=bearer(token))
    assert_problem(r, 401, "step_up_required")
    r = await client.post("/api/v1/session/step-up/sms/send", json={"scope": "remove_factor"}, headers=bearer(token))
    assert r.status_code == 202, r.text
    code = await last_text(client, outbox_file, phone)
    r = await client.delete(f"/api/v1/me/phones/{phone_id}", headers={**bearer(token), "X-MFA-Code": code})
    assert r.status_code == 204, r.text
    r = await login(client, account["username"])
    assert r.status_code == 200  # the password alone again
    fresh = r.json()["session"]["token"]
    assert_problem(await client.delete(f"/api/v1/me/phones/{phone_id}", headers=bearer(fresh)), 404, "not_found")


async def test_bad_phone_and_code_input(client, outbox_file):
    phone = unique_phone()
    account, token = await signup(client)
    other_phone = unique_phone()
    for bad in ("12345", "+1 555", "+999123456789", "not a phone", "+" + "1" * 40, "+44 7700 900123"):
        r = await client.post("/api/v1/me/phones", json={"phone": bad}, headers=bearer(token))
        body = r.json()
        assert r.status_code == 400 and body["code"] == "validation_error", (bad, body)
    r = await client.post("/api/v1/me/phones/verify", json={"phone": other_phone, "code": "123456"},
                          headers=bearer(token))
    assert_problem(r, 404, "not_found")
    await add_verified_phone(client, token, outbox_file, phone)
    assert_problem(await client.post("/api/v1/me/phones", json={"phone": phone}, headers=bearer(token)), 409,
                   "conflict")
    flow = (await mfa_flow(client, account["username"]))["flow_token"]
    await send_login_code(client, outbox_file, flow, phone)
    for code in ("12a456", "123", "123456789", "٣٤٥٦٧٨"):
        r = await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow, "code": code})
        assert_problem(r, 400, "validation_error")
    assert_problem(await client.post("/api/v1/login/mfa/sms/send", json={"flow_token": "asf_unknown"}), 400,
                   "flow_expired")
    assert_problem(await client.post("/api/v1/login/mfa/sms/send", json={}), 400, "validation_error")


async def test_parallel_sends_cannot_beat_the_limit_on_postgresql(make_pg_client, outbox_file):
    """Twenty sends at once for one account: each counts the hour's sends and inserts one,
    so without a lock on the account they all count the same rows and all pass. (The
    sign-in regulator is set out of the way: this is about the send limit alone.)"""
    client = await make_pg_client(database_pool_size=25, lockout_threshold=100, ip_failure_limit=1000)
    limit = services_of(client).ctx.settings.sms_sends_per_hour
    phone = unique_phone()
    account, token = await signup(client)
    await add_verified_phone(client, token, outbox_file, phone)  # send 1 of the hour's limit
    flow = (await mfa_flow(client, account["username"]))["flow_token"]
    responses = await asyncio.gather(*(
        client.post("/api/v1/login/mfa/sms/send", json={"flow_token": flow}) for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(202) == limit - 1, statuses
    for r in responses:
        if r.status_code != 202:
            assert_problem(r, 429, "rate_limited")
            assert 3500 <= int(r.headers["retry-after"]) <= 3600  # the hour's send limit, not a lockout
    assert len(await texts_to(client, outbox_file, phone)) == limit


async def test_parallel_sends_through_the_factor_on_postgresql(make_pg_client, outbox_file):
    """The same race one layer down, with nothing in front of SmsFactor.send (no flow, no
    regulator) that could serialise the transactions by accident."""
    client = await make_pg_client(database_pool_size=25)
    services = services_of(client)
    factor = SmsFactor.from_settings(services.ctx.settings)
    phone = unique_phone()
    account, token = await signup(client)
    await add_verified_phone(client, token, outbox_file, phone)
    async with services.ctx.db.read() as conn:
        row = await accounts.get_account(conn, uuid.UUID(account["id"]))
    assert row is not None

    async def send_once() -> str:
        try:
            async with services.ctx.db.transaction() as conn:
                await factor.send(services.ctx, conn, account=row, scope="login")
        except RateLimited as exc:
            return exc.code
        return "sent"

    outcomes = await asyncio.gather(*(send_once() for _ in range(20)))
    assert outcomes.count("sent") == factor.sends_per_hour - 1, outcomes
    assert set(outcomes) == {"sent", "rate_limited"}
    assert len(await texts_to(client, outbox_file, phone)) == factor.sends_per_hour


async def test_adding_the_same_phone_twice_at_once_on_postgresql(make_pg_client, outbox_file):
    """The check "is this number there yet" and the insert race; the loser must not end in
    the unique constraint's IntegrityError (a 500)."""
    client = await make_pg_client(database_pool_size=25)
    phone = unique_phone()
    account, token = await signup(client)
    responses = await asyncio.gather(*(
        client.post("/api/v1/me/phones", json={"phone": phone}, headers=bearer(token)) for _ in range(5)))
    assert [r.status_code for r in responses] == [202] * 5, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(await texts_to(client, outbox_file, phone)) == 5
    async with services_of(client).ctx.db.read() as conn:
        live = await conn.scalar(select(func.count()).select_from(OtpCode).where(
            OtpCode.account_id == uuid.UUID(account["id"]), OtpCode.scope == "enroll_phone",
            OtpCode.expires_at > services_of(client).ctx.clock.now()))
    assert live == 1  # each send ended the one before it


async def test_inserting_a_phone_that_exists_returns_the_existing_row(client, clock):
    account, _ = await signup(client)
    account_id = uuid.UUID(account["id"])
    number = unique_phone()
    db = services_of(client).ctx.db
    async with db.transaction() as conn:
        first = await phones.insert_phone(conn, account_id=account_id, number=number, now=clock.now())
    clock.advance(5)
    async with db.transaction() as conn:
        again = await phones.insert_phone(conn, account_id=account_id, number=number, now=clock.now())
    assert again == first
    async with db.read() as conn:
        rows = await conn.scalar(select(func.count()).select_from(Phone).where(Phone.account_id == account_id))
    assert rows == 1


async def test_a_delivered_text_leaves_no_code_in_the_database(client, outbox_file):
    phone = unique_phone()
    _, token = await signup(client)
    assert (await client.post("/api/v1/me/phones", json={"phone": phone}, headers=bearer(token))).status_code == 202
    code = await last_text(client, outbox_file, phone)  # drains: the file sender got the code
    assert any(code in m["body"] for m in read_outbox(outbox_file) if m["to"] == phone)
    async with services_of(client).ctx.db.read() as conn:
        rows = (await conn.execute(select(OutboxMessage.status, OutboxMessage.subject, OutboxMessage.body)
                                   .where(OutboxMessage.to == phone))).all()
    assert [(r.status, r.subject, r.body) for r in rows] == [("sent", "authserver code", "")]


async def test_parallel_sends_from_several_accounts_respect_the_number_limit(make_pg_client, outbox_file):
    """Twelve accounts share one number; sixty parallel sends from all of them: the number's
    hourly limit holds (its own advisory lock, beside each account's row lock)."""
    accounts_sharing = 12
    limit = 20
    client = await make_pg_client(database_pool_size=30, sms_sends_per_hour=limit, lockout_threshold=1000,
                                  ip_failure_limit=10000)
    number = unique_phone()
    flows = []
    for _ in range(accounts_sharing):
        account, token = await signup(client)
        await add_verified_phone(client, token, outbox_file, number)  # one text each
        flows.append((await mfa_flow(client, account["username"]))["flow_token"])
    responses = await asyncio.gather(*(client.post("/api/v1/login/mfa/sms/send",
                                                   json={"flow_token": flows[i % accounts_sharing]})
                                       for i in range(60)))
    assert sum(r.status_code == 202 for r in responses) == limit - accounts_sharing
    assert {r.status_code for r in responses} <= {202, 429}
    await services_of(client).ctx.outbox.drain()
    assert len([m for m in read_outbox(outbox_file) if m["to"] == number]) == limit
