"""The training loop, split into short steps: epoch windows -> batches -> step -> validate.

Deterministic for a seed (torch, numpy and the window cuts). Progress goes to stderr (tqdm);
per-epoch metrics go to an optional ``on_epoch(epoch, metrics)`` callback (MLflow logging lives in
``ml.training.tracking``, not here).
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ml.models.fade_net import FadeNet
from ml.scaling import FeatureScaler
from ml.training.dataset import PreparedCell, cut_windows, sample_windows, stack_windows
from ml.training.losses import forecast_loss

__all__ = ["TrainSettings", "fit", "predict_batch", "to_tensors"]


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (all plain values so they flatten into MLflow params)."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    windows_per_cell: int = 4
    n_queries: int = 16
    max_history: int = 64
    cut_low: float = 0.2
    cut_high: float = 0.8
    truth_weight: float = 1.0
    drop_optional_prob: float = 0.25
    seed: int = 0


def to_tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """numpy batch -> float32 tensors."""
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in batch.items()}


def _forward(model: FadeNet, t: dict[str, torch.Tensor]):
    return model(t["history"], t["history_mask"], t["query_cycle"], t["query_hour"])


def predict_batch(model: FadeNet, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the model without gradients; returns the three [B, H, K] outputs as numpy."""
    model.eval()
    with torch.no_grad():
        cap, lt, lc = _forward(model, to_tensors(batch))
    return {"capacity_fraction": cap.numpy(), "loss_time_fraction": lt.numpy(),
            "loss_cycle_fraction": lc.numpy()}


def _validate(model: FadeNet, batch: dict[str, np.ndarray], truth_weight: float) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        t = to_tensors(batch)
        parts = forecast_loss(_forward(model, t), t, truth_weight)
    return {f"val_{k}": float(v) for k, v in parts.items()}


def fit(model: FadeNet, train: list[PreparedCell], val: list[PreparedCell],
        scaler: FeatureScaler, settings: TrainSettings, *,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        progress: bool = True) -> list[dict[str, float]]:
    """Train ``model`` in place; keeps the weights of the best validation epoch.

    Returns one metrics dict per epoch (``loss``, ``crps_capacity`` …, ``val_*``).
    """
    from tqdm import tqdm

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model.set_scaler(scaler)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                            weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(settings.epochs, 1))
    val_batch = stack_windows(cut_windows(val, fraction=0.4, scaler=scaler,
                                          max_history=settings.max_history,
                                          n_queries=settings.n_queries,
                                          planned=True)) if val else None
    best, best_state, history = np.inf, None, []
    bar = tqdm(range(settings.epochs), desc="train", file=sys.stderr, disable=not progress)
    for epoch in bar:
        windows = sample_windows(train, rng, per_cell=settings.windows_per_cell, scaler=scaler,
                                 max_history=settings.max_history, n_queries=settings.n_queries,
                                 cut_range=(settings.cut_low, settings.cut_high),
                                 drop_optional_prob=settings.drop_optional_prob)
        order = rng.permutation(len(windows))
        model.train()
        sums: dict[str, float] = {}
        n_batches = 0
        for start in range(0, len(order), settings.batch_size):
            batch = to_tensors(stack_windows([windows[i] for i in order[start:start +
                                                                        settings.batch_size]]))
            parts = forecast_loss(_forward(model, batch), batch, settings.truth_weight)
            opt.zero_grad()
            parts["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
        sched.step()
        metrics = {k: v / max(n_batches, 1) for k, v in sums.items()}
        if val_batch is not None:
            metrics.update(_validate(model, val_batch, settings.truth_weight))
        score = metrics.get("val_loss", metrics["loss"])
        if score < best:
            best, best_state = score, copy.deepcopy(model.state_dict())
        history.append(metrics)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", val=f"{score:.4f}")
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.is_fitted_ = True
    model.eval()
    return history
