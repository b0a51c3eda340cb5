"""One calling convention for every method a suite compares: the production model (through
``ml.inference.forecast``) and the per-cell baselines.

A forecaster maps (observed history, future cycles, future elapsed hours) to a
:class:`CellForecast` in RETENTION units (fraction of the reference capacity: the nominal
capacity when given, else the max discharge capacity of the first 3 cycles — CONTRACTS).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from ml.models.baselines import TRAJECTORY_BASELINES, retention_history

__all__ = ["CellForecast", "BaselineForecaster", "ModelForecaster", "first_crossing",
           "answer_interval"]


@dataclass(frozen=True)
class CellForecast:
    """Retention at the asked future cycles (p50, optional p05/p95), the time share at the
    last observed cycle (NaN when the method has none) and the reference used (Ah)."""

    p50: np.ndarray
    p05: np.ndarray | None
    p95: np.ndarray | None
    time_share: float
    reference_capacity_ah: float
    eol_cycle: float | None = None
    time_share_band: tuple[float, float] | None = None
    #: the forecast's own ``domain.in_domain`` (None: the method does not judge its domain)
    in_domain: bool | None = None
    #: the answer's end-of-life interval (p05, p95 cycle; p95 ``inf`` when censored at the
    #: horizon; ``(inf, inf)`` when it put the median beyond the horizon); None: no answer
    eol_interval: tuple[float, float] | None = None


def first_crossing(cycles: np.ndarray, retention: np.ndarray, threshold: float) -> float | None:
    """First cycle where ``retention`` falls below ``threshold`` (linear interpolation between
    the two bracketing cycles); None if it never does."""
    below = np.flatnonzero(retention < threshold)
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return float(cycles[0])
    q0, q1 = retention[i - 1], retention[i]
    frac = (q0 - threshold) / (q0 - q1) if q0 != q1 else 1.0
    return float(cycles[i - 1] + frac * (cycles[i] - cycles[i - 1]))


def answer_interval(end_of_life: dict | None) -> tuple[float, float]:
    """(p05, p95) cycle of a forecast answer's ``end_of_life``: p95 ``inf`` when censored (a
    lower bound); ``(inf, inf)`` when the answer has none (its median beyond the horizon)."""
    if not end_of_life:
        return math.inf, math.inf
    c = end_of_life["cycle_index"]
    hi = math.inf if (end_of_life.get("censored") or {}).get("p95") else float(c["p95"])
    return float(c["p05"]), hi


class BaselineForecaster:
    """A per-cell baseline (``naive_sqrt``, ``power_law``, ``persistence``) fitted on the
    history; ``band_scale`` (retention units per √(cycles ahead)) gives a symmetric band
    p50 ± band_scale·√k, calibrated by the suite on held-out calibration cells."""

    def __init__(self, name: str, band_scale: float | None = None) -> None:
        self.name = name
        self.band_scale = band_scale
        self._factory = TRAJECTORY_BASELINES[name]

    def __call__(self, history: pd.DataFrame, future_cycle: np.ndarray,
                 future_hour: np.ndarray, *, nominal_capacity_ah: float | None = None,
                 eol_fraction: float | None = None) -> CellForecast:
        model = self._factory().fit_table(history, nominal_capacity_ah)
        p50 = model.predict(future_cycle, future_hour)
        lo = hi = None
        if self.band_scale is not None:
            ahead = np.sqrt(np.maximum(future_cycle - model.n_last_, 1.0))
            lo, hi = p50 - self.band_scale * ahead, p50 + self.band_scale * ahead
        eol = None if eol_fraction is None else first_crossing(future_cycle, p50, eol_fraction)
        return CellForecast(p50, lo, hi, model.time_share(), model.reference_capacity_ah_, eol)


class ModelForecaster:
    """The production model: ``ml.inference.forecast(history, card=, run=, …)``; ``run`` is an
    onnxruntime session (one intra-op thread) from ``ml.inference.load_model_dir``."""

    name = "model"

    def __init__(self, card: Any, run: Callable[[dict], dict]) -> None:
        self.card = card
        self.run = run

    @classmethod
    def from_uri(cls, uri: str | None = None, *,
                 tracking_uri: str | None = None) -> "ModelForecaster":
        """Resolve ``uri`` (None/``champion``, a folder, or a ``.onnx`` file) and load it."""
        from ml.inference import load_model_dir
        from ml.model_store import resolve_model

        card, run = load_model_dir(resolve_model(uri, tracking_uri=tracking_uri))
        return cls(card, run)

    def __call__(self, history: pd.DataFrame, future_cycle: np.ndarray,
                 future_hour: np.ndarray, *, nominal_capacity_ah: float | None = None,
                 eol_fraction: float | None = None) -> CellForecast:
        from ml.inference import forecast

        last_cycle = float(history["cycle_index"].iloc[-1])
        last_hour = float(history["test_time_second"].iloc[-1]) / 3600.0
        horizon = int(round(float(future_cycle[-1]) - last_cycle))
        pace = (float(future_hour[-1]) - last_hour) / max(horizon, 1)
        out = forecast(history, card=self.card, run=self.run, horizon_cycles=horizon,
                       hours_per_cycle=pace, nominal_capacity_ah=nominal_capacity_ah,
                       eol_fraction=0.8 if eol_fraction is None else eol_fraction)
        _, _, _, ref = retention_history(history, nominal_capacity_ah)
        rows = out["forecast"]
        grid = np.array([r["cycle_index"] for r in rows], dtype="float64")
        bands = {k: np.interp(future_cycle, grid,
                              [r["capacity_ah"][k] / ref for r in rows])
                 for k in ("p05", "p50", "p95")}
        eol = None
        if eol_fraction is not None and out.get("end_of_life"):
            eol = float(out["end_of_life"]["cycle_index"]["p50"])
        ts = out["attribution"]["time_share"]
        return CellForecast(bands["p50"], bands["p05"], bands["p95"], float(ts["p50"]), ref, eol,
                            (float(ts["p05"]), float(ts["p95"])),
                            in_domain=bool((out.get("domain") or {}).get("in_domain", True)),
                            eol_interval=answer_interval(out.get("end_of_life")))
