"""Step-up on the same session (issue 4, DESIGN §4/§6, RFC 9470): the challenge, the
repeated request with X-MFA-Code, the step-up routes, and scope binding of SMS codes."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from authserver.store.models import Account
from tests.conftest import services_of
from tests.support.api import PASSWORD, assert_problem, bearer, login, signup
from tests.support.factors import add_verified_phone, enrol_totp, last_text, mfa_flow, totp_code, unique_phone

RFC9470 = 'Bearer error="insufficient_user_authentication", max_age="300", acr_values="aal2"'


async def totp_session(client, clock) -> tuple[dict, str, str]:
    """An account with TOTP and a fresh AAL2 session from a REST login."""
    account, token = await signup(client)
    secret = await enrol_totp(client, token, clock)
    r = await login(client, account["username"], X_MFA_Code=totp_code(secret, clock.now()))
    assert r.status_code == 200, r.text
    return account, secret, r.json()["session"]["token"]


async def test_stale_session_gets_the_challenge_and_the_repeated_request_passes(client, clock):
    _, secret, token = await totp_session(client, clock)
    before = (await client.get("/api/v1/session", headers=bearer(token))).json()
    clock.advance(301)
    r = await client.post("/api/v1/me/recovery-codes", headers=bearer(token))
    body = assert_problem(r, 401, "step_up_required")
    assert r.headers["www-authenticate"] == RFC9470
    assert body["methods"] == ["totp"]
    assert "codes" not in body

    r = await client.post("/api/v1/me/recovery-codes", headers={**bearer(token),
                                                                "X-MFA-Code": totp_code(secret, clock.now())})
    assert r.status_code == 201, r.text
    assert len(r.json()["codes"]) == 10
    after = (await client.get("/api/v1/session", headers=bearer(token))).json()
    assert after["session_id"] == before["session_id"]  # the same session, the same token
    assert after["last_mfa_at"] > before["last_mfa_at"]
    assert after["aal"] == 2

    # within the window now: no header needed for the next sensitive call
    r = await client.put("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "new pass 123"},
                         headers=bearer(token))
    assert r.status_code == 200, r.text


async def test_a_wrong_header_code_is_refused_and_counted(client, clock):
    _, secret, token = await totp_session(client, clock)
    clock.advance(301)
    wrong = str((int(totp_code(secret, clock.now())) + 1) % 10**6).zfill(6)
    for _ in range(3):
        r = await client.delete("/api/v1/me/totp", headers={**bearer(token), "X-MFA-Code": wrong})
        assert_problem(r, 401, "invalid_code")
    r = await client.delete("/api/v1/me/totp", headers={**bearer(token), "X-MFA-Code": totp_code(secret, clock.now())})
    assert_problem(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) > 0


async def test_step_up_routes_refresh_the_same_session(client, clock):
    _, secret, token = await totp_session(client, clock)
    codes = (await client.post("/api/v1/me/recovery-codes", headers=bearer(token))).json()["codes"]
    clock.advance(301)
    assert_problem(await client.delete("/api/v1/me/totp", headers=bearer(token)), 401, "step_up_required")

    r = await client.post("/api/v1/session/step-up/totp", json={"code": totp_code(secret, clock.now())},
                          headers=bearer(token))
    assert r.status_code == 200, r.text
    stepped = r.json()
    assert stepped["aal"] == 2 and "otp" in stepped["amr"]
    me = (await client.get("/api/v1/session", headers=bearer(token))).json()
    assert me["session_id"] == stepped["session_id"] and me["last_mfa_at"] == stepped["last_mfa_at"]
    # the same code cannot step up twice
    r = await client.post("/api/v1/session/step-up/totp", json={"code": totp_code(secret, clock.now())},
                          headers=bearer(token))
    assert_problem(r, 401, "code_reused")

    clock.advance(301)
    r = await client.post("/api/v1/session/step-up/recovery-code", json={"code": codes[0]}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert "rc" in r.json()["amr"]
    assert (await client.delete("/api/v1/me/totp", headers=bearer(token))).status_code == 204
    assert_problem(await client.post("/api/v1/session/step-up/totp", json={"code": "123456"},
                                     headers=bearer(token)), 400, "not_enrolled")


async def test_sms_code_sent_for_login_is_refused_for_delete_account(client, outbox_file, clock):
    account, token = await signup(client)
    phone = unique_phone()
    await add_verified_phone(client, token, outbox_file, phone)
    clock.advance(301)  # the session is stale now

    flow = (await mfa_flow(client, account["username"]))["flow_token"]
    assert (await client.post("/api/v1/login/mfa/sms/send", json={"flow_token": flow})).status_code == 202
    login_code = await last_text(client, outbox_file, phone)

    r = await client.delete("/api/v1/me", headers={**bearer(token), "X-MFA-Code": login_code})
    assert_problem(r, 401, "invalid_code")
    r = await client.post("/api/v1/session/step-up/sms/verify", json={"code": login_code, "scope": "delete_account"},
                          headers=bearer(token))
    assert_problem(r, 401, "invalid_code")
    async with services_of(client).ctx.db.read() as conn:
        assert await conn.scalar(select(Account.id).where(Account.id == uuid.UUID(account["id"]))) is not None
    # it was refused for its scope, not because it was wrong: it still finishes the login
    r = await client.post("/api/v1/login/mfa/sms/verify", json={"flow_token": flow, "code": login_code})
    assert r.status_code == 200, r.text

    # a code sent for the action does it
    r = await client.post("/api/v1/session/step-up/sms/send", json={"scope": "delete_account"}, headers=bearer(token))
    assert r.status_code == 202, r.text
    delete_code = await last_text(client, outbox_file, phone)
    r = await client.delete("/api/v1/me", headers={**bearer(token), "X-MFA-Code": delete_code})
    assert r.status_code == 204, r.text
    assert_problem(await login(client, account["username"]), 401, "invalid_credentials")


async def test_generic_sms_step_up(client, outbox_file, clock):
    _, token = await signup(client)
    phone = unique_phone()
    await add_verified_phone(client, token, outbox_file, phone)
    clock.advance(301)
    r = await client.post("/api/v1/session/step-up/sms/send", headers=bearer(token))  # no body: scope step_up
    assert r.status_code == 202, r.text
    assert r.json()["phone_masked"].endswith(phone[-2:])
    code = await last_text(client, outbox_file, phone)
    r = await client.post("/api/v1/session/step-up/sms/verify", json={"code": code, "scope": "change_password"},
                          headers=bearer(token))
    assert_problem(r, 401, "invalid_code")  # sent for step_up, not for change_password
    r = await client.post("/api/v1/session/step-up/sms/verify", json={"code": code}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert "sms" in r.json()["amr"]
    r = await client.put("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "new pass 123"},
                         headers=bearer(token))
    assert r.status_code == 200, r.text


async def test_first_factor_enrolment_needs_only_a_fresh_sign_in(client, clock):
    account, token = await signup(client)
    clock.advance(301)
    r = await client.post("/api/v1/me/totp", headers=bearer(token))
    body = assert_problem(r, 401, "step_up_required")
    assert r.headers["www-authenticate"] == RFC9470 and body["methods"] == ["login"]
    fresh = (await login(client, account["username"])).json()["session"]["token"]
    assert (await client.post("/api/v1/me/totp", headers=bearer(fresh))).status_code == 200
    assert (await client.post("/api/v1/me/phones", json={"phone": unique_phone()},
                              headers=bearer(fresh))).status_code == 202


async def test_bad_step_up_input(client, clock):
    _, _, token = await totp_session(client, clock)
    r = await client.post("/api/v1/session/step-up/sms/send", json={"scope": "launch_missiles"}, headers=bearer(token))
    assert assert_problem(r, 400, "validation_error")["errors"][0]["field"] == "scope"
    r = await client.post("/api/v1/session/step-up/sms/verify", json={"code": "123456", "scope": "login"},
                          headers=bearer(token))
    assert_problem(r, 400, "validation_error")
    r = await client.post("/api/v1/session/step-up/sms/send", json={"scope": "step_up"}, headers=bearer(token))
    assert_problem(r, 400, "not_enrolled")  # no phone
    for code in ("12345x", "1234567", ""):
        r = await client.post("/api/v1/session/step-up/totp", json={"code": code}, headers=bearer(token))
        assert_problem(r, 400, "validation_error")
    assert_problem(await client.post("/api/v1/session/step-up/recovery-code", json={"code": "abcde-12345"},
                                      headers=bearer(token)), 400, "not_enrolled")
    assert_problem(await client.post("/api/v1/session/step-up/totp", json={"code": "123456"}), 401, "unauthorized")
