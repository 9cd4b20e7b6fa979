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


def test_rotate_keys_generates_a_key_and_reseals_every_secret(tmp_path):
    """Without AUTHSERVER_SECRET_KEYS, `rotate-keys` puts a new key first in the key file and
    re-seals every sealed value under it; the old key stays listed until removed by hand."""
    import asyncio
    import uuid as uuid_mod
    from datetime import UTC, datetime

    from sqlalchemy import select

    from authserver.crypto import KeyRing, load_or_create_key_file
    from authserver.store.db import Database
    from authserver.store.models import Account, TotpSecret

    db_url = f"sqlite+aiosqlite:///{tmp_path}/r.db"
    keys_file = tmp_path / "authserver-keys"
    assert run_cli("migrate", cwd=tmp_path, AUTHSERVER_DATABASE_URL=db_url).returncode == 0
    old_ring = KeyRing(load_or_create_key_file(keys_file))
    account_id = uuid_mod.uuid4()

    async def seed() -> None:
        db = Database(db_url)
        now = datetime.now(UTC)
        async with db.transaction() as conn:
            await conn.execute(Account.__table__.insert().values(
                id=account_id, username="rot", display_name="rot", role="user", status="active",
                created_at=now, updated_at=now))
            await conn.execute(TotpSecret.__table__.insert().values(
                account_id=account_id, secret_sealed=old_ring.seal(b"S" * 20, aad=f"totp:{account_id}".encode()),
                algorithm="SHA1", digits=6, period=30, last_used_step=-1, created_at=now))
        await db.dispose()

    async def sealed() -> str:
        db = Database(db_url)
        async with db.read() as conn:
            value = await conn.scalar(select(TotpSecret.secret_sealed).where(TotpSecret.account_id == account_id))
        await db.dispose()
        return str(value)

    asyncio.run(seed())
    r = run_cli("rotate-keys", cwd=tmp_path, AUTHSERVER_DATABASE_URL=db_url, AUTHSERVER_KEYS_FILE=str(keys_file))
    assert r.returncode == 0, r.stderr
    assert "re-sealed 1 values" in r.stdout
    new_ring = KeyRing(load_or_create_key_file(keys_file))
    assert new_ring.kids[1:] == old_ring.kids and new_ring.current.kid != old_ring.current.kid
    value = asyncio.run(sealed())
    assert new_ring.sealed_kid(value) == new_ring.current.kid
    only_new = KeyRing([new_ring.current])
    assert only_new.open(value, aad=f"totp:{account_id}".encode()) == b"S" * 20


def test_mds_refresh_downloads_verifies_and_refuses_a_rollback(tmp_path):
    """`authserver mds-refresh` fetches the BLOB from AUTHSERVER_MDS_URL, verifies it against
    AUTHSERVER_MDS_ROOT_CERT, installs it, and refuses an older one with a one-line error."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from tests.support.mds import build_blob, make_entry, make_signer

    signer = make_signer()
    root = tmp_path / "mds-root.pem"
    root.write_bytes(signer.root.pem)
    served: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(served["blob"])

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"AUTHSERVER_MDS_URL": f"http://127.0.0.1:{server.server_address[1]}/blob",
           "AUTHSERVER_MDS_BLOB_PATH": str(tmp_path / "mds" / "blob.jwt"), "AUTHSERVER_MDS_ROOT_CERT": str(root)}
    try:
        served["blob"] = build_blob([make_entry("cb69481e-8ff7-4039-93ec-0a2729a154a8", "Test Key")], no=7,
                                    next_update="2099-01-01", signer=signer)
        r = run_cli("mds-refresh", cwd=tmp_path, **env)
        assert r.returncode == 0, r.stderr
        assert "no. 7" in r.stdout
        installed = served["blob"]
        assert (tmp_path / "mds" / "blob.jwt").read_bytes() == installed
        served["blob"] = build_blob([], no=6, next_update="2099-01-01", signer=signer)
        r = run_cli("mds-refresh", cwd=tmp_path, **env)
        assert r.returncode == 1 and "metadata refused" in r.stderr and "Traceback" not in r.stderr
        assert (tmp_path / "mds" / "blob.jwt").read_bytes() == installed
    finally:
        server.shutdown()
    r = run_cli("mds-refresh", cwd=tmp_path)
    assert r.returncode == 2 and "AUTHSERVER_MDS_URL" in r.stderr
