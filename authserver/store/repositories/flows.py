from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import Flow
from authserver.store.models.base import table_of

_F = table_of(Flow)


@dataclass(frozen=True, kw_only=True)
class FlowRow:
    id: uuid.UUID
    kind: str
    state: str
    account_id: uuid.UUID | None
    session_id: uuid.UUID | None
    methods: list[str]
    amr: list[str]
    aal: int
    attempts: int
    challenge: bytes | None
    challenge_expires_at: datetime | None
    data: dict[str, Any]
    auth_time: datetime | None
    ip: str | None
    user_agent: str | None
    created_at: datetime
    expires_at: datetime


_COLUMNS = [c for c in _F.columns if c.name != "token_hash"]


def _flow(row: Any) -> FlowRow:
    return FlowRow(**{c.name: row._mapping[c.name] for c in _COLUMNS})


async def insert_flow(conn: AsyncConnection, *, token_hash: bytes, kind: str, state: str,
                      account_id: uuid.UUID | None, now: datetime, expires_at: datetime,
                      methods: list[str] | None = None, amr: list[str] | None = None, aal: int = 0,
                      challenge: bytes | None = None, challenge_expires_at: datetime | None = None,
                      data: dict[str, Any] | None = None, auth_time: datetime | None = None,
                      session_id: uuid.UUID | None = None, ip: str | None = None,
                      user_agent: str | None = None) -> FlowRow:
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "kind": kind, "state": state, "account_id": account_id, "session_id": session_id,
        "methods": methods or [], "amr": amr or [], "aal": aal, "attempts": 0, "challenge": challenge,
        "challenge_expires_at": challenge_expires_at, "data": data or {}, "auth_time": auth_time, "ip": ip,
        "user_agent": user_agent, "created_at": now, "expires_at": expires_at,
    }
    await conn.execute(_F.insert().values(token_hash=token_hash, **values))
    return FlowRow(**values)


async def get_by_token_hash(conn: AsyncConnection, token_hash: bytes) -> FlowRow | None:
    row = (await conn.execute(select(*_COLUMNS).where(_F.c.token_hash == token_hash))).first()
    return _flow(row) if row else None


async def advance(conn: AsyncConnection, flow_id: uuid.UUID, *, from_state: str, to_state: str,
                  **values: Any) -> bool:
    """Move a flow forward atomically; False when another request moved it first."""
    res = await conn.execute(update(_F).where(_F.c.id == flow_id, _F.c.state == from_state)
                             .values(state=to_state, **values))
    return bool(res.rowcount)


async def consume_challenge(conn: AsyncConnection, flow_id: uuid.UUID) -> tuple[bytes, datetime | None] | None:
    """Take the pending challenge and clear it in one statement: a challenge is single use
    even when two requests race (WebAuthn L3 §13.4.3)."""
    # RETURNING yields the new (NULL) value, so read it, then clear it only if it is still the
    # same: of two racing requests exactly one sees rowcount 1.
    row = (await conn.execute(select(_F.c.challenge, _F.c.challenge_expires_at)
                              .where(_F.c.id == flow_id, _F.c.challenge.is_not(None)))).first()
    if row is None:
        return None
    res = await conn.execute(update(_F).where(_F.c.id == flow_id, _F.c.challenge == row[0]).values(challenge=None))
    if not res.rowcount:
        return None
    return row[0], row[1]


async def set_challenge(conn: AsyncConnection, flow_id: uuid.UUID, challenge: bytes, expires_at: datetime,
                        data: dict[str, Any] | None = None) -> None:
    values: dict[str, Any] = {"challenge": challenge, "challenge_expires_at": expires_at}
    if data is not None:
        values["data"] = data
    await conn.execute(update(_F).where(_F.c.id == flow_id).values(**values))


async def add_attempt(conn: AsyncConnection, flow_id: uuid.UUID) -> None:
    await conn.execute(update(_F).where(_F.c.id == flow_id).values(attempts=_F.c.attempts + 1))


async def end_pending_for_account(conn: AsyncConnection, account_id: uuid.UUID) -> int:
    """Kill every unfinished flow of an account (after a password change or a disable)."""
    res = await conn.execute(update(_F).where(_F.c.account_id == account_id, _F.c.state != "done")
                             .values(state="done", challenge=None))
    return int(res.rowcount or 0)
