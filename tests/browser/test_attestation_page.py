"""With ``AUTHSERVER_ATTESTATION=direct`` the browser passes the authenticator's own
attestation through: a legacy U2F key answers ``fido-u2f``, a CTAP2 key ``packed`` with its
batch certificate. Both still register from the account page as security keys."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer, VirtualAuthenticators
from tests.browser.helpers import add_security_key, server_credentials, sign_up_with_password, uniq

pytestmark = pytest.mark.browser

SERVER_ENV = {"AUTHSERVER_ATTESTATION": "direct"}


def _register_first_key(page: Page, server: LiveServer, authenticators: VirtualAuthenticators, kind: str,
                        nickname: str) -> dict[str, Any]:
    """A new password account enrols ``kind`` as its first second factor (no step-up needed)."""
    sign_up_with_password(page, server, uniq("att"))
    authenticators.replace(kind)
    add_security_key(page, nickname=nickname)
    row = page.locator("[data-testid=credential-row]").filter(has_text=nickname)
    expect(row).to_have_attribute("data-kind", "security-key")
    [credential] = server_credentials(page, server)
    return credential


def test_direct_attestation_from_u2f_and_ctap2_security_keys(
        page: Page, live_server: LiveServer, authenticators: VirtualAuthenticators) -> None:
    u2f = _register_first_key(page, live_server, authenticators, "u2f", "Old U2F key")
    assert u2f["attestation_format"] == "fido-u2f"
    assert u2f["aaguid"] == "00000000-0000-0000-0000-000000000000"

    ctap2 = _register_first_key(page, live_server, authenticators, "yubikey", "CTAP2 key")
    assert ctap2["attestation_format"] == "packed"
    assert ctap2["aaguid"] == "01020304-0506-0708-0102-030405060708"
