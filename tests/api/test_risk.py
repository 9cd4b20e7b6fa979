"""A sign-in from a new country needs one more verification (DESIGN §5): a second factor
when the account has one, else a code emailed to the account; the email code never raises
the AAL."""

from __future__ import annotations

import asyncio
import re
import uuid

from authserver.errors import RateLimited
from authserver.methods.email import EmailCodeFactor
from authserver.store.repositories import accounts
from tests.conftest import services_of
from tests.support.api import assert_problem, bearer, login, read_outbox, signup, uniq
from tests.support.factors import enrol_totp, totp_code
from tests.support.softauthn import SoftAuthenticator
from tests.support.webauthn import API, ORIGIN, passkey_signup

PROXY = {"peer": "10.0.0.5", "trusted_proxies": ["10.0.0.0/8"]}


def from_country(country: str, device: str = "laptop") -> dict[str, str]:
    return {"X_Country_Code": country, "X_Forwarded_For": "203.0.113.10", "X_Device_Id": device}


async def emailed_code(client, outbox_file, address: str) -> str:
    await services_of(client).ctx.outbox.drain()
    mails = [m for m in read_outbox(outbox_file) if m["to"] == address and m["subject"] == "Your sign-in code"]
    assert mails, read_outbox(outbox_file)
    match = re.search(r"\b(\d{6})\b", mails[-1]["body"])
    assert match
    return match.group(1)


async def test_new_country_without_second_factor_asks_for_an_email_code(make_client, outbox_file):
    client = await make_client(**PROXY)
    address = f"{uniq('risk')}@example.com"
    account, _ = await signup(client, email=address)
    assert (await login(client, account["username"], **from_country("DE"))).status_code == 200  # first country
    assert (await login(client, account["username"], **from_country("DE"))).status_code == 200
    r = await login(client, account["username"], **from_country("FR"))
    body = assert_problem(r, 401, "mfa_required")
    assert body["methods"] == ["email"] and body["reason"] == "new_country"
    flow = body["flow_token"]
    # the email route is the only way on; TOTP is not open in this flow
    fr = {"X-Country-Code": "FR", "X-Forwarded-For": "203.0.113.10", "X-Device-Id": "laptop"}
    r = await client.post(f"{API}/login/mfa/totp", json={"flow_token": flow, "code": "123456"}, headers=fr)
    assert r.status_code == 400
    r = await client.post(f"{API}/login/mfa/email/send", json={"flow_token": flow}, headers=fr)
    assert r.status_code == 202 and r.json()["email_masked"].endswith("@example.com")
    code = await emailed_code(client, outbox_file, address)
    wrong = "000000" if code != "000000" else "111111"
    assert_problem(await client.post(f"{API}/login/mfa/email/verify", json={"flow_token": flow, "code": wrong},
                                     headers=fr), 401, "invalid_code")
    r = await client.post(f"{API}/login/mfa/email/verify", json={"flow_token": flow, "code": code}, headers=fr)
    assert r.status_code == 200, r.text
    session = r.json()["session"]
    assert session["aal"] == 1 and session["amr"] == ["pwd"]  # email is not an authenticator
    # France is known now
    assert (await login(client, account["username"], **from_country("FR"))).status_code == 200
    token = (await login(client, account["username"], **from_country("FR"))).json()["session"]["token"]
    events = (await client.get(f"{API}/me/events", headers=bearer(token))).json()["events"]
    assert any(e["type"] == "new_country" and e["details"]["country"] == "FR" for e in events)


async def test_country_header_from_an_untrusted_peer_is_ignored(make_client):
    client = await make_client(peer="198.51.100.7")
    account, _ = await signup(client, email="x@example.com")
    assert (await login(client, account["username"], **from_country("DE"))).status_code == 200
    assert (await login(client, account["username"], **from_country("FR"))).status_code == 200


async def test_two_factor_sign_in_from_a_new_country_passes(make_client, clock):
    client = await make_client(**PROXY)
    account, token = await signup(client, email="two@example.com")
    secret = await enrol_totp(client, token, clock)
    clock.advance(30)
    r = await login(client, account["username"], X_MFA_Code=totp_code(secret, clock.now()), **from_country("DE"))
    assert r.status_code == 200, r.text
    clock.advance(30)
    r = await login(client, account["username"], X_MFA_Code=totp_code(secret, clock.now()), **from_country("BR"))
    assert r.status_code == 200 and r.json()["session"]["aal"] == 2


async def test_passkey_alone_from_a_new_country_needs_the_second_factor(make_client, clock):
    client = await make_client(**PROXY)
    key = SoftAuthenticator()
    signed = await passkey_signup(client, key)
    token = signed["session"]["token"]
    secret = await enrol_totp(client, token, clock)

    async def passkey_from(country: str):
        begun = (await client.post(f"{API}/login/webauthn/options", json={},
                                   headers={"X-Device-Id": "laptop"})).json()
        credential = key.get(begun["options"], origin=ORIGIN)
        return await client.post(f"{API}/login/webauthn/verify",
                                 json={"flow_token": begun["flow_token"], "credential": credential},
                                 headers={"X-Device-Id": "laptop", "X-Country-Code": country,
                                          "X-Forwarded-For": "203.0.113.10"})

    assert (await passkey_from("SE")).status_code == 200
    r = await passkey_from("JP")
    body = assert_problem(r, 401, "mfa_required")
    assert body["reason"] == "new_country" and body["methods"] == ["totp"]
    clock.advance(30)
    r = await client.post(f"{API}/login/mfa/totp", json={"flow_token": body["flow_token"],
                                                         "code": totp_code(secret, clock.now())},
                          headers={"X-Device-Id": "laptop", "X-Country-Code": "JP",
                                   "X-Forwarded-For": "203.0.113.10"})
    assert r.status_code == 200, r.text
    assert r.json()["session"]["aal"] == 3 and "otp" in r.json()["session"]["amr"]
    assert (await passkey_from("JP")).status_code == 200


