"""Codes by email: the extra check of a risky sign-in (DESIGN §5), never a second factor.

NIST SP 800-63B does not count email as an authenticator, so an email code proves no
``amr`` value and never raises the AAL; it only lets a sign-in from a new country through
for an account that has no second factor to ask for. The code machinery is
methods/codes.py with ``email`` as the channel; sends are capped per account and hour
(``email_sends_per_hour``) so a stolen password cannot turn the server into a mail cannon.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.errors import NotEnrolled, RateLimited
from authserver.methods.base import Proof
from authserver.methods.codes import OneTimeCodes
from authserver.settings import Settings
from authserver.store.repositories import accounts, otp_codes
from authserver.store.repositories.accounts import AccountRow

EMAIL_PROOF = Proof(method="email", amr=frozenset(), aal=0, factor_class="email")
LOGIN_SCOPE = "login"
SEND_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class SentEmail:
    email_masked: str
    expires_at: datetime


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return (local[:1] + "•" * max(1, len(local) - 1)) + "@" + domain


class EmailCodeFactor:
    name = "email"

    def __init__(self, *, codes: OneTimeCodes, sends_per_hour: int) -> None:
        self.codes = codes
        self.sends_per_hour = sends_per_hour

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailCodeFactor:
        return cls(codes=OneTimeCodes(channel="email", length=settings.email_code_length,
                                      ttl=settings.email_code_ttl, max_tries=settings.email_code_max_tries),
                   sends_per_hour=settings.email_sends_per_hour)

    async def _enforce_send_limit(self, ctx: AppContext, conn: AsyncConnection, *, account_id: uuid.UUID) -> None:
        """Whoever holds the password can ask for codes over and over; without a cap the
        server mails the account's owner (and whoever relays the mail) without end."""
        now = ctx.clock.now()
        sent, oldest = await otp_codes.sends_since(conn, channel=self.codes.channel, since=now - SEND_WINDOW,
                                                   account_id=account_id)
        if sent >= self.sends_per_hour:
            retry = (oldest + SEND_WINDOW - now).total_seconds() if oldest else SEND_WINDOW.total_seconds()
            raise RateLimited(math.ceil(retry), "Too many codes were sent; try again later",
                              log_detail="email code send limit reached for this account")

    async def send(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow,
                   scope: str = LOGIN_SCOPE) -> SentEmail:
        """Mail a code for ``scope``, at most ``sends_per_hour`` an hour per account.

        The account's row is locked before the count, so parallel requests queue behind one
        another instead of all counting the same earlier sends and all passing.
        """
        if not account.email:
            raise NotEnrolled(log_detail="account has no email address")
        await accounts.lock_account(conn, account.id)
        await self._enforce_send_limit(ctx, conn, account_id=account.id)
        issued = await self.codes.issue(ctx, conn, account_id=account.id, destination=account.email, scope=scope)
        minutes = int(self.codes.ttl.total_seconds() // 60)
        await ctx.outbox.enqueue(
            conn, channel="email", to=account.email, subject="Your sign-in code",
            body=(f"Someone signed in to {account.username} from a new place. If it was you, enter this code: "
                  f"{issued.code} (valid {minutes} minutes). If it was not you, change your password."))
        return SentEmail(email_masked=mask_email(account.email), expires_at=issued.expires_at)

    async def verify(self, ctx: AppContext, conn: AsyncConnection, *, account_id: uuid.UUID, code: str,
                     scope: str = LOGIN_SCOPE) -> Proof:
        """Consume the code or raise; like every one-time code, commit even on failure."""
        await self.codes.check(ctx, conn, account_id=account_id, scope=scope, code=code)
        return EMAIL_PROOF
