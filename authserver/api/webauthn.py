"""WebAuthn routes (DESIGN §6): passkey sign-up, passkey-first login, WebAuthn as a login's
second step, WebAuthn step-up, the signed-in user's credentials, and ``/.well-known/webauthn``.

Options go out as the WebAuthn JSON forms (``PublicKeyCredentialCreationOptionsJSON`` /
``...RequestOptionsJSON``) and credentials come back as ``PublicKeyCredential.toJSON()``.
The credential object is taken as plain JSON here and parsed strictly by the factor
(methods/webauthn_parse.py), so malformed input is a 400 ``validation_error``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from msgspec import Meta

from authserver.api.admin import require_admin
from authserver.api.deps import client_address, mfa_code_header
from authserver.api.responses import account_out, no_content, session_out, with_session
from authserver.api.schemas import (
    NO_NUL,
    AccountOut,
    DisplayName,
    Email,
    FlowTokenIn,
    LoginName,
    LoginOut,
    SessionOut,
    Struct,
    Token,
    Username,
)
from authserver.flows.sessions import AuthContext
from authserver.flows.webauthn import Ceremony, WebAuthnService
from authserver.methods.sms import mask_phone
from authserver.policy.risk import ClientInfo
from authserver.store.repositories.webauthn_credentials import CredentialRow
from authserver.wiring import Services

Kind = Annotated[str, Meta(min_length=1, max_length=16, pattern=NO_NUL)]
Nickname = Annotated[str, Meta(max_length=64, pattern=NO_NUL)]


def webauthn_service(services: Services) -> WebAuthnService:
    service: WebAuthnService = services.extra["webauthn"]
    return service


# ---- bodies ---------------------------------------------------------------------------------

class PasskeySignupOptionsIn(Struct):
    username: Username
    display_name: DisplayName | None = None
    email: Email | None = None


class PasskeyLoginOptionsIn(Struct):
    username: LoginName | None = None


class CredentialIn(Struct):
    flow_token: Token
    credential: dict[str, Any]


class RegisterOptionsIn(Struct):
    kind: Kind
    nickname: Nickname | None = None


class RenameIn(Struct):
    nickname: Nickname | None


class CeremonyOut(Struct):
    flow_token: str
    options: dict[str, Any]


class OptionsOut(Struct):
    options: dict[str, Any]


class WebAuthnCredentialOut(Struct):
    id: str
    nickname: str | None
    authenticator_name: str | None
    aaguid: str
    kind: str
    discoverable: bool | None
    backup_eligible: bool
    backup_state: bool
    user_verified: bool
    transports: list[str]
    attestation_format: str
    attestation_trust: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime
    expires_soon: bool
    expired: bool
    at_risk: bool
    at_risk_reason: str | None


class TotpSummaryOut(Struct):
    enrolled: bool
    created_at: datetime


class PhoneSummaryOut(Struct):
    id: str
    phone_masked: str
    verified: bool


class CredentialsOut(Struct):
    webauthn: list[WebAuthnCredentialOut]
    totp: TotpSummaryOut | None
    phones: list[PhoneSummaryOut]
    recovery_codes_left: int


class PasskeySignupOut(Struct):
    account: AccountOut
    credential: WebAuthnCredentialOut
    session: SessionOut


class WebAuthnStepUpOut(Struct):
    session_id: str
    aal: int
    amr: list[str]
    last_mfa_at: datetime | None


def credential_out(service: WebAuthnService, row: CredentialRow) -> WebAuthnCredentialOut:
    now = service.ctx.clock.now()
    return WebAuthnCredentialOut(
        id=str(row.id), nickname=row.nickname, authenticator_name=row.authenticator_name, aaguid=row.aaguid,
        kind=row.kind, discoverable=row.discoverable, backup_eligible=row.backup_eligible,
        backup_state=row.backup_state, user_verified=row.user_verified, transports=list(row.transports),
        attestation_format=row.attestation_format, attestation_trust=row.attestation_trust,
        created_at=row.created_at, last_used_at=row.last_used_at, expires_at=row.expires_at,
        expires_soon=service.expires_soon(row), expired=row.expires_at <= now, at_risk=row.at_risk,
        at_risk_reason=row.at_risk_reason)


def _ceremony(ceremony: Ceremony) -> CeremonyOut:
    assert ceremony.flow_token is not None  # noqa: S101 - every begin but the MFA step opens a flow
    return CeremonyOut(flow_token=ceremony.flow_token, options=ceremony.options)


# ---- controllers ------------------------------------------------------------------------------

class PasskeyController(Controller):
    """Sign-up, sign-in and step-up ceremonies."""

    path = "/"
    tags = ["webauthn"]

    @post("/registration/passkey/options", status_code=200, summary="Start a passkey-only sign-up")
    async def signup_options(self, data: PasskeySignupOptionsIn, services: Services,
                             client: ClientInfo) -> CeremonyOut:
        return _ceremony(await webauthn_service(services).begin_signup(
            username=data.username, display_name=data.display_name, email=data.email, client=client))

    @post("/registration/passkey/verify", status_code=201,
          summary="Finish a passkey-only sign-up: account, credential and session (AAL from DESIGN §4)")
    async def signup_verify(self, data: CredentialIn, services: Services,
                            client: ClientInfo) -> Response[PasskeySignupOut]:
        service = webauthn_service(services)
        result = await service.finish_signup(flow_token=data.flow_token, credential=data.credential, client=client)
        body = PasskeySignupOut(account=account_out(result.account), credential=credential_out(service, result.credential),
                                session=session_out(result.session))
        return with_session(services, client, result.session, body, status=201)

    @post("/login/webauthn/options", status_code=200,
          summary="Start a passkey-first login (no username: usernameless, empty allowCredentials)")
    async def login_options(self, data: PasskeyLoginOptionsIn, services: Services,
                            client: ClientInfo) -> CeremonyOut:
        return _ceremony(await webauthn_service(services).begin_login(username=data.username, client=client))

    @post("/login/webauthn/verify", status_code=200,
          summary="Finish a passkey-first login (401 mfa_required when the assertion alone is not enough)")
    async def login_verify(self, data: CredentialIn, services: Services, client: ClientInfo) -> Response[LoginOut]:
        issued = await webauthn_service(services).finish_login(flow_token=data.flow_token,
                                                               credential=data.credential, client=client)
        return with_session(services, client, issued, LoginOut(session=session_out(issued)))

    @post("/login/mfa/webauthn/options", status_code=200, summary="WebAuthn as the second step of a login")
    async def mfa_options(self, data: FlowTokenIn, services: Services) -> OptionsOut:
        ceremony = await webauthn_service(services).begin_mfa(flow_token=data.flow_token)
        return OptionsOut(options=ceremony.options)

    @post("/login/mfa/webauthn/verify", status_code=200, summary="Finish a login with a security key or passkey")
    async def mfa_verify(self, data: CredentialIn, services: Services, client: ClientInfo) -> Response[LoginOut]:
        issued = await webauthn_service(services).finish_mfa(flow_token=data.flow_token, credential=data.credential,
                                                             client=client)
        return with_session(services, client, issued, LoginOut(session=session_out(issued)))

    @post("/session/step-up/webauthn/options", status_code=200,
          summary="Start refreshing this session's second factor with a security key or passkey")
    async def step_up_options(self, services: Services, auth: AuthContext, client: ClientInfo) -> CeremonyOut:
        return _ceremony(await webauthn_service(services).begin_step_up(auth, client=client))

    @post("/session/step-up/webauthn/verify", status_code=200,
          summary="Refresh this session's second factor (same token; last_mfa_at and maybe AAL rise)")
    async def step_up_verify(self, data: CredentialIn, services: Services, auth: AuthContext,
                             client: ClientInfo) -> WebAuthnStepUpOut:
        result = await webauthn_service(services).finish_step_up(auth, flow_token=data.flow_token,
                                                                 credential=data.credential, client=client)
        return WebAuthnStepUpOut(session_id=str(auth.session.id), aal=result.aal, amr=result.amr,
                                 last_mfa_at=result.last_mfa_at)


class CredentialsController(Controller):
    """The signed-in user's factors: list them, add, rename and remove WebAuthn credentials."""

    path = "/me/credentials"
    tags = ["factors"]

    @get("/", summary="Every factor of this account (WebAuthn credentials, TOTP, phones, recovery codes)")
    async def list_credentials(self, services: Services, auth: AuthContext) -> CredentialsOut:
        service = webauthn_service(services)
        listing = await service.list_credentials(auth)
        factors = listing.factors
        return CredentialsOut(
            webauthn=[credential_out(service, row) for row in listing.webauthn],
            totp=TotpSummaryOut(enrolled=True, created_at=factors.totp_created_at)
            if factors.totp_created_at is not None else None,
            phones=[PhoneSummaryOut(id=str(p.id), phone_masked=mask_phone(p.number), verified=p.verified)
                    for p in factors.phones],
            recovery_codes_left=factors.recovery_codes_left)

    @post("/webauthn/options", status_code=200,
          summary="Start adding a passkey or security key (needs a fresh factor: step-up scope add_factor)")
    async def register_options(self, request: Request[Any, Any, Any], data: RegisterOptionsIn, services: Services,
                               auth: AuthContext, client: ClientInfo) -> CeremonyOut:
        await services.stepup.require(auth, scope="add_factor", mfa_code=mfa_code_header(request),
                                      ip=client_address(request, services.ctx.settings.trusted_proxies)[0])
        return _ceremony(await webauthn_service(services).begin_register(auth, kind=data.kind,
                                                                         nickname=data.nickname, client=client))

    @post("/webauthn/verify", status_code=201, summary="Finish adding a passkey or security key")
    async def register_verify(self, data: CredentialIn, services: Services, auth: AuthContext,
                              client: ClientInfo) -> WebAuthnCredentialOut:
        service = webauthn_service(services)
        row = await service.finish_register(auth, flow_token=data.flow_token, credential=data.credential,
                                            client=client)
        return credential_out(service, row)

    @patch("/webauthn/{credential_id:uuid}", summary="Rename a passkey or security key")
    async def rename(self, credential_id: uuid.UUID, data: RenameIn, services: Services,
                     auth: AuthContext) -> WebAuthnCredentialOut:
        service = webauthn_service(services)
        return credential_out(service, await service.rename(auth, credential_id, nickname=data.nickname))

    @delete("/webauthn/{credential_id:uuid}", status_code=204,
            summary="Remove a passkey or security key (needs a fresh factor; never the last way in)")
    async def remove(self, request: Request[Any, Any, Any], credential_id: uuid.UUID, services: Services,
                     auth: AuthContext) -> Response[None]:
        await services.stepup.require(auth, scope="remove_factor", mfa_code=mfa_code_header(request),
                                      ip=client_address(request, services.ctx.settings.trusted_proxies)[0])
        await webauthn_service(services).revoke(auth, credential_id)
        return no_content()


class AdminCredentialsController(Controller):
    """``DELETE /admin/accounts/{id}/credentials/webauthn/{cid}`` (role admin, AAL2+, fresh)."""

    path = "/admin/accounts"
    tags = ["admin"]

    @delete("/{account_id:uuid}/credentials/webauthn/{credential_id:uuid}", status_code=204,
            summary="Remove a user's passkey or security key (lost or compromised key)")
    async def remove(self, request: Request[Any, Any, Any], account_id: uuid.UUID, credential_id: uuid.UUID,
                     services: Services, auth: AuthContext) -> Response[None]:
        await require_admin(request, services, auth)
        await webauthn_service(services).revoke_for_admin(auth, account_id=account_id, credential_id=credential_id)
        return no_content()


class WellKnownWebAuthnController(Controller):
    """``/.well-known/webauthn``: origins that may use our RP ID (related origin requests,
    WebAuthn L3 §5.11), at the root."""

    path = "/.well-known"
    tags = ["service"]

    @get("/webauthn", summary="Related origins allowed to use this RP ID", cache=300)
    async def related_origins(self, services: Services) -> dict[str, list[str]]:
        return {"origins": webauthn_service(services).well_known_origins()}
