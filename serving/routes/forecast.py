"""``POST /v1/forecast``: a history in, the CONTRACTS forecast JSON out."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from serving.deps import app_settings, current_model, require_read
from serving.errors import ServiceError
from serving.history import columns_from_rows
from serving.json_route import FastJSONRoute
from serving.responses import FastJSONResponse
from serving.predict import forecast_document
from serving.runtime import OnnxForecaster
from serving.schemas import ErrorBody, ForecastRequest, ForecastResponse
from serving.settings import Settings

router = APIRouter(prefix="/v1", tags=["forecast"], route_class=FastJSONRoute)
ERRORS = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 413: {"model": ErrorBody},
          422: {"model": ErrorBody}, 503: {"model": ErrorBody}}


def check_lengths(n_history: int, horizon_cycles: int | None, settings: Settings) -> None:
    """422 for histories or horizons beyond the configured limits."""
    if n_history > settings.max_history_cycles:
        raise ServiceError(f"history has {n_history} cycles, more than the limit of "
                           f"{settings.max_history_cycles}", code="history_too_long",
                           http_status=422, column="history")
    if horizon_cycles is not None and horizon_cycles > settings.max_horizon_cycles:
        raise ServiceError(f"horizon_cycles {horizon_cycles} is above the limit of "
                           f"{settings.max_horizon_cycles}", code="horizon_too_long",
                           http_status=422, column="horizon_cycles")


def forecast_for(model: OnnxForecaster, body: ForecastRequest) -> dict:
    """The forecast document of one validated request body (the route, the batch route and
    :mod:`serving.forecast_lane` all answer through this)."""
    cell = body.cell
    return forecast_document(
        model, columns_from_rows(body.history), horizon_cycles=body.horizon_cycles,
        hours_per_cycle=body.future_hours_per_cycle, eol_fraction=body.eol_fraction,
        nominal_capacity_ah=cell.nominal_capacity_ah if cell else None,
        cell_id=cell.cell_id if cell else None,
        meta=cell.model_dump(exclude_none=True) if cell else None)


@router.post("/forecast", response_model=ForecastResponse, responses=ERRORS,
             dependencies=[Depends(require_read)],
             summary="forecast one cell's capacity trajectory")
async def post_forecast(body: ForecastRequest, model: OnnxForecaster = Depends(current_model),
                        settings: Settings = Depends(app_settings)) -> JSONResponse:
    check_lengths(len(body.history), body.horizon_cycles, settings)
    # CPU-bound but ~milliseconds: running inline beats a thread hop at high request rates.
    return FastJSONResponse(forecast_for(model, body))
