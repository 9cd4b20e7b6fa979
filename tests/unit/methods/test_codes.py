"""The one-time-code machinery (methods/codes.py) on a real, migrated SQLite database:
HMAC-only storage, scope binding, 3 tries, 10-minute life, replacement by a new send,
single use."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from authserver.clock import MovableClock
from authserver.errors import CodeReused, InvalidCode, ValidationFailed
from authserver.methods.codes import IssuedCode, OneTimeCodes, looks_like_code
from authserver.store.models import OtpCode
from authserver.store.repositories import accounts
from authserver.wiring import Services, build_services
from tests.conftest import TEST_KEYS, make_settings


@pytest.fixture
async def fx_services(database_urls: dict[str, str | None], tmp_path: Path,
                      clock: MovableClock) -> AsyncIterator[Services]:
    url = database_urls["sqlite"]
    assert url is not None
    services = build_services(make_settings(url, tmp_path / "outbox.jsonl"), clock=clock)
    yield services
    await services.ctx.db.dispose()


@pytest.fixture
async def fx_account_id(fx_services: Services) -> uuid.UUID:
    async with fx_services.ctx.db.transaction() as conn:
        account = await accounts.insert_account(conn, username=f"codes{uuid.uuid4().hex[:8]}", display_name="c",
                                                email=None, password_hash=None, now=fx_services.ctx.clock.now())
    return account.id


CODES = OneTimeCodes(channel="sms", length=6, ttl=600, max_tries=3)
PHONE = "+14155550123"


async def issue(services: Services, account_id: uuid.UUID, scope: str = "login", destination: str = PHONE) -> str:
    async with services.ctx.db.transaction() as conn:
        return (await CODES.issue(services.ctx, conn, account_id=account_id, destination=destination,
                                  scope=scope)).code


async def check(services: Services, account_id: uuid.UUID, code: str, scope: str = "login",
                destination: str | None = None) -> None:
    """Like the API: the transaction commits even when the check refuses."""
    failure: Exception | None = None
    async with services.ctx.db.transaction() as conn:
        try:
            await CODES.check(services.ctx, conn, account_id=account_id, scope=scope, code=code,
                              destination=destination)
        except (InvalidCode, CodeReused) as exc:
            failure = exc
    if failure is not None:
        raise failure


def other_than(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def test_codes_are_uniform_digits_of_the_configured_length() -> None:
    short = OneTimeCodes(channel="sms", length=4, ttl=600, max_tries=3)
    seen = [short.generate() for _ in range(2000)]
    assert all(len(c) == 4 and c.isdigit() for c in seen)
    assert {c[0] for c in seen} == set("0123456789")  # leading zeros are kept, every digit appears
    assert len(set(seen)) > 1500  # 2000 draws from 10^4: nearly all distinct if random
    with pytest.raises(ValueError):
        OneTimeCodes(channel="sms", length=3, ttl=600, max_tries=3)


def test_mac_binds_account_scope_destination_and_code(fx_services: Services) -> None:
    ring = fx_services.ctx.keyring
    a, b = uuid.uuid4(), uuid.uuid4()
    base = CODES.mac(ring, account_id=a, scope="login", destination=PHONE, code="123456")
    assert len(base) == 32
    assert base == CODES.mac(ring, account_id=a, scope="login", destination=PHONE, code="123456")
    assert base != CODES.mac(ring, account_id=b, scope="login", destination=PHONE, code="123456")
    assert base != CODES.mac(ring, account_id=a, scope="delete_account", destination=PHONE, code="123456")
    assert base != CODES.mac(ring, account_id=a, scope="login", destination="+12025550143", code="123456")
    assert base != CODES.mac(ring, account_id=a, scope="login", destination=PHONE, code="123457")
    email = OneTimeCodes(channel="email", length=6, ttl=600, max_tries=3)
    assert base != email.mac(ring, account_id=a, scope="login", destination=PHONE, code="123456")


def test_shape() -> None:
    assert looks_like_code("0123") and looks_like_code("12345678")
    for bad in ("123", "123456789", "12a456", "١٢٣٤٥٦", "12 456", ""):
        assert not looks_like_code(bad)


async def test_only_the_hmac_is_stored(fx_services: Services, fx_account_id: uuid.UUID) -> None:
    code = await issue(fx_services, fx_account_id)
    async with fx_services.ctx.db.read() as conn:
        row = (await conn.execute(select(OtpCode.__table__).where(OtpCode.account_id == fx_account_id))).one()
    assert code.encode() not in row.code_mac and code not in repr(tuple(row))
    assert (row.expires_at - row.created_at).total_seconds() == 600


async def test_a_code_works_once(fx_services: Services, fx_account_id: uuid.UUID) -> None:
    code = await issue(fx_services, fx_account_id)
    await check(fx_services, fx_account_id, code)
    with pytest.raises(CodeReused):
        await check(fx_services, fx_account_id, code)


async def test_scope_is_bound(fx_services: Services, fx_account_id: uuid.UUID) -> None:
    code = await issue(fx_services, fx_account_id, scope="login")
    with pytest.raises(InvalidCode):
        await check(fx_services, fx_account_id, code, scope="delete_account")
    await check(fx_services, fx_account_id, code, scope="login")  # still good where it belongs


async def test_destination_is_bound(fx_services: Services, fx_account_id: uuid.UUID) -> None:
    code = await issue(fx_services, fx_account_id, scope="enroll_phone")
    with pytest.raises(InvalidCode):
        await check(fx_services, fx_account_id, code, scope="enroll_phone", destination="+12025550143")
    await check(fx_services, fx_account_id, code, scope="enroll_phone", destination=PHONE)


async def test_three_wrong_tries_kill_the_code(fx_services: Services, fx_account_id: uuid.UUID) -> None:
    code = await issue(fx_services, fx_account_id)
    for _ in range(3):
        with pytest.raises(InvalidCode):
            await check(fx_services, fx_account_id, other_than(code))
    with pytest.raises(InvalidCode):
        await check(fx_services, fx_account_id, code)
    async with fx_services.ctx.db.read() as conn:
        row = (await conn.execute(select(OtpCode.attempts, OtpCode.used_at)
                                  .where(OtpCode.account_id == fx_account_id))).one()
    assert row.attempts == 3 and row.used_at is None


async def test_two_wrong_tries_leave_one(fx_services: Services, fx_account_id: uuid.UUID) -> None:
    code = await issue(fx_services, fx_account_id)
    for _ in range(2):
        with pytest.raises(InvalidCode):
            await check(fx_services, fx_account_id, other_than(code))
    await check(fx_services, fx_account_id, code)


async def test_codes_expire_after_ten_minutes(fx_services: Services, fx_account_id: uuid.UUID,
                                              clock: MovableClock) -> None:
    code = await issue(fx_services, fx_account_id)
    clock.advance(599)
    other = await issue(fx_services, fx_account_id, scope="other")
    clock.advance(2)
    with pytest.raises(InvalidCode):
        await check(fx_services, fx_account_id, code)
    await check(fx_services, fx_account_id, other, scope="other")


async def test_a_new_send_replaces_the_last(fx_services: Services, fx_account_id: uuid.UUID) -> None:
    first = await issue(fx_services, fx_account_id)
    second = await issue(fx_services, fx_account_id)
    while second == first:  # one chance in a million: draw again so the test means something
        second = await issue(fx_services, fx_account_id)
    with pytest.raises(InvalidCode):
        await check(fx_services, fx_account_id, first)
    await check(fx_services, fx_account_id, second)


async def test_bad_shapes_are_validation_errors(fx_services: Services, fx_account_id: uuid.UUID) -> None:
    await issue(fx_services, fx_account_id)
    for bad in ("12ab56", "123", "123456789"):
        with pytest.raises(ValidationFailed):
            await check(fx_services, fx_account_id, bad)


async def test_no_code_sent(fx_services: Services, fx_account_id: uuid.UUID) -> None:
    with pytest.raises(InvalidCode):
        await check(fx_services, fx_account_id, "123456")


def test_issued_code_repr_hides_the_code() -> None:
    issued = IssuedCode(code_id=uuid.uuid4(), code="987654", destination=PHONE, scope="login",
                        expires_at=datetime.now(UTC))
    assert "987654" not in repr(issued)


ROTATED_KEY = "k2:" + base64.b64encode(b"\x02" * 32).decode()


async def test_a_code_sent_before_a_key_rotation_still_works(database_urls: dict[str, str | None], tmp_path: Path,
                                                            clock: MovableClock, fx_services: Services,
                                                            fx_account_id: uuid.UUID) -> None:
    """Sent under ring [k1], checked by a server already on [k2, k1] (``rotate-keys`` ran
    in between): the code still works. A ring without k1 refuses it."""
    url = database_urls["sqlite"]
    assert url is not None
    rotated = build_services(make_settings(url, tmp_path / "outbox.jsonl",
                                           secret_keys=f"{ROTATED_KEY},{TEST_KEYS}"), clock=clock)
    only_new = build_services(make_settings(url, tmp_path / "outbox.jsonl", secret_keys=ROTATED_KEY), clock=clock)
    try:
        assert rotated.ctx.keyring.kids == ["k2", "k1"]
        code = await issue(fx_services, fx_account_id)
        with pytest.raises(InvalidCode):
            await check(only_new, fx_account_id, code)
        await check(rotated, fx_account_id, code)
        # and a code sent after the rotation is stored under the new key
        clock.advance(1)
        code = await issue(rotated, fx_account_id)
        with pytest.raises(InvalidCode):
            await check(fx_services, fx_account_id, code)
        await check(only_new, fx_account_id, code)
    finally:
        await rotated.ctx.db.dispose()
        await only_new.ctx.db.dispose()
