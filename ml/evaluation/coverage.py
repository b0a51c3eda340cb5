"""Why a 90 % band misses: per source, the band's parts at every scored future point.

``python -m ml.evaluation.coverage --model models/production --suite nasa-pcoe …`` forecasts the
test cells of each trajectory suite exactly as ``fadecast evaluate`` does (first 40 % seen,
planned schedule) and records, per future point, the truth, the served band, the parts the band
was composed of (the model's raw half-widths, the per-cell floor, the conformal scale and the
out-of-domain widening, captured from :func:`ml.uncertainty.compose_band`) and the per-cell
√t + N fit (its forecast and its residual scale on the history). :func:`diagnose` reduces them
to the figures that tell "too narrow" from "biased": misses below / above the band, median
|error| / half-width, coverage per horizon third, the out-of-domain share and the model–trend
disagreement. All figures in % of the reference capacity unless named otherwise.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from ml.evaluation.forecasters import BaselineForecaster
from ml.evaluation.trajectory import OBSERVED_FRACTION, cut
from ml.models.baselines import NaiveSqrtBaseline, retention_history

__all__ = ["band_points", "diagnose", "format_diagnosis", "HORIZON_THIRDS"]

HORIZON_THIRDS = ("near", "mid", "far")


@contextlib.contextmanager
def _recording() -> Iterator[list]:
    """Record the arguments of every :func:`ml.uncertainty.compose_band` call (the served path
    imports it at call time, so the module attribute is what it calls)."""
    import ml.uncertainty as unc

    calls: list = []
    original = unc.compose_band

    def compose(q, floor, scale=0.0, widening=1.0):
        calls.append((np.array(q, dtype=float), np.array(floor, dtype=float), float(scale),
                      float(widening)))
        return original(q, floor, scale, widening)

    unc.compose_band = compose
    try:
        yield calls
    finally:
        unc.compose_band = original


def band_points(cells: Sequence[Any], card: Any, run: Any, source: str, *,
                observed_fraction: float = OBSERVED_FRACTION) -> pd.DataFrame:
    """One row per scored future point of every cell (by default the ``fadecast evaluate`` cut:
    the first 40 % seen, the planned schedule)."""
    from ml.inference import forecast

    naive = BaselineForecaster("naive_sqrt")
    rows = []
    for rec in cells:
        seen, fc, fh = cut(rec, observed_fraction)
        history = rec.cycles.iloc[:seen]
        n_h, t_h, r_h, ref = retention_history(history)
        truth = rec.cycles["discharge_capacity_ah"].to_numpy(float)[seen:] / ref
        last = float(history["cycle_index"].iloc[-1])
        horizon = int(round(float(fc[-1]) - last))
        pace = (float(fh[-1]) - float(history["test_time_second"].iloc[-1]) / 3600.0) \
            / max(horizon, 1)
        with _recording() as calls:
            out = forecast(history, card=card, run=run, horizon_cycles=horizon,
                           hours_per_cycle=pace)
        raw, floor, scale, widen = calls[-1]
        grid = np.array([r["cycle_index"] for r in out["forecast"]], dtype=float)
        q = {k: np.interp(fc, grid, [r["capacity_ah"][k] / ref for r in out["forecast"]])
             for k in ("p05", "p50", "p95")}
        m_lo = np.interp(fc, grid, raw[:, 1] - raw[:, 0])
        m_hi = np.interp(fc, grid, raw[:, 2] - raw[:, 1])
        fl = np.interp(fc, grid, floor)
        nv = naive(history, fc, fh).p50
        fit = NaiveSqrtBaseline().fit(n_h, t_h, r_h)
        resid = float(np.sqrt(np.mean((fit.predict(n_h, t_h) - r_h) ** 2)))
        dom = out["domain"]
        k = fc - last
        third = np.minimum((np.arange(len(fc)) * 3) // max(len(fc), 1), 2)
        for i in range(len(fc)):
            rows.append({"source": source, "cell_id": rec.cell_id, "cycles_ahead": k[i],
                         "third": HORIZON_THIRDS[third[i]], "truth": truth[i],
                         "p05": q["p05"][i], "p50": q["p50"][i], "p95": q["p95"][i],
                         "model_lo": m_lo[i], "model_hi": m_hi[i], "floor": fl[i],
                         "scale": scale, "widening": widen, "in_domain": bool(dom["in_domain"]),
                         "reasons": "; ".join(dom.get("reasons", [])), "naive_p50": nv[i],
                         "naive_resid_rms": resid})
    return pd.DataFrame(rows)


def diagnose(points: pd.DataFrame) -> dict:
    """Per-source figures of :func:`band_points` rows (see the module docstring).

    ``miss_below_pct`` / ``miss_above_pct``: truth under p05 / over p95 (a biased band misses on
    one side; a narrow unbiased one on both); ``err_over_halfwidth_median``: median of |truth −
    p50| / half-width on the truth's side (1.0 = on the edge); ``bias_pct``: mean truth − p50;
    ``model_halfwidth_pct`` is the raw model spread, ``floor_pct`` the per-cell floor,
    ``halfwidth_pct`` the served half-width; ``disagreement_pct``: mean |model p50 − √t+N p50|;
    ``naive_resid_rms_pct``: the √t+N fit's own rms residual on the history (cell mean).
    """
    p = points
    below = p["truth"] < p["p05"]
    above = p["truth"] > p["p95"]
    side = np.where(p["truth"] < p["p50"], p["p50"] - p["p05"], p["p95"] - p["p50"])
    ratio = np.abs(p["truth"] - p["p50"]) / np.maximum(side, 1e-9)
    out = {"points": int(len(p)), "cells": int(p["cell_id"].nunique()),
           "coverage_pct": float(100 * np.mean(~below & ~above)),
           "miss_below_pct": float(100 * below.mean()), "miss_above_pct": float(100 * above.mean()),
           "err_over_halfwidth_median": float(np.median(ratio)),
           "bias_pct": float(100 * np.mean(p["truth"] - p["p50"])),
           "abs_error_pct": float(100 * np.mean(np.abs(p["truth"] - p["p50"]))),
           "naive_abs_error_pct": float(100 * np.mean(np.abs(p["truth"] - p["naive_p50"]))),
           "halfwidth_pct": float(100 * np.mean((p["p95"] - p["p05"]) / 2)),
           "model_halfwidth_pct": float(100 * np.mean((p["model_lo"] + p["model_hi"]) / 2)),
           "floor_pct": float(100 * p["floor"].mean()),
           "conformal_scale": float(p["scale"].iloc[0]) if len(p) else float("nan"),
           "out_of_domain_cells": int((~p.groupby("cell_id")["in_domain"].first()).sum()),
           "widening_mean": float(p["widening"].mean()),
           "disagreement_pct": float(100 * np.mean(np.abs(p["p50"] - p["naive_p50"]))),
           "naive_resid_rms_pct": float(100 * p.groupby("cell_id")["naive_resid_rms"]
                                        .first().mean())}
    for third in HORIZON_THIRDS:
        t = p["third"] == third
        if t.any():
            out[f"coverage_{third}_pct"] = float(100 * np.mean(~below[t] & ~above[t]))
            out[f"halfwidth_{third}_pct"] = float(100 * np.mean((p["p95"] - p["p05"])[t] / 2))
            out[f"abs_error_{third}_pct"] = float(100 * np.mean(np.abs(p["truth"] - p["p50"])[t]))
    reasons = sorted({r for r in p["reasons"] if r})
    out["domain_reasons"] = reasons[:3]
    return out


def format_diagnosis(by_source: dict[str, dict]) -> str:
    """Plain-text table: one column per source, one row per figure."""
    names = list(by_source)
    keys = [k for k in next(iter(by_source.values())) if k != "domain_reasons"] if names else []
    width = max([len(k) for k in keys] + [6])
    lines = [" " * width + "  " + "  ".join(n[:14].rjust(14) for n in names)]
    for k in keys:
        vals = []
        for n in names:
            v = by_source[n].get(k)
            vals.append("-" if v is None or (isinstance(v, float) and not math.isfinite(v))
                        else (f"{v:.3f}" if isinstance(v, float) else str(v)))
        lines.append(k.ljust(width) + "  " + "  ".join(x.rjust(14) for x in vals))
    for n in names:
        if by_source[n].get("domain_reasons"):
            lines.append(f"{n}: out-of-domain reasons, e.g. {by_source[n]['domain_reasons']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: per-source band diagnosis of a model on the trajectory suites."""
    from ml.evaluation.suites import TRAJECTORY_SUITES, trajectory_cells
    from ml.inference import load_model_dir

    ap = argparse.ArgumentParser(prog="python -m ml.evaluation.coverage",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/production", help="model folder")
    ap.add_argument("--suite", action="append", choices=TRAJECTORY_SUITES,
                    help="trajectory suite (repeatable; default: all)")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args(argv)
    card, run = load_model_dir(args.model)
    result = {}
    for name in args.suite or TRAJECTORY_SUITES:
        test, _, _ = trajectory_cells(name)
        result[name] = diagnose(band_points(test, card, run, name))
    if args.json:
        print(json.dumps(result, default=float))
    else:
        print(format_diagnosis(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
