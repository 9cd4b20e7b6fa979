"""Alembic, driven from Python: ``authserver migrate``, first-run auto-migration and the
``/ready`` check that the database is at head."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.store.db import null_pool_engine


def migrations_dir() -> Path:
    """Installed wheels carry ``authserver/migrations``; a source checkout has ``migrations/``."""
    pkg = Path(__file__).resolve().parent.parent
    for candidate in (pkg / "migrations", pkg.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("the migrations directory is missing from this installation")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["database_url"] = url
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; merge them")
    return heads[0]


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking; run it outside an event loop (CLI, test set-up)."""
    command.upgrade(alembic_config(url), revision)


async def current_revision(conn: AsyncConnection) -> str | None:
    def _read(sync_conn: object) -> str | None:
        return MigrationContext.configure(sync_conn).get_current_revision()  # type: ignore[arg-type]

    return await conn.run_sync(_read)


async def database_revision(url: str) -> str | None:
    engine = null_pool_engine(url)
    try:
        async with engine.connect() as conn:
            return await current_revision(conn)
    finally:
        await engine.dispose()


def is_empty_or_behind(url: str) -> bool:
    return asyncio.run(database_revision(url)) != head_revision()
