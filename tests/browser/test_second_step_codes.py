"""The sign-in page's code-based second steps (authenticator app, recovery code, SMS) for a
password account whose factors were enrolled through the API."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer
from tests.browser.helpers import (
    api_post,
    expect_account_page,
    outbox_messages,
    password_sign_in_to_mfa,
    server_session,
    sign_out,
    sign_up_with_password,
    uniq,
    wait_for_sms_code,
)

pytestmark = pytest.mark.browser

PHONE = "+14155550123"  # 555-0100..0199: reserved for fiction, never a real subscriber


def test_totp_and_recovery_code_second_steps(page: Page, live_server: LiveServer) -> None:
    username = uniq("otp")
    sign_up_with_password(page, live_server, username)
    status, enrol = api_post(page, live_server, "/me/totp")
    assert status == 200, enrol
    totp = pyotp.TOTP(enrol["secret"])
    status, body = api_post(page, live_server, "/me/totp/confirm",
                            {"enrollment_token": enrol["enrollment_token"], "code": totp.now()})
    assert status == 201, body
    status, body = api_post(page, live_server, "/me/recovery-codes")
    assert status == 201, body
    recovery_codes = body["codes"]
    sign_out(page, live_server)

    password_sign_in_to_mfa(page, live_server, username)
    methods = set((page.locator("#mfa").get_attribute("data-methods") or "").split())
    assert {"totp", "recovery_code"} <= methods and "webauthn" not in methods
    expect(page.locator("#mfa-webauthn")).to_be_hidden()
    expect(page.locator("#mfa-recovery-form")).to_be_visible()
    # a wrong code keeps the user on the second step with the server's reason
    page.fill("#mfa-totp-code", "000000" if totp.now() != "000000" else "111111")
    page.click("#mfa-totp-submit")
    expect(page.locator("#status [data-testid=status-code]")).to_have_text("invalid_code")
    expect(page.locator("#mfa")).to_be_visible()
    # the enrolment used this time step; the next one is within the ±1 window
    page.fill("#mfa-totp-code", totp.at(time.time() + 30))
    page.click("#mfa-totp-submit")
    expect_account_page(page, live_server, username)
    session = server_session(page, live_server)
    assert session["aal"] == 2
    assert {"pwd", "otp"} <= set(session["amr"])
    expect(page.locator("#factor-totp time")).to_have_count(1)
    expect(page.locator("#factor-recovery")).to_have_text(f"{len(recovery_codes)} left")

    sign_out(page, live_server)
    password_sign_in_to_mfa(page, live_server, username)
    page.fill("#mfa-recovery-code", recovery_codes[0])
    page.click("#mfa-recovery-submit")
    expect_account_page(page, live_server, username)
    left = len(recovery_codes) - 1
    expect(page.locator("#status")).to_contain_text(f"You have {left} recovery codes left")
    expect(page.locator("#factor-recovery")).to_have_text(f"{left} left")
    session = server_session(page, live_server)
    assert session["aal"] == 2
    assert {"pwd", "rc"} <= set(session["amr"])


def test_sms_second_step(page: Page, live_server: LiveServer) -> None:
    username = uniq("sms")
    sign_up_with_password(page, live_server, username)
    before = len(outbox_messages(live_server, channel="sms", to=PHONE))
    status, body = api_post(page, live_server, "/me/phones", {"phone": PHONE})
    assert status == 202, body
    code = wait_for_sms_code(live_server, PHONE, after=before)
    status, body = api_post(page, live_server, "/me/phones/verify", {"phone": PHONE, "code": code})
    assert status == 200, body
    sign_out(page, live_server)

    password_sign_in_to_mfa(page, live_server, username)
    expect(page.locator("#mfa-sms-form")).to_be_hidden()
    page.click("#mfa-sms-send")
    expect(page.locator("#mfa-sms-form")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("•")  # the masked number, never the whole one
    assert PHONE not in page.locator("#status").inner_text()
    page.fill("#mfa-sms-code", wait_for_sms_code(live_server, PHONE, after=before + 1))
    page.click("#mfa-sms-submit")
    expect_account_page(page, live_server, username)
    session = server_session(page, live_server)
    assert session["aal"] == 2
    assert {"pwd", "sms"} <= set(session["amr"])
    expect(page.locator("#factor-phones")).to_contain_text("23")
