"""A battery of bad input against every route of the OpenAPI spec: only 4xx problem+json
comes back, never a 500, and not one row is written."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import services_of
from tests.support.api import bearer, signup, table_counts

BAD_TOKENS: list[Any] = ["", "Bearer", "Bearer ", "Basic YTpi", "Bearer " + "x" * 5000, "Bearer ass_\u00e9\u00e9".encode("latin-1"), b"Bearer \xff\xfe",
              "Bearer asf_notasession", "Bearer ass_" + "A" * 43]
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


def check(response, where: str) -> None:
    assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/problem+json"), where
    body = response.json()
    assert isinstance(body.get("code"), str) and body["status"] == response.status_code, where
    assert "Traceback" not in response.text


async def test_every_route_refuses_bad_input_cleanly(client):
    app = client.app
    _, token = await signup(client)
    engine = services_of(client).ctx.db.engine
    before = await table_counts(engine)
    sent = 0
    for path, method, op in operations(app):
        needs_auth = path not in {"/health", "/ready", "/.well-known/webauthn"}
        url = fill(path)
        if not needs_auth and request_schema(app, op) is None:
            continue
        # bad tokens
        for raw in BAD_TOKENS:
            headers: dict[str, Any] = {"Authorization": raw} if raw else {}
            # a broken body too, so that a public route refuses it instead of starting a flow
            r = await client.request(method, url, headers={**headers, "Content-Type": "application/json"},
                                     content=b"{" if request_schema(app, op) else b"")
            check(r, f"{method} {path} token {raw[:20]!r}")
            sent += 1
        # bad path parameters
        for value in BAD_PATH_VALUES if "{" in path else []:
            bad = re.sub(r"\{[^}]+\}", value, path)
            r = await client.request(method, bad, headers=bearer(token))
            check(r, f"{method} {bad[:60]}")
            sent += 1
        # bad query parameters
        for param in op.get("parameters", []):
            if param.get("in") != "query":
                continue
            for value in ["", "x" * 5000, "-1", "99999999999999999999", "not-a-uuid", "\u0000", "1e9"]:
                r = await client.request(method, url, params={param["name"]: value}, headers=bearer(token))
                if r.status_code < 400:
                    continue  # some values are valid for a free-text parameter
                check(r, f"{method} {path}?{param['name']}={value[:20]!r}")
                sent += 1
        schema = request_schema(app, op)
        if schema is None:
            continue
        # bodies that are not what the schema says, with a valid session
        for name, raw_body in BAD_BODIES:
            if name == "empty object" and not schema.get("required"):
                continue  # every field optional: {} is valid input here
            r = await client.request(method, url, content=raw_body,
                                     headers={**bearer(token), "Content-Type": "application/json"})
            check(r, f"{method} {path} body {name}")
            sent += 1
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
                check(r, f"{method} {path} {prop_name}={str(value)[:30]!r}")
                sent += 1
        for missing in required:
            body = {p: "x" for p in required if p != missing}
            r = await client.request(method, url, json=body, headers=bearer(token))
            check(r, f"{method} {path} missing {missing}")
            sent += 1
    assert sent > 100
    after = await table_counts(engine)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}


async def test_unknown_routes_and_methods_are_problem_json(client):
    r = await client.get("/api/v1/does-not-exist")
    check(r, "unknown route")
    assert r.json()["code"] == "not_found"
    r = await client.patch("/api/v1/accounts", json={})
    check(r, "wrong method")
    assert r.json()["code"] == "method_not_allowed"
