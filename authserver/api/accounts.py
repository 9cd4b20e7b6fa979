"""Accounts: sign-up, password change, deletion, and the signed-in user's devices and events."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import Parameter

from authserver.api.deps import client_address, mfa_code_header
from authserver.api.responses import account_out, clear_session_cookie, no_content, session_out, with_session
from authserver.api.schemas import (
    NO_NUL,
    DeviceOut,
    DevicesOut,
    EventOut,
    EventsOut,
    PasswordChangedOut,
    PasswordChangeIn,
    SignupIn,
    SignupOut,
)
from authserver.errors import ValidationFailed
from authserver.flows.sessions import AuthContext
from authserver.policy.risk import ClientInfo
from authserver.store.repositories import devices, events
from authserver.wiring import Services

# ``next_cursor`` of an events page (an event id). list_events_page checks the digits; the
# pattern keeps NUL from ever reaching a handler, like every free-text parameter.
EventsCursor = Annotated[str | None, Parameter(max_length=20, pattern=NO_NUL)]


class AccountController(Controller):
    path = "/"
    tags = ["accounts"]

    @post("/accounts", status_code=201, summary="Create an account with a password (AAL1 session)")
    async def signup(self, data: SignupIn, services: Services, client: ClientInfo) -> Response[SignupOut]:
        if data.password is None:
            raise ValidationFailed("a password is required here; passkey-only accounts sign up through "
                                   "/registration/passkey", field="password")
        account, issued = await services.accounts.signup(username=data.username, display_name=data.display_name,
                                                         email=data.email, password=data.password, client=client)
        assert issued is not None  # noqa: S101 - a password signup always issues a session
        return with_session(services, client, issued, SignupOut(account=account_out(account),
                                                                 session=session_out(issued)), status=201)

    @put("/me/password", summary="Change (or set) the password; revokes every other session")
    async def change_password(self, request: Request[Any, Any, Any], data: PasswordChangeIn, services: Services,
                              auth: AuthContext) -> PasswordChangedOut:
        await services.stepup.require(auth, scope="change_password", mfa_code=mfa_code_header(request),
                                      ip=client_address(request, services.ctx.settings.trusted_proxies)[0])
        revoked = await services.accounts.change_password(
            auth, current=data.current_password, new=data.new_password,
            ip=client_address(request, services.ctx.settings.trusted_proxies)[0])
        return PasswordChangedOut(sessions_revoked=revoked)

    @delete("/me", status_code=204, summary="Delete the signed-in account and everything it owns")
    async def delete_me(self, request: Request[Any, Any, Any], services: Services, auth: AuthContext) -> Response[None]:
        await services.stepup.require(auth, scope="delete_account", mfa_code=mfa_code_header(request),
                                      ip=client_address(request, services.ctx.settings.trusted_proxies)[0])
        await services.accounts.delete(auth)
        return no_content(cookies=[clear_session_cookie(services)])

    @get("/me/devices", summary="Devices this account has signed in from")
    async def my_devices(self, services: Services, auth: AuthContext) -> DevicesOut:
        async with services.ctx.db.read() as conn:
            rows = await devices.list_devices(conn, auth.account.id)
        return DevicesOut(devices=[DeviceOut(id=str(d.id), kind=d.kind, user_agent=d.user_agent,
                                             first_seen_at=d.first_seen_at, last_seen_at=d.last_seen_at,
                                             last_ip=d.last_ip, last_country=d.last_country) for d in rows])

    @get("/me/events", summary="This account's security events, newest first")
    async def my_events(self, services: Services, auth: AuthContext,
                        cursor: EventsCursor = None,
                        limit: Annotated[int, Parameter(ge=1, le=200)] = 50) -> EventsOut:
        return await list_events_page(services, account_id=auth.account.id, type=None, cursor=cursor, limit=limit)


async def list_events_page(services: Services, *, account_id: Any, type: str | None, cursor: str | None,
                           limit: int) -> EventsOut:
    before = None
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or int(cursor) >= 2**63:
            raise ValidationFailed("bad cursor", field="cursor")
        before = int(cursor)
    async with services.ctx.db.read() as conn:
        rows = await events.list_events(conn, account_id=account_id, type=type, before_id=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return EventsOut(
        events=[EventOut(id=e.id, type=e.type, account_id=str(e.account_id) if e.account_id else None, ip=e.ip,
                         user_agent=e.user_agent, details=e.details, created_at=e.created_at) for e in rows],
        next_cursor=str(rows[-1].id) if more and rows else None)
