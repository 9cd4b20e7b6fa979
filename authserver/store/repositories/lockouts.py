from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import Lockout
from authserver.store.models.base import table_of

_L = table_of(Lockout)


@dataclass(frozen=True, kw_only=True)
class LockoutRow:
    key: str
    failures: int
    window_started_at: datetime
    locked_until: datetime | None
    lock_level: int


async def get_many(conn: AsyncConnection, keys: list[str]) -> dict[str, LockoutRow]:
    rows = await conn.execute(select(_L.c.key, _L.c.failures, _L.c.window_started_at, _L.c.locked_until,
                                     _L.c.lock_level).where(_L.c.key.in_(keys)))
    return {r.key: LockoutRow(**dict(r._mapping)) for r in rows}


async def save(conn: AsyncConnection, row: LockoutRow, *, exists: bool, now: datetime) -> None:
    values = {"failures": row.failures, "window_started_at": row.window_started_at,
              "locked_until": row.locked_until, "lock_level": row.lock_level, "updated_at": now}
    if exists:
        await conn.execute(update(_L).where(_L.c.key == row.key).values(**values))
        return
    # Two first failures can race for the same key: the later one updates instead of failing.
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    await conn.execute(insert(_L).values(key=row.key, **values)
                       .on_conflict_do_update(index_elements=[_L.c.key], set_=values))


async def clear(conn: AsyncConnection, keys: list[str]) -> None:
    await conn.execute(delete(_L).where(_L.c.key.in_(keys)))
