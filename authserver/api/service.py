"""Service routes at the root: liveness and readiness."""

from __future__ import annotations

from litestar import Controller, Response, get
from sqlalchemy import text

from authserver.api.schemas import HealthOut, ReadyOut
from authserver.store.migrate import current_revision, head_revision
from authserver.wiring import Services


class ServiceController(Controller):
    path = "/"
    tags = ["service"]

    @get("/health", summary="Liveness")
    async def health(self) -> HealthOut:
        return HealthOut(status="ok")

    @get("/ready", summary="Readiness: the database answers and is migrated to head")
    async def ready(self, services: Services) -> Response[ReadyOut]:
        expected = head_revision()
        try:
            async with services.ctx.db.read() as conn:
                await conn.execute(text("SELECT 1"))
                current = await current_revision(conn)
        except Exception:
            return Response(ReadyOut(status="unavailable", database="unreachable", migration=None,
                                     expected_migration=expected), status_code=503)
        ok = current == expected
        return Response(ReadyOut(status="ok" if ok else "unavailable", database="ok", migration=current,
                                 expected_migration=expected), status_code=200 if ok else 503)
