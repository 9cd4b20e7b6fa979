"""Sessions: issue, check, list, revoke, introspect.

The check is the hottest path in the server: one indexed lookup by token hash, joined to
the account. ``last_seen_at`` (for the idle timeout) is written at most once a minute, so
the common case writes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.clock import Clock
from authserver.crypto import hash_token, new_token
from authserver.errors import NotFound, Unauthorized
from authserver.settings import Settings
from authserver.store.db import Database
from authserver.store.repositories import events, sessions
from authserver.store.repositories.accounts import AccountRow
from authserver.store.repositories.sessions import SessionRow

SESSION_TOKEN_PREFIX = "ass_"
TOUCH_EVERY = timedelta(seconds=60)
MAX_TOKEN_LENGTH = 256


@dataclass(frozen=True, kw_only=True)
class IssuedSession:
    token: str
    row: SessionRow

    def __repr__(self) -> str:
        return f"IssuedSession(id={self.row.id}, aal={self.row.aal})"


@dataclass(frozen=True, kw_only=True)
class AuthContext:
    """The caller's live session and account, as checked for this request."""

    session: SessionRow
    account: AccountRow


class SessionService:
    def __init__(self, *, db: Database, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.clock = clock
        self.absolute = timedelta(seconds=settings.session_absolute)
        self.idle = timedelta(seconds=settings.session_idle)

    async def issue(self, conn: AsyncConnection, *, account: AccountRow, aal: int, amr: list[str],
                    auth_time: datetime, last_mfa_at: datetime | None, device_id: uuid.UUID | None,
                    ip: str | None, user_agent: str | None) -> IssuedSession:
        now = self.clock.now()
        token = new_token(SESSION_TOKEN_PREFIX)
        row = await sessions.insert_session(
            conn, token_hash=hash_token(token), account_id=account.id, aal=aal, amr=amr, auth_time=auth_time,
            last_mfa_at=last_mfa_at, now=now, expires_at=now + self.absolute, device_id=device_id, ip=ip,
            user_agent=user_agent)
        return IssuedSession(token=token, row=row)

    def effective_expiry(self, row: SessionRow) -> datetime:
        return min(row.expires_at, row.last_seen_at + self.idle)

    async def authenticate(self, token: str | None) -> AuthContext:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized(log_detail="no session token")
        async with self.db.read() as conn:
            found = await sessions.get_by_token_hash(conn, hash_token(token))
        if found is None:
            raise Unauthorized(log_detail="unknown session token")
        row, account = found
        now = self.clock.now()
        if row.revoked_at is not None:
            raise Unauthorized(log_detail="session revoked")
        if now >= row.expires_at:
            raise Unauthorized(log_detail="session past absolute lifetime")
        if now >= row.last_seen_at + self.idle:
            raise Unauthorized(log_detail="session idle too long")
        if account.status != "active":
            raise Unauthorized(log_detail="account not active")
        if now - row.last_seen_at >= TOUCH_EVERY:
            async with self.db.transaction() as conn:
                await sessions.touch(conn, row.id, now)
        return AuthContext(session=row, account=account)

    async def list(self, auth: AuthContext) -> list[SessionRow]:
        now = self.clock.now()
        async with self.db.read() as conn:
            rows = await sessions.list_for_account(conn, auth.account.id, now)
        return [r for r in rows if now < r.last_seen_at + self.idle]

    async def revoke(self, auth: AuthContext, session_id: uuid.UUID, *, reason: str = "logout") -> None:
        now = self.clock.now()
        async with self.db.transaction() as conn:
            if not await sessions.revoke(conn, session_id=session_id, account_id=auth.account.id, now=now):
                raise NotFound("no such session")
            await events.insert_event(conn, type="session_revoked", account_id=auth.account.id, now=now,
                                      ip=auth.session.ip, details={"session_id": str(session_id),
                                                                   "reason": reason})

    async def introspect(self, token: str) -> dict[str, Any]:
        try:
            auth = await self.authenticate(token)
        except Unauthorized:
            return {"active": False}
        s = auth.session
        return {"active": True, "account_id": str(auth.account.id), "aal": s.aal, "amr": s.amr,
                "exp": int(self.effective_expiry(s).timestamp()), "username": auth.account.username,
                "session_id": str(s.id)}
