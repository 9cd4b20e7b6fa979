"""Two app instances on one PostgreSQL database share flows and sessions (DESIGN §8)."""

from __future__ import annotations

from authserver.methods.base import Proof
from authserver.policy.risk import UNKNOWN_CLIENT
from tests.api.test_login import enrol_second_factor_row
from tests.conftest import services_of
from tests.support.api import bearer, login, signup


async def test_session_from_one_replica_works_on_the_other(make_pg_client):
    a = await make_pg_client()
    b = await make_pg_client()
    account, token = await signup(a)
    assert (await b.get("/api/v1/session", headers=bearer(token))).json()["account"]["id"] == account["id"]
    assert (await b.delete("/api/v1/session", headers=bearer(token))).status_code == 204
    assert (await a.get("/api/v1/session", headers=bearer(token))).status_code == 401


async def test_flow_begun_on_one_replica_finishes_on_the_other(make_pg_client):
    a = await make_pg_client()
    b = await make_pg_client()
    account, _ = await signup(a)
    await enrol_second_factor_row(a, account["username"])
    r = await login(a, account["username"])
    assert r.status_code == 401
    flow_token = r.json()["flow_token"]
    services_b = services_of(b)
    proof = Proof(method="totp", amr=frozenset({"otp"}), aal=1, factor_class="have")
    async with services_b.ctx.db.transaction() as conn:
        flow, acct, _ = await services_b.login.load_mfa_flow(conn, flow_token, "totp")
        issued = await services_b.login.finish_mfa(conn, flow, acct, proof, UNKNOWN_CLIENT)
    me = await a.get("/api/v1/session", headers=bearer(issued.token))
    assert me.status_code == 200 and me.json()["aal"] == 2


async def test_totp_login_begun_on_one_replica_finishes_on_the_other_over_http(make_pg_client, clock):
    """The whole REST two-step pattern across replicas: password on A, TOTP on B, the
    session used on A; replaying the code on A is refused (the used step is shared)."""
    from tests.support.factors import enrol_totp, totp_code

    a = await make_pg_client()
    b = await make_pg_client()
    account, token = await signup(a)
    secret = await enrol_totp(a, token, clock)
    clock.advance(30)
    r = await login(a, account["username"])
    assert r.status_code == 401
    code = totp_code(secret, clock.now())
    r = await b.post("/api/v1/login/mfa/totp", json={"flow_token": r.json()["flow_token"], "code": code})
    assert r.status_code == 200, r.text
    session = r.json()["session"]
    assert session["aal"] == 2
    assert (await a.get("/api/v1/session", headers=bearer(session["token"]))).json()["aal"] == 2
    r = await login(a, account["username"], X_MFA_Code=code)
    assert r.status_code == 401 and r.json()["code"] == "code_reused"
