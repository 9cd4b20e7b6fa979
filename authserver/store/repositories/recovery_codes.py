"""Recovery codes: keyed-hash rows, each consumed at most once by a conditional UPDATE."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import RecoveryCode
from authserver.store.models.base import table_of

_R = table_of(RecoveryCode)


async def replace_codes(conn: AsyncConnection, account_id: uuid.UUID, code_hashes: list[bytes],
                        now: datetime) -> None:
    """Drop every earlier code of the account (used or not) and store the new set."""
    await conn.execute(delete(_R).where(_R.c.account_id == account_id))
    await conn.execute(_R.insert(), [{"id": uuid.uuid4(), "account_id": account_id, "code_hash": h,
                                      "created_at": now, "used_at": None} for h in code_hashes])


async def consume(conn: AsyncConnection, account_id: uuid.UUID, code_hash: bytes, now: datetime) -> bool:
    """Use the code if it is the account's and unused. One statement: of twenty requests
    racing with the same code, exactly one sees a row updated."""
    res = await conn.execute(update(_R).where(_R.c.account_id == account_id, _R.c.code_hash == code_hash,
                                              _R.c.used_at.is_(None)).values(used_at=now))
    return bool(res.rowcount)


async def was_used(conn: AsyncConnection, account_id: uuid.UUID, code_hash: bytes) -> bool:
    return bool(await conn.scalar(select(exists().where(_R.c.account_id == account_id, _R.c.code_hash == code_hash,
                                                        _R.c.used_at.is_not(None)))))


async def count_left(conn: AsyncConnection, account_id: uuid.UUID) -> int:
    stmt = select(func.count()).select_from(_R).where(_R.c.account_id == account_id, _R.c.used_at.is_(None))
    return int(await conn.scalar(stmt) or 0)
