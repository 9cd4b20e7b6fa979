from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.models import Account, Session
from authserver.store.models.base import table_of
from authserver.store.repositories.accounts import AccountRow, _account

_S = table_of(Session)
_A = table_of(Account)


@dataclass(frozen=True, kw_only=True)
class SessionRow:
    id: uuid.UUID
    account_id: uuid.UUID
    aal: int
    amr: list[str]
    auth_time: datetime
    last_mfa_at: datetime | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    device_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    revoked_at: datetime | None


_SESSION_COLUMNS = [c for c in _S.columns if c.name != "token_hash"]


def _session(row: Any, prefix: str = "") -> SessionRow:
    m = row._mapping
    return SessionRow(**{c.name: m[prefix + c.name] for c in _SESSION_COLUMNS})


async def insert_session(conn: AsyncConnection, *, token_hash: bytes, account_id: uuid.UUID, aal: int,
                         amr: list[str], auth_time: datetime, last_mfa_at: datetime | None, now: datetime,
                         expires_at: datetime, device_id: uuid.UUID | None, ip: str | None,
                         user_agent: str | None) -> SessionRow:
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "account_id": account_id, "aal": aal, "amr": amr, "auth_time": auth_time,
        "last_mfa_at": last_mfa_at, "created_at": now, "last_seen_at": now, "expires_at": expires_at,
        "device_id": device_id, "ip": ip, "user_agent": user_agent, "revoked_at": None,
    }
    await conn.execute(_S.insert().values(token_hash=token_hash, **values))
    return SessionRow(**values)


async def get_by_token_hash(conn: AsyncConnection, token_hash: bytes) -> tuple[SessionRow, AccountRow] | None:
    """The session check: one indexed lookup (unique index on token_hash) joined to its account."""
    cols = [c.label("s_" + c.name) for c in _SESSION_COLUMNS]
    stmt = select(*cols, *_A.columns).select_from(_S.join(_A, _A.c.id == _S.c.account_id)).where(
        _S.c.token_hash == token_hash
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return _session(row, "s_"), _account(row)


async def touch(conn: AsyncConnection, session_id: uuid.UUID, now: datetime) -> None:
    await conn.execute(update(_S).where(_S.c.id == session_id).values(last_seen_at=now))


async def list_for_account(conn: AsyncConnection, account_id: uuid.UUID, now: datetime) -> list[SessionRow]:
    stmt = (select(*_SESSION_COLUMNS).where(_S.c.account_id == account_id, _S.c.revoked_at.is_(None),
                                           _S.c.expires_at > now).order_by(_S.c.created_at.desc()))
    return [_session(r) for r in (await conn.execute(stmt)).all()]


async def revoke(conn: AsyncConnection, *, session_id: uuid.UUID, account_id: uuid.UUID, now: datetime) -> bool:
    res = await conn.execute(update(_S).where(_S.c.id == session_id, _S.c.account_id == account_id,
                                              _S.c.revoked_at.is_(None)).values(revoked_at=now))
    return bool(res.rowcount)


async def revoke_all(conn: AsyncConnection, account_id: uuid.UUID, now: datetime,
                     *, except_id: uuid.UUID | None = None) -> int:
    stmt = update(_S).where(_S.c.account_id == account_id, _S.c.revoked_at.is_(None))
    if except_id is not None:
        stmt = stmt.where(_S.c.id != except_id)
    res = await conn.execute(stmt.values(revoked_at=now))
    return int(res.rowcount or 0)


async def record_step_up(conn: AsyncConnection, session_id: uuid.UUID, *, aal: int, amr: list[str],
                         now: datetime) -> None:
    await conn.execute(update(_S).where(_S.c.id == session_id).values(aal=aal, amr=amr, last_mfa_at=now,
                                                                      last_seen_at=now))
