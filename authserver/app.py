"""create_app(settings) -> Litestar; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar, Router
from litestar.config.response_cache import ResponseCacheConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.static_files import create_static_files_router

from authserver.api.deps import provide_auth, provide_client, provide_services
from authserver.api.headers import security_headers_middleware
from authserver.api.metrics import Metrics, metrics_middleware
from authserver.api.openapi import document_problems
from authserver.api.problems import EXCEPTION_HANDLERS
from authserver.api.routes import API_CONTROLLERS, ROOT_CONTROLLERS
from authserver.clock import Clock
from authserver.housekeeping import Housekeeper
from authserver.settings import Settings
from authserver.wiring import Services, build_services


def static_dir(settings: Settings) -> Path:
    """``static/`` next to the installed package (wheel) or the source checkout."""
    if settings.static_dir:
        return Path(settings.static_dir)
    pkg = Path(__file__).resolve().parent
    for candidate in (pkg / "static", pkg.parent / "static"):
        if candidate.is_dir():
            return candidate
    return pkg / "static"


def create_app(settings: Settings | None = None, *, clock: Clock | None = None,
               services: Services | None = None) -> Litestar:
    settings = settings or Settings.load()
    services = services or build_services(settings, clock=clock)

    housekeeper = Housekeeper(services.ctx.db, services.ctx.clock)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        webauthn = services.extra.get("webauthn")
        if webauthn is not None:
            await webauthn.startup()  # re-check existing credentials against the metadata BLOB
        services.ctx.outbox.start()
        housekeeper.start()
        try:
            yield
        finally:
            await housekeeper.stop()
            await services.ctx.outbox.stop()
            await services.ctx.db.dispose()

    api = Router(path="/api/v1", route_handlers=API_CONTROLLERS)
    handlers: list[object] = [api, *ROOT_CONTROLLERS]
    static = static_dir(settings)
    if static.is_dir():
        handlers.append(create_static_files_router(path="/", directories=[static], html_mode=True,
                                                   include_in_schema=False, name="static"))
    metrics = Metrics()
    app = Litestar(
        route_handlers=handlers,  # type: ignore[arg-type]
        dependencies={"services": Provide(provide_services, sync_to_thread=False),
                      "auth": Provide(provide_auth), "client": Provide(provide_client, sync_to_thread=False),
                      "metrics": Provide(lambda: metrics, sync_to_thread=False)},
        middleware=[metrics_middleware(metrics), security_headers_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="authserver", version="1", path="/schema",
                                     render_plugins=[JsonRenderPlugin()]),
        response_cache_config=ResponseCacheConfig(),
        debug=False,
    )
    app.state.services = services
    document_problems(app)
    return app
