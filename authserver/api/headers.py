"""Security headers on every response.

Pages get a strict Content-Security-Policy (no inline script, no framing); API answers are
never cached (they carry tokens and personal data) and never sniffed.
"""

from __future__ import annotations

from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")

COMMON = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def security_headers_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        is_api = str(scope.get("path", "")).startswith("/api/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in COMMON.items():
                    headers.setdefault(name, value)
                if is_api:
                    headers["cache-control"] = "no-store"
                else:
                    headers.setdefault("content-security-policy", PAGE_CSP)
            await send(message)

        await app(scope, receive, with_headers)

    return middleware


__all__: list[Any] = ["PAGE_CSP", "security_headers_middleware"]
