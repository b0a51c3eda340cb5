"""Split-conformal calibration of the END-OF-LIFE interval (cycles to a capacity threshold).

The capacity band of a forecast is calibrated point by point (``ml.training.calibration``): 90 %
of future capacities fall inside it. The cycles where its p05 / p95 curves cross a threshold are
NOT a calibrated interval for the crossing cycle: a band that holds 90 % of the points of a cell
whose fade is still slow can be far too narrow where the fade bends down (an LFP knee), which is
where the end of life is decided. Measured on Severson test1 cells cut at 80 % of their life
(``experiments/severson_early_life/midlife.py``): the crossings held the true end of life for a
minority of cells.

This module calibrates the crossing interval itself, on the CALIBRATION cells (never trained on,
never used to pick epochs), through the served path (:func:`ml.inference.forecast`, the card's
capacity calibration included):

* every calibration cell that truly reaches a threshold of :data:`THRESHOLDS` (three rows in a row
  below it, :func:`ml.backtest.true_end_of_life`) is cut at each fraction of
  :data:`CUT_FRACTIONS` of its life to that threshold — its remaining life ``R*`` is then known;
* the forecast's band gives the remaining cycles ``R05`` / ``R95`` to the crossings of its p05 /
  p95 curves (``inf`` when p95 does not cross within the horizon; a p05 that does not cross counts
  as the horizon, a lower bound);
* the score is ``max(ln(R05 / R*), ln(R* / R95))``: how far, in log remaining life, the interval
  must widen to hold the truth (negative: it held it with room);
* the stored ``scale`` is the weighted 90 % quantile of the scores (every source weighs the same,
  every cell inside a source the same: ``ml.evaluation.calibration``, the one quantile
  implementation).

Served (:func:`ml.uncertainty.widen_end_of_life`): the remaining cycles to p05 shrink by
``exp(-scale)`` and to p95 grow by ``exp(scale)`` when the scale is positive; a negative scale
never narrows the crossings. The median is never moved. A cycle-life head's EOL spread is its own (cross-validated) and is not
widened; histories whose forecast used a head are left out of the scores for the same reason.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np

from ml.evaluation.calibration import weighted_conformal_quantile

__all__ = ["THRESHOLDS", "CUT_FRACTIONS", "LEVEL", "eol_scores", "calibrate_end_of_life"]

#: thresholds (fraction of the reference capacity) whose crossing is calibrated, each where the
#: calibration cell truly reaches it (the Severson cells' records end near 80 %)
THRESHOLDS = (0.8, 0.85, 0.9)
#: cuts, as fractions of the cell's life to the threshold
CUT_FRACTIONS = (0.2, 0.35, 0.5, 0.65, 0.8, 0.9)
LEVEL = 0.9
#: forecast horizon at a cut, in multiples of the true remaining life (beyond it: censored)
HORIZON_MULTIPLE = 3.0


def _remaining(rows: list[dict], key: str, threshold_ah: float, last: float) -> float:
    """Cycles from ``last`` to the first forecast row whose ``key`` quantile is below
    ``threshold_ah``; ``inf`` when none is."""
    for row in rows:
        if row["capacity_ah"][key] < threshold_ah:
            return float(row["cycle_index"]) - last
    return math.inf


def eol_scores(records: Sequence[Any], card: Any, run: Any, *,
               thresholds: Sequence[float] = THRESHOLDS,
               fractions: Sequence[float] = CUT_FRACTIONS) -> list[dict]:
    """One dict per (cell, threshold, cut): ``source``, ``cell_id``, ``threshold``, ``fraction``,
    ``remaining_true``, ``remaining_p05``, ``remaining_p95`` (cycles) and ``score``.

    ``records``: cells with ``cycles`` (per-cycle table), ``cell_id`` and ``meta`` (``source``,
    ``nominal_capacity_ah`` when known); ``card``, ``run``: the model as served."""
    from ml.backtest import true_end_of_life
    from ml.inference import forecast

    out = []
    for rec in records:
        cycles = rec.cycles
        meta = getattr(rec, "meta", None) or {}
        nominal = meta.get("nominal_capacity_ah")
        index = cycles["cycle_index"].to_numpy(dtype=float)
        for thr in thresholds:
            truth = true_end_of_life(cycles, eol_fraction=thr, nominal_capacity_ah=nominal)
            if truth is None:
                continue
            eol = float(truth[0])
            for frac in fractions:
                n = int(np.searchsorted(index, frac * eol, side="right"))
                if n < 3 or index[n - 1] >= eol:
                    continue
                last = float(index[n - 1])
                r_true = eol - last
                horizon = max(int(math.ceil(HORIZON_MULTIPLE * r_true)), 10)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    doc = forecast(cycles.iloc[:n], card=card, run=run, horizon_cycles=horizon,
                                   eol_fraction=thr, nominal_capacity_ah=nominal)
                if doc["uncertainty"].get("cycle_life_head") is not None:
                    continue
                ref = _reference_ah(doc, cycles.iloc[:n], nominal)
                r05 = _remaining(doc["forecast"], "p05", thr * ref, last)
                r95 = _remaining(doc["forecast"], "p95", thr * ref, last)
                r05 = min(r05, float(horizon))  # p05 never crossing: the horizon, a lower bound
                score = max(math.log(r05 / r_true), -math.inf if math.isinf(r95)
                            else math.log(r_true / r95))
                out.append({"source": meta.get("source", "?"), "cell_id": rec.cell_id,
                            "threshold": thr, "fraction": frac, "remaining_true": r_true,
                            "remaining_p05": r05, "remaining_p95": r95, "score": score,
                            "accelerating": _accelerating(doc)})
    return out


def _accelerating(doc: dict) -> bool:
    """Whether the forecast found the history's fade accelerating (:mod:`ml.median_anchor`)."""
    return str(doc["uncertainty"].get("level_basis", "")).startswith("latest")


def _reference_ah(doc: dict, history: Any, nominal: float | None) -> float:
    """The reference capacity the forecast used (CONTRACTS: nominal, else the largest of the
    first 3 discharge capacities)."""
    if nominal:
        return float(nominal)
    q = history["discharge_capacity_ah"].to_numpy(dtype=float)
    return float(np.nanmax(q[:3]))


def calibrate_end_of_life(records: Sequence[Any], card: Any, run: Any, *,
                          level: float = LEVEL) -> dict:
    """The card's ``conformal["end_of_life"]``: ``{"method": "log_remaining", "scale", "n",
    "n_cells", "level", "thresholds", "cut_fractions", "by_source"}`` (``scale`` None when no
    calibration cell reaches a threshold: nothing is widened)."""
    scores = eol_scores(records, card, run)
    base = {"method": "log_remaining", "level": level, "thresholds": list(THRESHOLDS),
            "cut_fractions": list(CUT_FRACTIONS)}
    if not scores:
        return {**base, "scale": None, "n": 0, "n_cells": 0, "by_source": {}}
    s = np.array([r["score"] for r in scores], dtype=float)
    cell = np.array([r["cell_id"] for r in scores])
    group = np.array([r["source"] for r in scores])
    by_source = {}
    for src in sorted(set(group.tolist())):
        m = group == src
        by_source[src] = {"scale": weighted_conformal_quantile(s[m], cell[m], group[m],
                                                               1 - level),
                          "n": int(m.sum()), "n_cells": int(len(set(cell[m].tolist())))}
    return {**base, "scale": weighted_conformal_quantile(s, cell, group, 1 - level),
            "n": int(s.size), "n_cells": int(len(set(cell.tolist()))), "by_source": by_source}
