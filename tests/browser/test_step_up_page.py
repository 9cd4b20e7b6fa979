"""The account page's step-up prompt (RFC 9470): a sensitive call answered with 401
step_up_required opens the dialog; a fresh WebAuthn assertion on the *same* session lets
the page repeat the call. This module runs its own server with a 3 s step-up window so
that freshness runs out within the test."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer, VirtualAuthenticators
from tests.browser.helpers import (
    add_security_key,
    api_post,
    server_credentials,
    server_session,
    sign_up_with_password,
    uniq,
)

pytestmark = pytest.mark.browser

STEP_UP_WINDOW = 3
SERVER_ENV = {"AUTHSERVER_STEP_UP_WINDOW": str(STEP_UP_WINDOW)}


def test_removing_a_key_after_the_window_asks_for_a_fresh_factor_then_retries(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators) -> None:
    username = uniq("step")
    sign_up_with_password(page, live_server, username)
    authenticators.add("yubikey")
    add_security_key(page, nickname="Old key")
    before = server_session(page, live_server)
    time.sleep(STEP_UP_WINDOW + 0.3)

    rows = page.locator("[data-testid=credential-row]")
    # cancelling the prompt leaves everything as it was
    rows.first.locator("[data-testid=remove]").click()
    rows.first.locator("[data-testid=remove-confirm]").click()
    dialog = page.locator("#step-up")
    expect(dialog).to_be_visible()
    assert "webauthn" in (dialog.get_attribute("data-methods") or "").split()
    page.click("#step-up-cancel")
    expect(dialog).to_be_hidden()
    expect(rows).to_have_count(1)
    assert len(server_credentials(page, live_server)) == 1

    # stepping up with the key repeats the DELETE on the same session
    rows.first.locator("[data-testid=remove]").click()
    rows.first.locator("[data-testid=remove-confirm]").click()
    expect(dialog).to_be_visible()
    page.click("#step-up-webauthn")
    expect(dialog).to_be_hidden()
    expect(rows).to_have_count(0)
    assert server_credentials(page, live_server) == []
    after = server_session(page, live_server)
    assert after["session_id"] == before["session_id"]
    assert after["last_mfa_at"] and after["last_mfa_at"] != before["last_mfa_at"]
    assert after["aal"] >= 2
    assert "hwk" in after["amr"]


def test_adding_a_key_after_the_window_steps_up_with_an_authenticator_app_code(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators) -> None:
    username = uniq("step")
    sign_up_with_password(page, live_server, username)
    status, enrol = api_post(page, live_server, "/me/totp")
    assert status == 200, enrol
    totp = pyotp.TOTP(enrol["secret"])
    status, body = api_post(page, live_server, "/me/totp/confirm",
                            {"enrollment_token": enrol["enrollment_token"], "code": totp.now()})
    assert status == 201, body
    before = server_session(page, live_server)
    time.sleep(STEP_UP_WINDOW + 0.3)

    authenticators.add("yubikey")
    page.fill("#new-credential-nickname", "Desk key")
    page.click("#add-security-key")
    dialog = page.locator("#step-up")
    expect(dialog).to_be_visible()
    expect(page.locator("#step-up-totp-form")).to_be_visible()
    expect(page.locator("#step-up-webauthn")).to_be_hidden()  # no key enrolled yet
    # a wrong code keeps the dialog open with the reason
    page.fill("#step-up-totp-code", "000000" if totp.now() != "000000" else "111111")
    page.click("#step-up-totp-submit")
    expect(page.locator("#step-up-status")).to_contain_text("invalid_code")
    expect(dialog).to_be_visible()
    # the enrolment used its time step; the next one is within the ±1 window
    page.fill("#step-up-totp-code", totp.at(time.time() + 30))
    page.click("#step-up-totp-submit")
    expect(dialog).to_be_hidden()

    # the page repeated the call: the key is registered, on the same session
    rows = page.locator("[data-testid=credential-row]")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("[data-field=nickname]")).to_have_text("Desk key")
    assert [c["nickname"] for c in server_credentials(page, live_server)] == ["Desk key"]
    after = server_session(page, live_server)
    assert after["session_id"] == before["session_id"]
    assert after["last_mfa_at"] != before["last_mfa_at"]
    assert "otp" in after["amr"]
