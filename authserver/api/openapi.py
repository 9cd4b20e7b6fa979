"""Document refusals in the OpenAPI spec: every operation may answer RFC 9457
problem+json with a stable ``code`` (DESIGN §6). Litestar describes success bodies and its
own 400; this adds the ``Problem`` schema and a ``4XX`` answer to every operation."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
)

PROBLEM = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "title", "status", "code"],
    properties={
        "type": Schema(type=OpenAPIType.STRING, description="urn:authserver:problem:<code>"),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "code": Schema(type=OpenAPIType.STRING, description="stable machine-readable code, e.g. mfa_required"),
        "detail": Schema(type=OpenAPIType.STRING),
        "errors": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT, properties={
            "field": Schema(type=OpenAPIType.STRING), "message": Schema(type=OpenAPIType.STRING)})),
        "flow_token": Schema(type=OpenAPIType.STRING, description="mfa_required: the flow to finish"),
        "methods": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.STRING),
                          description="mfa_required / step_up_required: the methods still open"),
        "expires_at": Schema(type=OpenAPIType.STRING, format=None),
        "retry_after": Schema(type=OpenAPIType.INTEGER, description="rate_limited: seconds to wait"),
    },
)


def document_problems(app: Litestar) -> None:
    spec = app.openapi_schema
    if spec.components is None:
        spec.components = Components()
    schemas = spec.components.schemas if spec.components.schemas is not None else {}
    schemas["Problem"] = PROBLEM
    spec.components.schemas = schemas
    answer = OpenAPIResponse(description="Refused: RFC 9457 problem+json with a stable `code`",
                             content={"application/problem+json": OpenAPIMediaType(
                                 schema=Reference(ref="#/components/schemas/Problem"))})
    for item in (spec.paths or {}).values():
        for operation in (item.get, item.post, item.put, item.patch, item.delete):
            if operation is not None:
                responses = operation.responses if operation.responses is not None else {}
                responses.setdefault("4XX", answer)
                operation.responses = responses
