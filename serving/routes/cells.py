"""Stored cells: append raw cycler data (write scope), forecast / advise a registered cell.

``POST /v1/cells/{cell_id}/samples`` streams the raw body to a temp file inside
``FADECAST_HOME/tmp`` (written from a worker thread, never on the event loop; the body-size
guard stops it at the configured limit), then appends it through the same idempotent path as
``fadecast follow`` (:func:`serving.cell_store.append_and_extend`): rows the cell already holds
are skipped, the parse runs outside any lock, the commit under the cell's own lock, on the
uploads' own thread limiter. A file that fails validation, or a client that disconnects
mid-upload, leaves the stored cell unchanged; the temp file is always removed; errors name the
client's file name, never a server path.

Forecasts of a stored cell read its stored per-cycle table (``ml.features.cell_table``),
cached in memory per cell version; the rendered answer is reused until the cell, the model or
the request changes (:class:`serving.cell_store.ResponseCache`).
"""
from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Path as PathParam, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from data_registry.cell_ids import CELL_ID_MAX_LENGTH, CELL_ID_REGEX
from data_registry.errors import FadecastError
from serving.cell_store import (app_frames, app_registry, app_responses, append_and_extend,
                                write_limiter)
from serving.deps import app_settings, current_model, require_read, require_write
from serving.errors import ServiceError
from serving.predict import advice_document, clean_json, forecast_document
from serving.responses import FastJSONResponse
from serving.routes.forecast import ERRORS, check_lengths
from serving.runtime import OnnxForecaster
from serving.schemas import (
    AdviceResponse, CellAdviceRequest, CellForecastRequest, ErrorBody, ForecastResponse,
    UploadResponse,
)
from serving.settings import Settings

router = APIRouter(prefix="/v1/cells", tags=["cells"])
log = logging.getLogger("fadecast.serving")
CELL_ID = PathParam(max_length=CELL_ID_MAX_LENGTH, pattern=CELL_ID_REGEX,
                    description="cell id: 1-128 of A-Z a-z 0-9 . _ + = @ -, starting with a "
                                "letter or digit (the registry's rule)")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]+")
_RAW_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
_AUTH = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}}
#: OpenAPI links: after an upload, the same cell can be forecast and advised (clients and the
#: stateful schemathesis test follow them)
_LINKS = {name: {"operationId": op, "parameters": {"cell_id": "$request.path.cell_id"}}
          for name, op in (("ForecastCell", "forecast_cell"), ("AdviseCell", "advise_cell"))}
WRITE_BLOCK_BYTES = 1 << 20
#: errors of a file that cannot be decoded → what to tell the user (no exception text)
_UNREADABLE = ((EOFError, "the compressed data ends early (a truncated upload?)"),
               (gzip.BadGzipFile, "it is not a valid gzip file"),
               (zlib.error, "the compressed data is corrupt"),
               (UnicodeDecodeError, "it is not text in a supported encoding"))


def _staging(settings: Settings, name: str) -> tuple[Path, Path]:
    staging = settings.resolved_home() / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"upload-{os.getpid()}-", dir=staging))
    return folder, folder / name


def _reader_options(hours_per_cycle: float | None, c_rate: float | None,
                    on_error: str | None, eis_cycle: int | None = None,
                    active_mass_g: float | None = None) -> dict[str, Any]:
    """The upload's ingest options, as ``fadecast ingest`` takes them (checked by the
    registry's own rules)."""
    from data_registry import reader_options as ro

    given = {"protocol_hours_per_cycle": hours_per_cycle, "c_rate": c_rate,
             "on_error": on_error, "eis_cycle": eis_cycle, "active_mass_g": active_mass_g}
    known = set(ro.READER_OPTIONS) | set(getattr(ro, "CHOICE_OPTIONS", {}))
    out = {}
    for key, value in given.items():
        if value is None:
            continue
        if key not in known:
            raise ServiceError(f"option '{key}' is not supported by this registry version",
                               code="unsupported_option", http_status=422, column=key)
        out[key] = value
    return out


