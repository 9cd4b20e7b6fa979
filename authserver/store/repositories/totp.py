"""Confirmed TOTP enrolments (one per account). The secret column holds only a sealed
value (crypto.KeyRing, AAD ``totp:<account id>``); ``last_used_step`` is the replay guard
of RFC 6238 §5.2."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.errors import Conflict
from authserver.store.models import TotpSecret
from authserver.store.models.base import table_of

_T = table_of(TotpSecret)


@dataclass(frozen=True, kw_only=True)
class TotpRow:
    account_id: uuid.UUID
    secret_sealed: str
    algorithm: str
    digits: int
    period: int
    last_used_step: int
    created_at: datetime

    def __repr__(self) -> str:
        return f"TotpRow(account_id={self.account_id}, algorithm={self.algorithm!r}, digits={self.digits})"


def _row(row: Any) -> TotpRow:
    return TotpRow(**{c.name: row._mapping[c.name] for c in _T.columns})


async def get_totp(conn: AsyncConnection, account_id: uuid.UUID) -> TotpRow | None:
    row = (await conn.execute(select(_T).where(_T.c.account_id == account_id))).first()
    return _row(row) if row else None


async def insert_totp(conn: AsyncConnection, *, account_id: uuid.UUID, secret_sealed: str, algorithm: str,
                      digits: int, period: int, last_used_step: int, now: datetime) -> None:
    """Store a confirmed enrolment; a second one for the same account is a conflict."""
    try:
        await conn.execute(_T.insert().values(account_id=account_id, secret_sealed=secret_sealed,
                                              algorithm=algorithm, digits=digits, period=period,
                                              last_used_step=last_used_step, created_at=now))
    except IntegrityError as exc:
        raise Conflict("an authenticator app is already enrolled",
                       log_detail=f"totp row exists for {account_id}") from exc


async def advance_step(conn: AsyncConnection, account_id: uuid.UUID, step: int) -> bool:
    """Record ``step`` as used, only if it is newer than every step used before. One
    statement, so of two requests racing with the same code exactly one gets True."""
    res = await conn.execute(update(_T).where(_T.c.account_id == account_id, _T.c.last_used_step < step)
                             .values(last_used_step=step))
    return bool(res.rowcount)


async def delete_totp(conn: AsyncConnection, account_id: uuid.UUID) -> bool:
    res = await conn.execute(delete(_T).where(_T.c.account_id == account_id))
    return bool(res.rowcount)
