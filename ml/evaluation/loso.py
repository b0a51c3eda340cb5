"""Leave-one-source-out check of the capacity band's conformal scale.

The served band is ``compose_band(trend_check(raw), floor, s, widening)`` with ONE scale ``s`` from
the model card (fitted on the training sources' calibration cells). Whether that recipe holds on a
source nobody calibrated on is checked here: for each source S, ``s_S`` is the weighted split-
conformal quantile (:func:`ml.evaluation.calibration.weighted_conformal_quantile`, equal weight
per source and per cell — the one calibration implementation) of the scores
(:func:`ml.uncertainty.conformal_score`) of the OTHER sources' calibration cells, and S's test
cells are scored with ``s_S``. Calibration cells (:func:`calibration_cells`) are never test cells
and never the cells that pick the trained model's epoch or champion.

``python -m ml.evaluation.loso --model models/production [--suite …] [--tracking-uri URI]``
prints, per source, coverage and mean width of the 90 % band with the card's scale and with the
leave-one-source-out scale, next to the capacity error (the median is the same in both).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import numpy as np
import pandas as pd

from data_registry.errors import FadecastError

from ml.evaluation.calibration import weighted_conformal_quantile
from ml.uncertainty import compose_band, conformal_score

__all__ = ["calibration_cells", "point_scores", "loso_scales", "scaled_band", "loso_rows",
           "format_loso"]

#: trajectory suites whose source trained the production model: their suite calibration cells
#: (split_by_cell's val part) include the cells that picked the epoch; only the training
#: pipeline's CALIBRATION share of them may calibrate
TRAINED_SPLIT_SOURCES = ("pybamm-dev",)


def calibration_cells(name: str, root: Any = None) -> list:
    """Cells of suite ``name`` that may calibrate: the suite's calibration cells (never its
    test cells), minus, for a source the model trained on, the validation cells that chose the
    epoch and champion (``ml.training.pipeline``'s calibration share is kept)."""
    from ml.evaluation.suites import trajectory_cells

    test, calib, _ = trajectory_cells(name, root)
    if name in TRAINED_SPLIT_SOURCES:
        from ml.training.pipeline import _calibration_ids

        keep = _calibration_ids([c.cell_id for c in calib], 0.5)
        calib = [c for c in calib if c.cell_id in keep]
    test_ids = {c.cell_id for c in test}
    overlap = sorted(test_ids & {c.cell_id for c in calib})
    if overlap:  # a guard: a scored cell must never calibrate
        raise FadecastError(f"suite {name}: calibration cells include scored test cells",
                            code="calibration_leak", column="cell_id",
                            expected="calibration cells disjoint from test cells",
                            found=str(overlap[:3]))
    return calib


def point_scores(points: pd.DataFrame) -> np.ndarray:
    """The conformal score of each :func:`ml.evaluation.coverage.band_points` row: the smallest
    scale ``s`` for which the served composition covers the truth (model half-widths already
    include the trend check and are multiplied by the out-of-domain widening)."""
    w = points["widening"].to_numpy(float)
    p50 = points["p50"].to_numpy(float)
    q = np.column_stack([p50 - w * points["model_lo"].to_numpy(float), p50,
                         p50 + w * points["model_hi"].to_numpy(float)])
    return conformal_score(q, points["floor"].to_numpy(float), points["truth"].to_numpy(float))


def loso_scales(calib_points: pd.DataFrame, sources: Sequence[str],
                alpha: float = 0.1) -> dict[str, float]:
    """``{source: scale}``: for each of ``sources``, the weighted conformal quantile of the
    calibration scores of every OTHER source (the source itself never contributes)."""
    scores = point_scores(calib_points)
    src = calib_points["source"].to_numpy()
    cell = calib_points["cell_id"].astype(str).to_numpy()
    out = {}
    for held in sources:
        keep = (src != held) & np.isfinite(scores)
        out[held] = weighted_conformal_quantile(scores[keep], cell[keep], src[keep], alpha)
    return out


def scaled_band(points: pd.DataFrame, scale: float) -> np.ndarray:
    """[N, 3] band of the rows with ``scale`` in place of the card's (the model half-widths,
    floor, widening and ceiling as served)."""
    w = points["widening"].to_numpy(float)
    p50 = points["p50"].to_numpy(float)
    out = np.empty((len(points), 3))
    for wi in np.unique(w):
        m = w == wi
        q = np.column_stack([p50[m] - points["model_lo"].to_numpy(float)[m], p50[m],
                             p50[m] + points["model_hi"].to_numpy(float)[m]])
        out[m] = compose_band(q, points["floor"].to_numpy(float)[m], scale, float(wi))
    out = np.clip(out, 0.0, None)
    if "cap" in points:  # the served ceiling (ml.uncertainty.physical_band)
        out = np.minimum(out, points["cap"].to_numpy(float)[:, None])
    return out


def _cover_width(points: pd.DataFrame, lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
    y = points["truth"].to_numpy(float)
    return float(100 * np.mean((y >= lo) & (y <= hi))), float(100 * np.mean(hi - lo))


def loso_rows(test_points: dict[str, pd.DataFrame], calib_points: pd.DataFrame,
              alpha: float = 0.1) -> list[dict]:
    """One row per source: capacity error (model, √t + N fit), coverage and mean width (% of
    reference) of the served band (card scale) and of the leave-one-source-out band."""
    scales = loso_scales(calib_points, list(test_points), alpha)
    rows = []
    for name, p in test_points.items():
        cov, width = _cover_width(p, p["p05"].to_numpy(float), p["p95"].to_numpy(float))
        band = scaled_band(p, scales[name])
        lcov, lwidth = _cover_width(p, band[:, 0], band[:, 2])
        err = 100 * np.abs(p["truth"] - p["p50"])
        nerr = 100 * np.abs(p["truth"] - p["naive_p50"])
        rows.append({"source": name, "cells": int(p["cell_id"].nunique()),
                     "points": int(len(p)),
                     "capacity_error_pct": float(err.groupby(p["cell_id"]).mean().mean()),
                     "naive_capacity_error_pct": float(nerr.groupby(p["cell_id"]).mean().mean()),
                     "card_scale": float(p["scale"].iloc[0]),
                     "coverage_90_pct": cov, "width_90_pct": width,
                     "loso_scale": scales[name], "loso_coverage_90_pct": lcov,
                     "loso_width_90_pct": lwidth,
                     "calibration_cells_other_sources": int(
                         calib_points.loc[calib_points["source"] != name, "cell_id"].nunique())})
    return rows


def format_loso(rows: list[dict]) -> str:
    """Plain-text table of :func:`loso_rows`."""
    keys = list(rows[0]) if rows else []
    body = [[f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys]
            for r in rows]
    widths = [max(len(x) for x in col) for col in zip(keys, *body)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    from ml.evaluation.coverage import band_points
    from ml.evaluation.suites import TRAJECTORY_SUITES, trajectory_cells
    from ml.inference import load_model_dir

    ap = argparse.ArgumentParser(prog="python -m ml.evaluation.loso",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/production", help="model folder")
    ap.add_argument("--suite", action="append", choices=TRAJECTORY_SUITES,
                    help="trajectory suite (repeatable; default: all five)")
    ap.add_argument("--tracking-uri", help="log the figures as an MLflow run")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args(argv)
    card, run = load_model_dir(args.model)
    names = args.suite or list(TRAJECTORY_SUITES)
    tests, calibs = {}, []
    for name in names:
        test, _, _ = trajectory_cells(name)
        tests[name] = band_points(test, card, run, name)
        calibs.append(band_points(calibration_cells(name), card, run, name))
    rows = loso_rows(tests, pd.concat(calibs, ignore_index=True))
    run_id = None
    if args.tracking_uri:
        from ml.training.tracking import log_metrics, training_run

        with training_run("fadecast-evaluation", {"model": f"{card.name}:{card.version}",
                                                  "check": "loso-band",
                                                  "suites": ",".join(names)},
                          tracking_uri=args.tracking_uri, run_name="loso-band") as run_id:
            log_metrics({f"{r['source']}/{k}": float(v) for r in rows for k, v in r.items()
                         if isinstance(v, (int, float))})
    if args.json:
        print(json.dumps({"mlflow_run_id": run_id, "rows": rows}))
    else:
        print(format_loso(rows))
        if run_id:
            print(f"note: logged to MLflow run {run_id} at {args.tracking_uri}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
