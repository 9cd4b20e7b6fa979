"""The second step of a login with a fallback factor (DESIGN §6): TOTP, a recovery code,
or an SMS code, each completing the flow that ``POST /login/password`` opened; and the email
code that lets a sign-in from a new country through when there is no second factor to ask."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from litestar import Controller, Response, post
from sqlalchemy.ext.asyncio import AsyncConnection

from authserver.api.responses import session_out, with_session
from authserver.api.schemas import FlowCodeIn, FlowTokenIn, LoginOut, SessionOut, Struct
from authserver.errors import AuthError, CodeReused, InvalidCode
from authserver.flows.sessions import IssuedSession
from authserver.methods.base import Proof
from authserver.methods.email import EmailCodeFactor
from authserver.methods.recovery import RecoveryCodeFactor
from authserver.methods.sms import LOGIN_SCOPE, SmsFactor
from authserver.methods.totp import TotpFactor
from authserver.policy.risk import ClientInfo
from authserver.store.repositories.accounts import AccountRow
from authserver.wiring import Services


class RecoveryLoginOut(Struct):
    session: SessionOut
    recovery_codes_left: int


class EmailSentOut(Struct):
    email_masked: str
    expires_at: datetime


class SmsSentOut(Struct):
    phone_masked: str
    expires_at: datetime


FactorT = TypeVar("FactorT")


def registered(services: Services, name: str, kind: type[FactorT]) -> FactorT:
    """The factor wiring registered under ``name``, typed as what it is."""
    factor = services.extra[name]
    assert isinstance(factor, kind)  # noqa: S101 - wiring registers it
    return factor


def totp_factor(services: Services) -> TotpFactor:
    return registered(services, "totp", TotpFactor)


def sms_factor(services: Services) -> SmsFactor:
    return registered(services, "sms", SmsFactor)


def email_factor(services: Services) -> EmailCodeFactor:
    return registered(services, "email", EmailCodeFactor)


def recovery_factor(services: Services) -> RecoveryCodeFactor:
    return registered(services, "recovery_code", RecoveryCodeFactor)


@dataclass(frozen=True, kw_only=True)
class CodeProof:
    proof: Proof
    recovery_codes_left: int | None = None


CodeCheck = Callable[[AsyncConnection, AccountRow], Awaitable[CodeProof]]


async def finish_with_code(services: Services, client: ClientInfo, *, flow_token: str, method: str,
                           check: CodeCheck) -> tuple[IssuedSession, CodeProof]:
    """Run ``check`` against the flow's account and finish the flow with its proof.

    A wrong or reused code still commits the transaction — so that what the check recorded
    (an SMS code's used-up try) stays recorded — and then counts against the account in
    the regulator before the refusal goes out.
    """
    ctx = services.ctx
    failure: AuthError | None = None
    async with ctx.db.transaction() as conn:
        flow, account, _ = await services.login.load_mfa_flow(conn, flow_token, method)
        try:
            result = await check(conn, account)
        except (InvalidCode, CodeReused) as exc:
            failure = exc
        else:
            issued = await services.login.finish_mfa(conn, flow, account, result.proof, client)
    if failure is not None:
        await services.login.record_mfa_failure(account, client, method)
        raise failure
    return issued, result


class MfaController(Controller):
    path = "/login/mfa"
    tags = ["login"]

    @post("/totp", status_code=200, summary="Finish a login with a code from the authenticator app")
    async def totp(self, data: FlowCodeIn, services: Services, client: ClientInfo) -> Response[LoginOut]:
        factor = totp_factor(services)

        async def check(conn: AsyncConnection, account: AccountRow) -> CodeProof:
            return CodeProof(proof=await factor.verify(services.ctx, conn, account_id=account.id, code=data.code))

        issued, _ = await finish_with_code(services, client, flow_token=data.flow_token, method="totp", check=check)
        return with_session(services, client, issued, LoginOut(session=session_out(issued)))

    @post("/recovery-code", status_code=200, summary="Finish a login with a single-use recovery code")
    async def recovery_code(self, data: FlowCodeIn, services: Services,
                            client: ClientInfo) -> Response[RecoveryLoginOut]:
        factor = recovery_factor(services)

        async def check(conn: AsyncConnection, account: AccountRow) -> CodeProof:
            used = await factor.use(services.ctx, conn, account=account, code=data.code, ip=client.ip)
            return CodeProof(proof=used.proof, recovery_codes_left=used.left)

        issued, result = await finish_with_code(services, client, flow_token=data.flow_token,
                                                method="recovery_code", check=check)
        return with_session(services, client, issued,
                            RecoveryLoginOut(session=session_out(issued),
                                             recovery_codes_left=result.recovery_codes_left or 0))

    @post("/sms/send", status_code=202, summary="Text a sign-in code to the account's verified phone")
    async def sms_send(self, data: FlowTokenIn, services: Services) -> SmsSentOut:
        ctx = services.ctx
        async with ctx.db.transaction() as conn:
            _, account, _ = await services.login.load_mfa_flow(conn, data.flow_token, "sms", attempt=False)
            sent = await sms_factor(services).send(ctx, conn, account=account, scope=LOGIN_SCOPE)
        return SmsSentOut(phone_masked=sent.phone_masked, expires_at=sent.expires_at)

    @post("/sms/verify", status_code=200, summary="Finish a login with the texted code")
    async def sms_verify(self, data: FlowCodeIn, services: Services, client: ClientInfo) -> Response[LoginOut]:
        factor = sms_factor(services)

        async def check(conn: AsyncConnection, account: AccountRow) -> CodeProof:
            proof = await factor.verify(services.ctx, conn, account_id=account.id, code=data.code, scope=LOGIN_SCOPE)
            return CodeProof(proof=proof)

        issued, _ = await finish_with_code(services, client, flow_token=data.flow_token, method="sms", check=check)
        return with_session(services, client, issued, LoginOut(session=session_out(issued)))

    @post("/email/send", status_code=202,
          summary="Email a code to confirm a sign-in from a new place (offered only by a risk check)")
    async def email_send(self, data: FlowTokenIn, services: Services) -> EmailSentOut:
        ctx = services.ctx
        async with ctx.db.transaction() as conn:
            _, account, _ = await services.login.load_mfa_flow(conn, data.flow_token, "email", attempt=False)
            sent = await email_factor(services).send(ctx, conn, account=account)
        return EmailSentOut(email_masked=sent.email_masked, expires_at=sent.expires_at)

    @post("/email/verify", status_code=200, summary="Finish a risky sign-in with the emailed code")
    async def email_verify(self, data: FlowCodeIn, services: Services, client: ClientInfo) -> Response[LoginOut]:
        factor = email_factor(services)

        async def check(conn: AsyncConnection, account: AccountRow) -> CodeProof:
            return CodeProof(proof=await factor.verify(services.ctx, conn, account_id=account.id, code=data.code))

        issued, _ = await finish_with_code(services, client, flow_token=data.flow_token, method="email", check=check)
        return with_session(services, client, issued, LoginOut(session=session_out(issued)))
