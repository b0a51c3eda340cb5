"""Trajectory suites (pybamm-dev, synthetic): see the first 40 % of each held-out cell, forecast
the rest given the TRUE future schedule (cycles and elapsed hours: the what-if), and score

- |time-share error| at the last observed cycle against the known truth (median, p90);
- capacity error over the unseen cycles, mean |Δ retention| in % of the reference capacity;
- 90 % interval coverage and mean width (% of reference) of the p05–p95 band;
- for methods that give one (the model), coverage and mean width of the time-share p05–p95
  band: a model that cannot separate the two losses must say so with a wide band.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ml.evaluation.calibration import conformal_quantile
from ml.evaluation.forecasters import BaselineForecaster
from ml.evaluation.metrics import summary_quantiles, time_share_errors
from ml.models.baselines import retention_history
from ml.sources import CellRecord

OBSERVED_FRACTION = 0.4
MIN_OBSERVED = 5


def cut(record: CellRecord, observed_fraction: float = OBSERVED_FRACTION
        ) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows observed, future cycle numbers, future elapsed hours) for one cell."""
    n = len(record.cycles)
    seen = min(max(MIN_OBSERVED, math.ceil(observed_fraction * n)), n - 1)
    future = record.cycles.iloc[seen:]
    return (seen, future["cycle_index"].to_numpy(dtype="float64"),
            future["test_time_second"].to_numpy(dtype="float64") / 3600.0)


def true_time_share(record: CellRecord, seen: int) -> float:
    """Truth lt / (lt + lc) at the last observed cycle (row ``seen`` − 1)."""
    row = record.truth.iloc[seen - 1]
    lt, lc = float(row["loss_time_frac"]), float(row["loss_cycle_frac"])
    return lt / (lt + lc) if lt + lc > 0 else float("nan")


def calibrate_band(cells: Sequence[CellRecord], name: str, *,
                   observed_fraction: float = OBSERVED_FRACTION) -> float:
    """Band scale s (retention per √cycles ahead) for a baseline from calibration cells.

    Point score |error| / √k (k cycles ahead); the split-conformal 90 % quantile of the scores
    POOLED over the calibration cells' points, matching the pooled coverage figure (the
    by-cell variant, ``split_conformal_by_cell``, under-covered pooled points here: 73–86 %).
    """
    method = BaselineForecaster(name)
    scores: list[float] = []
    for rec in cells:
        seen, fc, fh = cut(rec, observed_fraction)
        history = rec.cycles.iloc[:seen]
        fcast = method(history, fc, fh)
        truth = rec.cycles["discharge_capacity_ah"].to_numpy()[seen:] / fcast.reference_capacity_ah
        k = np.maximum(fc - float(history["cycle_index"].iloc[-1]), 1.0)
        scores.extend((np.abs(truth - fcast.p50) / np.sqrt(k)).tolist())
    return conformal_quantile(scores, 0.1)


def evaluate_trajectories(cells: Sequence[CellRecord], methods: dict[str, Callable], *,
                          observed_fraction: float = OBSERVED_FRACTION) -> dict:
    """Score every method on every cell. Returns ``{"figures": {method: {figure: value}},
    "per_cell": [...], "failures": {method: [messages]}}``; figures in % except shares."""
    per_cell, failures = [], {m: [] for m in methods}
    acc = {m: {"ts_err": [], "cap_err": [], "cover": [], "width": [], "ts_cover": [],
               "ts_width": []} for m in methods}
    for rec in cells:
        seen, fc, fh = cut(rec, observed_fraction)
        history = rec.cycles.iloc[:seen]
        _, _, _, ref = retention_history(history)
        truth_q = rec.cycles["discharge_capacity_ah"].to_numpy()[seen:] / ref
        share_true = true_time_share(rec, seen) if rec.truth is not None else float("nan")
        row = {"cell_id": rec.cell_id, "observed_cycles": seen, "future_cycles": len(fc),
               "time_share_true": share_true}
        for name, method in methods.items():
            try:
                f = method(history, fc, fh)
            except Exception as exc:  # a failing method is reported, not fatal to the suite
                failures[name].append(f"{rec.cell_id}: {type(exc).__name__}: {exc}")
                continue
            a = acc[name]
            err = np.abs(f.p50 - truth_q) * 100.0
            a["cap_err"].append(float(err.mean()))
            row[f"{name}_capacity_error_pct"] = float(err.mean())
            row[f"{name}_time_share"] = f.time_share
            if np.isfinite(f.time_share) and np.isfinite(share_true):
                a["ts_err"].append(float(time_share_errors([f.time_share], [share_true])[0]))
                if f.time_share_band is not None:
                    lo, hi = f.time_share_band
                    a["ts_cover"].append(lo <= share_true <= hi)
                    a["ts_width"].append(hi - lo)
            if f.p05 is not None:
                inside = (truth_q >= f.p05) & (truth_q <= f.p95)
                a["cover"].append(inside)
                a["width"].append((f.p95 - f.p05) * 100.0)
        per_cell.append(row)
    figures = {}
    for name, a in acc.items():
        fig = {"cells_scored": len(a["cap_err"]),
               "capacity_error_pct_of_reference": _mean(a["cap_err"])}
        ts = (summary_quantiles(a["ts_err"]) if a["ts_err"]
              else {"p50": float("nan"), "p90": float("nan")})
        fig["time_share_abs_error_median"] = ts["p50"]
        fig["time_share_abs_error_p90"] = ts["p90"]
        fig["coverage_90_pct"] = (float(np.mean(np.concatenate(a["cover"]))) * 100.0
                                  if a["cover"] else float("nan"))
        fig["interval_width_90_pct_of_reference"] = (
            float(np.mean(np.concatenate(a["width"]))) if a["width"] else float("nan"))
        fig["time_share_coverage_90_pct"] = (float(np.mean(a["ts_cover"])) * 100.0
                                             if a["ts_cover"] else float("nan"))
        fig["time_share_interval_width_90"] = _mean(a["ts_width"])
        figures[name] = fig
    return {"figures": figures, "per_cell": per_cell, "failures": failures}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
