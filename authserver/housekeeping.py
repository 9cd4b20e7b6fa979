"""Background clean-up of rows that can no longer be used: expired flows (with their
challenges and pending enrolments), spent one-time codes, long-dead sessions, outbox
messages delivered or given up on a week ago. Runs in every replica; the deletes are
idempotent, so running twice is harmless."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from authserver.background import BackgroundTask
from authserver.clock import Clock
from authserver.store.db import Database
from authserver.store.repositories import cleanup

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 600
KEEP_DEAD_SESSIONS = timedelta(days=30)
KEEP_FINISHED_MESSAGES = timedelta(days=7)


class Housekeeper:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._task = BackgroundTask("authserver-housekeeping", self._loop)

    async def run_once(self) -> dict[str, int]:
        now = self.clock.now()
        async with self.db.transaction() as conn:
            return await cleanup.delete_dead_rows(conn, now=now, keep_sessions=KEEP_DEAD_SESSIONS,
                                                  keep_messages=KEEP_FINISHED_MESSAGES)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_SECONDS)
            try:
                removed = await self.run_once()
                if any(removed.values()):
                    log.info("housekeeping removed %s", removed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping pass failed")
