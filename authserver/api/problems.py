"""RFC 9457 problem+json for every refusal, with the stable ``code`` of DESIGN §6.

Clients see the code and a sentence; the log gets the failed check. An unexpected error is
a 500 problem without a stack trace in the body.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from authserver.errors import AuthError

log = logging.getLogger("authserver.api")

PROBLEM_JSON = "application/problem+json"

_STATUS_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def problem(status: int, code: str, title: str, detail: str | None = None, *,
            extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response[Any]:
    body: dict[str, Any] = {"type": f"urn:authserver:problem:{code}", "title": title, "status": status,
                            "code": code}
    if detail and detail != title:
        body["detail"] = detail
    if extra:
        body.update(extra)
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers or {})


def handle_auth_error(request: Request[Any, Any, Any], exc: AuthError) -> Response[Any]:
    log.info("refused %s %s: %s (%s)", request.method, request.url.path, exc.code, exc.log_detail)
    return problem(exc.status, exc.code, exc.title, exc.detail, extra=exc.extra, headers=exc.headers)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return handle_unexpected(request, exc)
    code = _STATUS_CODES.get(status, "bad_request")
    extra: dict[str, Any] = {}
    detail = exc.detail
    if isinstance(exc, ValidationException):
        errors = []
        for item in exc.extra if isinstance(exc.extra, list) else []:
            if isinstance(item, dict):
                errors.append({"field": item.get("key") or item.get("source") or "body",
                               "message": str(item.get("message", "invalid"))[:300]})
        extra["errors"] = errors
        detail = "The request is not valid"
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="authserver"')
    titles = {404: "Not found", 405: "Method not allowed", 413: "The request body is too large"}
    title = titles.get(status, detail if status != 400 else "The request is not valid")
    log.info("refused %s %s: %s", request.method, request.url.path, code)
    return problem(status, code, title, None, extra=extra, headers=headers)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Internal server error")


def handle_undecodable(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Any]:
    """A body that is not UTF-8 is bad input, not a server fault."""
    log.info("refused %s %s: body is not UTF-8", request.method, request.url.path)
    return problem(400, "validation_error", "The request is not valid", "The body is not valid UTF-8 JSON",
                   extra={"errors": [{"field": "body", "message": "not valid UTF-8"}]})


def handle_too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    """msgspec gives up on absurdly nested JSON with RecursionError: bad input again."""
    log.info("refused %s %s: body nested too deeply", request.method, request.url.path)
    return problem(400, "validation_error", "The request is not valid", "The body is nested too deeply",
                   extra={"errors": [{"field": "body", "message": "nested too deeply"}]})


EXCEPTION_HANDLERS: dict[Any, Any] = {
    UnicodeDecodeError: handle_undecodable,
    RecursionError: handle_too_deep,
    AuthError: handle_auth_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType", "problem"]
