"""Sessions: check, logout, idle and absolute expiry, listing, revocation, introspection,
and how many statements the hot paths issue (issue 2)."""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from sqlalchemy import event

from tests.conftest import services_of
from tests.support.api import PASSWORD, assert_problem, bearer, login, signup


@contextmanager
def count_statements(client):
    engine = services_of(client).ctx.db.engine.sync_engine
    seen: list[str] = []

    def on_execute(conn, cursor, statement, *args):
        seen.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


async def test_session_document(client):
    account, token = await signup(client)
    r = await client.get("/api/v1/session", headers=bearer(token))
    assert r.status_code == 200
    body = r.json()
    assert body["account"]["username"] == account["username"]
    assert body["aal"] == 1 and body["amr"] == ["pwd"]
    assert body["auth_time"] and body["expires_at"] and body["last_mfa_at"] is None


async def test_missing_malformed_and_unknown_tokens_are_401(client):
    assert_problem(await client.get("/api/v1/session"), 401, "unauthorized")
    r = await client.get("/api/v1/session", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(await client.get("/api/v1/session", headers=bearer("ass_" + "x" * 43)), 401, "unauthorized")
    assert_problem(await client.get("/api/v1/session", headers=bearer("x" * 5000)), 401, "unauthorized")


async def test_logout_kills_the_token(client):
    _, token = await signup(client)
    r = await client.delete("/api/v1/session", headers=bearer(token))
    assert r.status_code == 204
    assert any(c.startswith("authserver_session=;") or 'authserver_session=""' in c
               for c in r.headers.get_list("set-cookie"))
    assert_problem(await client.get("/api/v1/session", headers=bearer(token)), 401, "unauthorized")


async def test_idle_timeout_with_activity_keeps_the_session(client, clock):
    _, token = await signup(client)
    for _ in range(2):
        clock.advance(hours=11)
        assert (await client.get("/api/v1/session", headers=bearer(token))).status_code == 200
    clock.advance(hours=12, seconds=1)
    assert_problem(await client.get("/api/v1/session", headers=bearer(token)), 401, "unauthorized")


async def test_absolute_lifetime_ends_an_active_session(client, clock):
    _, token = await signup(client)
    for _ in range(2):
        clock.advance(hours=11, minutes=59)
        assert (await client.get("/api/v1/session", headers=bearer(token))).status_code == 200
    clock.advance(minutes=3)  # past 24 h since sign-in, although used 3 minutes ago
    assert_problem(await client.get("/api/v1/session", headers=bearer(token)), 401, "unauthorized")


async def test_list_and_revoke_sessions(client):
    account, first = await signup(client)
    second = (await login(client, account["username"])).json()["session"]["token"]
    _other_account, other_token = await signup(client)
    listing = (await client.get("/api/v1/sessions", headers=bearer(first))).json()["sessions"]
    assert len(listing) == 2
    assert sum(s["current"] for s in listing) == 1
    second_id = next(s["id"] for s in listing if not s["current"])
    # someone else's session id is not yours to revoke
    assert_problem(await client.delete(f"/api/v1/sessions/{second_id}", headers=bearer(other_token)), 404,
                   "not_found")
    assert (await client.delete(f"/api/v1/sessions/{second_id}", headers=bearer(first))).status_code == 204
    assert_problem(await client.get("/api/v1/session", headers=bearer(second)), 401, "unauthorized")
    assert len((await client.get("/api/v1/sessions", headers=bearer(first))).json()["sessions"]) == 1
    assert_problem(await client.delete(f"/api/v1/sessions/{uuid.uuid4()}", headers=bearer(first)), 404, "not_found")


async def test_introspection_for_admins_and_services(make_client, clock):
    client = await make_client(introspect_secret="svc-secret-0123456789")
    _, user_token = await signup(client)
    assert_problem(await client.post("/api/v1/introspect", json={"token": user_token}), 401, "unauthorized")
    assert_problem(await client.post("/api/v1/introspect", json={"token": user_token}, headers=bearer(user_token)),
                   403, "forbidden")
    r = await client.post("/api/v1/introspect", json={"token": user_token}, headers=bearer("svc-secret-0123456789"))
    body = r.json()
    assert body["active"] is True and body["aal"] == 1 and body["amr"] == ["pwd"]
    assert isinstance(body["exp"], int)
    await client.delete("/api/v1/session", headers=bearer(user_token))
    r = await client.post("/api/v1/introspect", json={"token": user_token}, headers=bearer("svc-secret-0123456789"))
    assert r.json() == {"active": False}


async def test_admin_session_may_introspect(client):
    services = services_of(client)
    from authserver.policy.risk import UNKNOWN_CLIENT

    name = "adm" + uuid.uuid4().hex[:6]
    await services.accounts.signup(username=name, display_name=None, email=None, password=PASSWORD,
                                   client=UNKNOWN_CLIENT, role="admin")
    admin_token = (await login(client, name)).json()["session"]["token"]
    _, user_token = await signup(client)
    r = await client.post("/api/v1/introspect", json={"token": user_token}, headers=bearer(admin_token))
    assert r.status_code == 200 and r.json()["active"] is True


async def test_hot_paths_issue_few_statements(client):
    """GET /session is one indexed lookup. POST /login/password counts the attempt first
    (one upsert per key: account and address, committed before the password is checked),
    reads the account once, then in one transaction gives the attempt back and writes the
    device, the session and the audit event."""
    account, token = await signup(client)
    with count_statements(client) as seen:
        assert (await client.get("/api/v1/session", headers=bearer(token))).status_code == 200
    assert [s for s in seen if s not in ("BEGIN", "COMMIT", "ROLLBACK")] == ["SELECT"], seen
    await login(client, account["username"])  # device already known from here on
    with count_statements(client) as seen:
        assert (await login(client, account["username"])).status_code == 200
    work = [s for s in seen if s not in ("BEGIN", "COMMIT", "ROLLBACK")]
    assert work == ["INSERT", "INSERT", "SELECT", "UPDATE", "INSERT", "INSERT", "INSERT"], seen


async def test_metrics_count_requests_by_route(client):
    _, token = await signup(client)
    await client.get("/api/v1/session", headers=bearer(token))
    await client.get("/api/v1/session")
    text = (await client.get("/metrics")).text
    assert 'authserver_http_requests_total{method="GET",route="/api/v1/session",status="200"} 1' in text
    assert 'authserver_http_requests_total{method="GET",route="/api/v1/session",status="401"} 1' in text
    assert "authserver_http_request_seconds_bucket" in text
    assert token not in text


async def test_security_headers(client):
    _, token = await signup(client)
    api = await client.get("/api/v1/session", headers=bearer(token))
    assert api.headers["cache-control"] == "no-store"
    assert api.headers["x-content-type-options"] == "nosniff"
    page = await client.get("/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