async def test_risk_check_can_be_switched_off(make_client):
    client = await make_client(new_country_check=False, **PROXY)
    account, _ = await signup(client, email="off@example.com")
    assert (await login(client, account["username"], **from_country("DE"))).status_code == 200
    assert (await login(client, account["username"], **from_country("FR"))).status_code == 200


async def test_email_codes_are_limited_per_account(make_client, outbox_file, clock):
    """Whoever has the password can ask for code after code; the owner's mailbox is capped
    at ``email_sends_per_hour`` a hour. (The sign-in regulator is set out of the way.)"""
    client = await make_client(lockout_threshold=100, ip_failure_limit=1000, **PROXY)
    limit = services_of(client).ctx.settings.email_sends_per_hour
    address = f"{uniq('mailcap')}@example.com"
    account, _ = await signup(client, email=address)
    assert (await login(client, account["username"], **from_country("DE"))).status_code == 200
    fr = {"X-Country-Code": "FR", "X-Forwarded-For": "203.0.113.10", "X-Device-Id": "laptop"}

    async def new_country_flow() -> str:
        body = assert_problem(await login(client, account["username"], **from_country("FR")), 401, "mfa_required")
        assert body["methods"] == ["email"]
        return str(body["flow_token"])

    flow = await new_country_flow()
    for _ in range(limit):
        r = await client.post(f"{API}/login/mfa/email/send", json={"flow_token": flow}, headers=fr)
        assert r.status_code == 202, r.text
    r = await client.post(f"{API}/login/mfa/email/send", json={"flow_token": flow}, headers=fr)
    body = assert_problem(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) == body["retry_after"] == 3600
    await services_of(client).ctx.outbox.drain()
    mails = [m for m in read_outbox(outbox_file) if m["to"] == address and m["subject"] == "Your sign-in code"]
    assert len(mails) == limit

    clock.advance(3601)
    flow = await new_country_flow()
    r = await client.post(f"{API}/login/mfa/email/send", json={"flow_token": flow}, headers=fr)
    assert r.status_code == 202, r.text


async def test_parallel_email_sends_cannot_beat_the_limit_on_postgresql(make_pg_client, outbox_file):
    """Twenty sends at once, straight through the factor: the limit is a count followed by
    an insert, which only holds when sends for one account run one at a time."""
    client = await make_pg_client(database_pool_size=25)
    services = services_of(client)
    factor = EmailCodeFactor.from_settings(services.ctx.settings)
    address = f"{uniq('mailrace')}@example.com"
    account, _ = await signup(client, email=address)
    async with services.ctx.db.read() as conn:
        row = await accounts.get_account(conn, uuid.UUID(account["id"]))
    assert row is not None

    async def send_once() -> str:
        try:
            async with services.ctx.db.transaction() as conn:
                await factor.send(services.ctx, conn, account=row)
        except RateLimited as exc:
            return exc.code
        return "sent"

    outcomes = await asyncio.gather(*(send_once() for _ in range(20)))
    assert outcomes.count("sent") == factor.sends_per_hour, outcomes
    assert set(outcomes) == {"sent", "rate_limited"}
    await services.ctx.outbox.drain()
    mails = [m for m in read_outbox(outbox_file) if m["to"] == address and m["subject"] == "Your sign-in code"]
    assert len(mails) == factor.sends_per_hour


async def test_a_travelling_device_does_not_forget_earlier_countries(make_client, outbox_file):
    """Known countries belong to the account, not to a device's last sighting: back home
    after a trip, the same laptop is not "new" again."""
    client = await make_client(**PROXY)
    address = f"{uniq('trip')}@example.com"
    account, _ = await signup(client, email=address)
    assert (await login(client, account["username"], **from_country("DE"))).status_code == 200
    body = (await login(client, account["username"], **from_country("PT"))).json()
    pt = {"X-Country-Code": "PT", "X-Forwarded-For": "203.0.113.10", "X-Device-Id": "laptop"}
    await client.post(f"{API}/login/mfa/email/send", json={"flow_token": body["flow_token"]}, headers=pt)
    code = await emailed_code(client, outbox_file, address)
    r = await client.post(f"{API}/login/mfa/email/verify", json={"flow_token": body["flow_token"], "code": code},
                          headers=pt)
    assert r.status_code == 200, r.text
    assert (await login(client, account["username"], **from_country("DE"))).status_code == 200
    assert (await login(client, account["username"], **from_country("PT"))).status_code == 200
