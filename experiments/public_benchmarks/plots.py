"""Figures of the public benchmarks (matplotlib, Agg; small PNGs beside the report)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ml.training.plots import save_png  # noqa: E402



def geslin_figure(rows: list[dict], path: Path) -> Path:
    """Model time share vs average C-rate, storage protocols marked."""
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for storage, marker in ((False, "o"), (True, "s")):
        part = df[df["storage"] == storage]
        ax.scatter(part["average_c_rate"], part["model_time_share"], marker=marker, s=18,
                   label="with storage" if storage else "no storage")
    ax.set(xlabel="average C-rate (1/h)", ylabel="model time share (p50)", xscale="log",
           ylim=(0, 1))
    ax.legend(fontsize=8)
    return save_png(fig, path)


def nasa_figure(rows: list[dict], path: Path) -> Path:
    """Measured recovery after each rest vs what the model and persistence predicted."""
    df = pd.DataFrame(rows)
    df = df[df["plausible"]] if "plausible" in df else df
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.scatter(df["rest_hour"], df["recovery_pct"], s=14, label="measured change after the rest")
    ax.scatter(df["rest_hour"], df["model_error_pct"] + df["recovery_pct"], s=14, marker="x",
               label="model forecast − last capacity")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set(xlabel="rest before the cycle (h)", ylabel="capacity change (% of reference)",
           xscale="log")
    ax.legend(fontsize=7)
    return save_png(fig, path)


def zhang_figure(series: list[dict], path: Path) -> Path:
    """A_w against discharge capacity, one colour per cell (EIS line i ↔ cycle i)."""
    df = pd.DataFrame(series)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for cell, part in df.groupby("cell_id"):
        ax.scatter(part["capacity_mah"], part["aw"], s=6, label=cell)
    ax.set(xlabel="discharge capacity (mAh)", ylabel="A_w (Ω s$^{-1/2}$)")
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    return save_png(fig, path)
