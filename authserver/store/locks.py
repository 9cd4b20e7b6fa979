"""Named locks held until the end of a transaction, for read-then-write checks that span
rows of several accounts (a per-number SMS limit). PostgreSQL: a transaction-scoped
advisory lock on a 64-bit hash of the name. SQLite needs none: write transactions start with
``BEGIN IMMEDIATE`` and never overlap."""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def hold(conn: AsyncConnection, name: str) -> None:
    if conn.dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
