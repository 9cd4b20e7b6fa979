"""TOTP (RFC 6238) codes from an authenticator app (RFC 8176 ``amr`` value ``otp``).

* Codes are HOTP (RFC 4226 §5.3) over the time step ``T = floor(unix_time / X)``
  (RFC 6238 §4.2, T0 = 0); ``pyotp`` computes them. SHA-1, 6 digits and X = 30 s by
  default; SHA-256/SHA-512 and 8 digits on request (RFC 6238 §1.2, Appendix A).
* The verifier accepts the current step and ``window`` steps either side for clock drift
  and typing time (RFC 6238 §5.2 recommends at most one step back).
* Each account remembers the last accepted step, and a step not newer than it is refused
  with ``code_reused``: "the verifier MUST NOT accept the second attempt of the OTP after
  the successful validation has been issued for the first OTP" (RFC 6238 §5.2). The check
  and the update are one conditional UPDATE, so two racing requests cannot both pass.
* Seeds are as long as the hash output (RFC 6238 Appendix B uses 20/32/64 bytes; RFC 4226
  §4 R6 asks for at least 128 bits) and are stored sealed with AES-256-GCM under the AAD
  ``totp:<account id>`` (RFC 6238 §5.1: keys "SHOULD be ... stored securely").
* Enrolment counts only once the user typed a code from the new secret.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.crypto import KeyError_, constant_time_equals
from authserver.errors import CodeReused, FlowExpired, InvalidCode, LastFactor, NotEnrolled, ValidationFailed
from authserver.methods.base import Proof, fresh_factors
from authserver.settings import Settings
from authserver.store.repositories import events, totp
from authserver.store.repositories.accounts import AccountRow, EnrolledFactors

TOTP_PROOF = Proof(method="totp", amr=frozenset({"otp"}), aal=1, factor_class="have")

DIGESTS: dict[str, Callable[..., Any]] = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
SEED_BYTES = {"SHA1": 20, "SHA256": 32, "SHA512": 64}


@dataclass(frozen=True, kw_only=True)
class TotpParams:
    """What the authenticator app must be told, and what a stored enrolment was made with."""

    algorithm: str = "SHA1"
    digits: int = 6
    period: int = 30

    def __post_init__(self) -> None:
        if self.algorithm not in DIGESTS:
            raise ValueError(f"unsupported TOTP algorithm {self.algorithm!r}")
        if self.digits not in (6, 7, 8):
            raise ValueError("TOTP codes have 6 to 8 digits")
        if not 0 < self.period <= 120:
            raise ValueError("the TOTP period is 1..120 seconds")


@dataclass(frozen=True, kw_only=True)
class TotpMatch:
    """A code matched time step ``step``; ``replayed`` when that step was not newer than the
    last one accepted for the account (RFC 6238 §5.2)."""

    step: int
    replayed: bool


@dataclass(frozen=True, kw_only=True)
class TotpProvisioning:
    """What the user needs to set up an app: shown once, at enrolment."""

    secret_base32: str
    otpauth_uri: str
    qr_svg: str

    def __repr__(self) -> str:
        return "TotpProvisioning(<hidden>)"


def base32(secret: bytes) -> str:
    """The form apps and ``oathtool --base32`` take: RFC 4648 base32 without padding."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def time_step(when: datetime, period: int) -> int:
    """RFC 6238 §4.2: T = floor((Current Unix time - T0) / X) with T0 = 0."""
    return int(when.timestamp()) // period


def code_at(secret: bytes, *, step: int, params: TotpParams) -> str:
    """The code for one time step (RFC 6238 §4.2 / RFC 4226 §5.3 dynamic truncation)."""
    generator = pyotp.TOTP(base32(secret), digits=params.digits, digest=DIGESTS[params.algorithm],
                           interval=params.period)
    code: str = generator.generate_otp(step)
    return code


def matching_step(secret: bytes, code: str, *, params: TotpParams, now: datetime, window: int) -> int | None:
    """The newest step within ±``window`` of now whose code equals ``code``, or None.

    Every candidate is compared, in constant time, so timing does not tell which step
    (if any) matched.
    """
    current = time_step(now, params.period)
    found: int | None = None
    for step in range(current - window, current + window + 1):
        if step >= 0 and constant_time_equals(code_at(secret, step=step, params=params), code):
            found = step
    return found


def otpauth_uri(secret: bytes, *, params: TotpParams, issuer: str, account_name: str) -> str:
    """The Key URI Format authenticator apps read from a QR code; the parameters are always
    written out, so an app never has to guess a default."""
    label = f"{quote(issuer, safe='')}:{quote(account_name, safe='')}"
    query = urlencode({"secret": base32(secret), "issuer": issuer, "algorithm": params.algorithm,
                       "digits": params.digits, "period": params.period}, quote_via=quote)
    return f"otpauth://totp/{label}?{query}"


def qr_svg(uri: str) -> str:
    """An SVG QR code (segno; no Pillow), with its namespace so it also works as a file."""
    out = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(out, kind="svg", xmldecl=False, svgns=True, nl=False, scale=4,
                                                 title="TOTP setup")
    return out.getvalue().decode("utf-8")


def aad(account_id: uuid.UUID) -> bytes:
    """Binds a sealed secret to its account (store/rotation.py uses the same AAD)."""
    return f"totp:{account_id}".encode()


