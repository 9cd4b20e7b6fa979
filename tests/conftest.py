"""Shared fixtures: real SQLite and real PostgreSQL databases built by ``alembic upgrade head``,
an app per test with a movable clock, and HTTP clients.

Every API test runs twice, once per database (the ``db_url`` fixture is parametrized). With
``CI=true`` PostgreSQL is required: if it does not answer, the run fails instead of skipping.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from authserver.app import create_app
from authserver.clock import MovableClock
from authserver.settings import Settings
from authserver.store.migrate import upgrade
from authserver.wiring import Services, build_services

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TEST_KEYS = "k1:" + base64.b64encode(b"\x01" * 32).decode()


def _pg_base_url() -> str:
    return os.environ.get("AUTHSERVER_TEST_DATABASE_URL", DEFAULT_PG)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_exec(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_available(url: str) -> str | None:
    try:
        asyncio.run(_pg_exec(url, "SELECT 1"))
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str | None]]:
    """One SQLite file and one fresh PostgreSQL database for the whole run, each migrated
    from empty with Alembic; the PostgreSQL one is dropped at the end."""
    sqlite_path = tmp_path_factory.mktemp("sqlite") / "authserver-test.db"
    sqlite_url = f"sqlite+aiosqlite:///{sqlite_path}"
    upgrade(sqlite_url)
    urls: dict[str, str | None] = {"sqlite": sqlite_url, "postgresql": None, "pg_error": None}
    base = _pg_base_url()
    problem = _pg_available(base)
    created = None
    if problem is None:
        name = "authserver_test_" + secrets.token_hex(4)
        asyncio.run(_pg_exec(base, f'CREATE DATABASE "{name}"'))
        created = name
        pg_url = base.rsplit("/", 1)[0] + "/" + name
        upgrade(pg_url)
        urls["postgresql"] = pg_url
    elif os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required when CI=true but {base} does not answer: {problem}", pytrace=False)
    else:
        urls["pg_error"] = problem
    yield urls
    if created:
        asyncio.run(_pg_exec(base, f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, database_urls: dict[str, str | None]) -> str:
    url = database_urls[request.param]
    if url is None:
        pytest.skip(f"PostgreSQL not reachable ({database_urls['pg_error']}); set CI=true to make this fatal")
    return url


@pytest.fixture
def pg_url(database_urls: dict[str, str | None]) -> str:
    url = database_urls["postgresql"]
    if url is None:
        pytest.skip(f"PostgreSQL not reachable ({database_urls['pg_error']}); set CI=true to make this fatal")
    return url


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def outbox_file(tmp_path: Path) -> Path:
    return tmp_path / "outbox.jsonl"


def make_settings(db_url: str, outbox_file: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url, "secret_keys": TEST_KEYS, "outbox_file": str(outbox_file),
        "argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1,
        "database_pool_size": 5,
    }
    values.update(overrides)
    return Settings.load(env={}, **values)


@pytest.fixture
def settings(db_url: str, outbox_file: Path) -> Settings:
    return make_settings(db_url, outbox_file)


def random_loopback() -> str:
    return f"127.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"


class AppClient(httpx.AsyncClient):
    """An httpx client bound to one in-process app, in the test's own event loop (so the
    app's database pool and the test share a loop; the outbox worker is not started —
    tests deliver with ``services_of(client).ctx.outbox.drain()``)."""

    def __init__(self, app: Litestar, *, peer: str = "127.0.0.1") -> None:
        super().__init__(transport=httpx.ASGITransport(app=app, client=(peer, 40000)),
                         base_url="http://localhost:8000")
        self.app = app


AppFactory = Callable[..., Awaitable[AppClient]]


@asynccontextmanager
async def _client_factory(default_url: str, outbox_file: Path, clock: MovableClock) -> AsyncIterator[AppFactory]:
    opened: list[AppClient] = []
    # Each test speaks from an address of its own, so per-address attempt counters (kept in
    # the database the whole run shares) never leak from one test into another.
    own_peer = random_loopback()

    async def factory(*, clock_: MovableClock | None = None, url: str | None = None, peer: str | None = None,
                      **overrides: Any) -> AppClient:
        s = make_settings(url or default_url, outbox_file, **overrides)
        services = build_services(s, clock=clock_ or clock)
        client = AppClient(create_app(s, services=services), peer=peer or own_peer)
        opened.append(client)
        return client

    try:
        yield factory
    finally:
        for client in reversed(opened):
            await client.aclose()
            await services_of(client).ctx.db.dispose()


@pytest.fixture
async def make_client(db_url: str, outbox_file: Path, clock: MovableClock) -> AsyncIterator[AppFactory]:
    """Build an app (optionally with setting overrides, another clock or database) and its
    client. Two calls give two independent "replicas" on the same database."""
    async with _client_factory(db_url, outbox_file, clock) as factory:
        yield factory


@pytest.fixture
async def make_pg_client(pg_url: str, outbox_file: Path, clock: MovableClock) -> AsyncIterator[AppFactory]:
    """Like ``make_client`` but always on PostgreSQL, for tests that run once (replicas)."""
    async with _client_factory(pg_url, outbox_file, clock) as factory:
        yield factory


@pytest.fixture
async def client(make_client: AppFactory) -> AppClient:
    return await make_client()


def services_of(client: httpx.AsyncClient) -> Services:
    services: Services = client.app.state.services
    return services
