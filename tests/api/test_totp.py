"""TOTP through the API (issue 4): enrolment, the REST X-MFA-Code login, replay refusal,
oathtool codes, the sealed secret at rest and key rotation, bad input."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, text, update

from authserver.app import create_app
from authserver.clock import MovableClock
from authserver.crypto import KeyRing, SecretKey, parse_keys
from authserver.store.migrate import upgrade
from authserver.store.models import Account, TotpSecret
from authserver.store.rotation import reseal_all
from authserver.wiring import build_services
from tests.conftest import TEST_KEYS, AppClient, make_settings, services_of
from tests.support.api import assert_problem, bearer, login, signup
from tests.support.factors import enrol_totp, mfa_flow, totp_code


def oathtool_or_skip() -> str:
    exe = shutil.which("oathtool")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("oathtool is required when CI=true (.ci/run installs it)")
        pytest.skip("oathtool is not installed here (apt-get install oathtool); CI=true makes this fatal")
    return exe


async def test_enrolment_shows_secret_uri_and_qr_and_counts_only_after_confirming(client, clock):
    account, token = await signup(client)
    r = await client.post("/api/v1/me/totp", headers=bearer(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"enrollment_token", "secret", "otpauth_uri", "qr_svg"}
    secret = body["secret"]
    assert len(base64.b32decode(secret)) == 20  # SHA-1 seed as long as the hash (RFC 6238 App. B)
    parts = urlsplit(body["otpauth_uri"])
    assert (parts.scheme, parts.netloc, parts.path) == ("otpauth", "totp", f"/authserver:{account['username']}")
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "secret": secret, "issuer": "authserver", "algorithm": "SHA1", "digits": "6", "period": "30"}
    assert body["qr_svg"].startswith("<svg") and "</svg>" in body["qr_svg"]

    # not a factor yet: the password alone still signs in
    assert (await login(client, account["username"])).status_code == 200
    wrong = str((int(totp_code(secret, clock.now())) + 1) % 10**6).zfill(6)
    r = await client.post("/api/v1/me/totp/confirm", headers=bearer(token),
                          json={"enrollment_token": body["enrollment_token"], "code": wrong})
    assert_problem(r, 401, "invalid_code")
    r = await client.post("/api/v1/me/totp/confirm", headers=bearer(token),
                          json={"enrollment_token": body["enrollment_token"], "code": totp_code(secret, clock.now())})
    assert r.status_code == 201, r.text
    assert r.json() == {"enrolled": True, "algorithm": "SHA1", "digits": 6, "period": 30}
    # confirming proved a fresh second factor on the same session
    me = (await client.get("/api/v1/session", headers=bearer(token))).json()
    assert me["aal"] == 2 and "otp" in me["amr"]
    # the enrolment token is single use
    r = await client.post("/api/v1/me/totp/confirm", headers=bearer(token),
                          json={"enrollment_token": body["enrollment_token"], "code": totp_code(secret, clock.now())})
    assert_problem(r, 400, "flow_expired")
    # now the password alone is not enough
    flow = await mfa_flow(client, account["username"])
    assert "totp" in flow["methods"]


async def test_rest_client_logs_in_with_x_mfa_code_once_per_step(client, clock):
    account, token = await signup(client)
    secret = await enrol_totp(client, token, clock)
    clock.advance(60)
    code = totp_code(secret, clock.now())
    r = await login(client, account["username"], X_MFA_Code=code)
    assert r.status_code == 200, r.text
    session = r.json()["session"]
    assert session["aal"] == 2 and session["amr"] == ["otp", "pwd"]

    assert_problem(await login(client, account["username"], X_MFA_Code=code), 401, "code_reused")
    two_steps_ago = totp_code(secret, clock.now() - timedelta(seconds=60))
    assert_problem(await login(client, account["username"], X_MFA_Code=two_steps_ago), 401, "invalid_code")


async def test_a_step_older_than_the_last_used_one_is_refused(client, clock):
    account, token = await signup(client)
    secret = await enrol_totp(client, token, clock)
    clock.advance(60)
    previous_step = totp_code(secret, clock.now() - timedelta(seconds=30))
    current = totp_code(secret, clock.now())
    assert (await login(client, account["username"], X_MFA_Code=current)).status_code == 200
    # inside the ±1 window, but older than the step just used (RFC 6238 §5.2)
    if previous_step != current:
        assert_problem(await login(client, account["username"], X_MFA_Code=previous_step), 401, "code_reused")


async def test_login_flow_finishes_with_totp_route(client, clock):
    account, token = await signup(client)
    secret = await enrol_totp(client, token, clock)
    flow = await mfa_flow(client, account["username"])
    r = await client.post("/api/v1/login/mfa/totp",
                          json={"flow_token": flow["flow_token"], "code": totp_code(secret, clock.now())})
    assert r.status_code == 200, r.text
    assert r.json()["session"]["amr"] == ["otp", "pwd"]
    r = await client.post("/api/v1/login/mfa/totp",
                          json={"flow_token": flow["flow_token"], "code": totp_code(secret, clock.now())})
    assert_problem(r, 400, "flow_expired")


async def test_wrong_codes_count_towards_the_lockout(client, clock):
    account, token = await signup(client)
    secret = await enrol_totp(client, token, clock)
    right = totp_code(secret, clock.now())
    wrong = str((int(right) + 500000) % 10**6).zfill(6)
    for _ in range(3):
        flow = await mfa_flow(client, account["username"])
        r = await client.post("/api/v1/login/mfa/totp", json={"flow_token": flow["flow_token"], "code": wrong})
        assert_problem(r, 401, "invalid_code")
    r = await client.post("/api/v1/login/mfa/totp", json={"flow_token": flow["flow_token"], "code": right})
    assert_problem(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) == 30


async def test_codes_from_oathtool_are_accepted_at_login(make_client, clock):
    exe = oathtool_or_skip()
    for algorithm, digits in (("SHA1", 6), ("SHA256", 8)):
        client = await make_client(totp_algorithm=algorithm, totp_digits=digits)
        account, token = await signup(client)

        def oath(secret: str, algorithm: str = algorithm, digits: int = digits) -> str:
            return subprocess.run([exe, f"--totp={algorithm}", f"--digits={digits}", "--time-step-size=30s",
                                   f"--now=@{int(clock.now().timestamp())}", "--base32", secret],
                                  check=True, capture_output=True, text=True).stdout.strip()

        r = await client.post("/api/v1/me/totp", headers=bearer(token))
        body = r.json()
        assert f"algorithm={algorithm}" in body["otpauth_uri"] and f"digits={digits}" in body["otpauth_uri"]
        r = await client.post("/api/v1/me/totp/confirm", headers=bearer(token),
                              json={"enrollment_token": body["enrollment_token"], "code": oath(body["secret"])})
        assert r.status_code == 201, r.text
        clock.advance(30)
        code = oath(body["secret"])
        assert len(code) == digits
        r = await login(client, account["username"], X_MFA_Code=code)
        assert r.status_code == 200, (algorithm, r.text)
        assert r.json()["session"]["aal"] == 2


async def test_secret_is_sealed_in_the_database(client, clock):
    account, token = await signup(client)
    secret = await enrol_totp(client, token, clock)
    raw_secret = base64.b32decode(secret)
    services = services_of(client)
    async with services.ctx.db.read() as conn:
        row = (await conn.execute(text("SELECT secret_sealed FROM totp_secrets WHERE account_id = :id"),
                                  {"id": uuid.UUID(account["id"]).hex if services.ctx.settings.is_sqlite
                                   else uuid.UUID(account["id"])})).one()
    stored = row[0]
    assert stored.startswith("v1.k1.")
    assert secret not in stored and secret.lower() not in stored
    assert raw_secret.hex() not in stored and base64.b64encode(raw_secret).decode() not in stored
    assert services.ctx.keyring.open(stored, aad=f"totp:{account['id']}".encode()) == raw_secret
    # the seal is bound to its account: moved to another row it does not open
    with pytest.raises(Exception):  # noqa: B017 - AES-GCM raises InvalidTag
        services.ctx.keyring.open(stored, aad=f"totp:{uuid.uuid4()}".encode())


@pytest.fixture
def fx_fresh_sqlite(tmp_path: Path) -> str:
    """A database of its own: re-sealing touches every row, so no other test's rows."""
    url = f"sqlite+aiosqlite:///{tmp_path}/rotation.db"
    upgrade(url)
    return url


