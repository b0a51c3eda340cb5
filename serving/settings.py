"""Service settings: environment variables ``FADECAST_SERVE_*`` read here and nowhere else.

``FADECAST_HOME`` itself is read by :mod:`data_registry.home`; these settings only reuse it.
Inject with ``Depends(get_settings)``; tests pass a ``Settings`` to ``create_app`` or override
``get_settings``.
"""
from __future__ import annotations

from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from data_registry.home import fadecast_home

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Limits and wiring of the prediction service (sizes in bytes, lengths in rows/cycles)."""

    model_config = SettingsConfigDict(env_prefix="FADECAST_SERVE_", frozen=True)

    model_uri: str | None = Field(
        None, description="model URI: None/'champion' (MLflow registry), a folder or a .onnx")
    admin_token: SecretStr | None = Field(
        None, description="bearer token of scope admin (/v1/admin/*; also grants write and "
        "read); admin routes answer 401 when unset")
    write_token: SecretStr | None = Field(
        None, description="bearer token of scope write (uploads; also grants read); uploads "
        "answer 401 when neither it nor the admin token is set")
    read_token: SecretStr | None = Field(
        None, description="bearer token of scope read; when set, every /v1 read route needs "
        "it (or a write/admin token); when unset, reads are open")
    max_concurrent_writes: int = Field(
        2, ge=1, le=64, description="uploads parsed at once (their own thread limiter, so "
        "uploads never take the threads forecasts use)")
    max_batch_cells: int = Field(1_000, ge=1, description="most histories in one batch request")
    webhook_url: str | None = Field(
        None, max_length=2000, description="`fadecast follow`: URL posted when a followed "
        "cell's advice flips (HMAC-SHA256-signed JSON)")
    webhook_secret: SecretStr | None = Field(
        None, description="key of the webhook's HMAC-SHA256 signature (X-Fadecast-Signature)")
    max_body_bytes: int = Field(4_000_000, gt=0, description="largest JSON request body")
    max_upload_bytes: int = Field(256_000_000, gt=0, description="largest raw-data upload")
    max_history_cycles: int = Field(20_000, gt=0, description="longest accepted history")
    max_horizon_cycles: int = Field(20_000, gt=0, description="longest forecast horizon")
    fast_lane: bool = Field(
        True, description="answer successful POST /v1/forecast requests without FastAPI's "
        "per-request machinery (serving.forecast_lane; same bytes, errors still answered by the "
        "route)")
    advice_updates: int = Field(3, ge=1, le=10,
                                description="forecast updates the stop rule looks back over")
    advice_update_every_cycles: int | None = Field(
        None, ge=1, description="cycles between those updates (default: 0.8 x the request's "
        "tolerance_cycles, as in the backtest)")
    advice_min_loss_fraction: float = Field(0.03, ge=0, lt=1)
    home: Path | None = Field(None, description="registry folder (default: FADECAST_HOME)")

    def resolved_home(self) -> Path:
        """The registry folder these settings point at (created if missing)."""
        return fadecast_home(self.home)


#: the settings of the app serving the current request (bound by ``serving.deps.SettingsScope``)
_CURRENT: ContextVar[Settings | None] = ContextVar("fadecast_serve_settings", default=None)


def get_settings() -> Settings:
    """The settings of the app serving this request when called inside one (``create_app``
    binds them per request), else the process-wide settings read once from the environment.

    The API routes depend on :func:`serving.deps.app_settings` instead; this stays a plain
    function for direct calls (``fadecast follow``) and routes that use it.
    """
    current = _CURRENT.get()
    return current if current is not None else _env_settings()


@lru_cache(maxsize=1)
def _env_settings() -> Settings:
    return Settings()
