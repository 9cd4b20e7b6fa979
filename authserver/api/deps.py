"""Dependencies injected into handlers: the services, the caller's session, the client."""

from __future__ import annotations

import ipaddress
import unicodedata
from typing import Any

from litestar import Request
from litestar.datastructures import State

from authserver.crypto import new_token
from authserver.errors import Unauthorized
from authserver.flows.sessions import AuthContext
from authserver.policy.risk import ClientInfo
from authserver.wiring import Services

MAX_DEVICE_ID = 128
MAX_USER_AGENT = 512  # the width of every user_agent column
MAX_FORWARDED_HOPS = 32


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


def bearer_token(request: Request[Any, Any, Any], cookie_name: str) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(log_detail="malformed Authorization header")
        return value.strip()
    return request.cookies.get(cookie_name)


async def provide_auth(request: Request[Any, Any, Any], state: State) -> AuthContext:
    services: Services = state.services
    token = bearer_token(request, services.ctx.settings.session_cookie)
    auth = await services.sessions.authenticate(token)
    request.scope.setdefault("state", {})["auth_session_id"] = str(auth.session.id)
    return auth


def printable(value: str | None, limit: int) -> str | None:
    """``value`` without control, format or unassigned characters (Unicode category C*),
    cut to ``limit`` (only the first ``4 * limit`` characters are looked at, so a huge
    header costs nothing); None when nothing is left.

    Header values are stored (sessions, devices, the audit trail) and shown back to the
    user: NUL cannot go into PostgreSQL text at all, and the other controls only help
    someone forge log lines or hide what a device calls itself.
    """
    if not value:
        return None
    cleaned = "".join(ch for ch in value[:limit * 4] if not unicodedata.category(ch).startswith("C"))
    return cleaned.strip()[:limit] or None


def parse_ip(value: str) -> str | None:
    """The canonical form of an IPv4 or IPv6 address, or None. IPv6 scope ids
    (``fe80::1%eth0``) are refused: they mean nothing off the proxy's own link, and
    ``ipaddress`` takes any text after the ``%``, NUL included, which would then be stored."""
    if "%" in value or len(value) > 45:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _trusted(addr: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: Request[Any, Any, Any], trusted_proxies: list[str]) -> tuple[str | None, bool]:
    """The TCP peer, or the first untrusted hop of X-Forwarded-For when the peer is a
    trusted proxy. The flag says whether the peer was trusted (for the country header).
    A hop that is not a plain address stops the walk at the peer: whatever a client wrote
    there is never stored or used as its address."""
    peer = request.client.host if request.client else None
    if not peer or not trusted_proxies:
        return peer, False
    networks = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
    if not _trusted(peer, networks):
        return peer, False
    hops = [h.strip() for h in ",".join(request.headers.getall("x-forwarded-for", [])).split(",") if h.strip()]
    hops = hops[-MAX_FORWARDED_HOPS:]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return (parse_ip(hop) or peer), True
    return ((parse_ip(hops[0]) if hops else None) or peer), True


def provide_client(request: Request[Any, Any, Any], state: State) -> ClientInfo:
    services: Services = state.services
    settings = services.ctx.settings
    ip, trusted = client_address(request, settings.trusted_proxies)
    country = None
    if trusted:
        # ASCII is checked before upper-casing: "ß".upper() is "SS".
        raw = request.headers.get(settings.country_header, "").strip()
        country = raw.upper() if len(raw) == 2 and raw.isascii() and raw.isalpha() else None
    user_agent = printable(request.headers.get("user-agent"), MAX_USER_AGENT)
    device_id = printable(request.headers.get("x-device-id"), MAX_DEVICE_ID)
    if device_id:
        return ClientInfo(ip=ip, user_agent=user_agent, country=country, device_kind="rest",
                          device_secret=device_id)
    cookie = request.cookies.get(settings.device_cookie)
    if cookie and 20 <= len(cookie) <= 64:
        return ClientInfo(ip=ip, user_agent=user_agent, country=country, device_kind="browser",
                          device_secret=cookie)
    fresh = new_token("asd_")
    return ClientInfo(ip=ip, user_agent=user_agent, country=country, device_kind="browser", device_secret=fresh,
                      new_device_cookie=fresh)


def mfa_code_header(request: Request[Any, Any, Any]) -> str | None:
    value = request.headers.get("x-mfa-code")
    if value is None:
        return None
    return value.strip()[:64]
