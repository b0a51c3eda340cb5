"""Quality figures of a model on held-out cells, through the SAME path serving uses
(``ml.inference.forecast`` with the card), scored by ``ml.evaluation.trajectory``.

Figures (evaluation protocol): first 40 % of each cell seen, the PLANNED future schedule given;
|time-share error| median and p90, capacity error (% of reference), 90 % coverage and width —
for the model and for the naive per-cell fit ``q = c0 - a*sqrt(t) - b*N``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ml.inference import INPUTS, ModelCard
from ml.models.fade_net import FadeNet
from ml.sources import CellRecord

__all__ = ["torch_runner", "quality_figures", "champion_score"]


def torch_runner(model: FadeNet) -> Callable[[dict], dict]:
    """``run(inputs) -> outputs`` backed by torch (for scoring before export)."""
    def run(inputs: dict) -> dict:
        model.eval()
        with torch.no_grad():
            cap, lt, lc = model(*(torch.from_numpy(np.asarray(inputs[k], dtype=np.float32))
                                  for k in INPUTS))
        return {"capacity_fraction": cap.numpy(), "loss_time_fraction": lt.numpy(),
                "loss_cycle_fraction": lc.numpy()}

    return run


def quality_figures(cells: list[CellRecord], card: ModelCard, run: Callable[[dict], dict], *,
                    baselines: tuple[str, ...] = ("naive_sqrt",),
                    observed_fraction: float = 0.4) -> dict[str, dict[str, float]]:
    """``{method: {figure: value}}`` on ``cells`` (see ``ml.evaluation.trajectory``)."""
    from ml.evaluation.forecasters import BaselineForecaster, ModelForecaster
    from ml.evaluation.trajectory import evaluate_trajectories

    methods: dict[str, Callable] = {"model": ModelForecaster(card, run)}
    methods.update({b: BaselineForecaster(b) for b in baselines})
    result = evaluate_trajectories(cells, methods, observed_fraction=observed_fraction)
    return result["figures"]


def champion_score(figures: dict[str, float]) -> float:
    """One number to compare models on the same validation cells (lower is better):
    capacity error (% of reference) + 10 x median |time-share error| (NaN-safe)."""
    cap = figures.get("capacity_error_pct_of_reference", float("nan"))
    ts = figures.get("time_share_abs_error_median", float("nan"))
    return float(cap) + (10.0 * float(ts) if np.isfinite(ts) else 0.0)
