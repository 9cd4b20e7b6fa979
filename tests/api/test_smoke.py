from __future__ import annotations

from tests.support.api import assert_problem, bearer, login, signup


async def test_signup_then_session(client):
    account, token = await signup(client)
    r = await client.get("/api/v1/session", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["account"]["id"] == account["id"]
    r = await login(client, account["username"], "wrong password")
    assert_problem(r, 401, "invalid_credentials")
