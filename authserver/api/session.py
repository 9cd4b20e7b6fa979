"""The caller's session(s) and token introspection for resource servers."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, delete, get, post

from authserver.api.deps import bearer_token
from authserver.api.responses import account_out, clear_session_cookie, no_content
from authserver.api.schemas import IntrospectIn, IntrospectOut, SessionInfoOut, SessionItemOut, SessionsOut
from authserver.crypto import constant_time_equals
from authserver.errors import Forbidden, Unauthorized
from authserver.flows.sessions import AuthContext
from authserver.wiring import Services


class SessionController(Controller):
    path = "/"
    tags = ["session"]

    @get("/session", summary="The current session")
    async def current(self, services: Services, auth: AuthContext) -> SessionInfoOut:
        s = auth.session
        return SessionInfoOut(account=account_out(auth.account), session_id=str(s.id), aal=s.aal, amr=list(s.amr),
                              auth_time=s.auth_time, last_mfa_at=s.last_mfa_at,
                              expires_at=services.sessions.effective_expiry(s))

    @delete("/session", status_code=204, summary="Log out")
    async def logout(self, services: Services, auth: AuthContext) -> Response[None]:
        await services.sessions.revoke(auth, auth.session.id, reason="logout")
        return no_content(cookies=[clear_session_cookie(services)])

    @get("/sessions", summary="This account's live sessions")
    async def list_sessions(self, services: Services, auth: AuthContext) -> SessionsOut:
        rows = await services.sessions.list(auth)
        return SessionsOut(sessions=[
            SessionItemOut(id=str(r.id), aal=r.aal, amr=list(r.amr), created_at=r.created_at,
                           last_seen_at=r.last_seen_at, expires_at=services.sessions.effective_expiry(r), ip=r.ip,
                           user_agent=r.user_agent, current=r.id == auth.session.id)
            for r in rows])

    @delete("/sessions/{session_id:uuid}", status_code=204, summary="Revoke one of this account's sessions")
    async def revoke(self, session_id: uuid.UUID, services: Services, auth: AuthContext) -> Response[None]:
        await services.sessions.revoke(auth, session_id, reason="revoked_by_user")
        return no_content()

    @post("/introspect", status_code=200, summary="Is this token a live session? (admin or service credential)")
    async def introspect(self, request: Request[Any, Any, Any], data: IntrospectIn,
                         services: Services) -> IntrospectOut:
        settings = services.ctx.settings
        caller = bearer_token(request, settings.session_cookie)
        if caller is None:
            raise Unauthorized(log_detail="introspection without credentials")
        service_ok = bool(settings.introspect_secret) and constant_time_equals(caller, settings.introspect_secret or "")
        if not service_ok:
            auth = await services.sessions.authenticate(caller)
            if auth.account.role != "admin":
                raise Forbidden(log_detail="introspection by a non-admin session")
        result = await services.sessions.introspect(data.token)
        return IntrospectOut(**result)