@router.post("/{cell_id}/samples", response_model=UploadResponse, openapi_extra=_RAW_BODY,
             status_code=201, dependencies=[Depends(require_write)],
             responses=_AUTH | {201: {"links": _LINKS}, 400: {"model": ErrorBody},
                                409: {"model": ErrorBody},
                                413: {"model": ErrorBody}, 415: {"model": ErrorBody},
                                422: {"model": ErrorBody}},
             summary="append raw cycler data to a cell (any format the registry reads; rows "
                     "already stored are skipped)")
async def upload_samples(request: Request, cell_id: str = CELL_ID,
                         filename: str = Query("upload.csv", max_length=200,
                                               description="original file name (format hint)"),
                         format_name: str | None = Query(None, alias="format", max_length=64,
                                                         pattern=r"^[a-z0-9_\-]+$",
                                                         description="reader name (default: "
                                                         "detect by content)"),
                         hours_per_cycle: float | None = Query(
                             None, gt=0, lt=1e5, description="protocol hours per cycle (per-"
                             "cycle files without elapsed time get an estimated clock)"),
                         c_rate: float | None = Query(None, gt=0, lt=1e4,
                                                      description="protocol C-rate"),
                         on_error: str | None = Query(None, pattern=r"^(raise|skip-row)$",
                                                      description="a bad row: raise (default) "
                                                      "or skip-row (recorded as a warning)"),
                         eis_cycle: int | None = Query(
                             None, ge=0, lt=1_000_000_000, description="an EIS file of one "
                             "spectrum without a cycle column (Gamry, ZView …): its cycle"),
                         active_mass_g: float | None = Query(
                             None, gt=0, lt=1e6, description="grams of active material: a "
                             "capacity per mass (mAh/g) is read in Ah"),
                         settings: Settings = Depends(app_settings)) -> Response:
    options = _reader_options(hours_per_cycle, c_rate, on_error, eis_cycle, active_mass_g)
    name = _SAFE_NAME.sub("_", Path(filename).name).strip("._") or "upload.csv"
    folder, path = await anyio.to_thread.run_sync(_staging, settings, name)
    size = 0
    try:
        fh = await anyio.to_thread.run_sync(open, path, "wb")
        try:
            block = bytearray()
            async for chunk in request.stream():
                size += len(chunk)
                block += chunk
                if len(block) >= WRITE_BLOCK_BYTES:
                    await anyio.to_thread.run_sync(fh.write, bytes(block))
                    block.clear()
            if block:
                await anyio.to_thread.run_sync(fh.write, bytes(block))
        finally:
            await anyio.to_thread.run_sync(fh.close)
        if size == 0:
            raise ServiceError("the upload is empty", code="empty_upload", http_status=422)
        try:  # the catalog (opened on first use) and the parse: all on a worker thread
            report, _ = await anyio.to_thread.run_sync(
                lambda: append_and_extend(app_registry(request.app), path, cell_id,
                                          source_name=name, format_name=format_name,
                                          reader_options=options),
                limiter=write_limiter(request.app))
        except FadecastError:
            raise
        except _UNREADABLE_TYPES as exc:
            why = next(text for kind, text in _UNREADABLE if isinstance(exc, kind))
            raise ServiceError(f"cannot read the upload '{name}': {why}",
                               code="unreadable_file", http_status=422) from exc
        info = clean_json(report.to_dict())
        return JSONResponse(clean_json({"cell_id": cell_id, "bytes": size,
                                        "format_name": report.format_name,
                                        "warnings": info["warnings"], "report": info}),
                            status_code=201)
    except ClientDisconnect:
        log.info("upload to cell %s: client disconnected after %d bytes; nothing stored",
                 cell_id, size)
        return Response(status_code=400)  # nobody is listening; nothing was stored
    finally:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))


_UNREADABLE_TYPES = tuple(kind for kind, _ in _UNREADABLE)


def _load_cell(request: Request, cell_id: str) -> tuple[Any, dict[str, Any], Any]:
    return app_frames(request.app).get(app_registry(request.app), cell_id)


