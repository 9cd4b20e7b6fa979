"""One-time codes sent over a channel (sms now, email later). Only an HMAC of each code is
stored; a code is consumed in one conditional UPDATE so it works at most once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import OtpCode
from authserver.store.models.base import table_of

_O = table_of(OtpCode)


@dataclass(frozen=True, kw_only=True)
class OtpCodeRow:
    id: uuid.UUID
    account_id: uuid.UUID
    channel: str
    destination: str
    scope: str
    code_mac: bytes
    attempts: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None

    def __repr__(self) -> str:
        return f"OtpCodeRow(id={self.id}, channel={self.channel!r}, scope={self.scope!r})"


async def insert_code(conn: AsyncConnection, *, account_id: uuid.UUID, channel: str, destination: str, scope: str,
                      code_mac: bytes, now: datetime, expires_at: datetime) -> uuid.UUID:
    code_id = uuid.uuid4()
    await conn.execute(_O.insert().values(id=code_id, account_id=account_id, channel=channel,
                                          destination=destination, scope=scope, code_mac=code_mac, attempts=0,
                                          created_at=now, expires_at=expires_at, used_at=None))
    return code_id


async def expire_live(conn: AsyncConnection, *, account_id: uuid.UUID, channel: str, scope: str,
                      now: datetime) -> int:
    """End every live code for this account, channel and scope (a new send replaces them)."""
    res = await conn.execute(update(_O).where(_O.c.account_id == account_id, _O.c.channel == channel,
                                              _O.c.scope == scope, _O.c.used_at.is_(None), _O.c.expires_at > now)
                             .values(expires_at=now))
    return int(res.rowcount or 0)


async def latest_code(conn: AsyncConnection, *, account_id: uuid.UUID, channel: str,
                      scope: str) -> OtpCodeRow | None:
    stmt = (select(_O).where(_O.c.account_id == account_id, _O.c.channel == channel, _O.c.scope == scope)
            .order_by(_O.c.created_at.desc(), _O.c.expires_at.desc()).limit(1))
    row = (await conn.execute(stmt)).first()
    return OtpCodeRow(**{c.name: row._mapping[c.name] for c in _O.columns}) if row else None


async def add_attempt(conn: AsyncConnection, code_id: uuid.UUID) -> None:
    await conn.execute(update(_O).where(_O.c.id == code_id, _O.c.used_at.is_(None))
                       .values(attempts=_O.c.attempts + 1))


async def consume(conn: AsyncConnection, code_id: uuid.UUID, *, now: datetime, max_tries: int) -> bool:
    """Mark the code used if it still is live; False when a racing request took it first."""
    res = await conn.execute(update(_O).where(_O.c.id == code_id, _O.c.used_at.is_(None), _O.c.expires_at > now,
                                              _O.c.attempts < max_tries).values(used_at=now))
    return bool(res.rowcount)


async def sends_since(conn: AsyncConnection, *, channel: str, since: datetime, account_id: uuid.UUID | None = None,
                      destination: str | None = None) -> tuple[int, datetime | None]:
    """How many codes went out since ``since`` (to this account or this destination), and
    when the oldest of them did: enough to answer a rate limit with Retry-After."""
    stmt = select(func.count(), func.min(_O.c.created_at)).where(_O.c.channel == channel, _O.c.created_at > since)
    if account_id is not None:
        stmt = stmt.where(_O.c.account_id == account_id)
    if destination is not None:
        stmt = stmt.where(_O.c.destination == destination)
    row = (await conn.execute(stmt)).one()
    oldest: datetime | None = row[1]  # MIN() keeps the column type, so this is an aware UTC datetime
    return int(row[0] or 0), oldest
