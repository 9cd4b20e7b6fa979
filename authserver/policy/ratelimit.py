"""Failed-attempt regulation (DESIGN §5): like Authelia's regulator, but its counters
live in the database so all replicas agree.

Three failures within the window lock password and one-time-code checks for the account,
with a growing backoff (30 s, 1 min, 2 min, 5 min by default); addresses have a looser
limit of their own. Second-factor failures count too. WebAuthn assertions are never
regulated: they cannot be guessed.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.errors import RateLimited
from authserver.store.repositories import lockouts
from authserver.store.repositories.lockouts import LockoutRow


def account_key(username: str) -> str:
    return f"user:{username}"


def ip_key(ip: str | None) -> str:
    return f"ip:{ip or 'unknown'}"


class Regulator:
    def __init__(self, *, threshold: int, window: int, backoff: list[int], ip_limit: int, ip_window: int) -> None:
        self.threshold = threshold
        self.window = timedelta(seconds=window)
        self.backoff = backoff
        self.ip_limit = ip_limit
        self.ip_window = timedelta(seconds=ip_window)

    @staticmethod
    def raise_if_locked(locked_until: datetime | None, now: datetime) -> None:
        if locked_until is not None and locked_until > now:
            raise RateLimited(math.ceil((locked_until - now).total_seconds()),
                              log_detail=f"locked until {locked_until.isoformat()}")

    async def check(self, conn: AsyncConnection, keys: list[str], now: datetime) -> None:
        rows = await lockouts.get_many(conn, keys)
        for row in rows.values():
            self.raise_if_locked(row.locked_until, now)

    async def record_failure(self, conn: AsyncConnection, keys: list[str], now: datetime) -> datetime | None:
        """Count one failure against each key; returns the lock end if this failure locked one."""
        rows = await lockouts.get_many(conn, keys)
        locked: datetime | None = None
        for key in keys:
            is_ip = key.startswith("ip:")
            limit, window = (self.ip_limit, self.ip_window) if is_ip else (self.threshold, self.window)
            old = rows.get(key)
            failures, started, level = (0, now, 0) if old is None else (old.failures, old.window_started_at,
                                                                        old.lock_level)
            if now - started > window:
                failures, started = 0, now
                if old is not None and old.locked_until is not None and now - old.locked_until > window * 4:
                    level = 0
            failures += 1
            until = old.locked_until if old else None
            if failures >= limit:
                until = now + timedelta(seconds=self.backoff[min(level, len(self.backoff) - 1)])
                level, failures, started = level + 1, 0, now
                locked = until
            await lockouts.save(conn, LockoutRow(key=key, failures=failures, window_started_at=started,
                                                 locked_until=until, lock_level=level),
                                exists=old is not None, now=now)
        return locked

    async def record_success(self, conn: AsyncConnection, account_lock_key: str) -> None:
        await lockouts.clear(conn, [account_lock_key])
