"""Step-up on the *same* session (DESIGN §6, RFC 9470).

A sensitive call made without a fresh second factor is refused with the RFC 9470
challenge; the client either repeats it with ``X-MFA-Code`` or runs a step-up route first.
Either way the session's ``last_mfa_at`` is refreshed (and its AAL may rise); the token
stays the same.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.context import AppContext
from authserver.errors import AuthError, CodeReused, InvalidCode
from authserver.flows.login import LoginService
from authserver.flows.sessions import AuthContext
from authserver.methods.base import Proof
from authserver.policy.aal import after_step_up
from authserver.policy.ratelimit import account_key, ip_key
from authserver.policy.stepup import require_fresh
from authserver.store.repositories import accounts, events, sessions
from authserver.store.repositories.accounts import EnrolledFactors


class StepUpService:
    def __init__(self, ctx: AppContext, login: LoginService) -> None:
        self.ctx = ctx
        self.login = login

    async def factors(self, auth: AuthContext) -> EnrolledFactors:
        async with self.ctx.db.read() as conn:
            found = await accounts.get_with_factors(conn, auth.account.id, self.ctx.clock.now())
        if found is None:
            raise AuthError(log_detail="account vanished")
        return found[1]

    async def require(self, auth: AuthContext, *, scope: str, mfa_code: str | None,
                      ip: str | None = None) -> EnrolledFactors:
        """Pass when the session is fresh; else try ``X-MFA-Code``; else raise the challenge."""
        ctx = self.ctx
        factors = await self.factors(auth)
        now = ctx.clock.now()
        s = auth.session
        try:
            require_fresh(auth_time=s.auth_time, last_mfa_at=s.last_mfa_at, factors=factors, now=now,
                          window=ctx.settings.step_up_window)
            return factors
        except AuthError:
            if mfa_code is None:
                raise
        keys = [account_key(auth.account.username), ip_key(ip)]
        async with ctx.db.transaction() as conn:
            await ctx.regulator.reserve(conn, keys, now)  # counted before the code is looked at
        try:
            proof = await self.login.verify_header_code(auth.account, factors, mfa_code, scope=scope)
        except (InvalidCode, CodeReused):
            await self.record_failure(auth, ip)
            raise
        async with ctx.db.transaction() as conn:
            await ctx.regulator.release(conn, account_keys=keys[:1], other_keys=keys[1:])
            await self.record(conn, auth, proof)
        return factors

    async def record(self, conn: AsyncConnection, auth: AuthContext, proof: Proof) -> None:
        """Fold a fresh proof into the session: ``last_mfa_at`` = now; AAL only ever rises."""
        now = self.ctx.clock.now()
        s = auth.session
        aal, amr = after_step_up(s.aal, list(s.amr), proof)
        await sessions.record_step_up(conn, s.id, aal=aal, amr=amr, now=now)
        await events.insert_event(conn, type="step_up", account_id=auth.account.id, now=now,
                                  details={"method": proof.method, "session_id": str(s.id), "aal": aal})

    async def record_failure(self, auth: AuthContext, ip: str | None) -> None:
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            await self.ctx.regulator.record_failure(conn, [account_key(auth.account.username), ip_key(ip)], now)
            await events.insert_event(conn, type="step_up_failed", account_id=auth.account.id, now=now, ip=ip)
