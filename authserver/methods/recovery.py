"""Recovery codes: the way back in when every other factor is lost (RFC 8176-style ``amr``
value ``rc``; NIST SP 800-63B §5.1.2 "look-up secrets").

* A set is 10 codes of 10 characters from Crockford's base32 alphabet (no i, l, o, u: they
  read like 1, 1, 0, v) written ``xxxxx-xxxxx``: 10 × 5 = 50 bits each, from :mod:`secrets`.
* They are shown once. At rest each is an Argon2id hash salted with the account id, so a
  stolen table does not yield codes without 2^50 hash evaluations per account (800-63B
  §5.1.2.2 wants look-up secrets under 112 bits stored with a salted, costly hash). A
  keyed MAC was not used: it would die with the key on ``rotate-keys``.
* Typed input is forgiving: case, spaces and hyphens are ignored, and o/i/l read as 0/1/1.
* Each code works once, through one ``UPDATE ... WHERE used_at IS NULL``; a new set
  replaces the old one entirely.
* Every use is news: a security event, an email to the user, and an alert to the admins.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.errors import CodeReused, InvalidCode, ValidationFailed
from authserver.methods.base import Proof
from authserver.settings import Settings
from authserver.store.repositories import accounts, events, recovery_codes
from authserver.store.repositories.accounts import AccountRow, EnrolledFactors

RECOVERY_PROOF = Proof(method="recovery_code", amr=frozenset({"rc"}), aal=1, factor_class="have")

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
CODE_CHARS = 10
GROUP = 5
BITS_PER_CODE = CODE_CHARS * 5
_READ_AS = str.maketrans({"o": "0", "i": "1", "l": "1"})
_IGNORED = str.maketrans("", "", " -\t")
_ALPHABET_SET = frozenset(ALPHABET)

# OWASP's minimum Argon2id configuration (19 MiB, 2 passes): the code already carries 50
# bits, so the hash only has to make each guess expensive, not stretch a weak secret.
MAX_TIME_COST = 2
MAX_MEMORY_KIB = 19456


def generate_code() -> str:
    chars = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
    return f"{chars[:GROUP]}-{chars[GROUP:]}"


def normalize_code(raw: str) -> str | None:
    """The 10 canonical characters of a typed code, or None when it cannot be one."""
    text = raw.translate(_IGNORED).lower().translate(_READ_AS)
    if len(text) != CODE_CHARS or not _ALPHABET_SET.issuperset(text):
        return None
    return text


@dataclass(frozen=True, kw_only=True)
class RecoveryCodeUse:
    proof: Proof
    left: int


class RecoveryCodeFactor:
    """Generation, use and counting of an account's recovery codes."""

    name = "recovery_code"

    def __init__(self, *, count: int, time_cost: int, memory_kib: int) -> None:
        self.count = count
        self.time_cost = max(1, min(time_cost, MAX_TIME_COST))
        self.memory_kib = max(8, min(memory_kib, MAX_MEMORY_KIB))

    @classmethod
    def from_settings(cls, settings: Settings) -> RecoveryCodeFactor:
        """Argon2 costs follow the password settings, capped at MAX_TIME_COST / MAX_MEMORY_KIB."""
        return cls(count=settings.recovery_code_count, time_cost=settings.argon2_time_cost,
                   memory_kib=settings.argon2_memory_kib)

    def hash_code(self, account_id: uuid.UUID, canonical: str) -> bytes:
        """Deterministic per account (the salt is the account id), so a code is found by an
        indexed lookup instead of trying every row."""
        return hash_secret_raw(canonical.encode("ascii"), b"authserver/recovery-code/v1/" + account_id.bytes,
                               time_cost=self.time_cost, memory_cost=self.memory_kib, parallelism=1, hash_len=32,
                               type=Type.ID)

    async def regenerate(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow) -> list[str]:
        """A fresh set replacing any earlier one; the plaintext codes exist only in the answer."""
        codes: list[str] = []
        while len(codes) < self.count:
            code = generate_code()
            if code not in codes:
                codes.append(code)
        hashes = await asyncio.to_thread(lambda: [self.hash_code(account.id, c.replace("-", "")) for c in codes])
        now = ctx.clock.now()
        await recovery_codes.replace_codes(conn, account.id, hashes, now)
        await events.insert_event(conn, type="recovery_codes_generated", account_id=account.id, now=now,
                                  details={"count": len(codes)})
        if account.email:
            await ctx.outbox.enqueue(conn, channel="email", to=account.email, subject="New recovery codes",
                                     body=f"A new set of recovery codes was made for {account.username}; the "
                                          "earlier codes no longer work. If this was not you, secure your account.")
        return codes

    async def left(self, conn: AsyncConnection, account_id: uuid.UUID) -> int:
        return await recovery_codes.count_left(conn, account_id)

    async def use(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow, code: str,
                  ip: str | None = None) -> RecoveryCodeUse:
        """Consume one code or raise invalid_code / code_reused (validation_error for input
        that cannot be a code)."""
        canonical = normalize_code(code)
        if canonical is None:
            raise ValidationFailed("recovery codes are 10 letters and digits, like abcde-12345", field="code")
        return await self._consume(ctx, conn, account=account, canonical=canonical, ip=ip)

    async def _consume(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow, canonical: str,
                       ip: str | None) -> RecoveryCodeUse:
        code_hash = await asyncio.to_thread(self.hash_code, account.id, canonical)
        now = ctx.clock.now()
        if not await recovery_codes.consume(conn, account.id, code_hash, now):
            if await recovery_codes.was_used(conn, account.id, code_hash):
                raise CodeReused(log_detail="recovery code already used")
            raise InvalidCode(log_detail="recovery code not found")
        left = await recovery_codes.count_left(conn, account.id)
        await self._announce(ctx, conn, account=account, left=left, ip=ip)
        return RecoveryCodeUse(proof=RECOVERY_PROOF, left=left)

    async def _announce(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow, left: int,
                        ip: str | None) -> None:
        """A used recovery code means every other factor may be lost, or stolen: the user and
        the admins hear about it in the same transaction that consumed the code."""
        now = ctx.clock.now()
        when = now.isoformat(timespec="seconds")
        await events.insert_event(conn, type="recovery_code_used", account_id=account.id, now=now, ip=ip,
                                  details={"left": left})
        if account.email:
            await ctx.outbox.enqueue(
                conn, channel="email", to=account.email, subject="A recovery code was used",
                body=(f"A recovery code was used to sign in to {account.username} at {when} (address "
                      f"{ip or 'unknown'}). {left} codes are left. If this was not you, contact your administrator."))
        admins = [ctx.settings.admin_alert_to] if ctx.settings.admin_alert_to else await accounts.admin_emails(conn)
        for admin in admins:
            await ctx.outbox.enqueue(
                conn, channel="admin", to=admin, subject=f"Recovery code used by {account.username}",
                body=(f"Account {account.username} ({account.id}) used a recovery code at {when} from address "
                      f"{ip or 'unknown'}; {left} left."))

    async def verify_code(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow,
                          factors: EnrolledFactors, code: str, scope: str) -> Proof | None:
        """``X-MFA-Code``: a recovery code looks like nothing else (10 characters), so once
        the shape fits, a miss is invalid_code."""
        if not factors.recovery_code:
            return None
        canonical = normalize_code(code)
        if canonical is None:
            return None
        used = await self._consume(ctx, conn, account=account, canonical=canonical, ip=None)
        return used.proof
