from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import Flow, Lockout, OtpCode, OutboxMessage, Session
from authserver.store.models.base import table_of


async def delete_dead_rows(conn: AsyncConnection, *, now: datetime, keep_sessions: timedelta,
                           keep_messages: timedelta) -> dict[str, int]:
    """Delete what can never be used again; sessions stay a while for the user's history,
    finished outbox messages a while for support questions ("did the mail go out?"). An
    abandoned message still holds its body, which may be a code: it goes too."""
    f, o, s, m, k = (table_of(Flow), table_of(OtpCode), table_of(Session), table_of(OutboxMessage),
                     table_of(Lockout))
    flows = await conn.execute(delete(f).where(f.c.expires_at < now))
    # spent codes stay a day: the hourly send limits count them
    codes = await conn.execute(delete(o).where(or_(o.c.expires_at < now, o.c.used_at.is_not(None)),
                                               o.c.created_at < now - timedelta(days=1)))
    # attempt counters nobody has touched for a day (lock levels reset long before that)
    counters = await conn.execute(delete(k).where(k.c.updated_at < now - timedelta(days=1),
                                                  or_(k.c.locked_until.is_(None), k.c.locked_until < now)))
    sessions = await conn.execute(delete(s).where(or_(s.c.expires_at < now - keep_sessions,
                                                      s.c.revoked_at < now - keep_sessions)))
    messages = await conn.execute(delete(m).where(m.c.status.in_(("sent", "abandoned")),
                                                  m.c.created_at < now - keep_messages))
    return {"flows": int(flows.rowcount or 0), "otp_codes": int(codes.rowcount or 0),
            "sessions": int(sessions.rowcount or 0), "outbox": int(messages.rowcount or 0),
            "lockouts": int(counters.rowcount or 0)}
