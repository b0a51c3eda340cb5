"""``GET /healthz`` (the process is up) and ``GET /readyz`` (a model is loaded)."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from serving.deps import model_slot
from serving.runtime import ModelSlot
from serving.schemas import ErrorBody

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="a model is loaded and forecasts can be served",
            responses={503: {"model": ErrorBody}})
async def readyz(slot: ModelSlot = Depends(model_slot)) -> JSONResponse:
    model = slot.current
    if model is None:
        msg = "no model is loaded" + (f": {slot.last_error}" if slot.last_error else "")
        return JSONResponse({"code": "model_not_loaded", "message": msg, "field": None},
                            status_code=503)
    return JSONResponse({"status": "ready",
                         "model": {"name": model.name, "version": model.version}})
