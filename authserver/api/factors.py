"""Managing the fallback factors of the signed-in account (DESIGN §6 "Managing factors"):
the authenticator app, phone numbers and recovery codes.

Adding or removing a factor and regenerating recovery codes are sensitive: each call goes
through StepUpService.require with its action's scope, so a stale session gets the RFC 9470
challenge and may repeat the call with ``X-MFA-Code``. Confirming a new TOTP secret or
phone proves a fresh factor, so it also refreshes the session's step-up time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from msgspec import Meta

from authserver.api.deps import client_address, mfa_code_header
from authserver.api.mfa import recovery_factor, sms_factor, totp_factor
from authserver.api.responses import no_content
from authserver.api.schemas import NO_NUL, Code, Struct, Token
from authserver.errors import AuthError, CodeReused, Conflict, FlowExpired, InvalidCode
from authserver.flows.base import create_flow, finish_flow, load_flow
from authserver.flows.sessions import AuthContext
from authserver.methods.sms import SMS_PROOF, mask_phone
from authserver.methods.totp import TOTP_PROOF, TotpParams
from authserver.policy.risk import ClientInfo
from authserver.store.repositories.phones import PhoneRow
from authserver.wiring import Services

TOTP_ENROL_FLOW = "totp_enroll"
PENDING = "pending"

PhoneText = Annotated[str, Meta(min_length=1, max_length=32, pattern=NO_NUL)]


class TotpEnrolOut(Struct):
    enrollment_token: str
    secret: str
    otpauth_uri: str
    qr_svg: str


class TotpConfirmIn(Struct):
    enrollment_token: Token
    code: Code


class TotpEnrolledOut(Struct):
    enrolled: bool
    algorithm: str
    digits: int
    period: int


class PhoneIn(Struct):
    phone: PhoneText


class PhoneVerifyIn(Struct):
    phone: PhoneText
    code: Code


class PhoneOut(Struct):
    id: str
    phone_masked: str
    verified: bool
    code_expires_at: datetime | None = None


class RecoveryCodesOut(Struct):
    codes: list[str]


class RecoveryCodesLeftOut(Struct):
    left: int


def _ip(request: Request[Any, Any, Any], services: Services) -> str | None:
    return client_address(request, services.ctx.settings.trusted_proxies)[0]


def _phone_out(phone: PhoneRow, code_expires_at: datetime | None = None) -> PhoneOut:
    return PhoneOut(id=str(phone.id), phone_masked=mask_phone(phone.number), verified=phone.verified_at is not None,
                    code_expires_at=code_expires_at)


class FactorController(Controller):
    path = "/me"
    tags = ["factors"]

    # -- authenticator app (TOTP) -------------------------------------------------------

    @post("/totp", status_code=200, summary="Start enrolling an authenticator app (secret, otpauth URI, QR)")
    async def totp_begin(self, request: Request[Any, Any, Any], services: Services, auth: AuthContext,
                         client: ClientInfo) -> TotpEnrolOut:
        factors = await services.stepup.require(auth, scope="add_factor", mfa_code=mfa_code_header(request),
                                                ip=_ip(request, services))
        if factors.totp:
            raise Conflict("an authenticator app is already enrolled; remove it first",
                           log_detail="TOTP enrolment while enrolled")
        ctx = services.ctx
        factor = totp_factor(services)
        secret = factor.new_secret()
        p = factor.params
        async with ctx.db.transaction() as conn:
            flow = await create_flow(ctx, conn, kind=TOTP_ENROL_FLOW, state=PENDING, account_id=auth.account.id,
                                     client=client, session_id=auth.session.id, methods=["totp"],
                                     data={"secret_sealed": factor.seal_secret(ctx, auth.account.id, secret),
                                           "algorithm": p.algorithm, "digits": p.digits, "period": p.period})
        shown = factor.provisioning(secret, account=auth.account)
        return TotpEnrolOut(enrollment_token=flow.token, secret=shown.secret_base32, otpauth_uri=shown.otpauth_uri,
                            qr_svg=shown.qr_svg)

    @post("/totp/confirm", status_code=201, summary="Finish enrolling the app with a code it shows")
    async def totp_confirm(self, data: TotpConfirmIn, services: Services, auth: AuthContext) -> TotpEnrolledOut:
        ctx = services.ctx
        factor = totp_factor(services)
        async with ctx.db.transaction() as conn:
            flow = await load_flow(ctx, conn, data.enrollment_token, kinds=(TOTP_ENROL_FLOW,))
            if flow.account_id != auth.account.id or flow.session_id != auth.session.id:
                raise FlowExpired(log_detail="TOTP enrolment token of another session")
            params = TotpParams(algorithm=str(flow.data["algorithm"]), digits=int(flow.data["digits"]),
                                period=int(flow.data["period"]))
            await factor.enrol(ctx, conn, account=auth.account, secret_sealed=str(flow.data["secret_sealed"]),
                               params=params, code=data.code)
            await finish_flow(conn, flow)
            await services.stepup.record(conn, auth, TOTP_PROOF)
        return TotpEnrolledOut(enrolled=True, algorithm=params.algorithm, digits=params.digits, period=params.period)

    @delete("/totp", status_code=204, summary="Remove the authenticator app")
    async def totp_remove(self, request: Request[Any, Any, Any], services: Services,
                          auth: AuthContext) -> Response[None]:
        factors = await services.stepup.require(auth, scope="remove_factor", mfa_code=mfa_code_header(request),
                                                ip=_ip(request, services))
        async with services.ctx.db.transaction() as conn:
            await totp_factor(services).remove(services.ctx, conn, account=auth.account, factors=factors)
        return no_content()

    # -- phone numbers (SMS) ------------------------------------------------------------

    @post("/phones", status_code=202, summary="Add a phone number (E.164); a code is texted to it")
    async def phone_add(self, request: Request[Any, Any, Any], data: PhoneIn, services: Services,
                        auth: AuthContext) -> PhoneOut:
        await services.stepup.require(auth, scope="add_factor", mfa_code=mfa_code_header(request),
                                      ip=_ip(request, services))
        async with services.ctx.db.transaction() as conn:
            phone, sent = await sms_factor(services).add_phone(services.ctx, conn, account=auth.account,
                                                               raw_number=data.phone)
        return _phone_out(phone, sent.expires_at)

    @post("/phones/verify", status_code=200, summary="Verify a phone number with the code texted to it")
    async def phone_verify(self, data: PhoneVerifyIn, services: Services, auth: AuthContext) -> PhoneOut:
        ctx = services.ctx
        failure: AuthError | None = None
        async with ctx.db.transaction() as conn:
            try:
                phone = await sms_factor(services).confirm_phone(ctx, conn, account=auth.account,
                                                                 raw_number=data.phone, code=data.code)
            except (InvalidCode, CodeReused) as exc:
                failure = exc  # commit: the wrong try stays counted on the code
            else:
                await services.stepup.record(conn, auth, SMS_PROOF)
        if failure is not None:
            raise failure
        return _phone_out(phone)

    @delete("/phones/{phone_id:uuid}", status_code=204, summary="Remove a phone number")
    async def phone_remove(self, request: Request[Any, Any, Any], phone_id: uuid.UUID, services: Services,
                           auth: AuthContext) -> Response[None]:
        factors = await services.stepup.require(auth, scope="remove_factor", mfa_code=mfa_code_header(request),
                                                ip=_ip(request, services))
        async with services.ctx.db.transaction() as conn:
            await sms_factor(services).remove_phone(services.ctx, conn, account=auth.account, factors=factors,
                                                    phone_id=phone_id)
        return no_content()

    # -- recovery codes -----------------------------------------------------------------

    @post("/recovery-codes", status_code=201, summary="Make a new set of recovery codes (replaces the old set)")
    async def recovery_regenerate(self, request: Request[Any, Any, Any], services: Services,
                                  auth: AuthContext) -> RecoveryCodesOut:
        await services.stepup.require(auth, scope="regenerate_recovery_codes", mfa_code=mfa_code_header(request),
                                      ip=_ip(request, services))
        async with services.ctx.db.transaction() as conn:
            codes = await recovery_factor(services).regenerate(services.ctx, conn, account=auth.account)
        return RecoveryCodesOut(codes=codes)

    @get("/recovery-codes", summary="How many recovery codes are left")
    async def recovery_left(self, services: Services, auth: AuthContext) -> RecoveryCodesLeftOut:
        async with services.ctx.db.read() as conn:
            left = await recovery_factor(services).left(conn, auth.account.id)
        return RecoveryCodesLeftOut(left=left)
