"""The browser suite: the real server in a subprocess, Debian's Chromium driven by
playwright's sync API, and DevTools virtual authenticators (see /work/shared/TESTING.md).

One server and one browser per test module (a cold browser costs ~1 s); a new page, fresh
cookies and fresh virtual authenticators per test. A module may set ``SERVER_ENV`` (a dict
of ``AUTHSERVER_*`` overrides) to run its own server with other policy numbers.

Without /usr/bin/chromium the suite is skipped, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SERVER_START_TIMEOUT = 30.0

# DevTools WebAuthn.addVirtualAuthenticator options, by the kind of device they imitate.
AUTHENTICATORS: dict[str, dict[str, Any]] = {
    # a device-bound platform passkey (BE=0): Windows Hello / a TPM
    "platform": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                 "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True,
                 "defaultBackupEligibility": False, "defaultBackupState": False},
    # a synced passkey (BE=1, BS=1): iCloud Keychain / Google Password Manager
    "synced": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
               "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True,
               "defaultBackupEligibility": True, "defaultBackupState": True},
    # a YubiKey without a PIN: no resident keys, no user verification
    "yubikey": {"protocol": "ctap2", "transport": "usb", "hasResidentKey": False,
                "hasUserVerification": False, "automaticPresenceSimulation": True},
    # a legacy CTAP1/U2F key: fido-u2f attestation, all-zero AAGUID
    "u2f": {"protocol": "u2f", "transport": "usb", "hasResidentKey": False,
            "hasUserVerification": False, "automaticPresenceSimulation": True},
}


# ---- the server -----------------------------------------------------------------------------

@dataclass
class LiveServer:
    base_url: str
    outbox: Path
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server_env(tmp: Path, port: int, overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update({
        "AUTHSERVER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'b.db'}",
        "AUTHSERVER_ORIGINS": f"http://localhost:{port}",
        "AUTHSERVER_RP_ID": "localhost",
        "AUTHSERVER_SECRET_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "AUTHSERVER_OUTBOX_FILE": str(tmp / "outbox.jsonl"),
        "AUTHSERVER_KEYS_FILE": str(tmp / "keys"),
        "AUTHSERVER_ARGON2_MEMORY_KIB": "8192",
        "AUTHSERVER_ARGON2_TIME_COST": "1",
        "AUTHSERVER_ARGON2_PARALLELISM": "1",
        "AUTHSERVER_LOG_LEVEL": "INFO",
    })
    env.update(overrides)
    return env


@pytest.fixture(scope="module")
def server_process(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Spawn `authserver serve` on a free port with its own SQLite file and outbox, without
    waiting for it: the browser starts meanwhile (see ``browser_context``)."""
    tmp = tmp_path_factory.mktemp("browser-server")
    port = _free_port()
    env = _server_env(tmp, port, dict(getattr(request.module, "SERVER_ENV", {})))
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "authserver.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield LiveServer(base_url=f"http://localhost:{port}", outbox=tmp / "outbox.jsonl", log=log_path,
                         process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def live_server(server_process: LiveServer) -> LiveServer:
    """The module's server, once it answers GET /health."""
    server, process = server_process, server_process.process
    health = server.base_url.replace("localhost", "127.0.0.1") + "/health"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"authserver serve exited with {process.returncode}:\n{server.log_tail()}", pytrace=False)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(health, timeout=1.0).status_code == 200:
                return server
        if time.monotonic() > deadline:
            pytest.fail(f"authserver did not answer /health within {SERVER_START_TIMEOUT:.0f} s:\n"
                        f"{server.log_tail()}", pytrace=False)
        time.sleep(0.05)


