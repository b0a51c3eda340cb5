"""Request bodies parsed by orjson (about 4x faster than ``json.loads`` on a 200-cycle history).

:class:`FastJSONRoute` is the route class of the prediction routers: FastAPI still declares,
validates and documents the body models as before; only the bytes → Python step changes.
Anything orjson refuses (``NaN``/``Infinity`` literals, lone surrogates, > 64-bit integers,
broken JSON) is parsed again by ``json.loads``, so every answer — the field named for a NaN
literal, ``invalid_json`` with its position — stays what it was.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

try:  # optional speed-up; the service works without it
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    orjson = None  # type: ignore[assignment]

__all__ = ["FastJSONRequest", "FastJSONRoute"]


def parse_json(body: bytes) -> Any:
    """``json.loads(body)``, by orjson when it can (same result for every body orjson accepts).

    Raises
    ------
    json.JSONDecodeError
        The body is not JSON (position and message from ``json.loads``).
    """
    if orjson is not None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


class FastJSONRequest(Request):
    """A Starlette request whose ``json()`` uses :func:`parse_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class FastJSONRoute(APIRoute):
    """An ``APIRoute`` that hands its handler a :class:`FastJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(FastJSONRequest(request.scope, request.receive))

        return route_handler
