"""Password login: step one of the login flow, with the ``X-MFA-Code`` REST shortcut."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post

from authserver.api.deps import mfa_code_header
from authserver.api.responses import session_out, with_session
from authserver.api.schemas import LoginOut, PasswordLoginIn
from authserver.policy.risk import ClientInfo
from authserver.wiring import Services


class LoginController(Controller):
    path = "/login"
    tags = ["login"]

    @post("/password", status_code=200, summary="Sign in with a password (401 mfa_required when a second factor is due)")
    async def password(self, request: Request[Any, Any, Any], data: PasswordLoginIn, services: Services,
                       client: ClientInfo) -> Response[LoginOut]:
        issued = await services.login.password_login(username=data.username, password=data.password, client=client,
                                                     mfa_code=mfa_code_header(request))
        return with_session(services, client, issued, LoginOut(session=session_out(issued)))
