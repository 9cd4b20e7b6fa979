"""Passkeys and security keys through the real pages, the real server and Chromium's
virtual authenticators: sign-up, sign-in (button, autofill, second step), and managing
credentials. Each test checks the page and the server's view of the session."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer, VirtualAuthenticators
from tests.browser.helpers import (
    add_security_key,
    amr_of,
    api_get,
    expect_account_page,
    open_sign_in,
    password_sign_in_to_mfa,
    server_credentials,
    server_session,
    sign_out,
    sign_up_with_passkey,
    sign_up_with_password,
    uniq,
)

pytestmark = pytest.mark.browser

U2F_AAGUID = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(("kind", "aal", "key_amr"), [("platform", 3, "hwk"), ("synced", 2, "swk")])
def test_passkey_sign_up_lands_signed_in_with_the_aal_of_the_passkey(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators,
        webauthn_calls: list[dict[str, Any]], kind: str, aal: int, key_amr: str) -> None:
    authenticator = authenticators.add(kind)
    username = uniq("pk")

    sign_up_with_passkey(page, live_server, username)

    [create] = [c for c in webauthn_calls if c["op"] == "create"]
    assert (create["page"], create["residentKey"]) == ("/register.html", "required")

    # the page shows what the server says
    expect(page.locator("#session-aal")).to_have_text(str(aal))
    assert {key_amr, "user"} <= amr_of(page)
    session = server_session(page, live_server)
    assert session["account"]["username"] == username
    assert session["account"]["has_password"] is False
    assert session["aal"] == aal
    assert {key_amr, "user"} <= set(session["amr"])
    other_key_amr = "swk" if key_amr == "hwk" else "hwk"
    assert other_key_amr not in session["amr"]
    # a passkey is a discoverable (resident) credential on the authenticator
    stored = authenticators.credentials(authenticator)
    assert len(stored) == 1 and stored[0]["isResidentCredential"] is True
    rows = page.locator("[data-testid=credential-row]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-kind", "passkey")
    expect(rows.first.locator("[data-field=kind]")).to_have_text("Passkey")
    if kind == "synced":
        assert server_credentials(page, live_server)[0]["backup_state"] is True


def test_passkey_sign_in_is_usernameless_after_logging_out(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators,
        webauthn_calls: list[dict[str, Any]]) -> None:
    authenticators.add("platform")
    username = uniq("pk")
    sign_up_with_passkey(page, live_server, username)
    sign_out(page, live_server)

    open_sign_in(page, live_server)
    with page.expect_response("**/api/v1/login/webauthn/options") as options_response:
        page.click("#passkey-signin")
    # usernameless: no username sent, nothing listed in allowCredentials
    assert json.loads(options_response.value.request.post_data or "null") == {}
    options = options_response.value.json()["options"]
    assert not options.get("allowCredentials")
    assert options.get("userVerification") in {"required", "preferred"}

    expect_account_page(page, live_server, username)
    # one modal request, from the button (no conditional request with ?noconditional)
    gets = [c for c in webauthn_calls if c["op"] == "get"]
    assert [(c["page"], c["mediation"], c["allow"]) for c in gets] == [("/", None, 0)]
    session = server_session(page, live_server)
    assert session["aal"] == 3
    assert {"hwk", "user"} <= set(session["amr"])
    assert "pwd" not in session["amr"]


def test_password_account_with_a_security_key_signs_in_with_it_as_second_factor(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators,
        webauthn_calls: list[dict[str, Any]]) -> None:
    username = uniq("pw")
    sign_up_with_password(page, live_server, username)
    session = server_session(page, live_server)
    assert (session["aal"], session["amr"]) == (1, ["pwd"])

    key = authenticators.add("yubikey")
    add_security_key(page, nickname="Blue YubiKey")
    [create] = [c for c in webauthn_calls if c["op"] == "create"]
    assert create["residentKey"] != "required" and create["userVerification"] != "required"
    row = page.locator("[data-testid=credential-row]").first
    expect(row).to_have_attribute("data-kind", "security-key")
    expect(row.locator("[data-field=nickname]")).to_have_text("Blue YubiKey")
    [credential] = server_credentials(page, live_server)
    assert credential["kind"] == "security-key"
    assert credential["nickname"] == "Blue YubiKey"
    assert credential["discoverable"] is False
    [stored] = authenticators.credentials(key)
    assert stored["isResidentCredential"] is False

    sign_out(page, live_server)
    open_sign_in(page, live_server)
    page.fill("#username", username)
    page.fill("#password", "not the password")
    page.click("#login-submit")
    expect(page.locator("#status [data-testid=status-code]")).to_have_text("invalid_credentials")
    expect(page.locator("#mfa")).to_be_hidden()

    password_sign_in_to_mfa(page, live_server, username)
    methods = (page.locator("#mfa").get_attribute("data-methods") or "").split()
    assert "webauthn" in methods
    expect(page.locator("#mfa-webauthn")).to_be_visible()
    expect(page.locator("#mfa-totp-form")).to_be_hidden()  # not enrolled, not offered
    page.click("#mfa-webauthn")

    expect_account_page(page, live_server, username)
    expect(page.locator("#session-aal")).to_have_text("2")
    session = server_session(page, live_server)
    assert session["aal"] == 2
    assert {"pwd", "hwk"} <= set(session["amr"])
    assert authenticators.credentials(key)[0]["signCount"] >= 1
    # the second step asked for exactly this account's key
    assert [(c["page"], c["allow"]) for c in webauthn_calls if c["op"] == "get"] == [("/", 1)]


def test_conditional_ui_signs_in_from_the_username_autofill(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators,
        webauthn_calls: list[dict[str, Any]]) -> None:
    authenticators.add("platform")
    username = uniq("cui")
    sign_up_with_passkey(page, live_server, username)
    sign_out(page, live_server)

    # with ?noconditional the page waits for the user
    open_sign_in(page, live_server)
    expect(page.locator("#username")).to_have_attribute("autocomplete", "username webauthn")
    assert api_get(page, live_server, "/session")[0] == 401
    assert not [c for c in webauthn_calls if c["op"] == "get"]

    # a plain load starts a mediation: "conditional" request, which the virtual
    # authenticator answers by itself with the discoverable credential
    with page.expect_request("**/api/v1/login/webauthn/verify"):
        page.goto(live_server.url("/"))
    expect_account_page(page, live_server, username)
    gets = [c for c in webauthn_calls if c["op"] == "get"]
    assert [(c["page"], c["mediation"], c["allow"]) for c in gets] == [("/", "conditional", 0)]
    session = server_session(page, live_server)
    assert session["aal"] == 3
    assert {"hwk", "user"} <= set(session["amr"])


def test_passkey_button_takes_over_from_a_pending_autofill_request(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators,
        webauthn_calls: list[dict[str, Any]]) -> None:
    authenticator = authenticators.add("platform")
    username = uniq("abort")
    sign_up_with_passkey(page, live_server, username)
    sign_out(page, live_server)

    # without simulated presence the conditional request stays pending, as in a real
    # browser while the user has not picked a passkey from the autofill list
    authenticators.cdp.send("WebAuthn.setAutomaticPresenceSimulation",
                            {"authenticatorId": authenticator, "enabled": False})
    page.goto(live_server.url("/"))
    expect(page.locator("body")).to_have_attribute("data-conditional", "waiting")
    authenticators.cdp.send("WebAuthn.setAutomaticPresenceSimulation",
                            {"authenticatorId": authenticator, "enabled": True})

    # the button aborts it (one WebAuthn request per page) and runs a modal one
    page.click("#passkey-signin")
    expect_account_page(page, live_server, username)
    gets = [(c["page"], c["mediation"]) for c in webauthn_calls if c["op"] == "get"]
    assert gets == [("/", "conditional"), ("/", None)]
    assert server_session(page, live_server)["aal"] == 3


def test_credential_list_rename_and_remove(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators) -> None:
    authenticators.add("platform")
    username = uniq("list")
    sign_up_with_passkey(page, live_server, username)

    rows = page.locator("[data-testid=credential-row]")
    expect(rows).to_have_count(1)
    [credential] = server_credentials(page, live_server)
    first = rows.first
    expect(first).to_have_attribute("data-credential-id", credential["id"])
    expect(first.locator("[data-field=kind]")).to_have_text("Passkey")
    # the expiry date is shown, machine-readable, and is the server's
    assert credential["expires_at"], credential
    expires = first.locator("[data-field=expires] time")
    expect(expires).to_have_attribute("datetime", credential["expires_at"])
    expires_at = datetime.fromisoformat(credential["expires_at"].replace("Z", "+00:00"))
    now = datetime.now(UTC)
    assert now + timedelta(days=365) < expires_at < now + timedelta(days=800)
    expect(first.locator("[data-field=created] time")).to_have_count(1)

    # rename
    first.locator("[data-testid=rename]").click()
    first.locator("[data-testid=rename-input]").fill("Work laptop")
    first.locator("[data-testid=rename-save]").click()
    expect(rows.first.locator("[data-field=nickname]")).to_have_text("Work laptop")
    assert server_credentials(page, live_server)[0]["nickname"] == "Work laptop"

    # the only passkey of a passkey-only account cannot be removed
    rows.first.locator("[data-testid=remove]").click()
    rows.first.locator("[data-testid=remove-confirm]").click()
    expect(page.locator("#status [data-testid=status-code]")).to_have_text("last_factor")
    expect(page.locator("#status")).to_have_attribute("data-kind", "error")
    expect(rows).to_have_count(1)
    assert len(server_credentials(page, live_server)) == 1

    # with a second passkey (from another device) the first one can go
    authenticators.replace("platform")
    page.fill("#new-credential-nickname", "Phone")
    page.click("#add-passkey")
    expect(rows).to_have_count(2)
    phone = rows.filter(has_text="Phone")
    expect(phone).to_have_count(1)
    expect(phone.locator("[data-field=kind]")).to_have_text("Passkey")
    rows.filter(has_text="Work laptop").locator("[data-testid=remove]").click()
    rows.filter(has_text="Work laptop").locator("[data-testid=remove-confirm]").click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator("[data-field=nickname]")).to_have_text("Phone")
    remaining = server_credentials(page, live_server)
    assert [c["nickname"] for c in remaining] == ["Phone"]


def test_u2f_key_registers_as_a_security_key_and_works_as_second_factor(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators) -> None:
    username = uniq("u2f")
    sign_up_with_password(page, live_server, username)
    key = authenticators.add("u2f")
    add_security_key(page)

    row = page.locator("[data-testid=credential-row]").first
    expect(row).to_have_attribute("data-kind", "security-key")
    [credential] = server_credentials(page, live_server)
    assert credential["kind"] == "security-key"
    assert credential["aaguid"] in (U2F_AAGUID, None)  # CTAP1 keys have no AAGUID
    assert credential["discoverable"] is False
    assert len(authenticators.credentials(key)) == 1

    sign_out(page, live_server)
    password_sign_in_to_mfa(page, live_server, username)
    page.click("#mfa-webauthn")
    expect_account_page(page, live_server, username)
    session: dict[str, Any] = server_session(page, live_server)
    assert session["aal"] == 2
    assert {"pwd", "hwk"} <= set(session["amr"])


def test_passkey_sign_in_without_a_passkey_shows_the_browser_refusal(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators) -> None:
    authenticators.add("platform")  # holds no credential for this site
    open_sign_in(page, live_server)
    page.click("#passkey-signin")
    expect(page.locator("#status [data-testid=status-code]")).to_have_text("NotAllowedError")
    expect(page.locator("#status")).to_have_attribute("data-kind", "error")
    expect(page.locator("#passkey-signin")).to_be_enabled()
    expect(page).to_have_url(live_server.url("/?noconditional"))
    assert api_get(page, live_server, "/session")[0] == 401


def test_account_page_signed_out_offers_sign_in(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url("/account.html"))
    expect(page.locator("body")).to_have_attribute("data-state", "signed-out")
    expect(page.locator("[data-testid=signed-out]")).to_be_visible()
    expect(page.locator("#signed-in")).to_be_hidden()
    expect(page.locator("#logout")).to_be_hidden()


STRICT_CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
              "form-action 'self'; frame-ancestors 'none'")


def test_pages_work_under_a_strict_content_security_policy(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators) -> None:
    """No inline script or style, nothing from another origin: the server may send this CSP."""
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)

    def with_csp(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})

    page.route(lambda url: url.endswith((".html", "/", "/?noconditional")), with_csp)
    authenticators.add("platform")
    username = uniq("csp")
    sign_up_with_passkey(page, live_server, username)
    sign_out(page, live_server)
    open_sign_in(page, live_server)
    page.click("#passkey-signin")
    expect_account_page(page, live_server, username)
    assert violations == []