# ---- the browser ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium_executable() -> str:
    if not Path(CHROMIUM).is_file():
        reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser suite is required when CI=true, but {reason}", pytrace=False)
        print(f"skipping the browser suite: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser_context(chromium_executable: str, server_process: LiveServer,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One persistent Chromium context per module (never `playwright install`: Debian's binary).
    Asks for ``server_process`` only so that the server boots while Chromium starts."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield context
        finally:
            context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can tell a failed test at teardown."""
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def page(request: pytest.FixtureRequest, browser_context: Any, live_server: LiveServer) -> Iterator[Any]:
    """A new tab with no cookies. Uncaught script errors fail the test; a failure prints
    the browser console and the server log."""
    browser_context.clear_cookies()
    tab = browser_context.new_page()
    tab.set_default_timeout(10_000)
    tab.set_default_navigation_timeout(10_000)
    console: list[str] = []
    uncaught: list[str] = []
    tab.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    tab.on("pageerror", lambda exc: uncaught.append(str(exc)))
    yield tab
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        print("---- browser console ----\n" + "\n".join(console[-40:]))
        print("---- server log ----\n" + live_server.log_tail())
    tab.close()
    if uncaught and not failed:
        pytest.fail("uncaught errors in the page: " + "; ".join(uncaught), pytrace=False)


class VirtualAuthenticators:
    """DevTools virtual authenticators attached to one tab (they follow its navigations)."""

    def __init__(self, tab: Any) -> None:
        self.cdp = tab.context.new_cdp_session(tab)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.ids: list[str] = []

    def add(self, kind: str, **overrides: Any) -> str:
        options = {**AUTHENTICATORS[kind], **overrides}
        authenticator_id: str = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})[
            "authenticatorId"]
        self.ids.append(authenticator_id)
        return authenticator_id

    def remove(self, authenticator_id: str) -> None:
        self.cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator_id})
        self.ids.remove(authenticator_id)

    def replace(self, kind: str, **overrides: Any) -> str:
        """Detach every authenticator, then attach one of ``kind`` (so the browser has one choice)."""
        for authenticator_id in list(self.ids):
            self.remove(authenticator_id)
        return self.add(kind, **overrides)

    def credentials(self, authenticator_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.cdp.send("WebAuthn.getCredentials",
                                                    {"authenticatorId": authenticator_id})["credentials"]
        return found

    def close(self) -> None:
        with contextlib.suppress(Exception):
            for authenticator_id in list(self.ids):
                self.remove(authenticator_id)
            self.cdp.send("WebAuthn.disable")
            self.cdp.detach()


@pytest.fixture
def authenticators(page: Any) -> Iterator[VirtualAuthenticators]:
    """Add virtual authenticators to this test's tab: ``authenticators.add("platform")``."""
    virtual = VirtualAuthenticators(page)
    yield virtual
    virtual.close()


# Wraps navigator.credentials.get/create in every document of the tab and reports each call
# (mediation, allowCredentials, residentKey, ...) to Python, across navigations.
_RECORD_WEBAUTHN = """
(() => {
  const container = navigator.credentials;
  if (!container || container.__recorded) return;
  container.__recorded = true;
  const get = container.get.bind(container);
  const create = container.create.bind(container);
  const report = (call) => { try { window.__recordWebAuthn(call); } catch (e) { /* not bound yet */ } };
  container.get = (options) => {
    const pk = (options && options.publicKey) || {};
    report({ op: "get", page: location.pathname, mediation: (options && options.mediation) || null,
             allow: (pk.allowCredentials || []).length, userVerification: pk.userVerification || null });
    return get(options);
  };
  container.create = (options) => {
    const pk = (options && options.publicKey) || {};
    const sel = pk.authenticatorSelection || {};
    report({ op: "create", page: location.pathname, residentKey: sel.residentKey || null,
             userVerification: sel.userVerification || null, exclude: (pk.excludeCredentials || []).length });
    return create(options);
  };
})();
"""


@pytest.fixture
def webauthn_calls(page: Any) -> list[dict[str, Any]]:
    """Every navigator.credentials.get()/create() the pages make in this tab, in order."""
    calls: list[dict[str, Any]] = []

    def record(call: dict[str, Any]) -> None:
        calls.append(call)

    page.expose_function("__recordWebAuthn", record)
    page.add_init_script(_RECORD_WEBAUTHN)
    return calls
