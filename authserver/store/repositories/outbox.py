from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import OutboxMessage
from authserver.store.models.base import table_of

_O = table_of(OutboxMessage)


@dataclass(frozen=True, kw_only=True)
class OutboxRow:
    id: uuid.UUID
    channel: str
    to: str
    subject: str
    body: str
    attempts: int
    created_at: datetime


async def enqueue(conn: AsyncConnection, *, channel: str, to: str, subject: str, body: str,
                  now: datetime) -> uuid.UUID:
    message_id = uuid.uuid4()
    await conn.execute(_O.insert().values(id=message_id, channel=channel, to=to, subject=subject, body=body,
                                          status="queued", attempts=0, next_attempt_at=now, created_at=now))
    return message_id


async def claim_due(conn: AsyncConnection, *, now: datetime, limit: int, lease: timedelta) -> list[OutboxRow]:
    """Lease due messages to this worker. A processing message whose lease ran out (its worker
    died) is due again, which is what makes delivery at-least-once."""
    due = or_(_O.c.status == "queued", _O.c.status == "processing")
    stmt = (select(_O.c.id).where(due, _O.c.next_attempt_at <= now).order_by(_O.c.next_attempt_at).limit(limit))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    ids = [r[0] for r in await conn.execute(stmt)]
    if not ids:
        return []
    await conn.execute(update(_O).where(_O.c.id.in_(ids)).values(status="processing",
                                                                  next_attempt_at=now + lease,
                                                                  attempts=_O.c.attempts + 1))
    rows = await conn.execute(select(_O.c.id, _O.c.channel, _O.c.to, _O.c.subject, _O.c.body, _O.c.attempts,
                                     _O.c.created_at).where(_O.c.id.in_(ids)))
    return [OutboxRow(**dict(r._mapping)) for r in rows]


async def mark_sent(conn: AsyncConnection, message_id: uuid.UUID, now: datetime) -> None:
    """Record the delivery and drop the body: it may hold a one-time code, which must not sit
    in plain text in the database once it is on its way. The subject stays, to tell what
    was sent."""
    await conn.execute(update(_O).where(_O.c.id == message_id).values(status="sent", sent_at=now, last_error=None,
                                                                      body=""))


async def mark_failed(conn: AsyncConnection, message_id: uuid.UUID, *, error: str, retry_at: datetime | None) -> None:
    values = {"last_error": error[:500]}
    if retry_at is None:
        await conn.execute(update(_O).where(_O.c.id == message_id).values(status="abandoned", **values))
    else:
        await conn.execute(update(_O).where(_O.c.id == message_id).values(status="queued", next_attempt_at=retry_at,
                                                                          **values))
