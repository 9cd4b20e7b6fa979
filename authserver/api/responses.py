"""Shapes shared by several controllers: sessions in bodies and cookies, accounts."""

from __future__ import annotations

from typing import Any, TypeVar

from litestar import Response
from litestar.datastructures import Cookie

from authserver.api.schemas import AccountOut, SessionOut
from authserver.flows.sessions import IssuedSession
from authserver.policy.risk import ClientInfo
from authserver.store.repositories.accounts import AccountRow
from authserver.wiring import Services

T = TypeVar("T")

DEVICE_COOKIE_AGE = 400 * 24 * 3600


def account_out(account: AccountRow) -> AccountOut:
    return AccountOut(id=str(account.id), username=account.username, display_name=account.display_name,
                      email=account.email, role=account.role, status=account.status,
                      has_password=account.password_hash is not None, created_at=account.created_at)


def session_out(issued: IssuedSession) -> SessionOut:
    return SessionOut(token=issued.token, expires_at=issued.row.expires_at, aal=issued.row.aal,
                      amr=list(issued.row.amr))


def cookies_for(services: Services, client: ClientInfo, issued: IssuedSession | None) -> list[Cookie]:
    settings = services.ctx.settings
    cookies: list[Cookie] = []
    if client.device_kind == "browser":
        if issued is not None:
            cookies.append(Cookie(key=settings.session_cookie, value=issued.token, httponly=True,
                                  secure=settings.cookie_secure, samesite="lax", path="/",
                                  max_age=settings.session_absolute))
        if client.new_device_cookie:
            cookies.append(Cookie(key=settings.device_cookie, value=client.new_device_cookie, httponly=True,
                                  secure=settings.cookie_secure, samesite="lax", path="/",
                                  max_age=DEVICE_COOKIE_AGE))
    return cookies


def with_session(services: Services, client: ClientInfo, issued: IssuedSession | None, body: T,
                 status: int = 200) -> Response[T]:
    return Response(content=body, status_code=status, cookies=cookies_for(services, client, issued))


def clear_session_cookie(services: Services) -> Cookie:
    s = services.ctx.settings
    return Cookie(key=s.session_cookie, value="", max_age=0, httponly=True, secure=s.cookie_secure,
                  samesite="lax", path="/")


def no_content(**kw: Any) -> Response[None]:
    return Response(content=None, status_code=204, **kw)