async def test_totp_survives_key_rotation(fx_fresh_sqlite: str, outbox_file: Path, clock: MovableClock):
    """rotate-keys: reseal under a new first key, drop the old key, and TOTP still works."""
    url = fx_fresh_sqlite
    old_key = parse_keys(TEST_KEYS)[0]
    new_key = SecretKey(kid="k2", key=b"\x02" * 32)

    async def app_with(keys: str) -> AppClient:
        settings = make_settings(url, outbox_file, secret_keys=keys)
        return AppClient(create_app(settings, services=build_services(settings, clock=clock)))

    before = await app_with(TEST_KEYS)
    try:
        account, token = await signup(before)
        secret = await enrol_totp(before, token, clock)
    finally:
        await before.aclose()
        await services_of(before).ctx.db.dispose()

    assert await reseal_all(url, KeyRing([new_key, old_key])) >= 1

    after = await app_with("k2:" + base64.b64encode(new_key.key).decode())
    try:
        async with services_of(after).ctx.db.read() as conn:
            stored = await conn.scalar(select(TotpSecret.secret_sealed)
                                       .where(TotpSecret.account_id == uuid.UUID(account["id"])))
        assert stored.startswith("v1.k2.")
        r = await login(after, account["username"], X_MFA_Code=totp_code(secret, clock.now()))
        assert r.status_code == 200, r.text
        assert r.json()["session"]["amr"] == ["otp", "pwd"]
    finally:
        await after.aclose()
        await services_of(after).ctx.db.dispose()


