"""The HTML pages and their static assets (kept out of the OpenAPI document).

``/`` cells, ``/cells/{id}`` a cell, ``/cohorts/{name}`` a cohort, ``/model`` the model card.
Each page is one HTML shell (``static/page.html``) plus its script; the data come from the JSON
routes of :mod:`serving.web.views` and the API. plotly.js is plotly's own "basic" bundle
(scatter, bar and pie traces with every layout component: all the pages draw), version 4.1.1 from
the npm package ``plotly.js-basic-dist-min`` (MIT licence, ``static/vendor/LICENSE.plotly.txt``),
kept in ``static/vendor/`` and gzip-compressed once in memory: nothing is fetched from a CDN. The
full bundle in the ``plotly`` wheel is 4.8 MB; the basic one is 1.2 MB, and compiling it is what a
first visit waits for (the README's web figures time it).
"""
from __future__ import annotations

import gzip
import hashlib
import html
import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Path as PathParam, Request
from fastapi.responses import HTMLResponse, Response

from serving.errors import ServiceError
from serving.settings import Settings, get_settings

__all__ = ["router", "plotly_js_path", "auth_needs"]

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"app.css": "text/css", "fadecast.js": "text/javascript",
          "cells.js": "text/javascript", "cell.js": "text/javascript",
          "cohort.js": "text/javascript", "model.js": "text/javascript"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
PLOT_PAGES = ("cell", "cohort")
PLOTLY_JS = "plotly-basic.min.js"
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gz: bytes
    etag: str
    media_type: str


_lock = threading.Lock()
_assets: dict[str, _Asset] = {}


def plotly_js_path() -> Path:
    """The plotly.js bundle the pages load (``static/vendor/plotly-basic.min.js``; ServiceError
    503 if the file is missing from the installation)."""
    path = STATIC / "vendor" / PLOTLY_JS
    if not path.is_file():
        raise ServiceError(f"{path.name} is missing from this installation (serving/web/static/"
                           "vendor): reinstall fadecast", code="asset_missing", http_status=503)
    return path


def _load(name: str, path: Path, media_type: str) -> _Asset:
    with _lock:
        hit = _assets.get(name)
        if hit is not None:
            return hit
        body = path.read_bytes()
        asset = _Asset(body, gzip.compress(body, compresslevel=6, mtime=0),
                       '"' + hashlib.sha256(body).hexdigest()[:20] + '"', media_type)
        _assets[name] = asset
        return asset


def _send(request: Request, asset: _Asset, max_age: int) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": f"public, max-age={max_age}",
               "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(asset.gz, media_type=asset.media_type,
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get(f"/static/vendor/{PLOTLY_JS}")
async def plotly_js(request: Request) -> Response:
    return _send(request, _load("plotly", plotly_js_path(), "text/javascript"), 86_400)


@router.get("/static/{name}")
async def static_asset(request: Request, name: str) -> Response:
    if name not in ASSETS:
        raise ServiceError(f"no static file '{name}'", code="not_found", http_status=404)
    return _send(request, _load(name, STATIC / name, ASSETS[name]), 300)


def auth_needs(settings: Settings) -> dict[str, Any]:
    """What the pages must ask for: ``write`` = ``"token"`` (uploads need a write or admin
    token) or ``"disabled"`` (no such token configured: the service refuses uploads);
    ``read`` = True when a read token is configured (then every /v1 read needs one)."""
    def is_set(name: str) -> bool:
        value = getattr(settings, name, None)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        return bool(value)

    return {"write": "token" if is_set("write_token") or is_set("admin_token") else "disabled",
            "read": is_set("read_token")}


@lru_cache(maxsize=1)
def _shell() -> str:
    return (STATIC / "page.html").read_text(encoding="utf-8")


def _page(page: str, title: str, settings: Settings, **extra: Any) -> HTMLResponse:
    config = {"page": page, "auth": auth_needs(settings), **extra}
    # JSON inside <script type="application/json"> (never executed): only "</" needs escaping
    data = json.dumps(config).replace("</", "<\\/")
    text = (_shell().replace("{{title}}", html.escape(title))
            .replace("{{page}}", page).replace("{{config}}", data)
            .replace("{{script}}", f"/static/{page}.js")
            # after the page's script, which starts its data request first: plotly.js (1.2 MB)
            # is then parsed while the data are on their way
            .replace("{{plotly}}", f'<script src="/static/vendor/{PLOTLY_JS}" defer></script>'
                     if page in PLOT_PAGES else ""))
    return HTMLResponse(text, headers={"Cache-Control": "no-cache",
                                       "Content-Security-Policy": CSP,
                                       "X-Content-Type-Options": "nosniff",
                                       "Referrer-Policy": "same-origin"})


@router.get("/")
async def cells_page(settings: Settings = Depends(get_settings)) -> HTMLResponse:
    return _page("cells", "Cells — fadecast", settings)


@router.get("/cells/{cell_id}")
async def cell_page(cell_id: str = PathParam(max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$"),
                    settings: Settings = Depends(get_settings)) -> HTMLResponse:
    return _page("cell", f"{cell_id} — fadecast", settings, cell_id=cell_id)


@router.get("/cohorts/{name}")
async def cohort_page(name: str = PathParam(max_length=200, pattern=r"^[A-Za-z0-9_.\- ]+$"),
                      settings: Settings = Depends(get_settings)) -> HTMLResponse:
    return _page("cohort", f"Cohort {name} — fadecast", settings, cohort=name)


@router.get("/model")
async def model_page(settings: Settings = Depends(get_settings)) -> HTMLResponse:
    return _page("model", "Model — fadecast", settings)


@router.get("/favicon.ico")
async def favicon() -> Response:
    """No icon (browsers ask for one on every non-HTML document)."""
    return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})
