"""Hand-run benchmark: password login and session checks, in process, on SQLite or PostgreSQL.

    .venv/bin/python tests/bench/bench_login.py [--pg] [--n 300] [--concurrency 8]

Prints requests per second and latency percentiles for ``POST /login/password`` (Argon2id
at the production parameters unless --cheap) and ``GET /session``, plus the SQL statements
each issues. Never run in CI: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from authserver.app import create_app
from authserver.settings import Settings
from authserver.store.migrate import upgrade
from authserver.wiring import build_services

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def timed(n: int, concurrency: int, call) -> list[float]:
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            t = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t)

    await asyncio.gather(*(one(i) for i in range(n)))
    return latencies


def report(name: str, latencies: list[float], wall: float, statements: float) -> None:
    q = statistics.quantiles(latencies, n=100)
    print(f"{name:22s} {len(latencies) / wall:8.1f} req/s   p50 {q[49] * 1000:7.2f} ms   "
          f"p95 {q[94] * 1000:7.2f} ms   {statements:.1f} statements/request")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", action="store_true")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cheap", action="store_true", help="cheap Argon2 parameters (measure the rest)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    dbname = None
    if args.pg:
        dbname = "authserver_bench_" + uuid.uuid4().hex[:6]
        conn = await asyncpg.connect(PG.replace("+asyncpg", ""))
        await conn.execute(f'CREATE DATABASE "{dbname}"')
        await conn.close()
        url = PG.rsplit("/", 1)[0] + "/" + dbname
    else:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    await asyncio.to_thread(upgrade, url)
    overrides = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1} if args.cheap else {}
    settings = Settings.load(env={}, database_url=url, outbox_file=str(tmp / "outbox.jsonl"),
                             secret_keys="k1:" + base64.b64encode(b"\x02" * 32).decode(), **overrides)
    services = build_services(settings)
    app = create_app(settings, services=services)
    statements = 0

    def count(*_a: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(services.ctx.db.engine.sync_engine, "before_cursor_execute", count)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost:8000") as client:
        users = [f"bench{i}" for i in range(args.concurrency)]
        tokens = []
        for name in users:
            r = await client.post("/api/v1/accounts", json={"username": name, "password": "bench password 1"},
                                  headers={"X-Device-Id": "bench"})
            tokens.append(r.json()["session"]["token"])

        async def do_login(i: int) -> None:
            r = await client.post("/api/v1/login/password", headers={"X-Device-Id": "bench"},
                                  json={"username": users[i % len(users)], "password": "bench password 1"})
            assert r.status_code == 200, r.text

        async def do_session(i: int) -> None:
            r = await client.get("/api/v1/session", headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"})
            assert r.status_code == 200

        for name, call, n in (("POST /login/password", do_login, max(20, args.n // 5)),
                              ("GET /session", do_session, args.n * 5)):
            statements = 0
            t = time.perf_counter()
            lat = await timed(n, args.concurrency, call)
            report(name, lat, time.perf_counter() - t, statements / n)
    await services.ctx.db.dispose()
    if dbname:
        conn = await asyncpg.connect(PG.replace("+asyncpg", ""))
        await conn.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
