"""DESIGN §5 new-country check on the sign-in page: a password account with an email address
and no second factor, signing in from a second country, confirms the sign-in with a code sent
by email. The country comes from ``X-Country-Code``, honoured only from a trusted proxy, so
this module's server trusts loopback (where Chromium connects from)."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer
from tests.browser.helpers import (
    PASSWORD,
    api_get,
    expect_account_page,
    open_sign_in,
    outbox_messages,
    password_sign_in_to_mfa,
    server_session,
    sign_out,
    uniq,
)

pytestmark = pytest.mark.browser

SERVER_ENV = {"AUTHSERVER_TRUSTED_PROXIES": "127.0.0.1/32,::1/128"}

CODE_SUBJECT = "Your sign-in code"


def sign_in_codes(server: LiveServer, email: str) -> list[str]:
    """The codes of every sign-in code email to ``email`` so far, in order."""
    codes = []
    for message in outbox_messages(server, channel="email", to=email):
        if message.get("subject") != CODE_SUBJECT:
            continue
        found = re.search(r"\b(\d{6})\b", message["body"])
        assert found, message
        codes.append(found.group(1))
    return codes


def wait_for_email_code(server: LiveServer, email: str, *, after: int, timeout: float = 5.0) -> str:
    """The code in the first sign-in code email to ``email`` beyond the ``after`` already sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        codes = sign_in_codes(server, email)
        if len(codes) > after:
            return codes[after]
        time.sleep(0.05)
    raise AssertionError(f"no sign-in code email to {email} in {server.outbox} within {timeout} s")


def password_sign_in(page: Page, server: LiveServer, username: str) -> None:
    open_sign_in(page, server)
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")


def test_sign_in_from_a_new_country_asks_for_an_email_code(page: Page, live_server: LiveServer) -> None:
    username = uniq("geo")
    email = f"{username}@example.com"
    # sign up through the API, outside the tab: no cookie and no country from the sign-up
    response = httpx.post(live_server.url("/api/v1/accounts"),
                          json={"username": username, "password": PASSWORD, "email": email}, timeout=10)
    assert response.status_code == 201, response.text

    # the first country an account is seen from is not "new"
    page.set_extra_http_headers({"X-Country-Code": "DE"})
    password_sign_in(page, live_server, username)
    expect_account_page(page, live_server, username)
    sign_out(page, live_server)

    # another country: the page offers the email code, and only that
    page.set_extra_http_headers({"X-Country-Code": "FR"})
    password_sign_in_to_mfa(page, live_server, username)
    expect(page.locator("#mfa")).to_have_attribute("data-methods", "email")
    expect(page.locator("#mfa-email-choice")).to_be_visible()
    for other in ("#mfa-webauthn-choice", "#mfa-totp-form", "#mfa-sms-choice", "#mfa-recovery-form"):
        expect(page.locator(other)).to_be_hidden()
    expect(page.locator("#mfa-email-form")).to_be_hidden()
    sent_before = len(sign_in_codes(live_server, email))

    page.click("#mfa-email-send")
    expect(page.locator("#mfa-email-form")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("•")  # the masked address, never the whole one
    assert email not in page.locator("#status").inner_text()
    code = wait_for_email_code(live_server, email, after=sent_before)

    # a wrong code keeps the user on the email step with the server's reason
    page.fill("#mfa-email-code", "000000" if code != "000000" else "111111")
    page.click("#mfa-email-submit")
    expect(page.locator("#status [data-testid=status-code]")).to_have_text("invalid_code")
    expect(page.locator("#mfa")).to_be_visible()
    expect(page.locator("#mfa-email-form")).to_be_visible()

    page.fill("#mfa-email-code", code)
    page.click("#mfa-email-submit")
    expect_account_page(page, live_server, username)
    # the email code lets the sign-in through but is no authenticator: still AAL1, password only
    session = server_session(page, live_server)
    assert session["aal"] == 1
    assert session["amr"] == ["pwd"]
    status, body = api_get(page, live_server, "/me/events")
    assert status == 200, body
    new_country = [e for e in body["events"] if e["type"] == "new_country"]
    assert len(new_country) == 1, body["events"]
    assert new_country[0]["details"] == {"country": "FR", "verification": ["email"]}
    sign_out(page, live_server)

    # France is known now: the next sign-in from there goes straight through, with no new email
    password_sign_in(page, live_server, username)
    expect_account_page(page, live_server, username)
    expect(page.locator("#mfa")).to_have_count(0)
    assert server_session(page, live_server)["aal"] == 1
    assert len(sign_in_codes(live_server, email)) == sent_before + 1
