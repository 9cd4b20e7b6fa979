"""Failed-attempt regulation under pressure: attempts are counted before they are checked,
so parallel guesses cannot slip past the limit; address limits apply to every username."""

from __future__ import annotations

import asyncio

from tests.support.api import PASSWORD, assert_problem, bearer, login, signup, uniq
from tests.support.factors import enrol_totp, totp_code
from tests.support.softauthn import SoftAuthenticator
from tests.support.webauthn import API, passkey_signup, step_up


async def test_parallel_wrong_passwords_are_cut_at_the_limit(make_pg_client):
    client = await make_pg_client(database_pool_size=30, ip_failure_limit=1000)
    account, _ = await signup(client)
    responses = await asyncio.gather(*(login(client, account["username"], f"wrong {i}") for i in range(40)))
    codes = [r.json()["code"] for r in responses]
    assert codes.count("invalid_credentials") <= 3, codes
    assert codes.count("rate_limited") >= 37
    assert all(r.headers.get("retry-after") for r in responses if r.status_code == 429)


async def test_parallel_totp_guesses_on_one_flow_are_cut_at_the_limit(make_pg_client, clock):
    client = await make_pg_client(database_pool_size=30)
    account, token = await signup(client)
    await enrol_totp(client, token, clock)
    clock.advance(30)
    flow = (await login(client, account["username"])).json()["flow_token"]
    guesses = [f"{n:06d}" for n in range(100000, 100060)]
    responses = await asyncio.gather(*(client.post(f"{API}/login/mfa/totp", json={"flow_token": flow, "code": g})
                                       for g in guesses))
    checked = [r for r in responses if r.status_code == 401]
    assert len(checked) <= 3, [r.json()["code"] for r in responses]
    assert {r.status_code for r in responses} <= {401, 429}


async def test_address_limit_applies_to_existing_usernames_too(make_client):
    client = await make_client(ip_failure_limit=5)
    names = [(await signup(client))[0]["username"] for _ in range(7)]
    for name in names[:5]:
        assert_problem(await login(client, name, "spray guess 1"), 401, "invalid_credentials")
    # the address is spent: an existing name and an unknown one get the same answer
    assert_problem(await login(client, names[5], "spray guess 1"), 429, "rate_limited")
    assert_problem(await login(client, uniq("ghost"), "spray guess 1"), 429, "rate_limited")
    assert_problem(await login(client, names[6]), 429, "rate_limited")


async def test_a_success_gives_the_address_its_attempt_back(make_client):
    client = await make_client(ip_failure_limit=3)
    account, _ = await signup(client)
    for _ in range(10):
        assert (await login(client, account["username"])).status_code == 200


async def test_guesses_at_the_current_password_are_regulated(client):
    _, token = await signup(client)
    for _ in range(3):
        r = await client.put(f"{API}/me/password", headers=bearer(token),
                             json={"current_password": "not it at all", "new_password": "brand new pass 1"})
        assert_problem(r, 401, "invalid_credentials")
    r = await client.put(f"{API}/me/password", headers=bearer(token),
                         json={"current_password": PASSWORD, "new_password": "brand new pass 1"})
    assert_problem(r, 429, "rate_limited")
    events = (await client.get(f"{API}/me/events", headers=bearer(token))).json()["events"]
    assert [e["type"] for e in events].count("password_change_failed") == 3


async def test_a_login_begun_with_the_old_password_dies_with_the_change(client, clock):
    account, token = await signup(client)
    secret = await enrol_totp(client, token, clock)
    flow = (await login(client, account["username"])).json()["flow_token"]
    r = await client.put(f"{API}/me/password", headers=bearer(token),
                         json={"current_password": PASSWORD, "new_password": "brand new pass 1"})
    assert r.status_code == 200, r.text
    clock.advance(30)
    r = await client.post(f"{API}/login/mfa/totp", json={"flow_token": flow, "code": totp_code(secret, clock.now())})
    assert_problem(r, 400, "flow_expired")


async def test_the_same_key_twice_is_still_one_factor(client):
    key = SoftAuthenticator(user_verification=False)
    signed = await passkey_signup(client, key)
    token = signed["session"]["token"]
    assert signed["session"]["aal"] == 1
    await step_up(client, token, key)
    me = (await client.get(f"{API}/session", headers=bearer(token))).json()
    assert me["aal"] == 1 and me["amr"] == ["hwk"]
    assert me["last_mfa_at"] is not None


async def test_removing_the_last_two_keys_at_once_leaves_one(make_pg_client):
    """Two concurrent removals on a passwordless account: one must be refused with
    ``last_factor`` — they run one at a time on the locked account row. (Repeated: a race
    shows only when the two transactions overlap.)"""
    from tests.support.webauthn import add_credential

    client = await make_pg_client(database_pool_size=10)
    for _ in range(8):
        first, second = SoftAuthenticator(), SoftAuthenticator()
        token = (await passkey_signup(client, first))["session"]["token"]
        await add_credential(client, token, second, kind="passkey")
        listed = (await client.get(f"{API}/me/credentials", headers=bearer(token))).json()["webauthn"]
        responses = await asyncio.gather(*(client.delete(f"{API}/me/credentials/webauthn/{c['id']}",
                                                         headers=bearer(token)) for c in listed))
        assert sorted(r.status_code for r in responses) == [204, 409], [r.text for r in responses]
        left = (await client.get(f"{API}/me/credentials", headers=bearer(token))).json()["webauthn"]
        assert len(left) == 1
