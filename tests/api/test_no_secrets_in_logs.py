"""Secrets never reach the log: passwords, session and flow tokens, TOTP secrets and codes,
texted codes, recovery codes — whatever the outcome of the request."""

from __future__ import annotations

import logging

from tests.conftest import services_of
from tests.support.api import PASSWORD, bearer, login, signup
from tests.support.factors import add_verified_phone, enrol_totp, last_text, totp_code, unique_phone


async def test_no_secret_in_any_log_record(client, clock, caplog, outbox_file):
    caplog.set_level(logging.DEBUG)
    account, token = await signup(client, email="logs@example.com")
    secret = await enrol_totp(client, token, clock)
    number = unique_phone()
    await add_verified_phone(client, token, outbox_file, number)
    codes = (await client.post("/api/v1/me/recovery-codes", headers=bearer(token))).json()["codes"]
    clock.advance(30)
    good = totp_code(secret, clock.now())
    r = await login(client, account["username"])
    flow_token = r.json()["flow_token"]
    await client.post("/api/v1/login/mfa/sms/send", json={"flow_token": flow_token})
    texted = await last_text(client, outbox_file, number)
    await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow_token, "code": "000000"})
    await login(client, account["username"], "wrong password " + PASSWORD)
    session = (await login(client, account["username"], X_MFA_Code=good)).json()["session"]["token"]
    await login(client, account["username"], X_MFA_Code=good)  # replay, refused
    await client.post("/api/v1/login/mfa/recovery-code", json={"flow_token": flow_token, "code": codes[0]})
    await services_of(client).ctx.outbox.drain()
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "nothing was logged at all"
    for secret_value in [PASSWORD, token, session, flow_token, secret, good, texted, *codes]:
        assert secret_value not in text, f"a secret reached the log: {secret_value[:4]}…"
