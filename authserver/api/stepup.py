"""Step-up on the same session with a fallback factor (DESIGN §6, RFC 9470).

After a 401 ``step_up_required`` a client proves a fresh factor here and repeats its
request; the session keeps its token and gets a new ``last_mfa_at`` (and AAL2 at least).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, post
from msgspec import Meta
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.api.deps import bearer_token, client_address
from authserver.api.mfa import SmsSentOut, recovery_factor, sms_factor, totp_factor
from authserver.api.schemas import NO_NUL, Code, Struct
from authserver.errors import AuthError, CodeReused, InvalidCode, NotEnrolled
from authserver.flows.sessions import AuthContext
from authserver.methods.base import Proof
from authserver.methods.sms import valid_step_up_scope
from authserver.policy.ratelimit import account_key
from authserver.wiring import Services

Scope = Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)]


class StepUpCodeIn(Struct):
    code: Code


class StepUpSmsSendIn(Struct):
    scope: Scope | None = None


class StepUpSmsVerifyIn(Struct):
    code: Code
    scope: Scope | None = None


class StepUpOut(Struct):
    session_id: str
    aal: int
    amr: list[str]
    last_mfa_at: datetime | None


ProofCheck = Callable[[AsyncConnection], Awaitable[Proof]]


async def step_up_with(services: Services, request: Request[Any, Any, Any], auth: AuthContext, *,
                       check: ProofCheck) -> StepUpOut:
    """Fold the proof ``check`` returns into the caller's session.

    Like the login routes, a wrong or reused code commits what the check recorded (an SMS
    code's try) and counts against the account before the refusal goes out; a locked
    account is refused before any code is looked at.
    """
    ctx = services.ctx
    failure: AuthError | None = None
    lock_key = account_key(auth.account.username)
    async with ctx.db.transaction() as conn:
        # counted before the code is looked at; a wrong code still commits the count
        await ctx.regulator.reserve(conn, [lock_key], ctx.clock.now())
        try:
            proof = await check(conn)
        except (InvalidCode, CodeReused) as exc:
            failure = exc
        else:
            await ctx.regulator.release(conn, account_keys=[lock_key], other_keys=[])
            await services.stepup.record(conn, auth, proof)
    if failure is not None:
        await services.stepup.record_failure(auth, client_address(request, ctx.settings.trusted_proxies)[0])
        raise failure
    fresh = await services.sessions.authenticate(bearer_token(request, ctx.settings.session_cookie))
    s = fresh.session
    return StepUpOut(session_id=str(s.id), aal=s.aal, amr=list(s.amr), last_mfa_at=s.last_mfa_at)


class StepUpController(Controller):
    path = "/session/step-up"
    tags = ["session"]

    @post("/totp", status_code=200, summary="Refresh this session's second factor with an authenticator app code")
    async def totp(self, request: Request[Any, Any, Any], data: StepUpCodeIn, services: Services,
                   auth: AuthContext) -> StepUpOut:
        factor = totp_factor(services)

        async def check(conn: AsyncConnection) -> Proof:
            return await factor.verify(services.ctx, conn, account_id=auth.account.id, code=data.code)

        return await step_up_with(services, request, auth, check=check)

    @post("/recovery-code", status_code=200, summary="Refresh this session's second factor with a recovery code")
    async def recovery_code(self, request: Request[Any, Any, Any], data: StepUpCodeIn, services: Services,
                            auth: AuthContext) -> StepUpOut:
        factor = recovery_factor(services)
        if not (await services.stepup.factors(auth)).recovery_code:
            raise NotEnrolled("no recovery codes are left", log_detail="step-up with recovery code, none left")
        ip = client_address(request, services.ctx.settings.trusted_proxies)[0]

        async def check(conn: AsyncConnection) -> Proof:
            return (await factor.use(services.ctx, conn, account=auth.account, code=data.code, ip=ip)).proof

        return await step_up_with(services, request, auth, check=check)

    @post("/sms/send", status_code=202, summary="Text a step-up code, bound to an action's scope")
    async def sms_send(self, services: Services, auth: AuthContext,
                       data: StepUpSmsSendIn | None = None) -> SmsSentOut:
        scope = valid_step_up_scope(data.scope if data else None)
        ctx = services.ctx
        async with ctx.db.transaction() as conn:
            sent = await sms_factor(services).send(ctx, conn, account=auth.account, scope=scope)
        return SmsSentOut(phone_masked=sent.phone_masked, expires_at=sent.expires_at)

    @post("/sms/verify", status_code=200, summary="Refresh this session's second factor with the texted code")
    async def sms_verify(self, request: Request[Any, Any, Any], data: StepUpSmsVerifyIn, services: Services,
                         auth: AuthContext) -> StepUpOut:
        scope = valid_step_up_scope(data.scope)
        factor = sms_factor(services)

        async def check(conn: AsyncConnection) -> Proof:
            return await factor.verify(services.ctx, conn, account_id=auth.account.id, code=data.code, scope=scope)

        return await step_up_with(services, request, auth, check=check)
