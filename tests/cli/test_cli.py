"""The console script: first run on SQLite, migrate, create-admin, rotate-keys."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import PASSWORD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update({"AUTHSERVER_ARGON2_MEMORY_KIB": "8192", "AUTHSERVER_ARGON2_TIME_COST": "1",
                "AUTHSERVER_ARGON2_PARALLELISM": "1"})
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "authserver.cli", *args], cwd=cwd, env=clean_env(**env),
                          input=input, capture_output=True, text=True, timeout=120)


def test_first_run_serves_on_sqlite_with_no_setup(tmp_path):
    """README's first command: an empty directory, no configuration, and the server answers
    on SQLite with generated development keys and the static pages."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "authserver.cli", "serve", "--port", str(port)], cwd=tmp_path,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        ready = None
        while time.time() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert ready is not None and ready.status_code == 200, ready and ready.text
        assert ready.json()["migration"] == ready.json()["expected_migration"]
        page = httpx.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        spec = httpx.get(f"http://127.0.0.1:{port}/schema/openapi.json").json()
        assert "/api/v1/login/password" in spec["paths"]
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/accounts", json={"username": "first", "password": PASSWORD})
        assert r.status_code == 201, r.text
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert (tmp_path / "authserver.db").exists()
    keys = tmp_path / "authserver-keys"
    assert keys.exists() and oct(keys.stat().st_mode & 0o777) == "0o600"
    assert "generated a development key" in output
    assert PASSWORD not in output


def test_create_admin_reads_the_password_from_stdin(tmp_path):
    db = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    assert run_cli("migrate", cwd=tmp_path, AUTHSERVER_DATABASE_URL=db).returncode == 0
    r = run_cli("create-admin", "Root", "--email", "root@example.com", cwd=tmp_path, input=PASSWORD + "\n",
                AUTHSERVER_DATABASE_URL=db)
    assert r.returncode == 0, r.stderr
    assert "created admin root" in r.stdout
    assert PASSWORD not in r.stdout + r.stderr
    r = run_cli("create-admin", "Root", cwd=tmp_path, input=PASSWORD + "\n", AUTHSERVER_DATABASE_URL=db)
    assert r.returncode != 0


def test_bad_configuration_is_a_clear_error(tmp_path):
    r = run_cli("migrate", cwd=tmp_path, AUTHSERVER_ATTESTATION_POLICY="sometimes")
    assert r.returncode == 2
    assert "AUTHSERVER_ATTESTATION_POLICY" in r.stderr


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrations_match_the_models(kind, database_urls):
    """Every schema change is an Alembic revision: the migrated database has exactly the
    tables and columns the models declare."""
    import asyncio

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from authserver.store.db import null_pool_engine
    from authserver.store.models import Base

    url = database_urls[kind]
    if url is None:
        pytest.skip(f"PostgreSQL not reachable: {database_urls['pg_error']}")

    async def diff() -> list[object]:
        engine = null_pool_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []
