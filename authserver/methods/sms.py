"""SMS one-time codes as a second factor (RFC 8176 ``amr`` value ``sms``).

Numbers are kept in E.164 (parsed and validated with ``phonenumbers``) and count as a factor
only once a code sent to them came back (scope ``enroll_phone``). Codes follow the rules of
methods/codes.py; on top of them this module limits how many codes go out per hour, both
per account and per number, so the server cannot be used to flood someone's phone.

NIST SP 800-63B §5.1.3.3 calls SMS a *restricted* authenticator; it is offered because
users ask for it, after WebAuthn and TOTP in every list.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.errors import Conflict, LastFactor, NotEnrolled, NotFound, RateLimited, ValidationFailed
from authserver.methods.base import Proof, fresh_factors
from authserver.methods.codes import IssuedCode, OneTimeCodes, looks_like_code
from authserver.settings import Settings
from authserver.store import locks
from authserver.store.repositories import accounts, events, otp_codes, phones
from authserver.store.repositories.accounts import AccountRow, EnrolledFactors
from authserver.store.repositories.phones import PhoneRow

SMS_PROOF = Proof(method="sms", amr=frozenset({"sms"}), aal=1, factor_class="have")

LOGIN_SCOPE = "login"
ENROLL_SCOPE = "enroll_phone"
STEP_UP_SCOPE = "step_up"
# Scopes a signed-in user may ask a step-up code for: the generic one and each sensitive
# action's name (the ``scope`` the routes pass to StepUpService.require).
STEP_UP_SCOPES = frozenset({
    STEP_UP_SCOPE, "change_password", "delete_account", "add_factor", "remove_factor",
    "regenerate_recovery_codes", "admin",
})
SEND_WINDOW = timedelta(hours=1)
MAX_PHONE_INPUT = 32


def normalize_phone(raw: str) -> str:
    """E.164 (``+`` and up to 15 digits) or a 400 naming the ``phone`` field."""
    text = raw.strip()
    if not text.startswith("+") or len(text) > MAX_PHONE_INPUT:
        raise ValidationFailed("phone numbers are written in E.164, e.g. +14155550123", field="phone")
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed("not a phone number", field="phone") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed("not a valid phone number", field="phone")
    number: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return number


def mask_phone(number: str) -> str:
    """Enough to recognise one's own number, not enough to dial it: ``+44•••••••89``."""
    try:
        country = str(phonenumbers.parse(number, None).country_code)
    except phonenumbers.NumberParseException:
        country = ""
    rest = number[1 + len(country):]
    return "+" + country + "•" * max(len(rest) - 2, 0) + rest[-2:]


def valid_step_up_scope(raw: str | None) -> str:
    scope = raw or STEP_UP_SCOPE
    if scope not in STEP_UP_SCOPES:
        raise ValidationFailed(f"scope must be one of {', '.join(sorted(STEP_UP_SCOPES))}", field="scope")
    return scope


@dataclass(frozen=True, kw_only=True)
class SentSms:
    phone_masked: str
    scope: str
    expires_at: datetime


class SmsFactor:
    """Sending and checking SMS codes; also the ``X-MFA-Code`` code factor for them."""

    name = "sms"

    def __init__(self, *, codes: OneTimeCodes, sends_per_hour: int) -> None:
        self.codes = codes
        self.sends_per_hour = sends_per_hour

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsFactor:
        codes = OneTimeCodes(channel="sms", length=settings.sms_code_length, ttl=settings.sms_code_ttl,
                             max_tries=settings.sms_max_tries)
        return cls(codes=codes, sends_per_hour=settings.sms_sends_per_hour)

    # -- sending -------------------------------------------------------------------------

    async def _enforce_send_limits(self, ctx: AppContext, conn: AsyncConnection, *, account_id: uuid.UUID,
                                   number: str) -> None:
        now = ctx.clock.now()
        since = now - SEND_WINDOW
        per_account = await otp_codes.sends_since(conn, channel=self.codes.channel, since=since, account_id=account_id)
        per_number = await otp_codes.sends_since(conn, channel=self.codes.channel, since=since, destination=number)
        for what, (sent, oldest) in (("account", per_account), ("number", per_number)):
            if sent >= self.sends_per_hour:
                retry = (oldest + SEND_WINDOW - now).total_seconds() if oldest else SEND_WINDOW.total_seconds()
                raise RateLimited(math.ceil(retry), "Too many codes were sent; try again later",
                                  log_detail=f"sms send limit reached for this {what}")

    async def send(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow, scope: str,
                   number: str | None = None) -> SentSms:
        """Send a code for ``scope`` to ``number`` (default: the account's first verified phone).

        The account's row is locked first: the limit is a count of earlier sends followed by
        an insert, and parallel requests that all counted before any inserted would each get
        a text past the limit.
        """
        await accounts.lock_account(conn, account.id)
        if number is None:
            phone = await phones.first_verified(conn, account.id)
            if phone is None:
                raise NotEnrolled("no verified phone number", log_detail="sms send without a verified phone")
            number = phone.number
        # several accounts may text one number: its limit needs a lock of its own (taken
        # after the account's, always in that order)
        await locks.hold(conn, f"sms-number:{number}")
        await self._enforce_send_limits(ctx, conn, account_id=account.id, number=number)
        issued = await self.codes.issue(ctx, conn, account_id=account.id, destination=number, scope=scope)
        await ctx.outbox.enqueue(conn, channel="sms", to=number, subject="authserver code",
                                 body=self._message(ctx, issued))
        return SentSms(phone_masked=mask_phone(number), scope=scope, expires_at=issued.expires_at)

    def _message(self, ctx: AppContext, issued: IssuedCode) -> str:
        minutes = max(1, round(self.codes.ttl.total_seconds() / 60))
        purpose = {LOGIN_SCOPE: "to sign in", ENROLL_SCOPE: "to confirm this phone number"}.get(
            issued.scope, f"to confirm: {issued.scope.replace('_', ' ')}")
        return (f"{issued.code} is your {ctx.settings.rp_name} code {purpose}. It expires in {minutes} minutes. "
                "Never share it.")

    # -- checking ------------------------------------------------------------------------

    async def verify(self, ctx: AppContext, conn: AsyncConnection, *, account_id: uuid.UUID, code: str,
                     scope: str) -> Proof:
        """Consume the code sent for ``scope`` or raise (see OneTimeCodes.check: commit on failure)."""
        await self.codes.check(ctx, conn, account_id=account_id, scope=scope, code=code)
        return SMS_PROOF

    async def verify_code(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow,
                          factors: EnrolledFactors, code: str, scope: str) -> Proof | None:
        """``X-MFA-Code``: applies only when a live code was sent for exactly this scope, so a
        code sent for ``login`` never authorises ``delete_account``."""
        if not factors.sms or not looks_like_code(code):
            return None
        if not await self.codes.has_live_code(ctx, conn, account_id=account.id, scope=scope):
            return None
        return await self.verify(ctx, conn, account_id=account.id, code=code, scope=scope)

    # -- phone numbers -------------------------------------------------------------------

    async def add_phone(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow,
                        raw_number: str) -> tuple[PhoneRow, SentSms]:
        """Remember an unverified number and send it a code (scope ``enroll_phone``).

        Locked on the account like :meth:`send`, so a second request for the same number
        waits and then finds the first one's row instead of inserting it again.
        """
        number = normalize_phone(raw_number)
        await accounts.lock_account(conn, account.id)
        phone = await phones.get_by_number(conn, account.id, number)
        if phone is not None and phone.verified_at is not None:
            raise Conflict("this phone number is already verified", log_detail="phone already verified")
        if phone is None:
            phone = await phones.insert_phone(conn, account_id=account.id, number=number, now=ctx.clock.now())
        sent = await self.send(ctx, conn, account=account, scope=ENROLL_SCOPE, number=number)
        return phone, sent

    async def confirm_phone(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow, raw_number: str,
                            code: str) -> PhoneRow:
        number = normalize_phone(raw_number)
        phone = await phones.get_by_number(conn, account.id, number)
        if phone is None:
            raise NotFound("this phone number was not added", log_detail="verify for an unknown phone")
        if phone.verified_at is not None:
            raise Conflict("this phone number is already verified", log_detail="phone already verified")
        await self.codes.check(ctx, conn, account_id=account.id, scope=ENROLL_SCOPE, code=code, destination=number)
        now = ctx.clock.now()
        await phones.mark_verified(conn, phone.id, now)
        await events.insert_event(conn, type="factor_added", account_id=account.id, now=now,
                                  details={"method": "sms", "phone_id": str(phone.id)})
        if account.email:
            await ctx.outbox.enqueue(conn, channel="email", to=account.email, subject="A phone number was added",
                                     body=f"The phone number {mask_phone(number)} can now receive sign-in codes "
                                          f"for {account.username}. If this was not you, review your account.")
        return PhoneRow(id=phone.id, account_id=phone.account_id, number=phone.number, verified_at=now,
                        created_at=phone.created_at)

    async def remove_phone(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow,
                           factors: EnrolledFactors, phone_id: uuid.UUID) -> None:
        factors = await fresh_factors(ctx, conn, account, factors)
        phone = await phones.get_phone(conn, account.id, phone_id)
        if phone is None:
            raise NotFound("no such phone number")
        if phone.verified_at is not None and await phones.count_verified(conn, account.id) == 1:
            remaining = set(factors.names()) - {"sms", "recovery_code"}
            if not remaining:
                raise LastFactor(log_detail="removing the last verified phone would leave no way to sign in")
        await phones.delete_phone(conn, account.id, phone_id)
        now = ctx.clock.now()
        await events.insert_event(conn, type="factor_removed", account_id=account.id, now=now,
                                  details={"method": "sms", "phone_id": str(phone_id)})
        if account.email and phone.verified_at is not None:
            await ctx.outbox.enqueue(conn, channel="email", to=account.email, subject="A phone number was removed",
                                     body=f"The phone number {mask_phone(phone.number)} no longer receives "
                                          f"sign-in codes for {account.username}.")

