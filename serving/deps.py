"""FastAPI dependencies shared by the routers: settings, the model slot, the admin guard."""
from __future__ import annotations

import hmac

from fastapi import Depends, Request

from serving.errors import ServiceError
from serving.runtime import ModelSlot, OnnxForecaster
from serving.settings import Settings, get_settings

__all__ = ["current_model", "model_slot", "require_admin"]


# The dependencies are ``async def`` (they never block): FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hop per dependency per request.


async def model_slot(request: Request) -> ModelSlot:
    """The app's model slot (created with the app)."""
    return request.app.state.slot


async def current_model(slot: ModelSlot = Depends(model_slot)) -> OnnxForecaster:
    """The forecaster this request will use from start to end (503 when none is loaded)."""
    return slot.require()


def require_admin(request: Request, settings: Settings = Depends(get_settings)) -> None:
    """Check ``Authorization: Bearer <token>`` in constant time; 401 when missing or wrong."""
    expected = settings.admin_token.get_secret_value() if settings.admin_token else ""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    ok = bool(expected) and scheme.lower() == "bearer" and \
        hmac.compare_digest(given.strip().encode(), expected.encode())
    if not ok:
        raise ServiceError("missing or wrong bearer token" if expected else
                           "admin routes are disabled (no admin token configured)",
                           code="unauthorized", http_status=401,
                           headers={"WWW-Authenticate": "Bearer"})
