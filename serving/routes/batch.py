"""``POST /v1/forecast/batch``: many histories in one request, one forecast each.

The body is parsed by orjson and every history's length is checked before any row is
validated (:mod:`serving.json_route`); the forecasts run off the event loop, one after another,
on one worker thread (the service scales by processes). An item the model cannot forecast
(too short, non-finite output …) gets its own ``{"code", "message", "field"}`` error; the
others are answered.
"""
from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from data_registry.errors import FadecastError
from serving.deps import app_settings, current_model, require_read
from serving.errors import ServiceError
from serving.json_route import FastJSONRoute
from serving.responses import FastJSONResponse
from serving.routes.forecast import ERRORS, check_lengths, forecast_for
from serving.runtime import OnnxForecaster
from serving.schemas import BatchForecastRequest, BatchForecastResponse, ForecastRequest
from serving.settings import Settings

router = APIRouter(prefix="/v1", tags=["forecast"], route_class=FastJSONRoute)


def batch_documents(model: OnnxForecaster, items: list[ForecastRequest]) -> dict[str, Any]:
    """The batch answer: one result per item (errors per item), and the cells per second of
    the compute."""
    started = time.perf_counter()
    results = []
    for i, item in enumerate(items):
        try:
            results.append({"index": i, "ok": True, "forecast": forecast_for(model, item)})
        except FadecastError as exc:
            results.append({"index": i, "ok": False, "error": {
                "code": exc.code, "message": exc.message, "field": exc.column}})
    elapsed = max(time.perf_counter() - started, 1e-9)
    return {"results": results, "cells_per_second": len(items) / elapsed}


@router.post("/forecast/batch", response_model=BatchForecastResponse, responses=ERRORS,
             dependencies=[Depends(require_read)],
             summary="forecast many cells' histories in one request")
async def post_forecast_batch(body: BatchForecastRequest,
                              model: OnnxForecaster = Depends(current_model),
                              settings: Settings = Depends(app_settings)) -> JSONResponse:
    if len(body.items) > settings.max_batch_cells:
        raise ServiceError(f"{len(body.items)} items, more than the limit of "
                           f"{settings.max_batch_cells}", code="batch_too_large",
                           http_status=422, column="items")
    for item in body.items:
        check_lengths(len(item.history), item.horizon_cycles, settings)
    doc = await run_in_threadpool(batch_documents, model, body.items)
    return FastJSONResponse(doc)
