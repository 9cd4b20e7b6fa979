"""Failed-attempt regulation (DESIGN §5): like Authelia's regulator, but its counters
live in the database so all replicas agree.

Three failures within the window lock password and one-time-code checks for the account,
with a growing backoff (30 s, 1 min, 2 min, 5 min by default); addresses have a looser
limit of their own. Second-factor failures count too. WebAuthn assertions are never
regulated: they cannot be guessed.

An attempt is *counted before it is checked* (``reserve``: one atomic upsert per key), so a
burst of parallel guesses cannot all slip past a check-then-record window: attempt number
four of a burst is refused before its code or password is even looked at. A success gives
the attempt back (``release``); a failure may turn the count into a lock (``record_failure``).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.errors import RateLimited
from authserver.store.repositories import lockouts


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

    def _limits(self, key: str) -> tuple[int, timedelta]:
        return (self.ip_limit, self.ip_window) if key.startswith("ip:") else (self.threshold, self.window)

    def _backoff(self, level: int) -> int:
        return self.backoff[min(level, len(self.backoff) - 1)]

    async def reserve(self, conn: AsyncConnection, keys: list[str], now: datetime) -> None:
        """Count this attempt against every key, atomically, or refuse it.

        Refused: a key that is locked, or one whose window already holds ``limit`` counted
        attempts (in flight or failed). The caller's transaction must commit for the count
        to stick; a refusal raised inside it rolls back its own count, as it checked nothing.
        """
        for key in keys:
            limit, window = self._limits(key)
            row = await lockouts.count_attempt(conn, key, now=now, window_start=now - window)
            if row.locked_until is not None and row.locked_until > now:
                raise RateLimited(math.ceil((row.locked_until - now).total_seconds()),
                                  log_detail=f"{key.split(':')[0]} locked until {row.locked_until.isoformat()}")
            if row.failures > limit:
                raise RateLimited(self._backoff(row.lock_level),
                                  log_detail=f"{key.split(':')[0]} over {limit} attempts in the window")

    async def check(self, conn: AsyncConnection, keys: list[str], now: datetime) -> None:
        """Refuse while any key is locked, without counting anything."""
        for row in (await lockouts.get_many(conn, keys)).values():
            if row.locked_until is not None and row.locked_until > now:
                raise RateLimited(math.ceil((row.locked_until - now).total_seconds()),
                                  log_detail=f"{row.key.split(':')[0]} locked until {row.locked_until.isoformat()}")

    async def record_failure(self, conn: AsyncConnection, keys: list[str], now: datetime) -> datetime | None:
        """The reserved attempt failed: lock each key whose count reached its limit, for
        longer each time (the level resets after a quiet spell of four windows)."""
        rows = await lockouts.get_many(conn, keys)
        locked: datetime | None = None
        for key, row in rows.items():
            limit, window = self._limits(key)
            if row.failures < limit:
                continue
            level = row.lock_level
            if row.locked_until is not None and now - row.locked_until > window * 4:
                level = 0
            until = now + timedelta(seconds=self._backoff(level))
            await lockouts.lock(conn, key, until=until, level=level + 1, now=now)
            locked = until
        return locked

    async def release(self, conn: AsyncConnection, *, account_keys: list[str], other_keys: list[str]) -> None:
        """The attempt succeeded: the account starts afresh; an address gets its one back."""
        await lockouts.release(conn, reset=account_keys, decrement=other_keys)
