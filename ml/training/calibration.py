"""Split-conformal calibration of a model on CALIBRATION cells (by cell: never trained on, and
never used to pick the epoch or the champion — ``ml.training.pipeline`` keeps a separate
calibration split). The quantile math lives in ONE place, ``ml.evaluation.calibration``; this
module only gathers a model's scores.

Capacity (method ``"quadrature"``, ``ml.uncertainty``): the served band is, per side,
``sqrt(((1 + s) · m)² + f²)`` with m the model's half-width and f the per-cell floor (observation
noise + the history's trend extrapolation); the score of a point is the smallest ``s`` that covers
it (:func:`ml.uncertainty.conformal_score`) and the stored ``scale`` is the weighted 90 % quantile
of the scores. Time share (method ``"additive"``): ``s = max(q05 - y, y - q95) / (q95 - q05 +
eps)``, the band widened by ``scale · (q95 − q05 + eps)`` per side.

The quantile is WEIGHTED so every source (synthetic, pybamm-dev, severson-train, …) counts
equally and, inside a source, every cell counts equally (each point weighs
``1 / (n_sources · n_cells_of_source · n_points_of_cell)``): long trajectories do not dominate
their source, and a source with many calibration cells does not set the band for the others.
Per-source constants (same per-cell weighting) are stored beside the pooled one for reporting.
The calibration cells are each source's calibration share of its held-out cells plus, in the
production config, calibration-only synthetic cells (``data.calibration_synthetic_cells``): they
join the synthetic source's one weight, so they sharpen its quantile without outweighing the
other sources.
Cuts see only the PLANNED schedule: future hours = last observed hour + the median duration of
the last 10 observed cycles per cycle (what ``fadecast forecast`` assumes by default).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ml.evaluation.calibration import (conformal_quantile, source_cell_weights,
                                      weighted_conformal_quantile)
from ml.history_likelihood import TEMPERING_GRID, backcast_indices, weigh_samples
from ml.inference import OUTPUTS, band
from ml.models.fade_net import FadeNet
from ml.scaling import FeatureScaler
from ml.training.dataset import PreparedCell, cut_windows, stack_windows
from ml.training.loop import predict_batch
from ml.uncertainty import conformal_score, history_checked_band

__all__ = ["conformal_scale", "weighted_conformal_scale", "calibrate", "CUT_FRACTIONS",
           "weighted_outputs", "select_tempering", "backcast_samples"]

CUT_FRACTIONS = (0.3, 0.4, 0.5, 0.6)
CAPACITY_EPS = 0.002  # fraction of reference
SHARE_EPS = 0.02

Predict = Callable[[dict], dict]


def _scores(raw: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    return np.maximum(raw[:, 0] - y, y - raw[:, 2]) / (raw[:, 2] - raw[:, 0] + eps)


def conformal_scale(raw: np.ndarray, y: np.ndarray, eps: float, alpha: float = 0.1) -> dict:
    """Additive conformal constant for raw bands ``raw`` [N, 3] and observations ``y`` [N]
    (every point weighs the same; the finite-sample ⌈(n + 1)(1 − α)⌉-th smallest score, the
    largest when that exceeds n)."""
    ok = np.isfinite(y)
    raw, y = raw[ok], y[ok]
    n = len(y)
    if n == 0:
        return {"scale": 0.0, "eps": eps, "n": 0, "level": 1 - alpha}
    scores = _scores(raw, y, eps)
    q = conformal_quantile(scores, alpha)
    return {"scale": float(q if np.isfinite(q) else scores.max()), "eps": eps, "n": int(n),
            "level": 1 - alpha}


def weighted_conformal_scale(raw: np.ndarray, y: np.ndarray, cell: np.ndarray,
                             group: np.ndarray, eps: float, alpha: float = 0.1) -> dict:
    """Additive conformal constant with equal weight per ``group`` and, inside a group, per
    ``cell`` (see :func:`ml.evaluation.calibration.weighted_conformal_quantile`).

    Returns ``{"scale", "eps", "n", "n_cells", "level"}``.
    """
    ok = np.isfinite(y)
    raw, y, cell, group = raw[ok], y[ok], np.asarray(cell)[ok], np.asarray(group)[ok]
    if len(y) == 0:
        return {"scale": 0.0, "eps": eps, "n": 0, "n_cells": 0, "level": 1 - alpha}
    return {"scale": weighted_conformal_quantile(_scores(raw, y, eps), cell, group, alpha),
            "eps": eps, "n": int(len(y)), "n_cells": int(len(np.unique(cell))),
            "level": 1 - alpha}


def _quadrature_scale(scores: np.ndarray, cell: np.ndarray, group: np.ndarray,
                      alpha: float) -> dict:
    ok = np.isfinite(scores)
    if not ok.any():
        return {"method": "quadrature", "scale": 0.0, "n": 0, "n_cells": 0, "level": 1 - alpha}
    return {"method": "quadrature",
            "scale": weighted_conformal_quantile(scores[ok], cell[ok], group[ok], alpha),
            "n": int(ok.sum()), "n_cells": int(len(np.unique(cell[ok]))), "level": 1 - alpha}


def calibrate(model: FadeNet | torch.nn.Module | Predict, cells: list[PreparedCell], scaler: FeatureScaler,
              max_history: int, alpha: float = 0.1,
              unweighted_sources: tuple[str, ...] = ()) -> dict:
    """``{"capacity": {...}, "time_share": {...}, "by_source": {...}, "calibration_sources"}``.

    Every calibration cell calibrates the capacity band (equal weight per source, per cell
    within a source); cells with a known time/cycle split calibrate the time-share band the
    same way. ``model`` is a FadeNet or a ``run(inputs) -> outputs`` callable (e.g. an ONNX
    session), so an exported model can be recalibrated.

    First the history weighting's τ (:func:`select_tempering`, stored under
    ``"history_weighting"``), then the conformal scales on the bands weighted with it.
    ``unweighted_sources``: sources whose served forecasts come from a cycle-life head (the
    knee ahead of the history, which the backcast cannot judge): never weighted, here or when
    served (``ml.inference.forecast`` weighs only without a head).

    History: calibrating on pybamm-dev validation cells only left synthetic-like cells at 75 %
    and pybamm-dev test at 96.9 % coverage of the 90 % band (see the project notes).
    """
    if isinstance(model, torch.nn.Module):  # a FadeNet or a FadeEnsemble
        net = model

        def predict(batch: dict) -> dict:
            return predict_batch(net, batch)
    else:
        predict = model
    cuts = _cut_outputs(predict, cells, scaler, max_history, tuple(unweighted_sources))
    if not cuts:
        return {}
    weighting = select_tempering(cuts)
    weighting["unweighted_sources"] = sorted(unweighted_sources)
    pts = _points(cuts, weighting["tempering"])
    cap_score, cap_cell, cap_src, sh_raw, sh_y, sh_cell, sh_src = pts
    out = {"capacity": _quadrature_scale(cap_score, cap_cell, cap_src, alpha),
           "time_share": {"method": "additive", **weighted_conformal_scale(
               sh_raw, sh_y, sh_cell, sh_src, SHARE_EPS, alpha)},
           "weighting": "equal per source, equal per cell within a source",
           "schedule": "planned: median duration of the last 10 observed cycles"}
    out["by_source"] = {
        str(src): {"capacity": _quadrature_scale(cap_score[cap_src == src],
                                                 cap_cell[cap_src == src],
                                                 cap_src[cap_src == src], alpha)["scale"]}
        for src in np.unique(cap_src)}
    out["calibration_sources"] = sorted({str(c.meta.get("source", "?")) for c in cells})
    out["history_weighting"] = weighting
    return out


def backcast_samples(predict: Predict, batch: dict, windows: list[dict], max_history: int
              ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each window's capacity samples at its backcast rows ([B, R, K], right-padded by
    repeating the last row) and the observed retention there (one array per window)."""
    rows = [backcast_indices(len(w["hist_cycle"]), max_history) for w in windows]
    r_max = max(len(r) for r in rows)
    qc = np.zeros((len(windows), r_max), dtype=np.float32)
    qh = np.zeros_like(qc)
    for b, (w, r) in enumerate(zip(windows, rows)):
        pad = np.concatenate([r, np.repeat(r[-1:], r_max - len(r))])
        qc[b], qh[b] = w["hist_cycle"][pad], w["hist_hour"][pad]
    out = predict({"history": batch["history"], "history_mask": batch["history_mask"],
                   "query_cycle": qc, "query_hour": qh})
    return (np.asarray(out["capacity_fraction"], dtype=np.float64),
            [w["hist_retention"][r] for w, r in zip(windows, rows)])


