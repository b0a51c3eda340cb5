"""Read-only JSON the web pages draw: ``GET /v1/cells`` and ``GET /v1/views/...``.

Computed in the thread pool through :mod:`serving.web.cell_views` (the API's forecast and advice
functions) on the frames ``POST /v1/cells/{id}/forecast`` reads (:func:`serving.cell_store.app_frames`,
the app's one Registry), cached per cell version and loaded model, so a listing or a what-if on a
cell seen before costs one catalog query and one model call.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from fastapi import APIRouter, Depends, Path as PathParam, Query, Request
from fastapi.concurrency import run_in_threadpool

from serving.cell_store import app_frames, app_registry
from serving.deps import current_model, require_read
from serving.errors import ServiceError
from serving.responses import FastJSONResponse
from serving.runtime import OnnxForecaster
from serving.schemas import ErrorBody
from serving.settings import Settings, get_settings
from serving.web import cell_views as cv
from serving.web.model_views import model_view

router = APIRouter(tags=["views"], dependencies=[Depends(require_read)])
log = logging.getLogger("fadecast.serving")
CELL_ID = PathParam(max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
COHORT = PathParam(max_length=200, pattern=r"^[A-Za-z0-9_.\- ]+$")
_AUTH = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}}
_NOT_FOUND = {**_AUTH, 404: {"model": ErrorBody}, 422: {"model": ErrorBody},
              503: {"model": ErrorBody}}
ATTRIBUTION_PATH = "/v1/cohorts/attribution"


_CACHE_LOCK = threading.Lock()


def _cache(app: Any) -> cv.CellCache:
    """The app's cache of page data (created on first use)."""
    with _CACHE_LOCK:
        if getattr(app.state, "web_cache", None) is None:
            app.state.web_cache = cv.CellCache()
        return app.state.web_cache


def _advice_kwargs(settings: Settings) -> dict[str, Any]:
    return {"n_updates": settings.advice_updates,
            "update_every_cycles": settings.advice_update_every_cycles,
            "min_loss_fraction": settings.advice_min_loss_fraction,
            "max_horizon_cycles": settings.max_horizon_cycles}


def _model_key(model: OnnxForecaster) -> tuple[str, str, float]:
    return (model.name, model.version, model.loaded_at)


def _frame(app: Any, cell_id: str) -> tuple[Any, dict]:
    """The cell's per-cycle frame and metadata: the very frame the cell forecast route uses."""
    got = app_frames(app).get(app_registry(app), cell_id)  # (frame, meta[, version stamp])
    return got[0], got[1]


def _state_of(states: dict[str, dict], cell_id: str) -> dict[str, Any]:
    if cell_id not in states:
        from data_registry.errors import NotFoundError

        raise NotFoundError(f"no cell '{cell_id}' in the registry", code="unknown_cell",
                            column="cell_id", expected="a registered cell id",
                            found=repr(cell_id))
    return states[cell_id]


def _listing(app: Any, settings: Settings, model: OnnxForecaster,
             budget_s: float) -> dict[str, Any]:
    """Every cell's row; rows not cached yet are computed until ``budget_s`` has passed (at
    least one per call when the budget is positive), the rest come back ``"pending": true``
    so a large registry answers at once and fills in over the next calls."""
    from data_registry.errors import FadecastError

    cache = _cache(app)
    states = cv.catalog_states(app_registry(app))
    rows = []
    deadline = time.monotonic() + budget_s
    computed = 0
    for cell_id, st in states.items():
        base = {"cell_id": cell_id, "cohort": cv.cohort_name(st["metadata"]),
                "chemistry": st["metadata"].get("chemistry"), "files": st["files"],
                "updated_at": st["updated_at"]}

        def compute(cell_id: str = cell_id) -> dict[str, Any]:
            try:
                frame, meta = _frame(app, cell_id)
                return cv.cell_row(model, frame, meta, cell_id=cell_id,
                                   max_horizon=settings.max_horizon_cycles,
                                   advice_kwargs=_advice_kwargs(settings))
            except FadecastError as exc:  # one unreadable cell never hides the others
                return {"error": {"code": exc.code, "message": str(exc.message)}}
            except Exception:  # noqa: BLE001 - logged; the row says so without internals
                log.exception("web listing: cell %s could not be forecast", cell_id)
                return {"error": {"code": "forecast_failed",
                                  "message": "this cell could not be forecast (see the "
                                             "service log)"}}

        key = (st["state"], _model_key(model))
        row = cache.peek(("row", cell_id), key)
        if row is None and (time.monotonic() < deadline or (budget_s > 0 and not computed)):
            row = cache.get_or_compute(("row", cell_id), key, compute)
            computed += 1
        rows.append({**base, **(row if row is not None else {"pending": True})})
    return {"cells": rows, "pending": sum(1 for r in rows if r.get("pending")),
            "model": {"name": model.name, "version": model.version}}


