"""``POST /v1/advice``: may this ageing test stop now?"""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from serving.deps import app_settings, current_model, require_read
from serving.history import frame_from_rows
from serving.json_route import FastJSONRoute
from serving.responses import FastJSONResponse
from serving.predict import advice_document
from serving.routes.forecast import ERRORS, check_lengths
from serving.runtime import OnnxForecaster
from serving.schemas import AdviceRequest, AdviceResponse
from serving.settings import Settings

router = APIRouter(prefix="/v1", tags=["advice"], route_class=FastJSONRoute)


@router.post("/advice", response_model=AdviceResponse, responses=ERRORS,
             dependencies=[Depends(require_read)],
             summary="stop or continue an ageing test")
async def post_advice(body: AdviceRequest, model: OnnxForecaster = Depends(current_model),
                      settings: Settings = Depends(app_settings)) -> JSONResponse:
    check_lengths(len(body.history), None, settings)
    cell = body.cell
    doc = await run_in_threadpool(
        advice_document, model, frame_from_rows(body.history),
        planned_cycles=body.planned_cycles, tolerance_cycles=body.tolerance_cycles,
        eol_fraction=body.eol_fraction, hours_per_cycle=body.future_hours_per_cycle,
        nominal_capacity_ah=cell.nominal_capacity_ah if cell else None,
        spec_min_cycles=body.spec.min_cycles_to_eol if body.spec else None,
        cell_id=cell.cell_id if cell else None,
        meta=cell.model_dump(exclude_none=True) if cell else None,
        n_updates=settings.advice_updates,
        update_every_cycles=settings.advice_update_every_cycles,
        min_loss_fraction=settings.advice_min_loss_fraction,
        max_horizon_cycles=settings.max_horizon_cycles)
    return FastJSONResponse(doc)
