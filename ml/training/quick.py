"""A small REAL model in seconds, for tests of other packages (serving, evaluation, advice).

>>> folder = train_quick_model(tmp_path / "model")   # doctest: +SKIP
>>> sorted(p.name for p in folder.iterdir())          # doctest: +SKIP
['model.onnx', 'model_card.json']
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ml.export.card import build_card
from ml.export.onnx import export_model_dir
from ml.inference import CARD_FILE, MODEL_FILE, ModelCard
from ml.models.fade_net import FadeNet
from ml.sources import split_by_cell
from ml.synthetic import make_fleet
from ml.training.calibration import calibrate
from ml.training.dataset import dataset_hash, fit_scaler, prepare_cells
from ml.training.loop import TrainSettings, fit
from ml.windows import FEATURE_NAMES, WindowSpec

__all__ = ["train_quick_model"]


def train_quick_model(out_dir: str | os.PathLike[str], *, n_cells: int = 24, epochs: int = 8,
                      seed: int = 0, time_term: str = "power", cycle_term: str = "power",
                      reuse: bool = False) -> Path:
    """Train a small FadeNet on a synthetic fleet and export it to ``out_dir``.

    Takes ~5–15 s on one idle core. The folder holds ``model.onnx`` and ``model_card.json``
    (conformal constants from the fleet's validation cells); load it with
    ``ml.inference.load_model_dir`` or ``ml.model_store.resolve_model(out_dir)``.
    With ``reuse=True`` a model already in ``out_dir`` trained with the same arguments is
    returned as is (tests share one model per session this way).
    """
    recipe = {"n_cells": n_cells, "epochs": epochs, "seed": seed, "time_term": time_term,
              "cycle_term": cycle_term}
    out = Path(out_dir)
    if reuse and (out / MODEL_FILE).is_file() and (out / CARD_FILE).is_file():
        if ModelCard.load(out / CARD_FILE).model.get("quick_recipe") == recipe:
            return out
    torch.set_num_threads(1)
    records = make_fleet(n_cells, seed=seed)
    parts = split_by_cell(records, seed=seed, val_fraction=0.25, test_fraction=0.0)
    cells = {c.cell_id: c for c in prepare_cells(records)}
    train = [cells[i] for i in parts["train"]]
    val = [cells[i] for i in parts["val"]] or train[-2:]
    spec = WindowSpec(max_history=32)
    scaler = fit_scaler(train)
    model = FadeNet(FEATURE_NAMES, time_term=time_term, cycle_term=cycle_term, d_model=32,
                    n_heads=2, n_samples=32, seed=seed)
    settings = TrainSettings(epochs=epochs, windows_per_cell=4, max_history=spec.max_history,
                             seed=seed)
    history = fit(model, train, val, scaler, settings, progress=False)
    conformal = calibrate(model, val, scaler, spec.max_history)
    metrics = {k: round(v, 6) for k, v in history[-1].items()}
    card = build_card(model, scaler, spec, train_cells=train, conformal=conformal,
                      dataset_hash=dataset_hash(records), metrics=metrics,
                      name="fadecast-forecaster", version=f"quick-{seed}")
    card.model["quick_recipe"] = recipe
    return export_model_dir(model, card, out_dir)
