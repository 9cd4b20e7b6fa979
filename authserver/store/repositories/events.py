from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import SecurityEvent
from authserver.store.models.base import table_of

_E = table_of(SecurityEvent)


@dataclass(frozen=True, kw_only=True)
class EventRow:
    id: int
    type: str
    account_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    device_id: uuid.UUID | None
    details: dict[str, Any]
    created_at: datetime


async def insert_event(conn: AsyncConnection, *, type: str, account_id: uuid.UUID | None, now: datetime,
                       ip: str | None = None, user_agent: str | None = None, device_id: uuid.UUID | None = None,
                       details: dict[str, Any] | None = None) -> None:
    await conn.execute(_E.insert().values(type=type, account_id=account_id, ip=ip, user_agent=user_agent,
                                          device_id=device_id, details=details or {}, created_at=now))


async def list_events(conn: AsyncConnection, *, account_id: uuid.UUID | None = None, type: str | None = None,
                      before_id: int | None = None, limit: int = 50) -> list[EventRow]:
    stmt = select(_E).order_by(_E.c.id.desc()).limit(limit)
    if account_id is not None:
        stmt = stmt.where(_E.c.account_id == account_id)
    if type is not None:
        stmt = stmt.where(_E.c.type == type)
    if before_id is not None:
        stmt = stmt.where(_E.c.id < before_id)
    return [EventRow(**dict(r._mapping)) for r in (await conn.execute(stmt)).all()]
