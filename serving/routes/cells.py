"""Stored cells: upload raw cycler data, forecast a registered cell from the registry.

``POST /v1/cells/{cell_id}/samples`` streams the raw body to a temp file inside FADECAST_HOME
(never holding it in memory; the body-size guard stops it at the configured limit), ingests it
through ``data_registry.store.Registry`` (which validates before it commits, so a bad file leaves
the stored cell unchanged) and deletes the temp file.
"""
from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Path as PathParam, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from serving.deps import current_model
from serving.history import cell_history
from serving.responses import FastJSONResponse
from serving.predict import advice_document, clean_json, forecast_document
from serving.routes.forecast import ERRORS, check_lengths
from serving.runtime import OnnxForecaster
from serving.schemas import (
    AdviceResponse, CellAdviceRequest, CellForecastRequest, ErrorBody, ForecastResponse,
    UploadResponse,
)
from serving.settings import Settings, get_settings

router = APIRouter(prefix="/v1/cells", tags=["cells"])
CELL_ID = PathParam(max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]+")
_RAW_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def _registry(settings: Settings) -> Any:
    from data_registry.store import Registry

    return Registry(home=settings.resolved_home())


def _as_dict(report: Any) -> dict[str, Any]:
    if hasattr(report, "to_dict"):
        return clean_json(report.to_dict())
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return clean_json(dataclasses.asdict(report))
    if isinstance(report, dict):
        return clean_json(report)
    return {"summary": str(report)}


@router.post("/{cell_id}/samples", response_model=UploadResponse, openapi_extra=_RAW_BODY,
             responses={400: {"model": ErrorBody}, 409: {"model": ErrorBody},
                        413: {"model": ErrorBody}, 415: {"model": ErrorBody},
                        422: {"model": ErrorBody}},
             summary="upload raw cycler data for a cell (any format the registry reads)")
async def upload_samples(request: Request, cell_id: str = CELL_ID,
                         filename: str = Query("upload.csv", max_length=200,
                                               description="original file name (format hint)"),
                         format_name: str | None = Query(None, alias="format", max_length=64,
                                                         pattern=r"^[a-z0-9_\-]+$"),
                         settings: Settings = Depends(get_settings)) -> JSONResponse:
    home = settings.resolved_home()
    staging = home / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    name = _SAFE_NAME.sub("_", Path(filename).name).strip("._") or "upload.csv"
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=staging))
    path = folder / name
    size = 0
    try:
        with open(path, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                fh.write(chunk)
        if size == 0:
            from serving.errors import ServiceError

            raise ServiceError("the upload is empty", code="empty_upload", http_status=422)
        registry = _registry(settings)
        try:
            report = await run_in_threadpool(registry.ingest, [path], cell_id,
                                             format_name=format_name)
        finally:
            registry.close()
        info = _as_dict(report)
        warnings = [w for w in info.get("warnings", []) if isinstance(w, dict)]
        files = info.get("files") or [{}]
        return JSONResponse(clean_json({"cell_id": cell_id, "bytes": size,
                                        "format_name": files[0].get("format_name"),
                                        "warnings": warnings, "report": info}),
                            status_code=201)
    finally:
        if path.exists():
            os.unlink(path)
        folder.rmdir()


def _load_cell(settings: Settings, cell_id: str) -> tuple[Any, dict[str, Any]]:
    registry = _registry(settings)
    try:
        return cell_history(registry, cell_id)
    finally:
        registry.close()


async def _stored_history(settings: Settings, cell_id: str, cell: Any
                          ) -> tuple[Any, dict[str, Any], float | None]:
    """The stored cell's per-cycle frame, its metadata (overridden by the request's ``cell``)
    without ``cell_id``, and its nominal capacity (Ah) where known."""
    frame, meta = await run_in_threadpool(_load_cell, settings, cell_id)
    check_lengths(len(frame), None, settings)
    if cell is not None:
        meta.update(cell.model_dump(exclude_none=True))
    nominal = meta.get("nominal_capacity_ah")
    meta = {k: v for k, v in meta.items() if k != "cell_id"}
    return frame, meta, float(nominal) if nominal is not None else None


@router.post("/{cell_id}/forecast", response_model=ForecastResponse, responses=ERRORS | {
    404: {"model": ErrorBody}}, summary="forecast a registered cell from its stored cycles")
async def forecast_cell(body: CellForecastRequest, cell_id: str = CELL_ID,
                        model: OnnxForecaster = Depends(current_model),
                        settings: Settings = Depends(get_settings)) -> JSONResponse:
    check_lengths(0, body.horizon_cycles, settings)
    frame, meta, nominal = await _stored_history(settings, cell_id, body.cell)
    doc = await run_in_threadpool(
        forecast_document, model, frame, horizon_cycles=body.horizon_cycles,
        hours_per_cycle=body.future_hours_per_cycle, eol_fraction=body.eol_fraction,
        nominal_capacity_ah=nominal, cell_id=cell_id, meta=meta)
    return FastJSONResponse(doc)


@router.post("/{cell_id}/advice", response_model=AdviceResponse, responses=ERRORS | {
    404: {"model": ErrorBody}}, summary="stop or continue the test of a registered cell")
async def advise_cell(body: CellAdviceRequest, cell_id: str = CELL_ID,
                      model: OnnxForecaster = Depends(current_model),
                      settings: Settings = Depends(get_settings)) -> JSONResponse:
    frame, meta, nominal = await _stored_history(settings, cell_id, body.cell)
    doc = await run_in_threadpool(
        advice_document, model, frame, planned_cycles=body.planned_cycles,
        tolerance_cycles=body.tolerance_cycles, eol_fraction=body.eol_fraction,
        hours_per_cycle=body.future_hours_per_cycle, nominal_capacity_ah=nominal,
        spec_min_cycles=body.spec.min_cycles_to_eol if body.spec else None, cell_id=cell_id,
        meta=meta,
        n_updates=settings.advice_updates,
        update_every_cycles=settings.advice_update_every_cycles,
        min_loss_fraction=settings.advice_min_loss_fraction,
        max_horizon_cycles=settings.max_horizon_cycles)
    return FastJSONResponse(doc)
