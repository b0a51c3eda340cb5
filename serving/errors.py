"""Map every failure a request can cause to ``{"code", "message", "field"}`` with a 4xx status.

``FadecastError`` → its ``http_status`` and ``to_dict()``; pydantic validation → 422; bodies
over the configured size → 413 (checked while the body streams in, before it is parsed). Anything
else → 500 with the same shape, a request id and NO exception text or server path (the
schemathesis test asserts there is none; the log keeps the traceback under the id).
"""
from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from data_registry.errors import FadecastError

__all__ = ["BodySizeLimit", "ServiceError", "error_body", "install_error_handlers",
           "internal_error_response", "request_id"]

log = logging.getLogger("fadecast.serving")
_ID_RE = re.compile(r"[A-Za-z0-9._-]+")


class ServiceError(FadecastError):
    """An error the service itself raises (no model loaded, bad token, body too large)."""

    def __init__(self, message: str, *, code: str, http_status: int,
                 column: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, column=column)
        self.http_status = http_status
        self.headers = headers or {}


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"code": code, "message": message, "field": field, **extra}


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "invalid"}
    field = _field_of(first.get("loc", ()))
    msg = str(first.get("msg", "invalid request"))
    if first.get("type") == "json_invalid":
        code, message = "invalid_json", f"request body is not valid JSON: {msg}"
    else:
        code = "invalid_input"
        message = f"{field}: {msg}" if field else msg
        if "input" in first and first.get("type") not in ("missing",):
            found = repr(first["input"])
            message += f" (found {found[:80]})"
    details = [{"field": _field_of(e.get("loc", ())), "message": str(e.get("msg"))}
               for e in errors[:20]]
    return JSONResponse(error_body(code, message, field, errors=details), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that keep every answer in the ``{code, message, field}`` shape."""

    @app.exception_handler(FadecastError)
    async def _fadecast(_: Request, exc: FadecastError) -> JSONResponse:
        status = int(getattr(exc, "http_status", 422))
        headers = getattr(exc, "headers", None) or None
        return JSONResponse(exc.to_dict(), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed",
                413: "body_too_large"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return internal_error_response(request, exc)


def request_id(request: Request) -> str:
    """The caller's ``X-Request-ID`` when it is a plain token, else a fresh one."""
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 64 and _ID_RE.fullmatch(given):
        return given
    return uuid.uuid4().hex


def internal_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """A 500 that names a request id and nothing else: the exception, its text and any server
    path go to the log only (under that id)."""
    rid = request_id(request)
    log.error("internal error %s on %s %s", rid, request.method, request.url.path,
              exc_info=(type(exc), exc, exc.__traceback__))
    body = error_body("internal_error", f"internal error (request id {rid}); the service log "
                      "has the details under that id", None, request_id=rid)
    return JSONResponse(body, status_code=500, headers={"X-Request-ID": rid})


class BodySizeLimit:
    """Pure-ASGI guard: answer 413 once a request body exceeds its limit, while it streams.

    Raw uploads (paths ending in ``upload_suffix``) get ``upload_bytes``; every other request
    ``default_bytes``.
    """

    def __init__(self, app: ASGIApp, *, default_bytes: int, upload_bytes: int,
                 upload_suffix: str = "/samples") -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.upload_bytes = upload_bytes
        self.upload_suffix = upload_suffix

    def _limit(self, path: str) -> int:
        return self.upload_bytes if path.endswith(self.upload_suffix) else self.default_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""))
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _too_large(send, limit)
                    return
        seen = 0
        started = False

        async def guarded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _BodyTooLarge as exc:
            if not started:
                await _too_large(send, exc.limit)


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` so FastAPI's body reader and streaming routes both re-raise it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {limit} bytes")
        self.limit = limit


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(error_body("body_too_large",
                                 f"request body larger than the limit of {limit} bytes",
                                 None)).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
