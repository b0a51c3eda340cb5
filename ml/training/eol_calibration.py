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
  p95 curves (``inf`` when p95 does not cross within the horizon, :data:`HORIZON_MULTIPLE` × R*;
  a p05 that does not cross counts as the horizon, a lower bound, and is counted in the card);
* each side is scored on its own, ``ln(R05 / R*)`` (how far the early end must move) and
  ``ln(R* / R95)`` (the late end), and each side's ``scale`` is the LARGEST over the sources
  of each source's weighted 95 % quantile of its scores (every cell inside a source weighing
  the same: ``ml.evaluation.calibration``, the one quantile implementation; a source of fewer
  than :data:`MIN_SOURCE_CELLS` scored cells is listed but left out). The largest, not the
  quantile of the sources' mixture: the target is 90 % per source, and a mixture's quantile
  lets a source that needs no widening (simulated cells) hold one that needs some
  (synthetic cells with knees) below its level. Two one-sided 95 % bounds
  make a 90 % interval. One side per scale because the misses are one-sided: a crossing that
  comes too late (a knee) is not helped by widening a p95 that the horizon already leaves open.
* the same scales are also computed per bin of the history's FADE PROGRESS at the cut
  (:func:`ml.uncertainty.fade_progress`: the share of the way to the threshold already lost;
  bins at thirds, :data:`PROGRESS_EDGES`), a Mondrian split on what the history itself shows:
  a history still near full capacity has its knee, if any, ahead, and its crossing is far less
  certain than that of a history two thirds of the way down. A bin whose scale-setting
  sources (at least :data:`MIN_SOURCE_CELLS` cells in the bin) hold fewer than
  :data:`MIN_BIN_CELLS` cells is served with the pooled scales. A bin's cell count is not its
  effective size: its scale is the largest of a few per-source quantiles, each from 5 or more
  cells, and, as for the pooled scales, no finite-sample (n + 1) correction is applied (with
  5–19 cells one cell's scores set a source's 95 % quantile: why the production config adds
  calibration-only synthetic cells, ``data.calibration_synthetic_cells``, so that the
  synthetic source's quantiles rest on about 200 cells; the real sources' stay small, and a
  bin whose scale the synthetic cells set alone says so in ``scale_sources``); the held-out check is
  ``experiments/eol_calibration/heldout.py`` (the ``eol-heldout`` figures). (Why bins: on the
  calibration cells the last third's crossings needed no widening while the early ones did, so
  one pooled widening made every late-life interval wider than its calibration asked for, and
  the advice, which stops on a narrow interval, stopped later; the card's ``by_progress``
  holds each bin's scales.) The thirds are a convention, fixed before the held-out figures
  were first computed.

Served (:func:`ml.uncertainty.widen_end_of_life`, with the scales of the history's progress
bin): the remaining cycles to p05 shrink by ``exp(-scale_p05)`` and to p95 grow by ``exp(scale_p95)`` where those are positive; a negative
scale never narrows the crossings. The median is never moved. A cycle-life head's EOL spread is its
own (cross-validated) and is not widened; histories whose forecast used a head are left out of the
scores for the same reason. The thresholds calibrated are 80–90 % of the reference; the same
scales serve any threshold a user asks for (extrapolated, said in the card).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterator, Sequence

import numpy as np

from ml.evaluation.calibration import weighted_conformal_quantile

__all__ = ["THRESHOLDS", "CUT_FRACTIONS", "LEVEL", "HORIZON_MULTIPLE", "PROGRESS_EDGES",
           "MIN_BIN_CELLS", "MIN_SOURCE_CELLS", "life_cut", "life_cuts", "eol_scores",
           "calibrate_end_of_life"]

#: thresholds (fraction of the reference capacity) whose crossing is calibrated, each where the
#: calibration cell truly reaches it (the Severson cells' records end near 80 %)
THRESHOLDS = (0.8, 0.85, 0.9)
#: cuts, as fractions of the cell's life to the threshold
CUT_FRACTIONS = (0.2, 0.35, 0.5, 0.65, 0.8, 0.9)
LEVEL = 0.9
#: forecast horizon at a cut, in multiples of the true remaining life (beyond it: censored)
HORIZON_MULTIPLE = 5.0
#: fade progress (:func:`ml.uncertainty.fade_progress`: share of the way to the threshold
#: already lost) splitting the scores into bins calibrated on their own (Mondrian): thirds
PROGRESS_EDGES = (1.0 / 3.0, 2.0 / 3.0)
#: a bin with scores from fewer cells serves its histories with the pooled scales
MIN_BIN_CELLS = 10
#: a source whose scores come from fewer cells is reported (``by_source``, ``pooled: false``)
#: but does not weigh in the pooled and binned scales: every source weighs the same, so each
#: of its few cells would hold more than the 5 % tail a one-sided 95 % quantile reads, and one
#: cell would set the widening of every source (measured: 3 Severson cells whose histories
#: fell outside the cycle-life heads' windows raised the pooled p05 scale from 0.25 to 1.18)
MIN_SOURCE_CELLS = 5


def life_cut(cycle_index: np.ndarray, fraction: float, eol_cycle: float) -> int | None:
    """Rows of a history cut at ``fraction`` of a cell's life to ``eol_cycle`` (the rows whose
    cycle is at most ``fraction · eol_cycle``); None when fewer than 3 rows or none before the
    end of life remain."""
    index = np.asarray(cycle_index, dtype=float)
    n = int(np.searchsorted(index, fraction * eol_cycle, side="right"))
    if n < 3 or index[n - 1] >= eol_cycle:
        return None
    return n


def eol_scores(records: Sequence[Any], card: Any, run: Any, *,
               thresholds: Sequence[float] = THRESHOLDS,
               fractions: Sequence[float] = CUT_FRACTIONS) -> list[dict]:
    """One dict per (cell, threshold, cut): ``source``, ``cell_id``, ``threshold``, ``fraction``,
    ``remaining_true``, ``remaining_p05``, ``remaining_p95`` (cycles), ``p05_censored`` and the
    two one-sided scores ``score_p05`` / ``score_p95``. A cut whose forecast the service refuses
    is left out (:func:`calibrate_end_of_life` lists it in ``failed``).

    ``records``: cells with ``cycles`` (per-cycle table), ``cell_id`` and ``meta`` (``source``,
    ``nominal_capacity_ah`` when known); ``card``, ``run``: the model as served."""
    return _scores(records, card, run, thresholds, fractions)[0]


def life_cuts(records: Sequence[Any], thresholds: Sequence[float],
               fractions: Sequence[float]
               ) -> Iterator[tuple[Any, dict, float, float, float, int]]:
    """``(record, meta, threshold, fraction, true EOL cycle, rows)`` of every cut of every cell that truly
    reaches a threshold (:func:`ml.backtest.true_end_of_life`, :func:`life_cut`)."""
    from ml.backtest import true_end_of_life

    for rec in records:
        meta = getattr(rec, "meta", None) or {}
        index = rec.cycles["cycle_index"].to_numpy(dtype=float)
        for thr in thresholds:
            truth = true_end_of_life(rec.cycles, eol_fraction=thr,
                                     nominal_capacity_ah=meta.get("nominal_capacity_ah"))
            if truth is None:
                continue
            for frac in fractions:
                n = life_cut(index, frac, float(truth[0]))
                if n is not None:
                    yield rec, meta, thr, frac, float(truth[0]), n


def _remaining(doc: dict, key: str, threshold_ah: float, last: float) -> float:
    """Cycles from ``last`` to the first forecast row whose ``key`` quantile is below
    ``threshold_ah`` (:func:`ml.inference.first_below`); ``inf`` when none is."""
    from ml.inference import first_below

    rows = doc["forecast"]
    i = first_below(np.array([r["capacity_ah"][key] for r in rows]), threshold_ah)
    return math.inf if i is None else float(rows[i]["cycle_index"]) - last


def _scores(records: Sequence[Any], card: Any, run: Any, thresholds: Sequence[float],
            fractions: Sequence[float]) -> tuple[list[dict], list[str]]:
    from data_registry.errors import FadecastError
    from ml.inference import forecast
    from ml.models.baselines import retention_history

    out, failed = [], []
    for rec, meta, thr, frac, eol, n in life_cuts(records, thresholds, fractions):
        history = rec.cycles.iloc[:n]
        nominal = meta.get("nominal_capacity_ah")
        last = float(history["cycle_index"].iloc[-1])
        r_true = eol - last
        horizon = max(int(math.ceil(HORIZON_MULTIPLE * r_true)), 10)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                doc = forecast(history, card=card, run=run, horizon_cycles=horizon,
                               eol_fraction=thr, nominal_capacity_ah=nominal)
        except FadecastError as exc:
            failed.append(f"{rec.cell_id} at {frac:g} of its life to {thr:g}: {exc.message}")
            continue
        if doc["uncertainty"].get("cycle_life_head") is not None:
            continue
        thr_ah = thr * retention_history(history, nominal)[3]
        r05 = _remaining(doc, "p05", thr_ah, last)
        r95 = _remaining(doc, "p95", thr_ah, last)
        censored = math.isinf(r05)
        r05 = float(horizon) if censored else r05  # never crossing: the horizon, a lower bound
        progress = doc["uncertainty"].get("fade_progress")
        out.append({"source": meta.get("source", "?"), "cell_id": rec.cell_id,
                    "threshold": thr, "fraction": frac, "remaining_true": r_true,
                    "fade_progress": float("nan") if progress is None else float(progress),
                    "remaining_p05": r05, "remaining_p95": r95, "p05_censored": censored,
                    "score_p05": math.log(r05 / r_true),
                    "score_p95": -math.inf if math.isinf(r95) else math.log(r_true / r95)})
    return out, failed


def _source_scale(rows: list[dict], key: str, level: float) -> float | None:
    """One source's scale: the weighted one-sided quantile of its scores, every cell weighing
    the same (None where no score exists or the quantile is not finite)."""
    s = np.array([r[key] for r in rows], dtype=float)
    if not s.size:
        return None
    cell = np.array([r["cell_id"] for r in rows])
    q = weighted_conformal_quantile(s, cell, np.zeros(s.size, dtype=int), (1 - level) / 2)
    return float(q) if np.isfinite(q) else None


def _cells_by_source(rows: list[dict]) -> dict[str, set]:
    """The cell ids of ``rows``, per source."""
    out: dict[str, set] = {}
    for r in rows:
        out.setdefault(r["source"], set()).add(r["cell_id"])
    return out


def _scaling_sources(rows: list[dict]) -> dict[str, list[dict]]:
    """``rows`` grouped by source, keeping the sources with at least :data:`MIN_SOURCE_CELLS`
    cells: those that set a scale."""
    return {src: [r for r in rows if r["source"] == src]
            for src, cells in _cells_by_source(rows).items() if len(cells) >= MIN_SOURCE_CELLS}


def _side_scale(rows: list[dict], key: str, level: float) -> float | None:
    """The LARGEST of the per-source scales (:func:`_source_scale`) of the scale-setting
    sources in ``rows`` (:func:`_scaling_sources`): every such source's crossings are then
    held at the level, not only their mixture; None where no source has a finite scale."""
    scales = [_source_scale(part, key, level) for part in _scaling_sources(rows).values()]
    scales = [v for v in scales if v is not None]
    return max(scales) if scales else None


def calibrate_end_of_life(records: Sequence[Any], card: Any, run: Any, *,
                          level: float = LEVEL) -> dict:
    """The card's ``conformal["end_of_life"]``: ``{"method": "log_remaining_one_sided",
    "scale_p05", "scale_p95", "level", "n", "n_cells", "p05_censored", "failed",
    "thresholds", "cut_fractions", "min_source_cells", "by_source", "by_progress"}``
    (``by_progress``: the scales of each fade-progress bin, :func:`_progress_bins`; the pooled
    and binned scales leave out sources with fewer than :data:`MIN_SOURCE_CELLS` scored cells,
    ``by_source`` lists every source with ``pooled``). A scale is None where no score exists
    or the quantile is not finite (every p95 beyond the horizon): that side is not widened."""
    every, failed = _scores(records, card, run, THRESHOLDS, CUT_FRACTIONS)
    pooled = _scaling_sources(every)
    scores = [r for r in every if r["source"] in pooled]
    out = {"method": "log_remaining_one_sided", "level": level,
           "thresholds": list(THRESHOLDS), "cut_fractions": list(CUT_FRACTIONS),
           "scale_p05": _side_scale(scores, "score_p05", level),
           "scale_p95": _side_scale(scores, "score_p95", level),
           "n": len(scores), "n_cells": len({r["cell_id"] for r in scores}),
           "p05_censored": sum(r["p05_censored"] for r in scores), "failed": failed[:20],
           "min_source_cells": MIN_SOURCE_CELLS, "by_source": {}}
    for src in sorted({r["source"] for r in every}):
        part = [r for r in every if r["source"] == src]
        out["by_source"][src] = {"scale_p05": _source_scale(part, "score_p05", level),
                                 "scale_p95": _source_scale(part, "score_p95", level),
                                 "n": len(part), "n_cells": len({r["cell_id"] for r in part}),
                                 "pooled": src in pooled}
    out["by_progress"] = _progress_bins(scores, level)
    return out


def _progress_bins(scores: list[dict], level: float) -> dict:
    """``{"edges", "min_cells", "bins"}``: the scales of the scores in each fade-progress bin
    (:data:`PROGRESS_EDGES`); a bin is ``used`` when the sources that set its scales (those
    with at least :data:`MIN_SOURCE_CELLS` cells in it, ``scale_sources``) hold at least
    :data:`MIN_BIN_CELLS` cells (``n_cells_scaled``), else the pooled scales serve its
    histories. ``n_cells_by_source`` says which sources' cells the bin holds: a bin whose
    scale one source sets alone says so."""
    progress = np.array([r.get("fade_progress", math.nan) for r in scores], dtype=float)
    index = np.searchsorted(np.asarray(PROGRESS_EDGES), progress, side="right")
    bins = []
    for b in range(len(PROGRESS_EDGES) + 1):
        part = [r for r, i, p in zip(scores, index, progress) if i == b and np.isfinite(p)]
        cells = {src: len(ids) for src, ids in sorted(_cells_by_source(part).items())}
        setting = sorted(src for src, n in cells.items() if n >= MIN_SOURCE_CELLS)
        scaled = sum(cells[src] for src in setting)
        scales = {k: _side_scale(part, f"score_{k}", level) for k in ("p05", "p95")}
        bins.append({"scale_p05": scales["p05"], "scale_p95": scales["p95"],
                     "n": len(part), "n_cells": len({r["cell_id"] for r in part}),
                     "n_cells_by_source": cells, "scale_sources": setting,
                     "n_cells_scaled": scaled,
                     "used": scaled >= MIN_BIN_CELLS and any(v is not None
                                                             for v in scales.values())})
    return {"edges": list(PROGRESS_EDGES), "min_cells": MIN_BIN_CELLS, "bins": bins}
