"""``GET /v1/models`` and ``POST /v1/admin/reload`` (bearer token, atomic swap)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from serving.deps import model_slot, require_admin
from serving.runtime import ModelSlot, load_forecaster
from serving.schemas import ErrorBody, ModelsResponse
from serving.settings import Settings, get_settings

router = APIRouter(prefix="/v1", tags=["admin"])


class ReloadRequest(BaseModel):
    """Which model to load; None = the configured URI (or the registry champion)."""

    model_config = ConfigDict(extra="forbid")
    model_uri: str | None = Field(None, max_length=1000)


@router.get("/models", response_model=ModelsResponse, summary="the model being served")
async def list_models(slot: ModelSlot = Depends(model_slot)) -> dict:
    model = slot.current
    return {"models": [model.describe()] if model is not None else []}


@router.post("/admin/reload", response_model=ModelsResponse, dependencies=[
    Depends(require_admin)], responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody},
                                        422: {"model": ErrorBody}},
             summary="load a model and swap it in without dropping in-flight requests")
async def reload_model(request: Request, body: ReloadRequest | None = None,
                       slot: ModelSlot = Depends(model_slot),
                       settings: Settings = Depends(get_settings)) -> dict:
    uri = (body.model_uri if body and body.model_uri else None) or settings.model_uri
    lock: asyncio.Lock = request.app.state.reload_lock
    async with lock:
        # Loading happens off the event loop; requests keep using the old model meanwhile.
        fresh = await asyncio.to_thread(load_forecaster, uri)
        slot.swap(fresh)
    return {"models": [fresh.describe()]}
