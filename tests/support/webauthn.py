"""Helpers for WebAuthn API tests: run whole ceremonies against the API with a
:class:`~tests.support.softauthn.SoftAuthenticator` playing the browser and the key."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from authserver.store.models import SecurityEvent, WebAuthnCredential
from authserver.store.models.base import table_of
from tests.conftest import services_of
from tests.support.api import bearer, uniq
from tests.support.softauthn import SoftAuthenticator

ORIGIN = "http://localhost:8000"
API = "/api/v1"
DEVICE = {"X-Device-Id": "webauthn-test-device"}


async def signup_options(client: Any, username: str | None = None) -> dict[str, Any]:
    r = await client.post(f"{API}/registration/passkey/options", json={"username": username or uniq("pk")},
                          headers=DEVICE)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def passkey_signup(client: Any, authenticator: SoftAuthenticator, username: str | None = None,
                         **create_kw: Any) -> dict[str, Any]:
    """Sign up passkey-only; returns the 201 body (account, credential, session)."""
    begun = await signup_options(client, username)
    credential = authenticator.create(begun["options"], origin=ORIGIN, **create_kw)
    r = await client.post(f"{API}/registration/passkey/verify",
                          json={"flow_token": begun["flow_token"], "credential": credential}, headers=DEVICE)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def register_options(client: Any, token: str, kind: str = "security-key", nickname: str | None = None,
                           **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"kind": kind}
    if nickname is not None:
        body["nickname"] = nickname
    r: httpx.Response = await client.post(f"{API}/me/credentials/webauthn/options", json=body,
                                          headers={**bearer(token), **DEVICE, **headers})
    return r


async def add_credential(client: Any, token: str, authenticator: SoftAuthenticator, kind: str = "security-key",
                         nickname: str | None = None) -> dict[str, Any]:
    """Register one more credential on a signed-in account; returns the credential body."""
    r = await register_options(client, token, kind, nickname)
    assert r.status_code == 200, r.text
    begun = r.json()
    credential = authenticator.create(begun["options"], origin=ORIGIN)
    r = await client.post(f"{API}/me/credentials/webauthn/verify",
                          json={"flow_token": begun["flow_token"], "credential": credential},
                          headers={**bearer(token), **DEVICE})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def login_options(client: Any, username: str | None = None) -> dict[str, Any]:
    payload = {} if username is None else {"username": username}
    r = await client.post(f"{API}/login/webauthn/options", json=payload, headers=DEVICE)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def login_verify(client: Any, flow_token: str, credential: dict[str, Any]) -> httpx.Response:
    r: httpx.Response = await client.post(f"{API}/login/webauthn/verify",
                                          json={"flow_token": flow_token, "credential": credential}, headers=DEVICE)
    return r


async def passkey_login(client: Any, authenticator: SoftAuthenticator, username: str | None = None,
                        **get_kw: Any) -> httpx.Response:
    begun = await login_options(client, username)
    get_kw.setdefault("origin", ORIGIN)
    return await login_verify(client, begun["flow_token"], authenticator.get(begun["options"], **get_kw))


async def mfa_webauthn(client: Any, flow_token: str, authenticator: SoftAuthenticator, **get_kw: Any) -> httpx.Response:
    r = await client.post(f"{API}/login/mfa/webauthn/options", json={"flow_token": flow_token}, headers=DEVICE)
    assert r.status_code == 200, r.text
    credential = authenticator.get(r.json()["options"], origin=ORIGIN, **get_kw)
    response: httpx.Response = await client.post(f"{API}/login/mfa/webauthn/verify",
                                                 json={"flow_token": flow_token, "credential": credential},
                                                 headers=DEVICE)
    return response


async def credential_rows(client: Any, account_id: str | None = None) -> list[dict[str, Any]]:
    table = table_of(WebAuthnCredential)
    stmt = select(table)
    if account_id is not None:
        stmt = stmt.where(table.c.account_id == uuid.UUID(account_id))
    async with services_of(client).ctx.db.read() as conn:
        return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]


async def event_types(client: Any, account_id: str) -> list[str]:
    table = table_of(SecurityEvent)
    async with services_of(client).ctx.db.read() as conn:
        rows = await conn.execute(select(table.c.type).where(table.c.account_id == uuid.UUID(account_id))
                                  .order_by(table.c.id))
        return [r[0] for r in rows]


async def step_up(client: Any, token: str, authenticator: SoftAuthenticator) -> tuple[dict[str, Any], httpx.Response]:
    """Refresh a session's second factor with a WebAuthn assertion; returns (options, response)."""
    begun = await client.post(f"{API}/session/step-up/webauthn/options", headers=bearer(token))
    assert begun.status_code == 200, begun.text
    options: dict[str, Any] = begun.json()["options"]
    credential = authenticator.get(options, origin=ORIGIN)
    r: httpx.Response = await client.post(f"{API}/session/step-up/webauthn/verify",
                                          json={"flow_token": begun.json()["flow_token"], "credential": credential},
                                          headers=bearer(token))
    return options, r
