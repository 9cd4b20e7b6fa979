"""Steps the browser tests share: they drive the pages as a user would and read the
server's own view of the session through the tab's cookies (``page.request``)."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer

PASSWORD = "correct horse battery staple"


def uniq(prefix: str = "user") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def api_get(page: Page, server: LiveServer, path: str) -> tuple[int, Any]:
    """GET an API route with the tab's cookies (the HttpOnly session cookie included)."""
    response = page.request.get(server.url("/api/v1" + path))
    body = response.json() if "json" in response.headers.get("content-type", "") else None
    return response.status, body


def server_session(page: Page, server: LiveServer) -> dict[str, Any]:
    status, body = api_get(page, server, "/session")
    assert status == 200, (status, body)
    assert isinstance(body, dict)
    return body


def server_credentials(page: Page, server: LiveServer) -> list[dict[str, Any]]:
    status, body = api_get(page, server, "/me/credentials")
    assert status == 200, (status, body)
    webauthn: list[dict[str, Any]] = body["webauthn"]
    return webauthn


def expect_account_page(page: Page, server: LiveServer, username: str) -> None:
    """Landed on account.html, signed in as ``username``, with everything loaded."""
    expect(page).to_have_url(server.url("/account.html"))
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator("#session-username")).to_have_text(username)


def sign_up_with_passkey(page: Page, server: LiveServer, username: str) -> None:
    page.goto(server.url("/register.html"))
    page.fill("#reg-username", username)
    page.fill("#reg-display-name", f"Tester {username}")
    page.click("#passkey-register")
    expect_account_page(page, server, username)


def sign_up_with_password(page: Page, server: LiveServer, username: str, password: str = PASSWORD) -> None:
    page.goto(server.url("/register.html"))
    page.fill("#pw-username", username)
    page.fill("#pw-password", password)
    page.click("#password-register")
    expect_account_page(page, server, username)


def sign_out(page: Page, server: LiveServer) -> None:
    page.click("#logout")
    expect(page.locator("[data-testid=signed-out]")).to_be_visible()
    status, body = api_get(page, server, "/session")
    assert status == 401, (status, body)


def open_sign_in(page: Page, server: LiveServer) -> None:
    """The sign-in page without conditional UI: nothing happens until the test acts."""
    page.goto(server.url("/?noconditional"))
    expect(page.locator("body")).to_have_attribute("data-conditional", "disabled")


def password_sign_in_to_mfa(page: Page, server: LiveServer, username: str, password: str = PASSWORD) -> None:
    open_sign_in(page, server)
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    expect(page.locator("#mfa")).to_be_visible()


def add_security_key(page: Page, nickname: str | None = None) -> None:
    before = page.locator("[data-testid=credential-row]").count()
    if nickname:
        page.fill("#new-credential-nickname", nickname)
    page.click("#add-security-key")
    expect(page.locator("#status")).to_have_attribute("data-kind", "success")
    expect(page.locator("[data-testid=credential-row]")).to_have_count(before + 1)


def amr_of(page: Page) -> set[str]:
    return set((page.locator("#session-amr").get_attribute("data-amr") or "").split())


def status_text(page: Page) -> str:
    return re.sub(r"\s+", " ", page.locator("#status").inner_text())


def api_post(page: Page, server: LiveServer, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """POST JSON to an API route with the tab's cookies."""
    response = page.request.post(server.url("/api/v1" + path), data=body if body is not None else {})
    payload = response.json() if "json" in response.headers.get("content-type", "") else None
    return response.status, payload


def outbox_messages(server: LiveServer, *, channel: str, to: str) -> list[dict[str, Any]]:
    if not server.outbox.exists():
        return []
    messages = [json.loads(line) for line in server.outbox.read_text().splitlines() if line.strip()]
    return [m for m in messages if m.get("channel") == channel and m.get("to") == to]


def wait_for_sms_code(server: LiveServer, phone: str, *, after: int, timeout: float = 5.0) -> str:
    """The code in the first text to ``phone`` beyond the ``after`` already delivered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = outbox_messages(server, channel="sms", to=phone)
        if len(texts) > after:
            found = re.search(r"\b(\d{4,8})\b", texts[after]["body"])
            assert found, texts[after]
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no text to {phone} in {server.outbox} within {timeout} s")
