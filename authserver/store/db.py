"""Engine and transaction setup for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with foreign keys on. Its driver's implicit BEGIN is switched off
and we emit ``BEGIN IMMEDIATE`` for write transactions ourselves: a read-then-write
transaction then takes the write lock up front instead of deadlocking on a lock upgrade.
Read paths use autocommit so that a session check is one statement, not three.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

# aiosqlite logs every statement *with its parameters* at DEBUG; those parameters include
# texted codes on their way to the outbox. Never let it below INFO, whatever the root level.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


class Database:
    """The one handle on storage the rest of the server gets."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # hide_parameters: an error message must never carry a bound value (a hash, a code) into a log
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            if ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:"):
                raise ValueError("an in-memory SQLite database cannot be shared; use a file")
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
            kwargs["pool_pre_ping"] = False
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed on success and rolled back on an error —
        except an error that carries ``commit_transaction = True``: a refusal that must keep
        what it wrote (the flow that a 401 ``mfa_required`` hands to the client)."""
        async with self.engine.connect() as conn:
            await conn.begin()
            try:
                yield conn
            except BaseException as exc:
                if getattr(exc, "commit_transaction", False):
                    await conn.commit()
                else:
                    await conn.rollback()
                raise
            else:
                await conn.commit()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """Autocommit connection for single-statement reads on hot paths."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def null_pool_engine(url: str) -> AsyncEngine:
    """An engine without pooling, for one-shot work such as migrations in a CLI."""
    return create_async_engine(url, poolclass=NullPool, hide_parameters=True)
