from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, delete, false, select, update
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


async def count_attempt(conn: AsyncConnection, key: str, *, now: datetime, window_start: datetime) -> LockoutRow:
    """Add one attempt to ``key`` in one statement and return the row as it now stands.

    While the key is locked nothing is added (the lock already says no); a count whose
    window began before ``window_start`` starts again at one. Concurrent calls serialise on
    the row, so each sees a distinct count.
    """
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    locked = and_(_L.c.locked_until.is_not(None), _L.c.locked_until > now)
    stale = _L.c.window_started_at < window_start
    stmt = insert(_L).values(key=key, failures=1, window_started_at=now, locked_until=None, lock_level=0,
                             updated_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=[_L.c.key], set_={
        "failures": case((locked, _L.c.failures), (stale, 1), else_=_L.c.failures + 1),
        "window_started_at": case((locked, _L.c.window_started_at), (stale, now), else_=_L.c.window_started_at),
        "updated_at": now,
    })
    row = (await conn.execute(stmt.returning(_L.c.key, _L.c.failures, _L.c.window_started_at, _L.c.locked_until,
                                             _L.c.lock_level))).one()
    return LockoutRow(**dict(row._mapping))


async def lock(conn: AsyncConnection, key: str, *, until: datetime, level: int, now: datetime) -> None:
    await conn.execute(update(_L).where(_L.c.key == key).values(locked_until=until, lock_level=level, failures=0,
                                                                window_started_at=now, updated_at=now))


async def release(conn: AsyncConnection, *, reset: list[str], decrement: list[str]) -> None:
    """One statement: reset the account keys, give an attempt back to the others."""
    keys = reset + decrement
    if not keys:
        return
    await conn.execute(update(_L).where(_L.c.key.in_(keys)).values(
        failures=case((_L.c.key.in_(reset) if reset else false(), 0),
                      (_L.c.failures > 0, _L.c.failures - 1), else_=0),
        lock_level=case((_L.c.key.in_(reset) if reset else false(), 0), else_=_L.c.lock_level)))


async def clear(conn: AsyncConnection, keys: list[str]) -> None:
    await conn.execute(delete(_L).where(_L.c.key.in_(keys)))