async def test_bad_input_is_a_problem_not_a_crash(client, clock):
    account, token = await signup(client)
    secret = await enrol_totp(client, token, clock)
    flow = (await mfa_flow(client, account["username"]))["flow_token"]
    for code in ("12345a", "12345", "1234567", "１２３４５６", "12 456"):
        r = await client.post("/api/v1/login/mfa/totp", json={"flow_token": flow, "code": code})
        assert_problem(r, 400, "validation_error")
    for body in ({"flow_token": flow}, {"flow_token": flow, "code": 123456}, {"flow_token": flow, "code": "1" * 40},
                 {"flow_token": flow, "code": "12\x003456"}):
        assert_problem(await client.post("/api/v1/login/mfa/totp", json=body), 400, "validation_error")
    r = await client.post("/api/v1/login/mfa/totp", json={"flow_token": "asf_nope", "code": "123456"})
    assert_problem(r, 400, "flow_expired")
    r = await client.post("/api/v1/me/totp/confirm", headers=bearer(token),
                          json={"enrollment_token": flow, "code": "123456"})  # a login flow is not an enrolment
    assert_problem(r, 400, "flow_expired")
    # SMS is not open in this flow: the account has no phone
    assert_problem(await client.post("/api/v1/login/mfa/sms/send", json={"flow_token": flow}), 400,
                   "method_not_allowed")
    # none of that counted as a failed code (three would lock the account): the right one still signs in
    r = await client.post("/api/v1/login/mfa/totp", json={"flow_token": flow, "code": totp_code(secret, clock.now())})
    assert r.status_code == 200, r.text


async def test_enrolment_token_is_bound_to_its_session(client, clock):
    account, token = await signup(client)
    other_session = (await login(client, account["username"])).json()["session"]["token"]
    body = (await client.post("/api/v1/me/totp", headers=bearer(token))).json()
    r = await client.post("/api/v1/me/totp/confirm", headers=bearer(other_session),
                          json={"enrollment_token": body["enrollment_token"], "code": totp_code(body["secret"],
                                                                                              clock.now())})
    assert_problem(r, 400, "flow_expired")


async def test_second_enrolment_is_a_conflict_and_removal_needs_another_way_in(client, clock):
    account, token = await signup(client)
    secret = await enrol_totp(client, token, clock)
    token = (await login(client, account["username"], X_MFA_Code=totp_code(secret, clock.now()))).json()[
        "session"]["token"]
    assert_problem(await client.post("/api/v1/me/totp", headers=bearer(token)), 409, "conflict")

    services = services_of(client)
    async with services.ctx.db.transaction() as conn:  # as if the account had no password at all
        await conn.execute(update(Account).where(Account.id == uuid.UUID(account["id"])).values(password_hash=None))
    assert_problem(await client.delete("/api/v1/me/totp", headers=bearer(token)), 409, "last_factor")
    async with services.ctx.db.transaction() as conn:
        await conn.execute(update(Account).where(Account.id == uuid.UUID(account["id"]))
                           .values(password_hash=services.ctx.passwords.hash("correct horse battery")))

    assert (await client.delete("/api/v1/me/totp", headers=bearer(token))).status_code == 204
    assert (await login(client, account["username"])).status_code == 200  # the password alone again
    assert_problem(await client.delete("/api/v1/me/totp", headers=bearer(token)), 400, "not_enrolled")
