"""Diagnostic figures of a trained model on validation cells (matplotlib, Agg backend).

* forecast vs actual with the calibrated 90 % band (first 40 % seen);
* the time/cycle decomposition of the forecast loss, against the truth where known;
* a reliability plot: nominal vs observed coverage of central intervals.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from ml.inference import ModelCard, forecast
from ml.sources import CellRecord

__all__ = ["forecast_figures", "reliability_figure", "save_png"]


def save_png(fig, path: Path, *, dpi: int = 80) -> Path:
    """Write ``fig`` as a small PNG at ``path`` atomically (temp file, then rename); close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path


def _cut(rec: CellRecord, fraction: float) -> int:
    n = len(rec.cycles)
    return min(max(5, math.ceil(fraction * n)), n - 1)


def forecast_figures(cells: list[CellRecord], card: ModelCard, run: Callable[[dict], dict], *,
                     fraction: float = 0.4, max_cells: int = 6) -> dict:
    """``{"forecast_vs_actual": fig, "decomposition": fig}`` for up to ``max_cells`` cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = cells[:max_cells]
    cols = 3
    rows = max(1, math.ceil(len(chosen) / cols))
    fig_f, axes_f = plt.subplots(rows, cols, figsize=(12, 3.2 * rows), squeeze=False)
    fig_d, axes_d = plt.subplots(rows, cols, figsize=(12, 3.2 * rows), squeeze=False)
    for ax_f, ax_d, rec in zip(axes_f.flat, axes_d.flat, chosen):
        seen = _cut(rec, fraction)
        hist, fut = rec.cycles.iloc[:seen], rec.cycles.iloc[seen:]
        pace = float((fut["test_time_second"].iloc[-1] - hist["test_time_second"].iloc[-1])
                     / 3600.0 / max(len(fut), 1))
        out = forecast(hist, card=card, run=run, horizon_cycles=len(fut), hours_per_cycle=pace)
        ref = float(hist["discharge_capacity_ah"].iloc[:3].max())
        n = np.array([r["cycle_index"] for r in out["forecast"]])
        q = {k: np.array([r["capacity_ah"][k] for r in out["forecast"]]) / ref
             for k in ("p05", "p50", "p95")}
        ax_f.plot(rec.cycles["cycle_index"], rec.cycles["discharge_capacity_ah"] / ref, "k.",
                  ms=2, label="actual")
        ax_f.fill_between(n, q["p05"], q["p95"], alpha=0.3, label="90 % band")
        ax_f.plot(n, q["p50"], "C0-", label="p50")
        ax_f.axvline(hist["cycle_index"].iloc[-1], color="grey", lw=0.8)
        ax_f.set_title(rec.cell_id, fontsize=9)
        ax_f.set_xlabel("cycle")
        ax_f.set_ylabel("retention")
        lt = np.array([r["loss_time_fraction"] for r in out["forecast"]])
        lc = np.array([r["loss_cycle_fraction"] for r in out["forecast"]])
        ax_d.plot(n, lt, "C1-", label="time (model)")
        ax_d.plot(n, lc, "C2-", label="cycle (model)")
        if rec.truth is not None and "loss_time_frac" in rec.truth:
            ax_d.plot(rec.truth["cycle_index"], rec.truth["loss_time_frac"], "C1:", label="time (truth)")
            ax_d.plot(rec.truth["cycle_index"], rec.truth["loss_cycle_frac"], "C2:",
                      label="cycle (truth)")
        share = out["attribution"]["time_share"]
        ax_d.set_title(f"{rec.cell_id} share {share['p50']:.2f} "
                       f"[{share['p05']:.2f}, {share['p95']:.2f}]", fontsize=9)
        ax_d.set_xlabel("cycle")
        ax_d.set_ylabel("loss fraction")
    for axes in (axes_f, axes_d):
        axes.flat[0].legend(fontsize=7)
    fig_f.tight_layout()
    fig_d.tight_layout()
    return {"forecast_vs_actual": fig_f, "decomposition": fig_d}


def reliability_figure(samples: np.ndarray, observed: np.ndarray, calibrated_coverage: float,
                       weights: np.ndarray | None = None):
    """Nominal vs observed coverage of central intervals of the raw samples [N, K] at
    observations [N] (weighted by ``weights`` [N] when given), plus the calibrated 90 % band's
    observed coverage (a star)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = np.isfinite(observed)
    samples, observed = samples[ok], observed[ok]
    w = np.ones(len(observed)) if weights is None else np.asarray(weights, dtype=float)[ok]
    levels = np.array([0.2, 0.4, 0.6, 0.8, 0.9])
    cover = []
    for lev in levels:
        lo, hi = np.quantile(samples, [(1 - lev) / 2, (1 + lev) / 2], axis=-1)
        cover.append(float(np.average((observed >= lo) & (observed <= hi), weights=w))
                     if len(observed) else np.nan)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.plot(levels, cover, "o-", label="raw samples")
    ax.plot([0.9], [calibrated_coverage], "r*", ms=12, label="calibrated 90 %")
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
