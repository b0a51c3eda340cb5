"""The FastAPI application factory: routers, error handlers, size limits, model lifespan.

The model is loaded in the lifespan (never at import); until it is, ``/readyz`` answers 503 and
forecast routes answer 503 ``model_not_loaded``.
"""
from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from serving.deps import SettingsScope
from serving.errors import BodySizeLimit, install_error_handlers
from serving.forecast_lane import ForecastLane
from serving.routes import admin, advice, batch, cells, forecast, health
from serving.routes import cohorts  # POST /v1/cohorts/attribution
from serving.runtime import ModelSlot, OnnxForecaster, load_forecaster
from serving.settings import Settings, get_settings
from serving.web import pages, views

__all__ = ["create_app"]

log = logging.getLogger("fadecast.serving")


def create_app(settings: Settings | None = None, *,
               forecaster: OnnxForecaster | None = None) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings:
        Service settings; default :func:`serving.settings.get_settings` (environment).
    forecaster:
        An already loaded model to serve (tests, benchmarks); default: resolve
        ``settings.model_uri`` in the lifespan.
    """
    chosen = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.slot.current is None:
            try:
                app.state.slot.swap(await asyncio.to_thread(load_forecaster, chosen.model_uri))
            except Exception as exc:  # noqa: BLE001 - not ready; /readyz says why (no path)
                app.state.slot.last_error = getattr(exc, "code", None) or "model_unloadable"
                log.error("no model loaded at start-up: %s", exc)
        # everything alive now (modules, the model, pydantic schemas: ~10⁵ objects) lives as
        # long as the process: out of the cyclic GC's way, a full collection no longer scans
        # it (measured: a ~40-60 ms pause every few hundred requests, the service's p99)
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # an app made and stopped in a longer-lived process (tests)
        if app.state.registry is not None:
            app.state.registry.close()

    app = FastAPI(title="fadecast", version="1", lifespan=lifespan,
                  description="Battery capacity-fade forecasts with intervals, the time/cycle "
                              "split of the loss, and early-stopping advice for ageing tests.")

    # no dependency_overrides (FastAPI re-analyses every dependency per request when there is
    # one): routes use serving.deps.app_settings; get_settings() sees this app's settings
    # through SettingsScope (added last, so it wraps everything)
    app.state.slot = ModelSlot(forecaster)
    app.state.reload_lock = asyncio.Lock()
    app.state.settings = chosen
    app.state.registry = None  # one Registry per app, opened on first use (serving.cell_store)
    app.state.write_limiter = None  # uploads' own thread limiter (serving.cell_store)
    install_error_handlers(app)
    for module in (health, forecast, batch, advice, cells, admin):
        app.include_router(module.router)
    app.include_router(cohorts.router)
    app.include_router(views.router)  # JSON the web pages draw (GET /v1/cells, /v1/views/...)
    app.include_router(pages.router)  # the web pages themselves (path /), not in OpenAPI
    # innermost first: the forecast lane sits inside the size limit and the settings scope
    app.add_middleware(ForecastLane, state=app.state)
    app.add_middleware(BodySizeLimit, default_bytes=chosen.max_body_bytes,
                       upload_bytes=chosen.max_upload_bytes)
    app.add_middleware(SettingsScope, settings=chosen)
    return app
