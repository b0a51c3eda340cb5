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

Coverage of a source is pooled over its points, but points of one cell are not independent:
:func:`diagnose` gives the mean of the per-cell coverages and a cell-bootstrap interval
(:func:`ml.evaluation.calibration.cell_bootstrap_coverage`). :func:`band_parts` recomposes each
point's band with one part switched off at a time (noise floor, trend-fit floor, trend-gap
widening, model spread, conformal scale, out-of-domain widening): which part carries the
coverage (``--parts``).
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

from data_registry.errors import ValidationError

from ml.evaluation.calibration import cell_bootstrap_coverage
from ml.evaluation.forecasters import BaselineForecaster
from ml.evaluation.trajectory import OBSERVED_FRACTION, cut
from ml.models.baselines import NaiveSqrtBaseline, retention_history
from ml.uncertainty import band_ceiling

__all__ = ["band_points", "diagnose", "format_diagnosis", "band_parts", "format_parts",
           "HORIZON_THIRDS", "PART_SWITCHES"]

HORIZON_THIRDS = ("near", "mid", "far")


@contextlib.contextmanager
def _recording() -> Iterator[tuple[list, list]]:
    """Record the arguments of every :func:`ml.uncertainty.compose_band` call and the inputs of
    every :func:`ml.uncertainty.trend_check` call (the model's half-widths and the noise floor
    before the check). The served path imports them at call time, so the module attributes are
    what it calls."""
    import ml.uncertainty as unc

    calls: list = []
    checks: list = []
    original, original_check = unc.compose_band, unc.trend_check

    def compose(q, floor, scale=0.0, widening=1.0):
        calls.append((np.array(q, dtype=float), np.array(floor, dtype=float), float(scale),
                      float(widening)))
        return original(q, floor, scale, widening)

    def check(q, floor, *args, **kwargs):
        checks.append((np.array(q, dtype=float), np.array(floor, dtype=float)))
        return original_check(q, floor, *args, **kwargs)

    unc.compose_band, unc.trend_check = compose, check
    try:
        yield calls, checks
    finally:
        unc.compose_band, unc.trend_check = original, original_check


