"""The seed study's figures (matplotlib, Agg backend; small PNGs committed beside the report)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ml.training.plots import save_png  # noqa: E402



def cells_figure(tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """Specific capacity (mAh/g) and baseline / top-of-charge A_w of every cell vs cycle."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for cid, t in tables.items():
        ax1.plot(t["cycle_index"], t["discharge_capacity_ah"] / 1e-6, label=cid, lw=1)
        ax2.plot(t["cycle_index"], t["aw_ohm_per_sqrt_s"], lw=1, label=f"{cid} baseline")
        ax2.plot(t["cycle_index"], t["aw_top_of_charge_ohm_per_sqrt_s"], lw=1, ls="--",
                 label=f"{cid} >2.9 V on charge")
    ax1.set(xlabel="cycle", ylabel="discharge capacity (mAh/g)", xscale="log")
    ax2.set(xlabel="cycle", ylabel="A_w (Ω s$^{-1/2}$)", xscale="log", yscale="log")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=6)
    return save_png(fig, path)


def attribution_figure(att: pd.DataFrame, path: Path) -> Path:
    """Time share p05–p95 band and p50 vs cut cycle, with the simulator's truth."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.fill_between(att["cycle"], att["p05"], att["p95"], alpha=0.3, label="model p05–p95")
    ax.plot(att["cycle"], att["p50"], "o-", label="model p50")
    ax.plot(att["cycle"], att["truth"], "k--", label="simulator truth")
    ax.set(xlabel="last observed cycle (C/10 cell)", ylabel="time share of the loss",
           ylim=(0, 1))
    ax.legend(fontsize=8)
    return save_png(fig, path)


def what_if_figure(history: pd.DataFrame, preds: dict[str, pd.DataFrame],
                   truths: dict[str, pd.DataFrame], cut: int, path: Path) -> Path:
    """Retention: the observed C/10 history, forecasts at two paces, and their truths."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    h = history[history["cycle"] <= cut]
    ax.plot(h["cycle"], h["retention"], "k.", ms=3, label=f"C/10 history (to cycle {cut})")
    colors = {"c10": "C0", "c03": "C3"}
    for name, pred in preds.items():
        c = colors.get(name, "C2")
        ax.fill_between(pred["cycle"], pred["p05"], pred["p95"], color=c, alpha=0.2)
        ax.plot(pred["cycle"], pred["p50"], color=c, label=f"forecast, future at {name} pace")
    for label, t in truths.items():
        ax.plot(t["cycle"], t["retention"], ls="--", lw=1.2, label=label)
    ax.set(xlabel="cycle", ylabel="retention (of max of first 3 cycles)")
    ax.legend(fontsize=7)
    return save_png(fig, path)


def advice_figure(replay: pd.DataFrame, true_eol: float, table: pd.DataFrame,
                  path: Path) -> Path:
    """EOL band at each advice call, decisions, the true EOL cycle and the retention."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.5, 5.2), sharex=True)
    ax1.plot(table["cycle_index"], table["retention"], "k-", lw=1)
    ax1.axhline(0.8, color="grey", ls=":")
    ax1.set(ylabel="retention")
    # after the observed end of life the API's band is just "the next cycle" (not a forecast)
    replay = replay[replay["cycle"] < true_eol]
    ax2.fill_between(replay["cycle"], replay["eol_p05"], replay["eol_p95"], alpha=0.3,
                     label="EOL p05–p95")
    ax2.plot(replay["cycle"], replay["eol_p50"], "o-", ms=3, label="EOL p50")
    stop = replay[replay["decision"] == "stop"]
    ax2.plot(stop["cycle"], stop["eol_p50"], "rs", ms=6, label="advice: stop")
    ax2.axhline(true_eol, color="k", ls="--", label=f"true EOL (cycle {true_eol:.0f})")
    ax2.set(xlabel="cycle of the advice call (calls before the true EOL)",
            ylabel="predicted EOL cycle (80 %)")
    ax2.legend(fontsize=7)
    return save_png(fig, path)
