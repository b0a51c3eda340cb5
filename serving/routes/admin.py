"""``GET /v1/models`` and ``POST /v1/admin/reload`` (admin token; the new model is loaded and
probed BEFORE the atomic swap — a model that fails either is refused with a 4xx and the current
one keeps serving)."""
from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from data_registry.errors import FadecastError
from serving.deps import app_settings, model_slot, require_admin, require_read
from serving.errors import ServiceError
from serving.runtime import ModelSlot, OnnxForecaster, load_forecaster
from serving.schemas import ErrorBody, ModelsResponse
from serving.settings import Settings

router = APIRouter(prefix="/v1", tags=["admin"])
log = logging.getLogger("fadecast.serving")


class ReloadRequest(BaseModel):
    """Which model to load; None = the configured URI (or the registry champion)."""

    model_config = ConfigDict(extra="forbid")
    model_uri: str | None = Field(None, max_length=1000)


@router.get("/models", response_model=ModelsResponse, dependencies=[Depends(require_read)],
            responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
            summary="the model being served")
async def list_models(slot: ModelSlot = Depends(model_slot)) -> dict:
    model = slot.current
    return {"models": [model.describe()] if model is not None else []}


@router.post("/admin/reload", response_model=ModelsResponse, dependencies=[
    Depends(require_admin)], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody},
                                        404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
             summary="load a model and swap it in without dropping in-flight requests")
async def reload_model(request: Request, body: ReloadRequest | None = None,
                       slot: ModelSlot = Depends(model_slot),
                       settings: Settings = Depends(app_settings)) -> dict:
    uri = (body.model_uri if body and body.model_uri else None) or settings.model_uri
    lock: asyncio.Lock = request.app.state.reload_lock
    async with lock:
        # Loading and the probe run off the event loop; requests keep using the old model.
        fresh = await asyncio.to_thread(_load_and_probe, uri)
        slot.swap(fresh)
    return {"models": [fresh.describe()]}


def _load_and_probe(uri: str | None) -> OnnxForecaster:
    """Load the model at ``uri`` and run its probe forecast; any failure is a 4xx that keeps
    the current model (the message names the URI the caller gave, never a server path or an
    exception's text)."""
    label = uri or "the registry champion"
    try:
        model = load_forecaster(uri)
        model.probe()
        return model
    except FadecastError as exc:
        log.warning("reload of %s refused: %s", label, exc)
        why = "nothing to load there" if exc.code == "model_not_found" else exc.message
        raise ServiceError(f"model {label} not loaded ({why}); the current model is kept",
                           code=exc.code or "model_invalid", http_status=422) from None
    except Exception as exc:  # noqa: BLE001 - a corrupt graph, a bad card …
        log.warning("reload of %s refused: %s: %s", label, type(exc).__name__, exc)
        raise ServiceError(f"model {label} could not be loaded or failed its probe forecast "
                           "(corrupt or incompatible model files); the current model is kept",
                           code="model_invalid", http_status=422) from None