@router.get("/v1/cells", responses={**_AUTH, 422: {"model": ErrorBody},
                                   503: {"model": ErrorBody}},
            summary="every registered cell with its last cycle, retention, predicted end of "
                    "life (p50 and 90 % band) and stop/continue advice")
async def list_cells(request: Request,
                     budget_ms: int = Query(1500, ge=0, le=60_000, description=(
                         "time to spend computing rows not cached yet; the others come back "
                         "with \"pending\": true (ask again)")),
                     model: OnnxForecaster = Depends(current_model),
                     settings: Settings = Depends(get_settings)) -> FastJSONResponse:
    doc = await run_in_threadpool(_listing, request.app, settings, model, budget_ms / 1000.0)
    return FastJSONResponse(doc)


def _overview(app: Any, settings: Settings, model: OnnxForecaster, cell_id: str,
              planned: int | None, tolerance: float | None) -> dict[str, Any]:
    registry = app_registry(app)
    st = _state_of(cv.catalog_states(registry), cell_id)

    def compute() -> dict[str, Any]:
        from data_registry.errors import FadecastError

        frame, meta = _frame(app, cell_id)
        try:
            table = cv.trend_table(registry, cell_id, meta)
        except FadecastError as exc:  # trends are optional: the forecast still shows
            log.warning("no trends for cell %s: %s", cell_id, exc.code)
            table = None
        doc = cv.cell_overview(model, frame, meta, table, cell_id=cell_id,
                               max_horizon=settings.max_horizon_cycles,
                               planned_cycles=planned, tolerance_cycles=tolerance,
                               advice_kwargs=_advice_kwargs(settings))
        info = registry.cell(cell_id)
        doc["files"] = [{"original_name": re.split(r"[\\/]", f["original_path"])[-1],
                         "format_name": f["format_name"], "kind": f["kind"],
                         "rows": f["rows"], "ingested_at": f["ingested_at"],
                         "warnings": f["warnings"]} for f in info["files"]]
        doc["updated_at"] = st["updated_at"]
        return doc

    key = (st["state"], _model_key(model))
    return _cache(app).get_or_compute(("overview", cell_id, planned, tolerance), key, compute)


@router.get("/v1/views/cells/{cell_id}", responses=_NOT_FOUND,
            summary="a stored cell as its page shows it: history, forecast with bands, loss "
                    "parts, advice with checks, A_w / polarization / coulombic trends")
async def view_cell(request: Request, cell_id: str = CELL_ID,
                    planned_cycles: int | None = Query(None, ge=1, le=10_000_000),
                    tolerance_cycles: float | None = Query(None, gt=0, le=10_000_000),
                    model: OnnxForecaster = Depends(current_model),
                    settings: Settings = Depends(get_settings)) -> FastJSONResponse:
    doc = await run_in_threadpool(_overview, request.app, settings, model, cell_id,
                                  planned_cycles, tolerance_cycles)
    return FastJSONResponse(doc)


def _whatif(app: Any, settings: Settings, model: OnnxForecaster, cell_id: str,
            hours_per_cycle: float, horizon: int | None) -> dict[str, Any]:
    frame, meta = _frame(app, cell_id)
    last = int(frame["cycle_index"].iloc[-1])
    horizon = horizon or cv.horizon_for(last, settings.max_horizon_cycles)
    if horizon > settings.max_horizon_cycles:
        raise ServiceError(f"horizon_cycles {horizon} is above the limit of "
                           f"{settings.max_horizon_cycles}", code="horizon_too_long",
                           http_status=422, column="horizon_cycles")
    nominal = meta.get("nominal_capacity_ah")
    return cv.forecast_view(model, frame, horizon_cycles=horizon,
                            nominal_capacity_ah=float(nominal) if nominal else None,
                            cell_id=cell_id, hours_per_cycle=hours_per_cycle)


@router.get("/v1/views/cells/{cell_id}/whatif", responses=_NOT_FOUND,
            summary="re-forecast a stored cell at another pace (hours per future cycle)")
async def view_whatif(request: Request, cell_id: str = CELL_ID,
                      hours_per_cycle: float = Query(gt=0, le=1e5,
                                                     description="hours per future cycle"),
                      horizon_cycles: int | None = Query(None, ge=1, le=100_000),
                      model: OnnxForecaster = Depends(current_model),
                      settings: Settings = Depends(get_settings)) -> FastJSONResponse:
    doc = await run_in_threadpool(_whatif, request.app, settings, model, cell_id,
                                  hours_per_cycle, horizon_cycles)
    return FastJSONResponse(doc)


