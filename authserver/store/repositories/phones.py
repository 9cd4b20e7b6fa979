"""Phone numbers (E.164) for SMS codes; a number becomes a factor once verified."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.errors import Conflict
from authserver.store.models import Phone
from authserver.store.models.base import table_of

_P = table_of(Phone)


@dataclass(frozen=True, kw_only=True)
class PhoneRow:
    id: uuid.UUID
    account_id: uuid.UUID
    number: str
    verified_at: datetime | None
    created_at: datetime

    def __repr__(self) -> str:
        return f"PhoneRow(id={self.id}, verified={self.verified_at is not None})"


def _row(row: Any) -> PhoneRow:
    return PhoneRow(**{c.name: row._mapping[c.name] for c in _P.columns})


async def get_phone(conn: AsyncConnection, account_id: uuid.UUID, phone_id: uuid.UUID) -> PhoneRow | None:
    row = (await conn.execute(select(_P).where(_P.c.account_id == account_id, _P.c.id == phone_id))).first()
    return _row(row) if row else None


async def get_by_number(conn: AsyncConnection, account_id: uuid.UUID, number: str) -> PhoneRow | None:
    row = (await conn.execute(select(_P).where(_P.c.account_id == account_id, _P.c.number == number))).first()
    return _row(row) if row else None


async def insert_phone(conn: AsyncConnection, *, account_id: uuid.UUID, number: str, now: datetime) -> PhoneRow:
    """Add the number, or return the row that already holds it for this account.

    Two requests adding the same number at once would otherwise both pass a "not there yet"
    check and the loser would hit the unique (account_id, number) constraint: a 500, and on
    PostgreSQL an aborted transaction. ``ON CONFLICT DO NOTHING`` waits for the winner and
    then skips; the row it wrote is read back instead.
    """
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    values: dict[str, Any] = {"id": uuid.uuid4(), "account_id": account_id, "number": number,
                              "verified_at": None, "created_at": now}
    stmt = insert(_P).values(**values).on_conflict_do_nothing(index_elements=[_P.c.account_id, _P.c.number])
    if (await conn.execute(stmt)).rowcount:
        return PhoneRow(**values)
    existing = await get_by_number(conn, account_id, number)
    if existing is None:  # removed again by a third request in between; the client may simply retry
        raise Conflict("this phone number changed while it was being added",
                       log_detail="phone insert conflicted with a row that is gone")
    return existing


async def mark_verified(conn: AsyncConnection, phone_id: uuid.UUID, now: datetime) -> bool:
    res = await conn.execute(update(_P).where(_P.c.id == phone_id, _P.c.verified_at.is_(None))
                             .values(verified_at=now))
    return bool(res.rowcount)


async def first_verified(conn: AsyncConnection, account_id: uuid.UUID) -> PhoneRow | None:
    """The number login codes go to: the earliest one verified."""
    stmt = (select(_P).where(_P.c.account_id == account_id, _P.c.verified_at.is_not(None))
            .order_by(_P.c.verified_at, _P.c.number).limit(1))
    row = (await conn.execute(stmt)).first()
    return _row(row) if row else None


async def count_verified(conn: AsyncConnection, account_id: uuid.UUID) -> int:
    stmt = select(func.count()).select_from(_P).where(_P.c.account_id == account_id, _P.c.verified_at.is_not(None))
    return int(await conn.scalar(stmt) or 0)


async def delete_phone(conn: AsyncConnection, account_id: uuid.UUID, phone_id: uuid.UUID) -> bool:
    res = await conn.execute(delete(_P).where(_P.c.account_id == account_id, _P.c.id == phone_id))
    return bool(res.rowcount)
