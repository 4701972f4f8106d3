"""The FastAPI application: the JSON API under /api, the web pages, the static files.

One app holds one engine (migrated once at start) and one `ServiceCache` (champion model,
latest run), so the hot read path does no per-request setup beyond its own queries.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

from serving.settings import Settings, load_settings
from serving.store import StoreError, open_store

LOG = logging.getLogger("riskmatrix.serving")
WEB_ROUTER_MODULE = "serving.web.router"
WEB_STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def package_version() -> str:
    try:
        return version("riskmatrix")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def _include_web(app: FastAPI) -> None:
    """The web engineer's pages and static files; a loud warning (not a crash) when the
    pages cannot be imported, so the API still serves."""
    try:
        module = importlib.import_module(WEB_ROUTER_MODULE)
    except Exception:
        LOG.warning("网页模块无法加载, 只提供 API / web pages could not be imported (%s); "
                    "serving the API only", WEB_ROUTER_MODULE, exc_info=True)
        return
    app.include_router(module.router)
    if WEB_STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_STATIC_DIR), name="static")


def create_app(settings: Settings | None = None, *, fast_read: bool = True) -> FastAPI:
    """The service for `settings` (default: from the environment, see README "Runtime home");
    `fast_read=False` leaves out the enterprise read's fast lane (`create_served_app` puts it
    in front of the whole app instead)."""
    from serving.api.cache import ServiceCache
    from serving.api.errors import install_error_handlers
    from serving.api.fast_read import EnterpriseReadFastPath
    from serving.api.routes import api_routers

    resolved = settings or load_settings()
    app = FastAPI(
        title="riskmatrix",
        summary="风险分级分类监管服务 / risk-scoring service for differentiated supervision",
        version=package_version(),
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    try:
        engine = open_store(resolved.database_url)
    except StoreError:
        raise
    app.state.settings = resolved
    app.state.engine = engine
    app.state.cache = ServiceCache(resolved, engine)
    install_error_handlers(app)
    if fast_read:
        app.add_middleware(EnterpriseReadFastPath, fastapi_app=app)
    for router in api_routers():
        app.include_router(router)
    _include_web(app)

    @app.exception_handler(StoreError)
    async def _store_error(_request: Request, error: StoreError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(error)})

    return app


def create_served_app(settings: Settings | None = None) -> ASGIApp:
    """The app as `riskmatrix serve` runs it (also uvicorn's factory for several workers):
    the enterprise read's fast lane in front of the whole app (not inside FastAPI's own
    middleware layers: ~0.02 ms a read); the published run, the snapshot, the champion and
    the run's decisions loaded before the first request (not by it, every read waiting
    behind it); then long-lived objects frozen out of the garbage collector's full scans."""
    from serving.api.cache import freeze_long_lived
    from serving.api.fast_read import EnterpriseReadFastPath

    app = create_app(settings, fast_read=False)
    app.state.cache.preload()
    app.state.cache.freeze_after_load = True
    app.state.cache.warm_on_publish = True
    freeze_long_lived()
    return EnterpriseReadFastPath(app, fastapi_app=app)