async def _stored_history(request: Request, settings: Settings, cell_id: str, cell: Any
                          ) -> tuple[Any, dict[str, Any], float | None, Any]:
    """The stored cell's per-cycle frame, its metadata (overridden by the request's ``cell``)
    without ``cell_id``, its nominal capacity (Ah) where known, and its version stamp."""
    frame, meta, stamp = await run_in_threadpool(_load_cell, request, cell_id)
    check_lengths(len(frame), None, settings)
    if cell is not None:
        meta.update(cell.model_dump(exclude_none=True))
    nominal = meta.get("nominal_capacity_ah")
    meta = {k: v for k, v in meta.items() if k != "cell_id"}
    return frame, meta, float(nominal) if nominal is not None else None, stamp


async def _cached_answer(request: Request, key: Any, compute: Any, *args: Any,
                         **kwargs: Any) -> Response:
    """The app's rendered answer for ``key``, else ``compute(*args, **kwargs)`` in a worker
    thread, rendered and kept under ``key`` (a changed cell, model or body is a new key)."""
    cache = app_responses(request.app)
    hit = cache.get(key)
    if hit is not None:
        return Response(hit, media_type="application/json")
    response = FastJSONResponse(await run_in_threadpool(compute, *args, **kwargs))
    cache.put(key, bytes(response.body))
    return response


def _cache_key(route: str, cell_id: str, stamp: Any, model: OnnxForecaster, body: Any,
               settings: Settings) -> Any:
    return (route, cell_id, stamp, id(model), model.loaded_at, body.model_dump_json(),
            settings.advice_updates, settings.advice_update_every_cycles,
            settings.advice_min_loss_fraction, settings.max_horizon_cycles)


@router.post("/{cell_id}/forecast", response_model=ForecastResponse,
             dependencies=[Depends(require_read)],
             responses=ERRORS | _AUTH | {404: {"model": ErrorBody}},
             operation_id="forecast_cell",
             summary="forecast a registered cell from its stored per-cycle table")
async def forecast_cell(request: Request, body: CellForecastRequest, cell_id: str = CELL_ID,
                        model: OnnxForecaster = Depends(current_model),
                        settings: Settings = Depends(app_settings)) -> JSONResponse:
    check_lengths(0, body.horizon_cycles, settings)
    frame, meta, nominal, stamp = await _stored_history(request, settings, cell_id, body.cell)
    return await _cached_answer(
        request, _cache_key("forecast", cell_id, stamp, model, body, settings),
        forecast_document, model, frame, horizon_cycles=body.horizon_cycles,
        hours_per_cycle=body.future_hours_per_cycle, eol_fraction=body.eol_fraction,
        nominal_capacity_ah=nominal, cell_id=cell_id, meta=meta)


@router.post("/{cell_id}/advice", response_model=AdviceResponse,
             dependencies=[Depends(require_read)],
             responses=ERRORS | _AUTH | {404: {"model": ErrorBody}},
             operation_id="advise_cell",
             summary="stop or continue the test of a registered cell")
async def advise_cell(request: Request, body: CellAdviceRequest, cell_id: str = CELL_ID,
                      model: OnnxForecaster = Depends(current_model),
                      settings: Settings = Depends(app_settings)) -> JSONResponse:
    frame, meta, nominal, stamp = await _stored_history(request, settings, cell_id, body.cell)
    return await _cached_answer(
        request, _cache_key("advice", cell_id, stamp, model, body, settings),
        advice_document, model, frame, planned_cycles=body.planned_cycles,
        tolerance_cycles=body.tolerance_cycles, eol_fraction=body.eol_fraction,
        hours_per_cycle=body.future_hours_per_cycle, nominal_capacity_ah=nominal,
        spec_min_cycles=body.spec.min_cycles_to_eol if body.spec else None, cell_id=cell_id,
        meta=meta,
        n_updates=settings.advice_updates,
        update_every_cycles=settings.advice_update_every_cycles,
        min_loss_fraction=settings.advice_min_loss_fraction,
        max_horizon_cycles=settings.max_horizon_cycles)