class TotpFactor:
    """Enrolment, verification and removal of one TOTP secret per account."""

    name = "totp"

    def __init__(self, *, params: TotpParams, window: int, issuer: str) -> None:
        self.params = params
        self.window = window
        self.issuer = issuer

    @classmethod
    def from_settings(cls, settings: Settings) -> TotpFactor:
        params = TotpParams(algorithm=settings.totp_algorithm.upper(), digits=settings.totp_digits,
                            period=settings.totp_period)
        return cls(params=params, window=settings.totp_window, issuer=settings.totp_issuer)

    def new_secret(self) -> bytes:
        return secrets.token_bytes(SEED_BYTES[self.params.algorithm])

    def provisioning(self, secret: bytes, *, account: AccountRow) -> TotpProvisioning:
        uri = otpauth_uri(secret, params=self.params, issuer=self.issuer, account_name=account.username)
        return TotpProvisioning(secret_base32=base32(secret), otpauth_uri=uri, qr_svg=qr_svg(uri))

    @staticmethod
    def seal_secret(ctx: AppContext, account_id: uuid.UUID, secret: bytes) -> str:
        return ctx.keyring.seal(secret, aad=aad(account_id))

    @staticmethod
    def open_secret(ctx: AppContext, account_id: uuid.UUID, sealed: str) -> bytes:
        return ctx.keyring.open(sealed, aad=aad(account_id))

    @staticmethod
    def require_shape(code: str, digits: int) -> None:
        if len(code) != digits or not (code.isascii() and code.isdigit()):
            raise ValidationFailed(f"the code is {digits} digits", field="code")

    async def enrol(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow, secret_sealed: str,
                    params: TotpParams, code: str) -> None:
        """Finish an enrolment: the code must come from the new secret. Its step is stored as
        used, so the confirming code cannot be replayed to sign in."""
        self.require_shape(code, params.digits)
        try:
            secret = self.open_secret(ctx, account.id, secret_sealed)
        except (KeyError_, InvalidTag, ValueError) as exc:
            raise FlowExpired(log_detail="pending TOTP secret cannot be opened (key rotated away?)") from exc
        step = matching_step(secret, code, params=params, now=ctx.clock.now(), window=self.window)
        if step is None:
            raise InvalidCode(log_detail="TOTP enrolment code does not match")
        now = ctx.clock.now()
        await totp.insert_totp(conn, account_id=account.id, secret_sealed=secret_sealed, algorithm=params.algorithm,
                               digits=params.digits, period=params.period, last_used_step=step, now=now)
        await events.insert_event(conn, type="factor_added", account_id=account.id, now=now,
                                  details={"method": "totp", "algorithm": params.algorithm, "digits": params.digits})
        if account.email:
            await ctx.outbox.enqueue(conn, channel="email", to=account.email, subject="An authenticator app was added",
                                     body=f"An authenticator app now produces sign-in codes for {account.username}. "
                                          "If this was not you, review your account's security settings.")

    async def _match(self, ctx: AppContext, conn: AsyncConnection, *, account_id: uuid.UUID,
                     code: str) -> TotpMatch | None:
        """The step ``code`` belongs to, recorded as used if it is newer than the last one;
        None when no step in the window matches. Raises NotEnrolled / ValidationFailed."""
        row = await totp.get_totp(conn, account_id)
        if row is None:
            raise NotEnrolled(log_detail="no TOTP secret")
        self.require_shape(code, row.digits)
        secret = self.open_secret(ctx, account_id, row.secret_sealed)
        params = TotpParams(algorithm=row.algorithm, digits=row.digits, period=row.period)
        step = matching_step(secret, code, params=params, now=ctx.clock.now(), window=self.window)
        if step is None:
            return None
        return TotpMatch(step=step, replayed=not await totp.advance_step(conn, account_id, step))

    async def verify(self, ctx: AppContext, conn: AsyncConnection, *, account_id: uuid.UUID, code: str) -> Proof:
        """Accept a code from the enrolled app, or raise invalid_code / code_reused."""
        found = await self._match(ctx, conn, account_id=account_id, code=code)
        if found is None:
            raise InvalidCode(log_detail="TOTP code matches no step in the window")
        if found.replayed:
            raise CodeReused(log_detail=f"TOTP step {found.step} is not newer than the last one used")
        return TOTP_PROOF

    async def verify_code(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow,
                          factors: EnrolledFactors, code: str, scope: str) -> Proof | None:
        """``X-MFA-Code``. TOTP has no scope. A code that matches no step answers None rather
        than invalid_code: an SMS code has the same shape and gets its turn after us (the
        login loop refuses with invalid_code when nothing matched). A replayed step is
        refused outright."""
        if not factors.totp or not code.isascii() or not code.isdigit():
            return None
        try:
            found = await self._match(ctx, conn, account_id=account.id, code=code)
        except (NotEnrolled, ValidationFailed):
            return None
        if found is None:
            return None
        if found.replayed:
            raise CodeReused(log_detail=f"TOTP step {found.step} is not newer than the last one used (X-MFA-Code)")
        return TOTP_PROOF

    async def remove(self, ctx: AppContext, conn: AsyncConnection, *, account: AccountRow,
                     factors: EnrolledFactors) -> None:
        factors = await fresh_factors(ctx, conn, account, factors)
        if not factors.totp:
            raise NotEnrolled("no authenticator app is enrolled")
        if not set(factors.names()) - {"totp", "recovery_code"}:
            raise LastFactor(log_detail="removing TOTP would leave no way to sign in")
        if not await totp.delete_totp(conn, account.id):
            raise NotEnrolled("no authenticator app is enrolled", log_detail="TOTP row vanished")
        now = ctx.clock.now()
        await events.insert_event(conn, type="factor_removed", account_id=account.id, now=now,
                                  details={"method": "totp"})
        if account.email:
            await ctx.outbox.enqueue(conn, channel="email", to=account.email,
                                     subject="An authenticator app was removed",
                                     body=f"The authenticator app of {account.username} no longer signs in. "
                                          "If this was not you, secure your account now.")