def band_points(cells: Sequence[Any], card: Any, run: Any, source: str, *,
                observed_fraction: float = OBSERVED_FRACTION) -> pd.DataFrame:
    """One row per scored future point of every cell (by default the ``fadecast evaluate`` cut:
    the first 40 % seen, the planned schedule).

    Band parts (retention units): ``model_lo``/``model_hi`` the model's half-widths after the
    trend check (as composed), ``model_lo_raw``/``model_hi_raw`` before it, ``floor`` the
    composed floor = sqrt(``noise_floor``² + ``fit_floor``²) (:func:`ml.uncertainty.trend_floor`
    and the trend check's Z90 · σ_fit), ``scale`` and ``widening`` as composed."""
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
        with _recording() as (calls, checks):
            out = forecast(history, card=card, run=run, horizon_cycles=horizon,
                           hours_per_cycle=pace)
        raw, floor, scale, widen = calls[-1]
        # no trend_check call recorded (the served path changed): parts unknown, NaN
        unchecked, noise_floor = checks[-1] if checks else (np.full_like(raw, np.nan),
                                                            np.full_like(floor, np.nan))
        grid = np.array([r["cycle_index"] for r in out["forecast"]], dtype=float)
        q = {k: np.interp(fc, grid, [r["capacity_ah"][k] / ref for r in out["forecast"]])
             for k in ("p05", "p50", "p95")}
        m_lo = np.interp(fc, grid, raw[:, 1] - raw[:, 0])
        m_hi = np.interp(fc, grid, raw[:, 2] - raw[:, 1])
        fl = np.interp(fc, grid, floor)
        m_lo_raw = np.interp(fc, grid, unchecked[:, 1] - unchecked[:, 0])
        m_hi_raw = np.interp(fc, grid, unchecked[:, 2] - unchecked[:, 1])
        fl_noise = np.interp(fc, grid, np.broadcast_to(noise_floor, grid.shape))
        fl_fit = np.sqrt(np.maximum(fl ** 2 - fl_noise ** 2, 0.0))
        nv = naive(history, fc, fh).p50
        fit = NaiveSqrtBaseline().fit(n_h, t_h, r_h)
        resid = float(np.sqrt(np.mean((fit.predict(n_h, t_h) - r_h) ** 2)))
        dom = out["domain"]
        cap = band_ceiling(r_h, floor)  # the served band's ceiling (physical_band)
        k = fc - last
        third = np.minimum((np.arange(len(fc)) * 3) // max(len(fc), 1), 2)
        for i in range(len(fc)):
            rows.append({"source": source, "cell_id": rec.cell_id, "cycles_ahead": k[i],
                         "third": HORIZON_THIRDS[third[i]], "truth": truth[i],
                         "p05": q["p05"][i], "p50": q["p50"][i], "p95": q["p95"][i],
                         "model_lo": m_lo[i], "model_hi": m_hi[i], "floor": fl[i],
                         "model_lo_raw": m_lo_raw[i], "model_hi_raw": m_hi_raw[i],
                         "noise_floor": fl_noise[i], "fit_floor": fl_fit[i],
                         "scale": scale, "widening": widen, "in_domain": bool(dom["in_domain"]),
                         "reasons": "; ".join(dom.get("reasons", [])), "naive_p50": nv[i],
                         "naive_resid_rms": resid, "cap": cap})
    return pd.DataFrame(rows)


def diagnose(points: pd.DataFrame) -> dict:
    """Per-source figures of :func:`band_points` rows (see the module docstring).

    ``miss_below_pct`` / ``miss_above_pct``: truth under p05 / over p95 (a biased band misses on
    one side; a narrow unbiased one on both); ``err_over_halfwidth_median``: median of |truth −
    p50| / half-width on the truth's side (1.0 = on the edge); ``bias_pct``: mean truth − p50;
    ``model_halfwidth_pct`` is the raw model spread, ``floor_pct`` the per-cell floor,
    ``halfwidth_pct`` the served half-width; ``disagreement_pct``: mean |model p50 − √t+N p50|;
    ``naive_resid_rms_pct``: the √t+N fit's own rms residual on the history (cell mean).
    ``coverage_cell_mean_pct``: mean of the per-cell coverages; ``coverage_ci95_low_pct`` /
    ``coverage_ci95_high_pct``: cell-bootstrap interval of ``coverage_pct``.
    """
    p = points
    below = p["truth"] < p["p05"]
    above = p["truth"] > p["p95"]
    inside = (~below & ~above).to_numpy()
    ci = cell_bootstrap_coverage(p["cell_id"].astype(str).to_numpy(), inside)
    side = np.where(p["truth"] < p["p50"], p["p50"] - p["p05"], p["p95"] - p["p50"])
    ratio = np.abs(p["truth"] - p["p50"]) / np.maximum(side, 1e-9)
    out = {"points": int(len(p)), "cells": int(p["cell_id"].nunique()),
           "coverage_pct": float(100 * np.mean(~below & ~above)),
           "coverage_cell_mean_pct": float(100 * pd.Series(inside).groupby(
               p["cell_id"].astype(str).to_numpy()).mean().mean()) if len(p) else float("nan"),
           "coverage_ci95_low_pct": ci[0], "coverage_ci95_high_pct": ci[1],
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

#: the band with one part switched off (or two: ``no_trend_check``, ``no_floor``); "served" is
#: the band as composed. Keys of a switch: ``noise_floor``, ``fit_floor`` (the trend check's
#: residual floor), ``trend_gap`` (the trend check's widening towards the √t+N forecast),
#: ``model`` (the model's own half-widths), ``scale`` (the conformal 1 + s) and ``widening``
#: (out of domain)
PART_SWITCHES: dict[str, dict[str, bool]] = {
    "served": {},
    "no_noise_floor": {"noise_floor": False},
    "no_fit_floor": {"fit_floor": False},
    "no_trend_gap": {"trend_gap": False},
    "no_trend_check": {"fit_floor": False, "trend_gap": False},
    "no_floor": {"noise_floor": False, "fit_floor": False},
    "no_model_spread": {"model": False},
    "no_conformal_scale": {"scale": False},
    "no_ood_widening": {"widening": False},
}
_PART_COLUMNS = ("p50", "truth", "model_lo", "model_hi", "model_lo_raw", "model_hi_raw",
                 "noise_floor", "fit_floor", "scale", "widening", "third")


def _recomposed(p: pd.DataFrame, on: dict[str, bool]) -> tuple[np.ndarray, np.ndarray]:
    """(p05, p95) of :func:`ml.uncertainty.compose_band` from the recorded parts, with the
    parts named False in ``on`` left out; clipped at 0 and at the recorded ``cap`` as served
    (:func:`ml.uncertainty.physical_band`)."""
    col = {c: p[c].to_numpy(float) for c in _PART_COLUMNS if c != "third"}
    k = (col["widening"] if on.get("widening", True) else 1.0) \
        * np.maximum(1.0 + (col["scale"] if on.get("scale", True) else 0.0), 0.0)
    f2 = (col["noise_floor"] ** 2 if on.get("noise_floor", True) else 0.0) \
        + (col["fit_floor"] ** 2 if on.get("fit_floor", True) else 0.0)
    sides = []
    for side in ("lo", "hi"):
        raw, checked = col[f"model_{side}_raw"], col[f"model_{side}"]
        gap2 = np.maximum(checked ** 2 - raw ** 2, 0.0) if on.get("trend_gap", True) else 0.0
        m2 = (raw ** 2 if on.get("model", True) else 0.0) + gap2
        sides.append(np.sqrt(k ** 2 * m2 + f2))
    lo, hi = np.maximum(col["p50"] - sides[0], 0.0), np.maximum(col["p50"] + sides[1], 0.0)
    if "cap" in p:  # rows recorded since the band has a ceiling
        cap = p["cap"].to_numpy(float)
        lo, hi = np.minimum(lo, cap), np.minimum(hi, cap)
    return lo, hi


def band_parts(points: pd.DataFrame,
               switches: dict[str, dict[str, bool]] | None = None) -> dict[str, dict]:
    """Coverage and mean half-width (%) of each :data:`PART_SWITCHES` variant of the band.

    ``points``: :func:`band_points` rows (one source). Returns ``{variant: {"coverage_pct",
    "coverage_near_pct", "coverage_mid_pct", "coverage_far_pct", "halfwidth_pct"}}``; the
    ``served`` variant reproduces the served band. Raises ValidationError when a part column
    is missing (rows from before the parts were recorded).
    """
    missing = [c for c in _PART_COLUMNS if c not in points]
    if missing:
        raise ValidationError("band_parts: the rows do not record the band's parts",
                              code="missing_column", column=missing[0],
                              expected=str(list(_PART_COLUMNS)), found=str(list(points.columns)))
    unknown = [c for c in ("model_lo_raw", "noise_floor") if points[c].isna().any()]
    if unknown:
        raise ValidationError("band_parts: parts not recorded (the served path made no "
                              "ml.uncertainty.trend_check call)", code="missing_value",
                              column=unknown[0], expected="finite values", found="NaN")
    out = {}
    third = points["third"].to_numpy()
    truth = points["truth"].to_numpy(float)
    for name, on in (switches or PART_SWITCHES).items():
        lo, hi = _recomposed(points, on)
        inside = (truth >= lo) & (truth <= hi)
        row = {"coverage_pct": float(100 * inside.mean()) if inside.size else float("nan")}
        for t in HORIZON_THIRDS:
            m = third == t
            row[f"coverage_{t}_pct"] = float(100 * inside[m].mean()) if m.any() else float("nan")
        row["halfwidth_pct"] = float(100 * np.mean((hi - lo) / 2)) if inside.size \
            else float("nan")
        out[name] = row
    return out


def format_parts(name: str, parts: dict[str, dict]) -> str:
    """Plain-text table of :func:`band_parts`: one row per variant."""
    keys = list(next(iter(parts.values())))
    lines = [f"== {name}: the band with one part switched off",
             "variant".ljust(20) + "".join(k.replace("_pct", "").rjust(15) for k in keys)]
    lines += [v.ljust(20) + "".join(f"{row[k]:15.2f}" for k in keys)
              for v, row in parts.items()]
    return "\n".join(lines)


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
    ap.add_argument("--parts", action="store_true",
                    help="also recompose the band with each part switched off (band_parts)")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args(argv)
    card, run = load_model_dir(args.model)
    result, parts = {}, {}
    for name in args.suite or TRAJECTORY_SUITES:
        test, _, _ = trajectory_cells(name)
        points = band_points(test, card, run, name)
        result[name] = diagnose(points)
        if args.parts:
            parts[name] = band_parts(points)
            result[name]["parts"] = parts[name]
    if args.json:
        print(json.dumps(result, default=float))
    else:
        print(format_diagnosis({n: {k: v for k, v in d.items() if k != "parts"}
                                for n, d in result.items()}))
        for name, table in parts.items():
            print(format_parts(name, table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