def _cut_outputs(predict: Predict, cells: list[PreparedCell], scaler: FeatureScaler,
                 max_history: int, unweighted_sources: tuple[str, ...] = ()) -> list[tuple]:
    """Per cut fraction of ``CUT_FRACTIONS`` (planned schedule): ``(windows, batch, outputs,
    backcast samples, backcast retention, weigh)``; ``weigh`` [B] is False for windows of
    ``unweighted_sources``."""
    cuts = []
    for frac in CUT_FRACTIONS:
        windows = cut_windows(cells, fraction=frac, scaler=scaler, max_history=max_history,
                              planned=True)
        if not windows:
            continue
        batch = stack_windows(windows)
        out = predict({k: batch[k] for k in ("history", "history_mask", "query_cycle",
                                             "query_hour")})
        out = {o: np.asarray(out[o], dtype=np.float64) for o in OUTPUTS}
        weigh = np.array([w["source"] not in unweighted_sources for w in windows])
        cuts.append((windows, batch, out, *backcast_samples(predict, batch, windows, max_history),
                     weigh))
    return cuts


def weighted_outputs(out: dict, back: np.ndarray, back_ret: list[np.ndarray],
                     tempering: float, weigh: np.ndarray | None = None
                     ) -> dict[str, np.ndarray]:
    """The batch outputs ``out`` ([B, H, K] each) plus ``"time_share"`` [B, K] (at query 0,
    never weighed), every window's capacity samples moved to the weighted median of its
    backcast likelihood (:func:`ml.history_likelihood.weigh_samples`), as served; windows
    where ``weigh`` [B] is False keep their samples."""
    lt, lc = out["loss_time_fraction"][:, 0], out["loss_cycle_fraction"][:, 0]
    out = {**out, "time_share": lt / np.maximum(lt + lc, 1e-9)}  # [B, K] at the last cycle
    if tempering <= 0:
        return out
    cap = np.array(out["capacity_fraction"], copy=True)
    for b in range(len(back_ret)):
        if weigh is not None and not weigh[b]:
            continue
        r = len(back_ret[b])
        cap[b] = weigh_samples({"cap": cap[b]}, back[b, :r], back_ret[b], tempering)[0]["cap"]
    return {**out, "capacity_fraction": cap}


