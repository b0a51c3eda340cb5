"""Trajectory suites (pybamm-dev, synthetic): see the first 40 % of each held-out cell, forecast
the rest given the PLANNED future schedule (the pace known at the cut, never the future's true
hours), and score

- |time-share error| at the last observed cycle against the known truth (median, p90);
- capacity error over the unseen cycles, mean |Δ retention| in % of the reference capacity;
- 90 % interval coverage and mean width (% of reference) of the p05–p95 band;
- for methods that give one (the model), coverage and mean width of the time-share p05–p95
  band: a model that cannot separate the two losses must say so with a wide band;
- end-of-life error (% of the true cycle) on cells whose observed future crosses 80 % of the
  reference (``eol_error_pct`` over ``eol_cells``; a forecast that does not cross within the
  observed future is scored at its last cycle — a lower bound of its error) and, for methods
  whose answer states an end-of-life interval (the model), the share of those cells whose
  interval holds the true cycle by the service's rule (the first of three rows in a row below
  80 %, :func:`ml.advice.observed_eol_cycle`) (``eol_coverage_90_pct``; no interval: a miss);
- the capacity error and coverage again over the cells the MODEL's answer called in domain
  (``*_in_domain``, ``cells_in_domain``; every method on those same cells): what a user who
  reads the answer's ``domain`` can expect when it says yes — the answer knows, at the cut,
  what the evaluation only learns later.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ml.advice import observed_eol_cycle
from ml.evaluation.calibration import conformal_quantile
from ml.evaluation.forecasters import BaselineForecaster, first_crossing
from ml.evaluation.metrics import summary_quantiles, time_share_errors
from ml.features.timing import PACE_CYCLES, default_hours_per_cycle
from ml.models.baselines import retention_history
from ml.sources import CellRecord

OBSERVED_FRACTION = 0.4
MIN_OBSERVED = 5
EOL_FRACTION = 0.8  # end of life for the EOL-error figure: 80 % of the reference capacity


def planned_future_hours(history, future_cycle: np.ndarray, rest_every: int = 0) -> np.ndarray:
    """Elapsed hours at ``future_cycle`` as planned at the cut: the last observed hour plus
    the median duration of the last 10 observed cycles per cycle ahead (the CONTRACTS default
    of ``fadecast forecast``, :func:`ml.features.timing.default_hours_per_cycle`). The future's TRUE hours are never used: at constant current a
    faded cell's cycles get shorter, so they would leak the capacity being forecast.

    ``rest_every`` > 1: the protocol adds a rest every that many cycles (the cell's protocol
    metadata — what its user knows and would pass as ``--hours-per-cycle``). The median of
    single cycles would drop those rests (measured on the 48 h-every-5-cycles cohort cells:
    the plan ran about half the true clock); the pace is then the mean over the last whole
    periods covering at least 10 cycles."""
    t = history["test_time_second"].to_numpy(dtype="float64") / 3600.0
    n = history["cycle_index"].to_numpy(dtype="float64")
    every = int(rest_every or 0)
    if every > 1:
        span = min(every * math.ceil(PACE_CYCLES / every), len(n) - 1)
        pace = float((t[-1] - t[-1 - span]) / max(n[-1] - n[-1 - span], 1.0)) if span > 0 \
            else 1.0
    else:  # the served default (ml.features.timing), from the same durations
        pace = default_hours_per_cycle(t, n)
        pace = pace if math.isfinite(pace) else 1.0
    return t[-1] + pace * (np.asarray(future_cycle, dtype="float64") - n[-1])


def cut(record: CellRecord, observed_fraction: float = OBSERVED_FRACTION
        ) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows observed, future cycle numbers, PLANNED future elapsed hours) for one cell
    (:func:`planned_future_hours`, with the protocol's ``rest_every_n_cycles`` when the
    record states one)."""
    n = len(record.cycles)
    seen = min(max(MIN_OBSERVED, math.ceil(observed_fraction * n)), n - 1)
    future = record.cycles.iloc[seen:]
    fc = future["cycle_index"].to_numpy(dtype="float64")
    every = record.meta.get("rest_every_n_cycles") or 0
    return seen, fc, planned_future_hours(record.cycles.iloc[:seen], fc, int(every))


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
    # per method: "cells" holds (cell_id, capacity error %, inside-band mask or None) per cell
    acc = {m: {"ts_err": [], "cells": [], "width": [], "ts_cover": [], "ts_width": [],
               "eol_err": [], "eol_cover": []} for m in methods}
    in_domain: set[str] = set()  # cells whose model answer said in domain
    for rec in cells:
        seen, fc, fh = cut(rec, observed_fraction)
        history = rec.cycles.iloc[:seen]
        _, _, _, ref = retention_history(history)
        truth_q = rec.cycles["discharge_capacity_ah"].to_numpy()[seen:] / ref
        share_true = true_time_share(rec, seen) if rec.truth is not None else float("nan")
        eol_true = first_crossing(fc, truth_q, EOL_FRACTION) \
            if float(np.min(truth_q[:1], initial=1.0)) >= EOL_FRACTION else None
        # the interval's truth: the rule the service and its calibration use (the first of
        # three rows in a row below), when it falls after the cut
        eol_rule = observed_eol_cycle(
            rec.cycles["cycle_index"].to_numpy(),
            rec.cycles["discharge_capacity_ah"].to_numpy() / ref, EOL_FRACTION)
        if eol_rule is not None and eol_rule <= float(history["cycle_index"].iloc[-1]):
            eol_rule = None
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
            if f.in_domain is not None:
                row[f"{name}_in_domain"] = f.in_domain
                if f.in_domain and name == "model":
                    in_domain.add(rec.cell_id)
            row[f"{name}_capacity_error_pct"] = float(err.mean())
            row[f"{name}_time_share"] = f.time_share
            if eol_true is not None:
                # a forecast that never crosses within the observed future is scored at the
                # last observed cycle: a LOWER bound of its error
                eol_pred = first_crossing(fc, f.p50, EOL_FRACTION)
                eol_pred = float(fc[-1]) if eol_pred is None else eol_pred
                a["eol_err"].append(abs(eol_pred - eol_true) / eol_true * 100.0)
                row[f"{name}_eol_error_pct"] = a["eol_err"][-1]
            if eol_true is not None and eol_rule is not None and f.eol_interval is not None:
                # the answer's own interval holds the truth?
                a["eol_cover"].append(f.eol_interval[0] <= eol_rule <= f.eol_interval[1])
                row[f"{name}_eol_interval_holds"] = a["eol_cover"][-1]
            if np.isfinite(f.time_share) and np.isfinite(share_true):
                a["ts_err"].append(float(time_share_errors([f.time_share], [share_true])[0]))
                if f.time_share_band is not None:
                    lo, hi = f.time_share_band
                    a["ts_cover"].append(lo <= share_true <= hi)
                    a["ts_width"].append(hi - lo)
            inside = None
            if f.p05 is not None:
                inside = (truth_q >= f.p05) & (truth_q <= f.p95)
                a["width"].append((f.p95 - f.p05) * 100.0)
            a["cells"].append((rec.cell_id, float(err.mean()), inside))
        per_cell.append(row)
    figures = {}
    for name, a in acc.items():
        cover = [x for _, _, x in a["cells"] if x is not None]
        fig = {"cells_scored": len(a["cells"]),
               "capacity_error_pct_of_reference": _mean([e for _, e, _ in a["cells"]])}
        ts = (summary_quantiles(a["ts_err"]) if a["ts_err"]
              else {"p50": float("nan"), "p90": float("nan")})
        fig["time_share_abs_error_median"] = ts["p50"]
        fig["time_share_abs_error_p90"] = ts["p90"]
        fig["coverage_90_pct"] = (float(np.mean(np.concatenate(cover))) * 100.0
                                  if cover else float("nan"))
        fig["interval_width_90_pct_of_reference"] = (
            float(np.mean(np.concatenate(a["width"]))) if a["width"] else float("nan"))
        fig["time_share_coverage_90_pct"] = (float(np.mean(a["ts_cover"])) * 100.0
                                             if a["ts_cover"] else float("nan"))
        fig["time_share_interval_width_90"] = _mean(a["ts_width"])
        fig["eol_error_pct"] = _mean(a["eol_err"])
        fig["eol_cells"] = len(a["eol_err"])
        if a["eol_cover"]:
            fig["eol_coverage_90_pct"] = float(np.mean(a["eol_cover"])) * 100.0
            fig["eol_interval_cells"] = len(a["eol_cover"])
        if "model" in methods:
            fig.update(_in_domain_figures([c for c in a["cells"] if c[0] in in_domain]))
        figures[name] = fig
    return {"figures": figures, "per_cell": per_cell, "failures": failures}


def _in_domain_figures(cells: list[tuple[str, float, np.ndarray | None]]) -> dict[str, float]:
    """Capacity error and 90 % coverage (%) over one method's ``(cell_id, error, inside)`` of
    the cells the model called in domain."""
    inside = [x for _, _, x in cells if x is not None]
    return {"cells_in_domain": len(cells),
            "capacity_error_pct_in_domain": _mean([e for _, e, _ in cells]),
            "coverage_90_pct_in_domain": (float(np.mean(np.concatenate(inside))) * 100.0
                                          if inside else float("nan"))}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
