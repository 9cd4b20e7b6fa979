"""Helpers for the fallback-factor API tests: enrol TOTP, read texted codes, open MFA flows."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import pyotp

from authserver.clock import MovableClock
from tests.conftest import services_of
from tests.support.api import assert_problem, bearer, login, read_outbox

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def unique_phone() -> str:
    """A valid (German mobile) number of its own for each test: send limits count per
    number across the whole shared test database."""
    return "+49151" + str(secrets.randbelow(10**8)).zfill(8)


def totp_code(secret_b32: str, when: datetime, *, algorithm: str = "SHA1", digits: int = 6, period: int = 30) -> str:
    """An authenticator app's code at ``when`` (pyotp, independently of the server's wrapper)."""
    return pyotp.TOTP(secret_b32, digits=digits, digest=DIGESTS[algorithm], interval=period).at(when)


async def enrol_totp(client: Any, token: str, clock: MovableClock, **code_kw: Any) -> str:
    """Enrol an authenticator app on the account and move past the confirming code's time
    step (it is stored as used); returns the base32 secret."""
    r = await client.post("/api/v1/me/totp", headers=bearer(token))
    assert r.status_code == 200, r.text
    body = r.json()
    r = await client.post("/api/v1/me/totp/confirm", headers=bearer(token), json={
        "enrollment_token": body["enrollment_token"], "code": totp_code(body["secret"], clock.now(), **code_kw)})
    assert r.status_code == 201, r.text
    clock.advance(30)
    return str(body["secret"])


async def texts_to(client: Any, outbox_file: Path, number: str) -> list[str]:
    """Every code texted to ``number`` so far, oldest first (delivers the outbox first)."""
    await services_of(client).ctx.outbox.drain()
    codes = []
    for message in read_outbox(outbox_file):
        if message["channel"] == "sms" and message["to"] == number:
            found = re.match(r"(\d{4,8}) ", message["body"])
            assert found, message
            codes.append(found.group(1))
    return codes


async def last_text(client: Any, outbox_file: Path, number: str) -> str:
    codes = await texts_to(client, outbox_file, number)
    assert codes, f"no SMS to {number} in the outbox"
    return codes[-1]


async def add_verified_phone(client: Any, token: str, outbox_file: Path, number: str,
                             headers: dict[str, str] | None = None) -> str:
    r = await client.post("/api/v1/me/phones", json={"phone": number}, headers={**bearer(token), **(headers or {})})
    assert r.status_code == 202, r.text
    code = await last_text(client, outbox_file, number)
    r = await client.post("/api/v1/me/phones/verify", json={"phone": number, "code": code}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["verified"] is True
    return str(r.json()["id"])


async def mfa_flow(client: Any, username: str) -> dict[str, Any]:
    """Password step of a login on an account with a second factor: the 401 body."""
    return assert_problem(await login(client, username), 401, "mfa_required")