def _has_route(routes: Any, path: str) -> bool:
    """Whether ``path`` is served, looking inside included routers too (FastAPI keeps those
    as wrappers around the router they include)."""
    for route in routes or ():
        if getattr(route, "path", None) == path:
            return True
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if inner is not None and inner is not route and \
                _has_route(getattr(inner, "routes", None), path):
            return True
    return False


def _history_rows(frame: Any) -> list[dict[str, Any]]:
    """A frame as API history rows (NaN fields left out, non-positive capacities skipped)."""
    rows = []
    for rec in frame.to_dict("records"):
        row = {k: v for k, v in rec.items() if v is not None and v == v}
        if row.get("discharge_capacity_ah", 0) > 0:
            row["cycle_index"] = int(row["cycle_index"])
            rows.append(row)
    return rows


def _cohort(app: Any, settings: Settings, model: OnnxForecaster, name: str,
            has_attribution: bool) -> dict[str, Any]:
    from data_registry.errors import FadecastError, NotFoundError
    from serving.history import reference_capacity_ah
    from serving.predict import clean_json

    cache = _cache(app)
    states = cv.catalog_states(app_registry(app))
    members = [c for c, st in states.items() if cv.cohort_name(st["metadata"]) == name]
    if not members:
        known = sorted({n for st in states.values() if (n := cv.cohort_name(st["metadata"]))})
        raise NotFoundError(f"no cell belongs to cohort '{name}'", code="unknown_cohort",
                            column="cohort", expected=f"one of {known}" if known else
                            "a cohort set with --meta cohort=NAME", found=repr(name))
    cells, request_cells = [], []
    for cell_id in members:
        st = states[cell_id]
        entry: dict[str, Any] = {"cell_id": cell_id, "metadata": st["metadata"]}
        try:
            frame, meta = _frame(app, cell_id)
            q = frame["discharge_capacity_ah"].to_numpy(float)
            nominal = meta.get("nominal_capacity_ah")
            ref = reference_capacity_ah(q, float(nominal) if nominal else None)
            row = cache.get_or_compute(("row", cell_id), (st["state"], _model_key(model)),
                                       lambda: cv.cell_row(
                                           model, frame, meta, cell_id=cell_id,
                                           max_horizon=settings.max_horizon_cycles,
                                           advice_kwargs=_advice_kwargs(settings)))
            pace = frame["test_time_second"].diff().median() / 3600.0
            entry.update({
                "cycle_index": frame["cycle_index"].astype(int).tolist(),
                "test_time_hour": (frame["test_time_second"] / 3600.0).tolist(),
                "retention": (q / ref).tolist(), "reference_capacity_ah": ref,
                "hours_per_cycle": float(pace) if pace == pace else None,
                "c_rate": float(frame["c_rate"].median()) if "c_rate" in frame else None,
                "time_share": row.get("time_share"), "advice": row.get("advice"),
                "end_of_life": row.get("end_of_life")})
            request_cells.append({"cell_id": cell_id, "history": _history_rows(frame),
                                  **({"nominal_capacity_ah": float(nominal)} if nominal
                                     else {})})
        except FadecastError as exc:
            entry["error"] = {"code": exc.code, "message": str(exc.message)}
        cells.append(entry)
    doc = {"cohort": name, "cells": cells, "attribution_available": has_attribution,
           "attribution_route": ATTRIBUTION_PATH}
    if has_attribution:  # the body the page posts to the cohort route, from the stored frames
        doc["attribution_request"] = {"cohort": {"name": re.sub(r"[^A-Za-z0-9_.\-]", "_", name)},
                                      "cells": request_cells}
    return clean_json(doc)


@router.get("/v1/views/cohorts/{name}", responses=_NOT_FOUND,
            summary="a cohort's sibling cells overlaid, each with its own single-cell split")
async def view_cohort(request: Request, name: str = COHORT,
                      model: OnnxForecaster = Depends(current_model),
                      settings: Settings = Depends(get_settings)) -> FastJSONResponse:
    has = _has_route(request.app.routes, ATTRIBUTION_PATH)
    doc = await run_in_threadpool(_cohort, request.app, settings, model, name, has)
    return FastJSONResponse(doc)


@router.get("/v1/views/model", responses={**_AUTH, 503: {"model": ErrorBody}},
            summary="the model card (training sources, domain, calibration) and its MLflow run")
async def view_model(request: Request, model: OnnxForecaster = Depends(current_model)
                     ) -> FastJSONResponse:
    doc = await run_in_threadpool(_cache(request.app).get_or_compute, ("model",),
                                  _model_key(model), lambda: model_view(model))
    return FastJSONResponse(doc)
