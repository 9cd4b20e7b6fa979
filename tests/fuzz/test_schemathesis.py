"""OpenAPI-driven fuzzing (schemathesis, DESIGN §9): requests generated from our own spec
for every operation, sent to a real server process, checked for server errors and for
refusals that are not problem+json.

A short, fixed (derandomized) budget per operation keeps CI fast and repeatable; the
hand-written battery in tests/api/test_bad_input.py covers the classic bad inputs."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update({
        "AUTHSERVER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/fuzz.db",
        "AUTHSERVER_SECRET_KEYS": "k1:" + base64.b64encode(b"\x03" * 32).decode(),
        "AUTHSERVER_OUTBOX_FILE": str(tmp / "outbox.jsonl"), "AUTHSERVER_ORIGINS": f"http://localhost:{port}",
        "AUTHSERVER_ARGON2_TIME_COST": "1", "AUTHSERVER_ARGON2_MEMORY_KIB": "8192",
        "AUTHSERVER_ARGON2_PARALLELISM": "1", "AUTHSERVER_LOG_LEVEL": "WARNING",
    })
    proc = subprocess.Popen([sys.executable, "-m", "authserver.cli", "serve", "--port", str(port)], cwd=tmp,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the fuzz server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def session_token(server: str) -> str:
    httpx.post(server + "/api/v1/accounts", json={"username": "fuzzer", "password": "fuzz password 1"})
    r = httpx.post(server + "/api/v1/login/password", json={"username": "fuzzer", "password": "fuzz password 1"},
                   headers={"X-Device-Id": "fuzz"})
    token: str = r.json()["session"]["token"]
    return token


def test_generated_requests_never_get_a_server_error(server: str, session_token: str) -> None:
    schema = schemathesis.openapi.from_url(server + "/schema/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "DELETE" and operation.path in {"/api/v1/me", "/api/v1/session"}:
            continue  # would end the shared session mid-run; the API suite covers both
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
                  database=None)
        def run(case) -> None:  # type: ignore[no-untyped-def]
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {session_token}",
                            "X-Device-Id": "fuzz"}
            response = case.call(base_url=server)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")
            elif response.status_code >= 400 and not "".join(response.headers.get("content-type", [])).startswith(
                    "application/problem+json"):
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} not problem+json")

        run()
    assert operations > 30
    assert not failures, "\n".join(failures[:20])
