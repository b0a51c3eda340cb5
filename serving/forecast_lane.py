"""``POST /v1/forecast`` without FastAPI's per-request machinery, for the requests that succeed.

The forecast route is the one a lab scheduler calls hundreds of times a second. For it, FastAPI's
request object, dependency solving and body field handling cost about as much CPU as the
feature path of a 200-cycle history. :class:`ForecastLane` is a pure-ASGI middleware (inside
the size limit, so oversized bodies never reach it) that answers a ``POST /v1/forecast`` itself
when, and only when, everything succeeds: the token grants ``read``
(:func:`serving.deps.authorize`), a model is loaded, the body parses and validates against
:class:`serving.schemas.ForecastRequest` exactly as the route's does (:func:`parse_json`, then
``model_validate``), the lengths are within the limits, and the forecast is computed
(:func:`serving.routes.forecast.forecast_for`, the route's own function). The answer is the
same bytes the route would send.

Anything else — a wrong token, bad JSON, an invalid field, a history the model refuses, an
unexpected error — hands the buffered body to the FastAPI app unchanged, and the route answers
it with its usual error document (401/403/413/422/503/500 with a request id): one
implementation of every error, not two. ``FADECAST_SERVE_FAST_LANE=false`` (settings
``fast_lane``) turns the lane off; tests compare the two on valid and invalid bodies.
"""
from __future__ import annotations

import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.deps import authorize
from serving.json_route import check_history_lengths, parse_json
from serving.responses import FastJSONResponse
from serving.routes.forecast import check_lengths, forecast_for
from serving.schemas import ForecastRequest

__all__ = ["ForecastLane", "LANE_PATH"]

log = logging.getLogger("fadecast.serving")

LANE_PATH = "/v1/forecast"
_JSON = (b"content-type", b"application/json")


class ForecastLane:
    """Pure-ASGI middleware answering successful ``POST /v1/forecast`` requests directly.

    Parameters
    ----------
    app:
        The rest of the stack (the FastAPI app's router, handlers and middleware).
    state:
        The FastAPI app's ``state`` (``settings`` and the model ``slot``), read per request so a
        model swapped by ``/v1/admin/reload`` is used at once.
    """

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "POST"
                or scope.get("path") != LANE_PATH
                or not getattr(self.state.settings, "fast_lane", True)):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: the app decides
                await self.app(scope, _replay(chunks, message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        answer = self._answer(scope, body)
        if answer is None:
            await self.app(scope, _replay([body], None, receive), send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode()), _JSON]})
        await send({"type": "http.response.body", "body": answer})

    def _answer(self, scope: Scope, body: bytes) -> bytes | None:
        """The 200 response body, or None whenever the route should answer instead."""
        settings = self.state.settings
        model = self.state.slot.current
        if model is None:
            return None
        try:
            authorize(settings, _header(scope, b"authorization"), "read")
            data = parse_json(body)
            check_history_lengths(data, settings.max_history_cycles)  # before any row
            request = ForecastRequest.model_validate(data)
            check_lengths(len(request.history), request.horizon_cycles, settings)
            return FastJSONResponse(forecast_for(model, request)).body
        except Exception:  # noqa: BLE001 - every failure is answered by the route itself
            return None


def _header(scope: Scope, name: bytes) -> str:
    """The first value of header ``name`` (lower-case bytes) as text; "" when absent."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def _replay(chunks: list[bytes], last: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that hands out the body already read (then ``last``, a disconnect, when
    the client left mid-body), then defers to the real ``receive``."""
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks),
                               "more_body": last is not None}]
    if last is not None:
        pending.append(last)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
