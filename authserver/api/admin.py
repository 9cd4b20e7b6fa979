"""Admin routes (role admin, AAL2+, fresh second factor): find, unlock and disable accounts,
read the audit trail."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter

from authserver.api.accounts import EventsCursor, list_events_page
from authserver.api.deps import bearer_token, client_address, mfa_code_header
from authserver.api.responses import account_out
from authserver.api.schemas import NO_NUL, AccountOut, EventsOut, Struct
from authserver.errors import Forbidden, NotFound, Unauthorized
from authserver.flows.sessions import AuthContext
from authserver.policy.aal import second_factor_methods
from authserver.policy.ratelimit import account_key
from authserver.policy.stepup import step_up_challenge
from authserver.store.repositories import accounts, events, flows, lockouts, sessions
from authserver.wiring import Services


class AccountsOut(Struct):
    accounts: list[AccountOut]


class AdminAccountOut(Struct):
    account: AccountOut
    factors: list[str]
    locked_until: str | None


async def require_admin(request: Request[Any, Any, Any], services: Services, auth: AuthContext) -> None:
    """Role admin, AAL2+, a fresh second factor (DESIGN §6).

    An AAL1 session may repeat its call with ``X-MFA-Code`` (RFC 9470): the code is
    verified and folded into the *same* session by the step-up service, and the session is
    read again, because that service lets a recent sign-in of an account without a second
    factor through without looking at the code, which leaves the session at AAL1.
    """
    if auth.account.role != "admin":
        raise Forbidden(log_detail=f"{auth.account.username} is not an admin")
    settings = services.ctx.settings
    mfa_code = mfa_code_header(request)
    ip = client_address(request, settings.trusted_proxies)[0]
    if auth.session.aal < 2:
        if mfa_code is not None:
            await services.stepup.require(auth, scope="admin", mfa_code=mfa_code, ip=ip)
            lifted = await services.sessions.authenticate(bearer_token(request, settings.session_cookie))
            if lifted.session.id != auth.session.id:
                raise Unauthorized(log_detail="session changed during an admin step-up")
            if lifted.session.aal >= 2:
                return
        factors = await services.stepup.factors(auth)
        methods = second_factor_methods(factors)
        raise step_up_challenge(window=settings.step_up_window, methods=methods or ["enrol_second_factor"])
    await services.stepup.require(auth, scope="admin", mfa_code=mfa_code, ip=ip)


# Free text from the query string goes into a WHERE clause: NUL is a 400 here, because
# PostgreSQL text cannot hold it (a 500 there).
SearchText = Annotated[str | None, Parameter(query="query", max_length=128, pattern=NO_NUL)]
EventType = Annotated[str | None, Parameter(max_length=64, pattern=NO_NUL)]


class AdminController(Controller):
    path = "/admin"
    tags = ["admin"]

    @get("/accounts", summary="Find accounts by username or email")
    async def find(self, request: Request[Any, Any, Any], services: Services, auth: AuthContext,
                   search: SearchText = None) -> AccountsOut:
        await require_admin(request, services, auth)
        async with services.ctx.db.read() as conn:
            rows = await accounts.search_accounts(conn, search)
        return AccountsOut(accounts=[account_out(a) for a in rows])

    @get("/accounts/{account_id:uuid}", summary="One account with its factors and lock state")
    async def one(self, request: Request[Any, Any, Any], account_id: uuid.UUID, services: Services,
                  auth: AuthContext) -> AdminAccountOut:
        await require_admin(request, services, auth)
        now = services.ctx.clock.now()
        async with services.ctx.db.read() as conn:
            found = await accounts.get_with_factors(conn, account_id, now)
            if found is None:
                raise NotFound("no such account")
            account, factors = found
            locks = await lockouts.get_many(conn, [account_key(account.username)])
        lock = locks.get(account_key(account.username))
        until = lock.locked_until if lock and lock.locked_until and lock.locked_until > now else None
        return AdminAccountOut(account=account_out(account), factors=factors.names(),
                               locked_until=until.isoformat() if until else None)

    @post("/accounts/{account_id:uuid}/unlock", status_code=200, summary="Lift a failed-attempt lockout")
    async def unlock(self, request: Request[Any, Any, Any], account_id: uuid.UUID, services: Services,
                     auth: AuthContext) -> AccountOut:
        await require_admin(request, services, auth)
        now = services.ctx.clock.now()
        async with services.ctx.db.transaction() as conn:
            account = await accounts.get_account(conn, account_id)
            if account is None:
                raise NotFound("no such account")
            await lockouts.clear(conn, [account_key(account.username)])
            await events.insert_event(conn, type="account_unlocked", account_id=account.id, now=now,
                                      details={"by": str(auth.account.id)})
        return account_out(account)

    @post("/accounts/{account_id:uuid}/disable", status_code=200, summary="Disable an account and end its sessions")
    async def disable(self, request: Request[Any, Any, Any], account_id: uuid.UUID, services: Services,
                      auth: AuthContext) -> AccountOut:
        await require_admin(request, services, auth)
        now = services.ctx.clock.now()
        async with services.ctx.db.transaction() as conn:
            if not await accounts.set_status(conn, account_id, "disabled", now):
                raise NotFound("no such account")
            revoked = await sessions.revoke_all(conn, account_id, now)
            await flows.end_pending_for_account(conn, account_id)  # no login of it may finish now
            await events.insert_event(conn, type="account_disabled", account_id=account_id, now=now,
                                      details={"by": str(auth.account.id), "sessions_revoked": revoked})
            account = await accounts.get_account(conn, account_id)
        assert account is not None  # noqa: S101 - updated above in this transaction
        return account_out(account)

    @get("/events", summary="The audit trail, newest first")
    async def audit(self, request: Request[Any, Any, Any], services: Services, auth: AuthContext,
                    type: EventType = None,
                    account: Annotated[uuid.UUID | None, Parameter()] = None,
                    cursor: EventsCursor = None,
                    limit: Annotated[int, Parameter(ge=1, le=200)] = 50) -> EventsOut:
        await require_admin(request, services, auth)
        return await list_events_page(services, account_id=account, type=type, cursor=cursor, limit=limit)
