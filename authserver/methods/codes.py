"""One-time codes sent to the user over a channel (``sms`` now, ``email`` later).

The rules of DESIGN §5, whatever the channel:

* a code is N random decimal digits from :mod:`secrets` (4–8, default 6);
* only an HMAC of it is stored (``KeyRing.mac``), bound to the account, channel, scope and
  destination, so a database reader learns nothing and a code cannot be moved between them;
  it is checked under every configured key, so ``rotate-keys`` does not kill codes in flight;
* it lives 10 minutes and allows 3 tries; a wrong try is counted on the code itself;
* sending a new code ends the previous live one for the same account, channel and scope;
* it is bound to a *scope* (``login``, ``enroll_phone`` or a sensitive action's name): a
  code sent to sign in does not authorise deleting the account;
* it is consumed by one conditional ``UPDATE ... WHERE used_at IS NULL``, so it works at
  most once even when requests race.

This module stores and checks codes; delivering them is the channel's job (methods/sms.py).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.crypto import KeyRing, constant_time_equals
from authserver.errors import CodeReused, InvalidCode, ValidationFailed
from authserver.store.repositories import otp_codes

MIN_LENGTH = 4
MAX_LENGTH = 8


@dataclass(frozen=True, kw_only=True)
class IssuedCode:
    """A code that was just stored; ``code`` goes to the user and nowhere else."""

    code_id: uuid.UUID
    code: str
    destination: str
    scope: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IssuedCode(code_id={self.code_id}, scope={self.scope!r}, code=<hidden>)"


@dataclass(frozen=True, kw_only=True)
class AcceptedCode:
    """What a successful check established: which code, sent where."""

    code_id: uuid.UUID
    destination: str
    scope: str


def looks_like_code(code: str) -> bool:
    """The shape every channel uses: 4–8 ASCII digits."""
    return MIN_LENGTH <= len(code) <= MAX_LENGTH and code.isascii() and code.isdigit()


class OneTimeCodes:
    """Issue and check codes for one channel."""

    def __init__(self, *, channel: str, length: int, ttl: int, max_tries: int) -> None:
        if not MIN_LENGTH <= length <= MAX_LENGTH:
            raise ValueError(f"one-time codes have {MIN_LENGTH}..{MAX_LENGTH} digits")
        self.channel = channel
        self.length = length
        self.ttl = timedelta(seconds=ttl)
        self.max_tries = max_tries

    def __repr__(self) -> str:
        return f"OneTimeCodes(channel={self.channel!r}, length={self.length})"

    def generate(self) -> str:
        """Uniform over all ``length``-digit strings (leading zeros included)."""
        return str(secrets.randbelow(10 ** self.length)).zfill(self.length)

    def _message(self, *, account_id: uuid.UUID, scope: str, destination: str, code: str) -> bytes:
        return "\0".join(("otp/v1", self.channel, str(account_id), scope, destination, code)).encode("utf-8")

    def mac(self, keyring: KeyRing, *, account_id: uuid.UUID, scope: str, destination: str, code: str) -> bytes:
        """The stored form: an HMAC that binds the code to everything it was sent for."""
        return keyring.mac(self._message(account_id=account_id, scope=scope, destination=destination, code=code))

    def candidate_macs(self, keyring: KeyRing, *, account_id: uuid.UUID, scope: str, destination: str,
                       code: str) -> list[bytes]:
        """The stored form under every configured key: a code sent just before
        ``rotate-keys`` was stored under the key that is now an older one."""
        return keyring.macs(self._message(account_id=account_id, scope=scope, destination=destination, code=code))

    async def issue(self, ctx: AppContext, conn: AsyncConnection, *, account_id: uuid.UUID, destination: str,
                    scope: str) -> IssuedCode:
        """Store a fresh code, ending any live one for the same account, channel and scope."""
        now = ctx.clock.now()
        code = self.generate()
        await otp_codes.expire_live(conn, account_id=account_id, channel=self.channel, scope=scope, now=now)
        expires_at = now + self.ttl
        code_id = await otp_codes.insert_code(
            conn, account_id=account_id, channel=self.channel, destination=destination, scope=scope,
            code_mac=self.mac(ctx.keyring, account_id=account_id, scope=scope, destination=destination, code=code),
            now=now, expires_at=expires_at)
        return IssuedCode(code_id=code_id, code=code, destination=destination, scope=scope, expires_at=expires_at)

    async def has_live_code(self, ctx: AppContext, conn: AsyncConnection, *, account_id: uuid.UUID,
                            scope: str) -> bool:
        row = await otp_codes.latest_code(conn, account_id=account_id, channel=self.channel, scope=scope)
        return row is not None and self._is_live(row, ctx.clock.now())

    def _is_live(self, row: otp_codes.OtpCodeRow, now: datetime) -> bool:
        return row.used_at is None and now < row.expires_at and row.attempts < self.max_tries

    async def check(self, ctx: AppContext, conn: AsyncConnection, *, account_id: uuid.UUID, scope: str, code: str,
                    destination: str | None = None) -> AcceptedCode:
        """Accept and consume the live code for this scope, or raise.

        A wrong code costs the live code one of its tries; the caller must commit its
        transaction even though this raises, or the try is not counted. ``destination``,
        when given, must be the one the code was sent to (phone verification).
        """
        if not looks_like_code(code):
            raise ValidationFailed(f"codes are {MIN_LENGTH} to {MAX_LENGTH} digits", field="code")
        now = ctx.clock.now()
        row = await otp_codes.latest_code(conn, account_id=account_id, channel=self.channel, scope=scope)
        if row is None:
            raise InvalidCode(log_detail=f"no {self.channel} code was sent for scope {scope!r}")
        candidates = self.candidate_macs(ctx.keyring, account_id=account_id, scope=scope,
                                         destination=row.destination, code=code)
        # every candidate is compared (a list, not a short-circuiting generator), so the time
        # taken does not tell which key matched
        matches = any([constant_time_equals(expected, row.code_mac) for expected in candidates])
        if destination is not None and not constant_time_equals(destination, row.destination):
            matches = False
        if row.used_at is not None:
            if matches:
                raise CodeReused(log_detail=f"{self.channel} code for {scope!r} was already used")
            raise InvalidCode(log_detail=f"the last {self.channel} code for {scope!r} is used")
        if now >= row.expires_at:
            raise InvalidCode(log_detail=f"{self.channel} code for {scope!r} expired or was replaced")
        if row.attempts >= self.max_tries:
            raise InvalidCode(log_detail=f"{self.channel} code for {scope!r} has no tries left")
        if not matches:
            await otp_codes.add_attempt(conn, row.id)
            raise InvalidCode(log_detail=f"wrong {self.channel} code for {scope!r} (try {row.attempts + 1})")
        if not await otp_codes.consume(conn, row.id, now=now, max_tries=self.max_tries):
            raise CodeReused(log_detail=f"{self.channel} code for {scope!r} taken by a concurrent request")
        return AcceptedCode(code_id=row.id, destination=row.destination, scope=scope)
