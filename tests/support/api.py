"""Small helpers the API tests share."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.store.models import Base

PASSWORD = "correct horse battery"


def uniq(prefix: str = "user") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


async def signup(client: Any, username: str | None = None, password: str = PASSWORD, *,
                 email: str | None = None, headers: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    username = username or uniq()
    body: dict[str, Any] = {"username": username, "password": password}
    if email:
        body["email"] = email
    r = await client.post("/api/v1/accounts", json=body, headers=headers or {"X-Device-Id": "test-device"})
    assert r.status_code == 201, r.text
    data = r.json()
    return data["account"], data["session"]["token"]


async def login(client: Any, username: str, password: str = PASSWORD, **headers: str) -> httpx.Response:
    hdrs = {"X-Device-Id": "test-device", **{k.replace("_", "-"): v for k, v in headers.items()}}
    response: httpx.Response = await client.post("/api/v1/login/password",
                                                 json={"username": username, "password": password}, headers=hdrs)
    return response


async def table_counts(engine: AsyncEngine) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with engine.connect() as conn:
        for name, table in Base.metadata.tables.items():
            counts[name] = int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    return counts


def read_outbox(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
