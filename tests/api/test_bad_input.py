"""A battery of bad input against every route of the OpenAPI spec: only 4xx problem+json
comes back, never a 500, and not one row is written."""

from __future__ import annotations

import re
from typing import Any

from tests.api.test_admin import admin_session
from tests.conftest import services_of
from tests.support.api import bearer, signup, table_counts

BAD_TOKENS: list[Any] = ["", "Bearer", "Bearer ", "Basic YTpi", "Bearer " + "x" * 5000, "Bearer ass_\u00e9\u00e9".encode("latin-1"), b"Bearer \xff\xfe",
              "Bearer asf_notasession", "Bearer ass_" + "A" * 43, b"Bearer ass_\x00\x01", b"Bearer \x00"]
BAD_PATH_VALUES = ["not-a-uuid", "%00", "x" * 1000, "..%2F..%2Fetc", "00000000-0000-0000-0000-00000000000g"]
BAD_BODIES: list[tuple[str, bytes]] = [
    ("not json", b"garbage{"),
    ("invalid utf-8", b'{"username": "\xff\xfe", "password": "\xc3\x28"}'),
    ("array", b"[1, 2, 3]"),
    ("number", b"42"),
    ("null", b"null"),
    ("empty", b""),
    ("empty object", b"{}"),
    ("lone surrogate", b'{"username": "\\ud800", "password": "\\udfff", "token": "\\ud800", "code": "\\ud800"}'),
    ("deep nesting", b"[" * 5000 + b"]" * 5000),
]


def operations(app) -> list[tuple[str, str, dict[str, Any]]]:
    spec = app.openapi_schema.to_schema()
    ops = []
    for path, item in spec["paths"].items():
        if path.startswith("/schema"):
            continue
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                ops.append((path, method.upper(), op))
    return ops


def request_schema(app, op: dict[str, Any]) -> dict[str, Any] | None:
    body = op.get("requestBody")
    if not body:
        return None
    schema = body["content"]["application/json"]["schema"]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = app.openapi_schema.to_schema()["components"]["schemas"][name]
    return schema


def wrong_value(prop: dict[str, Any]) -> list[Any]:
    kinds = {prop.get("type")} | {o.get("type") for o in prop.get("oneOf", []) + prop.get("anyOf", [])}
    values: list[Any] = []
    if "string" in kinds:
        values += [12345, ["list"], {"obj": 1}, "x" * 20000, "nul\u0000byte"]
    elif "integer" in kinds or "number" in kinds:
        values += ["seven", 1e300, [1], -10**30]
    elif "boolean" in kinds:
        values += ["true", 3]
    elif "object" in kinds:
        values += ["string", 7, ["x"], {"id": 5, "rawId": [], "response": "x", "type": 9}]
    elif "array" in kinds:
        values += ["string", {"a": 1}, [None] * 3]
    else:
        values += [["x"], {"a": {"b": None}}, 99]
    return values


def fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)


def check(response, where: str) -> str:
    """A clean 4xx problem+json; returns its ``code``."""
    assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/problem+json"), where
    body = response.json()
    assert isinstance(body.get("code"), str) and body["status"] == response.status_code, where
    assert "Traceback" not in response.text
    return str(body["code"])


async def send_bad_tokens(client, path: str, method: str, op: dict[str, Any]) -> int:
    app = client.app
    sent = 0
    for raw in BAD_TOKENS:
        headers: dict[str, Any] = {"Authorization": raw} if raw else {}
        # a broken body too, so that a public route refuses it instead of starting a flow
        r = await client.request(method, fill(path), headers={**headers, "Content-Type": "application/json"},
                                 content=b"{" if request_schema(app, op) else b"")
        check(r, f"{method} {path} token {raw[:20]!r}")
        sent += 1
    return sent


async def send_bad_parameters_and_bodies(client, token: str, path: str, method: str,
                                         op: dict[str, Any]) -> list[str]:
    """Bad path and query parameters and bad bodies, sent with the session ``token``: the
    user's, and an admin's at AAL2 so that the admin routes' own parameters are reached.
    Returns the ``code`` of every refusal."""
    app = client.app
    url = fill(path)
    sent: list[str] = []
    for value in BAD_PATH_VALUES if "{" in path else []:
        bad = re.sub(r"\{[^}]+\}", value, path)
        r = await client.request(method, bad, headers=bearer(token))
        sent.append(check(r, f"{method} {bad[:60]}"))
    for param in op.get("parameters", []):
        if param.get("in") != "query":
            continue
        for value in ["", "x" * 5000, "-1", "99999999999999999999", "not-a-uuid", "\u0000", "a\u0000b", "1e9"]:
            r = await client.request(method, url, params={param["name"]: value}, headers=bearer(token))
            if r.status_code < 400:
                assert "\u0000" not in value, f"{method} {path}?{param['name']} took a NUL"
                continue  # some values are valid for a free-text parameter
            sent.append(check(r, f"{method} {path}?{param['name']}={value[:20]!r}"))
    schema = request_schema(app, op)
    if schema is None:
        return sent
    # bodies that are not what the schema says, with a valid session
    for name, raw_body in BAD_BODIES:
        if name == "empty object" and not schema.get("required"):
            continue  # every field optional: {} is valid input here
        r = await client.request(method, url, content=raw_body,
                                 headers={**bearer(token), "Content-Type": "application/json"})
        sent.append(check(r, f"{method} {path} body {name}"))
    r = await client.request(method, url, content=b"x" * 70000,
                             headers={**bearer(token), "Content-Type": "application/json"})
    assert r.status_code == 413, (path, r.status_code)
    check(r, f"{method} {path} huge body")
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    for prop_name, prop in properties.items():
        for value in wrong_value(prop):
            body = {p: "x" for p in required}
            body[prop_name] = value
            r = await client.request(method, url, json=body, headers=bearer(token))
            sent.append(check(r, f"{method} {path} {prop_name}={str(value)[:30]!r}"))
    for missing in required:
        body = {p: "x" for p in required if p != missing}
        r = await client.request(method, url, json=body, headers=bearer(token))
        sent.append(check(r, f"{method} {path} missing {missing}"))
    return sent


