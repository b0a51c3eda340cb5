"""One study end to end: cells -> split by cell -> train -> calibrate -> score -> export -> track.

Steps are short functions; MLflow calls go through ``ml.training.tracking`` only.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from data_registry.errors import FadecastError
from data_registry.home import fadecast_home
from ml.export.card import build_card
from ml.export.onnx import example_inputs, export_model_dir
from ml.inference import band, load_model_dir
from ml.models.ensemble import FadeEnsemble
from ml.models.fade_net import FadeNet
from ml.sources import CellRecord, available_sources, load_source, split_by_cell
from ml.synthetic import make_fleet
from ml.training import tracking
from ml.training.calibration import calibrate
from ml.training.config import DataConfig, StudyConfig, flatten
from ml.training.dataset import (PreparedCell, cells_frame, cut_windows, dataset_hash,
                                 fit_scaler, prepare_cells, stack_windows)
from ml.training.loop import fit, predict_batch
from ml.training.quality import champion_score, quality_figures, torch_runner
from ml.windows import FEATURE_NAMES, WindowSpec

__all__ = ["Splits", "StudyResult", "load_splits", "run_study"]


@dataclass
class Splits:
    """Cells per split (train holds repeats for ``source_weight``) and notes for stderr."""

    train: list[CellRecord] = field(default_factory=list)
    val: list[CellRecord] = field(default_factory=list)
    test: list[CellRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def unique(self) -> list[CellRecord]:
        """Every distinct cell once."""
        seen: dict[str, CellRecord] = {}
        for rec in self.train + self.val + self.test:
            seen.setdefault(rec.cell_id, rec)
        return list(seen.values())


@dataclass
class StudyResult:
    """What a study produced."""

    run_id: str
    model_dir: Path
    version: str | None
    promoted: bool
    metrics: dict[str, float]
    model_uri: str = ""


def load_splits(data: DataConfig) -> Splits:
    """Synthetic fleet plus every configured source that is present, each split by cell with
    ``ml.sources.split_by_cell`` (the split evaluation uses)."""
    out = Splits()
    groups: dict[str, list[CellRecord]] = {}
    if data.synthetic_cells > 0:
        groups["synthetic"] = make_fleet(data.synthetic_cells, seed=data.synthetic_seed)
    present = set(available_sources())
    for name in data.sources:
        if name not in present:
            out.notes.append(f"note: source '{name}' is absent; training without it")
            continue
        groups[name] = load_source(name)
    for name, records in groups.items():
        parts = split_by_cell(records, seed=data.split_seed, val_fraction=data.val_fraction,
                              test_fraction=data.test_fraction)
        by_id = {r.cell_id: r for r in records}
        has_truth = any(r.truth is not None for r in records)
        weight = max(1, data.source_weight) if has_truth and name != "synthetic" else 1
        out.train += [by_id[i] for i in parts["train"]] * weight
        out.val += [by_id[i] for i in parts["val"]]
        out.test += [by_id[i] for i in parts["test"]]
        out.notes.append(f"note: {name}: {len(parts['train'])} train, {len(parts['val'])} val, "
                         f"{len(parts['test'])} test cells")
    if not out.train:
        raise FadecastError("no training cells", code="no_training_data",
                            expected="synthetic_cells > 0 or a present source", found="none")
    return out


def _by_source(records: list[CellRecord]) -> dict[str, list[CellRecord]]:
    out: dict[str, list[CellRecord]] = {}
    for rec in records:
        out.setdefault(str(rec.meta.get("source", "unknown")), []).append(rec)
    return out


def _prefixed(figures: dict[str, dict[str, float]], prefix: str) -> dict[str, float]:
    return {f"{prefix}_{method}_{k}": float(v) for method, fig in figures.items()
            for k, v in fig.items() if isinstance(v, (int, float))}


def _reliability(model: FadeNet, val: list[PreparedCell], scaler, max_history: int, card):
    from ml.training.plots import reliability_figure

    batch = stack_windows(cut_windows(val, fraction=0.4, scaler=scaler, max_history=max_history))
    out = predict_batch(model, batch)
    samples = out["capacity_fraction"][:, 1:].reshape(-1, model.n_samples)
    y = batch["target_capacity"][:, 1:].reshape(-1)
    q = band(samples, card.conformal.get("capacity"), lo=-np.inf)
    ok = np.isfinite(y)
    cov = float(np.mean((y[ok] >= q[ok, 0]) & (y[ok] <= q[ok, 2]))) if ok.any() else np.nan
    return reliability_figure(samples, y, cov)


def run_study(cfg: StudyConfig, *, tracking_uri: str | None = None,
              progress: bool = True) -> StudyResult:
    """Train, calibrate, score, export and (optionally) register the study's model.

    Figures (first 40 % seen) are logged as ``val_model_*`` / ``val_naive_sqrt_*`` over all
    validation cells with truth, and per source as ``val_<source>_model_*`` and
    ``test_<source>_model_*`` (test cells are reported, never used to select).
    """
    torch.set_num_threads(1)
    uri = tracking.resolve_tracking_uri(tracking_uri)
    splits = load_splits(cfg.data)
    for note in splits.notes:
        print(note, file=sys.stderr)
    digest = dataset_hash(splits.unique())
    train, val = prepare_cells(splits.train), prepare_cells(splits.val)
    spec = WindowSpec(max_history=cfg.model.max_history)
    scaler = fit_scaler(train)
    settings = replace(cfg.train, max_history=spec.max_history)
    with tracking.training_run(cfg.name, flatten(cfg), tracking_uri=uri) as run_id:
        tracking.log_datasets({"training": cells_frame(splits.train),
                               "validation": cells_frame(splits.val) if splits.val else None,
                               "test": cells_frame(splits.test) if splits.test else None}, digest)
        model, history = _train_members(cfg, train, val, scaler, settings, progress)
        conformal = calibrate(model, val or train, scaler, spec.max_history)
        card = build_card(model, scaler, spec, train_cells=train, conformal=conformal,
                          dataset_hash=digest, version=cfg.model_version_label)
        run = torch_runner(model)
        val_eval = [r for r in splits.val if r.truth is not None] or splits.val
        metrics = {f"final_{k}": v for k, v in history[-1].items()}
        val_fig = quality_figures(val_eval, card, run) if val_eval else {}
        metrics.update(_prefixed(val_fig, "val"))
        for split, records in (("val", splits.val), ("test", splits.test)):
            for source, group in _by_source(records).items():
                metrics.update(_prefixed(quality_figures(group, card, run), f"{split}_{source}"))
        score = champion_score(val_fig.get("model", {})) if val_fig else float("nan")
        metrics["val_champion_score"] = score
        tracking.log_metrics(metrics)
        card.metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
        card.version = f"{cfg.model_version_label}+{run_id[:8]}"
        model_dir = export_model_dir(model, card, fadecast_home() / "models" / "runs" / run_id)
        for name, fig in forecast_plots(val_eval, card, run).items():
            tracking.log_figure(fig, name)
        if val:
            tracking.log_figure(_reliability(model, val, scaler, spec.max_history, card),
                                "reliability")
        model_uri = tracking.log_onnx_model(model_dir, example_inputs(len(FEATURE_NAMES)),
                                            model.n_samples)
        version, promoted = None, False
        if cfg.register:
            version, promoted = tracking.register_and_promote(
                model_uri, score, tracking_uri=uri,
                champion_score=lambda: _score_champion(val_eval, uri))
    return StudyResult(run_id, model_dir, version, promoted, metrics, model_uri)


def _train_members(cfg: StudyConfig, train: list[PreparedCell], val: list[PreparedCell], scaler,
                   settings, progress: bool):
    """Train ``cfg.model.ensemble`` FadeNets (seeds seed, seed+1, …); member 0 logs plain
    per-epoch metric names, others ``member<i>_<name>``."""
    members, first_history = [], []
    for i in range(max(1, cfg.model.ensemble)):
        kwargs = {**cfg.model.fade_net_kwargs(), "seed": cfg.model.seed + i}
        net = FadeNet(FEATURE_NAMES, **kwargs)
        prefix = "" if i == 0 else f"member{i}_"
        history = fit(net, train, val, scaler, replace(settings, seed=settings.seed + i),
                      progress=progress,
                      on_epoch=lambda e, m, p=prefix: tracking.log_metrics(
                          {p + k: v for k, v in m.items()}, step=e))
        members.append(net)
        first_history = first_history or history
    return (members[0] if len(members) == 1 else FadeEnsemble(members)), first_history


def forecast_plots(cells: list[CellRecord], card, run) -> dict:
    """Forecast-vs-actual and decomposition figures (closed after the caller logs them)."""
    from ml.training.plots import forecast_figures

    ordered = sorted(cells, key=lambda r: r.meta.get("source") == "synthetic")  # real first
    return forecast_figures(ordered, card, run) if cells else {}


def _score_champion(cells: list[CellRecord], uri: str) -> float | None:
    """The current champion's score on the same validation cells (ONNX path)."""
    from ml.model_store import resolve_model

    if not cells:
        return None
    card, run = load_model_dir(resolve_model(None, tracking_uri=uri))
    return champion_score(quality_figures(cells, card, run).get("model", {}))
