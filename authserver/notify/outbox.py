"""The outbox: messages are written in the same transaction as the change they report, then
delivered by a background worker (at least once, with backoff; abandoned after 8 tries).
A delivered message keeps its subject but loses its body, which may hold a code;
housekeeping deletes delivered and abandoned messages after a week.

``drain()`` delivers everything due right now; tests and the CLI call it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.background import BackgroundTask
from authserver.clock import Clock
from authserver.notify.senders import Sender
from authserver.store.db import Database
from authserver.store.repositories import outbox as repo

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=60)


class Outbox:
    def __init__(self, db: Database, sender: Sender, clock: Clock, *, admin_alert_to: str | None = None) -> None:
        self.db = db
        self.sender = sender
        self.clock = clock
        self.admin_alert_to = admin_alert_to
        self._wake = asyncio.Event()
        self._worker = BackgroundTask("authserver-outbox", self._run)

    async def enqueue(self, conn: AsyncConnection, *, channel: str, to: str, subject: str, body: str) -> None:
        await repo.enqueue(conn, channel=channel, to=to, subject=subject, body=body, now=self.clock.now())
        self._wake.set()

    async def drain(self) -> int:
        """Deliver every due message; returns how many were sent."""
        sent = 0
        while True:
            now = self.clock.now()
            async with self.db.transaction() as conn:
                batch = await repo.claim_due(conn, now=now, limit=20, lease=LEASE)
            if not batch:
                return sent
            for message in batch:
                try:
                    await self.sender.send(message)
                except Exception as exc:  # any sender failure is retried later
                    retry = None if message.attempts >= MAX_ATTEMPTS else now + timedelta(seconds=2 ** message.attempts)
                    log.warning("delivery of %s failed (attempt %d): %s", message.id, message.attempts,
                                type(exc).__name__)
                    async with self.db.transaction() as conn:
                        await repo.mark_failed(conn, message.id, error=type(exc).__name__, retry_at=retry)
                    continue
                async with self.db.transaction() as conn:
                    await repo.mark_sent(conn, message.id, self.clock.now())
                sent += 1

    def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=2.0)
            self._wake.clear()
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox worker pass failed")