async def test_every_route_refuses_bad_input_cleanly(client):
    app = client.app
    _, token = await signup(client)
    admin = await admin_session(client)
    engine = services_of(client).ctx.db.engine
    before = await table_counts(engine)
    tokens = 0
    refused: dict[str, list[str]] = {"user": [], "admin": []}
    admin_route_codes: list[str] = []
    for path, method, op in operations(app):
        needs_auth = path not in {"/health", "/ready", "/.well-known/webauthn"}
        if not needs_auth and request_schema(app, op) is None:
            continue
        tokens += await send_bad_tokens(client, path, method, op)
        refused["user"] += await send_bad_parameters_and_bodies(client, token, path, method, op)
        codes = await send_bad_parameters_and_bodies(client, admin, path, method, op)
        refused["admin"] += codes
        if path.startswith("/api/v1/admin/"):
            admin_route_codes += codes
    assert tokens > 100 and len(refused["user"]) > 100 and len(refused["admin"]) > 100
    # the admin session got past require_admin to the admin routes' own parameters
    assert admin_route_codes.count("validation_error") >= 10, admin_route_codes
    assert "forbidden" not in admin_route_codes and "step_up_required" not in admin_route_codes
    after = await table_counts(engine)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}


# Header values a client can send that no browser would: NUL and other controls, bytes
# that are not ASCII (ASGI hands them over as latin-1), and sizes far past any column.
HOSTILE_VALUES: list[bytes] = [b"evil\x00agent", b"\x00", b"\x01\x02\x1b[31m\x7f", b"\xff\xfe\xe9\xdf", b"x" * 10000,
                               b"\t \t", b"", b"fe80::1%evil\x00zone", b"203.0.113.7, \x00, 10.0.0.9",
                               b"1\x002\x003\x004\x005\x006"]
HOSTILE_HEADERS = [b"user-agent", b"x-device-id", b"x-forwarded-for", b"x-country-code", b"x-mfa-code", b"cookie"]


def hostile_headers() -> list[tuple[str, list[tuple[bytes, bytes]]]]:
    cases = []
    for name in HOSTILE_HEADERS:
        for value in HOSTILE_VALUES:
            cases.append((f"{name.decode()}={value[:24]!r}", [(name, value)]))
    for cookie in [b"authserver_device", b"authserver_session", b"=", b"\x00"]:
        for value in HOSTILE_VALUES:
            cases.append((f"cookie {cookie!r}={value[:24]!r}", [(b"cookie", cookie + b"=" + value)]))
    return cases


async def test_hostile_header_values_never_give_a_500(make_client):
    """Behind a trusted proxy (so X-Forwarded-For and the country header are read), routes
    that write nothing, or refuse before writing, answer 2xx or 4xx to any header value,
    and no row appears."""
    client = await make_client(peer="10.0.0.5", trusted_proxies=["10.0.0.0/8"])
    _, token = await signup(client)
    admin = await admin_session(client)
    engine = services_of(client).ctx.db.engine
    before = await table_counts(engine)
    requests: list[tuple[str, str, str | None, Any]] = [
        ("GET", "/api/v1/session", token, None),
        ("GET", "/api/v1/session", None, None),
        ("GET", "/api/v1/me/devices", token, None),
        ("GET", "/api/v1/sessions", token, None),
        ("GET", "/api/v1/admin/events", admin, None),
        ("GET", "/api/v1/admin/accounts", admin, None),
        ("POST", "/api/v1/accounts", None, {"username": ""}),
        ("POST", "/api/v1/login/password", None, {"username": "someone"}),
        ("POST", "/api/v1/login/webauthn/options", None, {"username": 7}),
        ("PUT", "/api/v1/me/password", token, {"new_password": ""}),
    ]
    sent = 0
    for method, path, session, body in requests:
        for where, headers in hostile_headers():
            if session is not None:
                headers = [*headers, (b"authorization", f"Bearer {session}".encode())]
            r = await client.request(method, path, headers=headers, json=body)
            label = f"{method} {path} {where}"
            if body is not None:
                check(r, label)  # refused for its body, whatever the headers said
            elif r.status_code >= 400:
                check(r, label)
            else:
                assert r.status_code == 200 and "Traceback" not in r.text, (label, r.status_code)
            sent += 1
    assert sent > 500
    after = await table_counts(engine)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}


async def test_unknown_routes_and_methods_are_problem_json(client):
    r = await client.get("/api/v1/does-not-exist")
    check(r, "unknown route")
    assert r.json()["code"] == "not_found"
    r = await client.patch("/api/v1/accounts", json={})
    check(r, "wrong method")
    assert r.json()["code"] == "method_not_allowed"


async def test_the_spec_documents_problem_answers(client):
    spec = (await client.get("/schema/openapi.json")).json()
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "code"} <= set(problem["required"])
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                ref = operation["responses"]["4XX"]["content"]["application/problem+json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Problem", (method, path)