def select_tempering(cuts: list[tuple], grid: tuple[float, ...] = TEMPERING_GRID) -> dict:
    """τ of the history weighting with the smallest mean |median − truth| of capacity on the
    calibration cuts' weighted windows (every source weighs the same, every cell the same inside
    its source); ties keep the smaller τ. Returns ``{"tempering", "grid", "capacity_error_pct", "rows"}``."""
    errors = []
    for tau in grid:
        err, cell, src = [], [], []
        for windows, batch, out, back, back_ret, weigh in cuts:
            if not weigh.any():
                continue
            cap = weighted_outputs(out, back, back_ret, tau)["capacity_fraction"][:, 1:]
            med = np.median(cap, axis=-1)
            y = batch["target_capacity"][:, 1:]
            for b, w in enumerate(windows):
                if not weigh[b]:
                    continue
                ok = np.isfinite(y[b])
                err.append(np.abs(med[b][ok] - y[b][ok]))
                cell.append(np.repeat(w["cell_id"], ok.sum()))
                src.append(np.repeat(w["source"], ok.sum()))
        if not err:
            errors.append(float("nan"))
            continue
        e, c, g = (np.concatenate(v) for v in (err, cell, src))
        errors.append(float(np.sum(source_cell_weights(c, g) * e) * 100.0) if e.size
                      else float("nan"))
    finite = [i for i, e in enumerate(errors) if np.isfinite(e)]
    best = min(finite, key=lambda i: (errors[i], grid[i])) if finite else 0
    return {"tempering": float(grid[best]), "grid": [float(t) for t in grid],
            "capacity_error_pct": errors,
            "rows": "later half of the history rows the model reads",
            "selected_on": "calibration cells (equal weight per source, per cell)"}


def _points(cuts: list[tuple], tempering: float) -> tuple[np.ndarray, ...] | None:
    """Capacity scores, time-share bands and truths, cell ids and sources of every scored point
    of the calibration ``cuts`` (samples weighted with ``tempering``, as served)."""
    cap, cap_cell, cap_src = [], [], []
    sh, ts, sh_cell, sh_src = [], [], [], []
    for windows, batch, out, back, back_ret, weigh in cuts:
        ids = np.array([w["cell_id"] for w in windows], dtype=object)
        srcs = np.array([w["source"] for w in windows], dtype=object)
        out = weighted_outputs(out, back, back_ret, tempering, weigh)
        q = out["capacity_fraction"][:, 1:]
        raw = band(q, None, lo=-np.inf)  # [B, H, 3]
        at_last = np.median(out["capacity_fraction"][:, 0], axis=-1)  # query 0
        y = batch["target_capacity"][:, 1:]
        for b, w in enumerate(windows):
            # the band as it is served (ml.inference.forecast): the scale is calibrated on it
            rb, floor, _, _ = history_checked_band(
                raw[b], float(at_last[b]), w["hist_cycle"], w["hist_hour"], w["hist_retention"],
                batch["query_cycle"][b, 1:], batch["query_hour"][b, 1:])
            score = conformal_score(rb, floor, y[b])
            score[~np.isfinite(y[b])] = np.nan
            cap.append(score)
            cap_cell.append(np.repeat(ids[b], len(score)))
            cap_src.append(np.repeat(srcs[b], len(score)))
        sh.append(band(out["time_share"], None, lo=0.0, hi=1.0))
        tt, tc = batch["target_time"][:, 0], batch["target_cycle"][:, 0]
        tot = tt + tc
        ts.append(np.where(tot > 0.01, tt / np.maximum(tot, 1e-9), np.nan))
        sh_cell.append(ids)
        sh_src.append(srcs)
    if not cap:
        return None
    return tuple(np.concatenate(v) for v in (cap, cap_cell, cap_src, sh, ts, sh_cell, sh_src))
