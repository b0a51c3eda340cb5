"""FastAPI dependencies shared by the routers: settings, the model slot, token scopes.

Scopes: ``read`` < ``write`` < ``admin``; a token grants its own scope and the lower ones
(``FADECAST_SERVE_ADMIN_TOKEN`` → admin, write, read; ``…_WRITE_TOKEN`` → write, read;
``…_READ_TOKEN`` → read). Reads are open unless a read token is configured (so a local
``fadecast serve`` and ``make demo`` work without one); writes and admin calls always need a
token of their scope, and answer 401 while none is configured.
"""
from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request

from serving.errors import ServiceError
from serving.runtime import ModelSlot, OnnxForecaster
from serving.settings import Settings

__all__ = ["SCOPES", "SettingsScope", "app_settings", "authorize", "current_model", "model_slot",
           "require_admin", "require_read", "require_scope", "require_write"]

SCOPES = ("read", "write", "admin")
_ENV = {"read": "FADECAST_SERVE_READ_TOKEN", "write": "FADECAST_SERVE_WRITE_TOKEN",
        "admin": "FADECAST_SERVE_ADMIN_TOKEN"}


# The dependencies are ``async def`` (they never block): FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hop per dependency per request.


class SettingsScope:
    """Pure-ASGI wrapper binding an app's settings for each request, so a route depending on
    :func:`serving.settings.get_settings` gets its app's settings without a
    ``dependency_overrides`` entry (any override makes FastAPI re-analyse EVERY dependency's
    signature on every request: ≈ 0.6 ms of CPU per forecast request, measured)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from serving.settings import _CURRENT

        token = _CURRENT.set(self.settings)
        try:
            await self.app(scope, receive, send)
        finally:
            _CURRENT.reset(token)


async def app_settings(request: Request) -> Settings:
    """This app's settings (``create_app``'s), without a thread-pool hop."""
    return request.app.state.settings


async def model_slot(request: Request) -> ModelSlot:
    """The app's model slot (created with the app)."""
    return request.app.state.slot


async def current_model(slot: ModelSlot = Depends(model_slot)) -> OnnxForecaster:
    """The forecaster this request will use from start to end (503 when none is loaded)."""
    return slot.require()


def _tokens(settings: Settings) -> list[tuple[str, str]]:
    """Configured (scope, token) pairs, highest scope first."""
    out = []
    for scope, secret in (("admin", settings.admin_token), ("write", settings.write_token),
                          ("read", settings.read_token)):
        if secret is not None and secret.get_secret_value():
            out.append((scope, secret.get_secret_value()))
    return out


def _grants(held: str, needed: str) -> bool:
    return SCOPES.index(held) >= SCOPES.index(needed)


def require_scope(scope: str) -> Callable[..., Awaitable[None]]:
    """A dependency that checks ``Authorization: Bearer <token>`` for ``scope``.

    401 ``unauthorized`` for a missing or unknown token (or while no token of the scope is
    configured), 403 ``insufficient_scope`` for a valid token of a lower scope. Tokens are
    compared in constant time.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(request: Request, settings: Settings = Depends(app_settings)) -> None:
        authorize(settings, request.headers.get("authorization", ""), scope)

    check.__name__ = f"require_{scope}"
    return check


def authorize(settings: Settings, authorization: str, scope: str) -> None:
    """Raise the 401/403 :class:`ServiceError` of :func:`require_scope` unless the
    ``Authorization`` header value grants ``scope`` under ``settings``' tokens."""
    tokens = _tokens(settings)
    if scope == "read" and settings.read_token is None:
        return  # open reads
    able = [t for s, t in tokens if _grants(s, scope)]
    if not able:
        raise ServiceError(f"{scope} routes are disabled (no {scope} token configured: set "
                           f"{_ENV[scope]})" if scope != "admin" else
                           "admin routes are disabled (no admin token configured)",
                           code="unauthorized", http_status=401,
                           headers={"WWW-Authenticate": "Bearer"})
    kind, _, given = authorization.partition(" ")
    given_b = given.strip().encode()
    held = None
    if kind.lower() == "bearer" and given_b:
        for s, t in tokens:  # every comparison runs: no early exit on a match
            if hmac.compare_digest(given_b, t.encode()) and held is None:
                held = s
    if held is None:
        raise ServiceError("missing or wrong bearer token", code="unauthorized",
                           http_status=401, headers={"WWW-Authenticate": "Bearer"})
    if not _grants(held, scope):
        raise ServiceError(f"this token has scope '{held}'; this route needs '{scope}'",
                           code="insufficient_scope", http_status=403,
                           headers={"WWW-Authenticate":
                                    f'Bearer error="insufficient_scope", scope="{scope}"'})


require_read = require_scope("read")
require_write = require_scope("write")
require_admin = require_scope("admin")
