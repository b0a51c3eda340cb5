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
from ml.export.card import build_card, training_domain
from ml.export.onnx import example_inputs, export_model_dir
from ml.inference import band, load_model_dir
from ml.models.ensemble import FadeEnsemble
from ml.models.fade_net import FadeNet
from ml.sources import CellRecord, available_sources, load_source, split_by_cell
from ml.synthetic import make_fleet
from ml.training import tracking
from ml.training.calibration import calibrate
from ml.training.eol_calibration import calibrate_end_of_life
from ml.training.config import DataConfig, StudyConfig, flatten
from ml.training.dataset import (PreparedCell, cells_frame, cut_windows, dataset_hash,
                                 fit_scaler, prepare_cells, stack_windows)
from ml.training.loop import fit, predict_batch
from ml.training.quality import champion_score, quality_figures, torch_runner
from ml.windows import FEATURE_NAMES, WindowSpec

__all__ = ["Splits", "StudyResult", "load_splits", "run_study", "fit_cycle_life",
           "check_shippable", "ship_model", "compare_cards", "REPO_ROOT"]

#: the repository root (``ship_to`` paths are relative to it)
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Splits:
    """Cells per split (train holds repeats for ``source_weight``) and notes for stderr."""

    train: list[CellRecord] = field(default_factory=list)
    val: list[CellRecord] = field(default_factory=list)
    test: list[CellRecord] = field(default_factory=list)
    calib: list[CellRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def unique(self) -> list[CellRecord]:
        """Every distinct cell once."""
        seen: dict[str, CellRecord] = {}
        for rec in self.train + self.val + self.calib + self.test:
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


def _calibration_ids(held: list[str], share: float) -> set[str]:
    """Every cell of ``held`` whose running share crosses a whole step goes to calibration
    (share 0.5: the 2nd, 4th, … cell of the split's order); the rest stay validation."""
    return {c for i, c in enumerate(held) if int((i + 1) * share) > int(i * share)}


def calibration_fleet_seed(data: DataConfig) -> tuple[int, int]:
    """The seed of the calibration-only synthetic fleet, ``(synthetic_seed, 1)``: numpy reads it
    as ``synthetic_seed + 2**32``, beyond every ``synthetic_seed`` a config accepts (below
    ``2**32``), so no training fleet redraws its cells."""
    return (int(data.synthetic_seed), 1)


def load_splits(data: DataConfig) -> Splits:
    """Synthetic fleet plus every configured source that is present, each split by cell with
    ``ml.sources.split_by_cell`` (the split evaluation uses); each source's held-out cells are
    divided into VALIDATION (epoch and champion choice) and CALIBRATION (conformal bands);
    ``calibration_synthetic_cells`` more synthetic cells, drawn from an independent stream,
    join the calibration cells only."""
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
        cal = _calibration_ids(list(parts["val"]), data.calibration_share) \
            if len(parts["val"]) > 1 else set()
        out.train += [by_id[i] for i in parts["train"]] * weight
        out.val += [by_id[i] for i in parts["val"] if i not in cal]
        out.calib += [by_id[i] for i in parts["val"] if i in cal]
        out.test += [by_id[i] for i in parts["test"]]
        n_val = len(parts["val"]) - len(cal)
        out.counts[name] = {"train": len(parts["train"]), "val": n_val, "calib": len(cal),
                            "test": len(parts["test"])}
        out.notes.append(f"note: {name}: {len(parts['train'])} train, {n_val} val, "
                         f"{len(cal)} calibration, {len(parts['test'])} test cells")
    if data.synthetic_cells == 0 and data.calibration_synthetic_cells > 0:
        out.notes.append("note: calibration_synthetic_cells ignored: the synthetic source is "
                         "not in this model (synthetic_cells = 0)")
    if data.synthetic_cells > 0 and data.calibration_synthetic_cells > 0:
        extra = make_fleet(data.calibration_synthetic_cells, seed=calibration_fleet_seed(data),
                           prefix="syncal")
        out.calib += extra
        out.counts["synthetic"]["calib_only"] = len(extra)
        out.notes.append(f"note: synthetic: {len(extra)} more calibration-only cells "
                         f"(calibration_synthetic_cells)")
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
    from ml.evaluation.calibration import source_cell_weights
    from ml.training.plots import reliability_figure

    from ml.uncertainty import compose_band, history_checked_band, physical_band

    from ml.training.calibration import backcast_samples, weighted_outputs

    windows = cut_windows(val, fraction=0.4, scaler=scaler, max_history=max_history,
                          planned=True)
    batch = stack_windows(windows)

    def predict(inputs: dict) -> dict:
        return predict_batch(model, inputs)

    skip = set((card.history_weighting or {}).get("unweighted_sources", ()))
    out = weighted_outputs(predict_batch(model, batch),
                           *backcast_samples(predict, batch, windows, max_history),
                           card.tempering(), np.array([w["source"] not in skip for w in windows]))
    raw = band(out["capacity_fraction"][:, 1:], None, lo=-np.inf)  # [B, H, 3]
    at_last = np.median(out["capacity_fraction"][:, 0], axis=-1)  # query 0 = last seen cycle
    scale = float((card.conformal.get("capacity") or {}).get("scale", 0.0))
    bands = []
    for b, w in enumerate(windows):  # the served band (ml.inference.forecast), window by window
        rb, floor, _, _ = history_checked_band(
            raw[b], float(at_last[b]), w["hist_cycle"], w["hist_hour"], w["hist_retention"],
            batch["query_cycle"][b, 1:], batch["query_hour"][b, 1:])
        bands.append(physical_band(compose_band(rb, floor, scale), w["hist_retention"], floor))
    q = np.stack(bands).reshape(-1, 3)
    samples = out["capacity_fraction"][:, 1:].reshape(-1, model.n_samples)
    y = batch["target_capacity"][:, 1:].reshape(-1)
    # every source and every cell in it weighs the same, as in the calibration: the
    # calibration-only synthetic cells would otherwise make the figure a synthetic one
    horizon = batch["target_capacity"].shape[1] - 1
    weight = source_cell_weights(np.repeat([w["cell_id"] for w in windows], horizon),
                                 np.repeat([w["source"] for w in windows], horizon))
    ok = np.isfinite(y)
    hit = (y >= q[:, 0]) & (y <= q[:, 2])
    cov = float(np.average(hit[ok], weights=weight[ok])) if ok.any() else np.nan
    return reliability_figure(samples, y, cov, weights=weight)


def run_study(cfg: StudyConfig, *, tracking_uri: str | None = None,
              progress: bool = True) -> StudyResult:
    """Train, calibrate, score, export and (optionally) register the study's model.

    Figures (first 40 % seen) are logged as ``val_model_*`` / ``val_naive_sqrt_*`` over all
    validation cells with truth, and per source as ``val_<source>_model_*`` and
    ``test_<source>_model_*`` (test cells are reported, never used to select).
    """
    torch.set_num_threads(1)
    uri = tracking.resolve_tracking_uri(tracking_uri)
    if cfg.ship_to:
        check_shippable(("synthetic",) + tuple(cfg.data.sources)
                        + tuple(cfg.data.cycle_life_sources))
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
                               "calibration": cells_frame(splits.calib) if splits.calib
                               else None,
                               "test": cells_frame(splits.test) if splits.test else None}, digest)
        model, history = _train_members(cfg, train, val, scaler, settings, progress)
        calib = prepare_cells(splits.calib) if splits.calib else []
        if not calib:
            print("note: no calibration cells (too few held-out cells); calibrating on the "
                  "validation cells", file=sys.stderr)
        conformal = calibrate(model, calib or val or train, scaler, spec.max_history,
                              unweighted_sources=tuple(cfg.data.cycle_life_sources))
        card = build_card(model, scaler, spec, train_cells=train, conformal=conformal,
                          dataset_hash=digest, version=cfg.model_version_label)
        card.training_domain = training_domain(train, (settings.cut_low, settings.cut_high))
        card.cycle_life = fit_cycle_life(
            cfg.data.cycle_life_sources, splits.notes,
            {c.cell_id for c in splits.val + splits.calib + splits.test})
        card.training_data = _training_data(splits, cfg.data.cycle_life_sources)
        for note in splits.notes[-3:]:
            if note.startswith("note: cycle-life"):
                print(note, file=sys.stderr)
        run = torch_runner(model)
        # the end-of-life interval, calibrated through the served path on the same
        # calibration cells (after the capacity band and the heads it serves with)
        # (never on training cells: without held-out cells no score, no widening)
        card.conformal["end_of_life"] = calibrate_end_of_life(splits.calib or splits.val, card,
                                                              run)
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
        card.model = {**card.model, "mlflow_run_id": run_id, "study": cfg.name}
        model_dir = export_model_dir(model, card, fadecast_home() / "models" / "runs" / run_id)
        for name, fig in forecast_plots(val_eval, card, run).items():
            tracking.log_figure(fig, name)
        if calib or val:
            tracking.log_figure(_reliability(model, calib or val, scaler, spec.max_history,
                                             card),
                                "reliability")
        model_uri = tracking.log_onnx_model(model_dir, example_inputs(len(FEATURE_NAMES)),
                                            model.n_samples)
        if cfg.ship_to:
            absent = [n for n in cfg.data.sources + cfg.data.cycle_life_sources
                      if n not in set(available_sources())]
            if absent:  # a checkout without ../shared must not replace the shipped model
                print(f"note: NOT shipped to {cfg.ship_to}: source(s) {absent} are absent, so "
                      "this model is not the production recipe; it stays in FADECAST_HOME",
                      file=sys.stderr)
            else:
                ship_model(model_dir, REPO_ROOT / cfg.ship_to)
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


def fit_cycle_life(sources: tuple[str, ...], notes: list[str],
                   held_out: set[str] = frozenset()) -> dict:
    """The card's ``cycle_life`` entry: heads fitted on the cells of ``sources`` that are
    present (``ml.models.cycle_life_head``), the knee exponent and the heads' domain.

    Cells in ``held_out`` (the trajectory model's validation, calibration and test cells) are
    left out, so no figure on them is made by a head that saw them."""
    from ml.models.cycle_life_head import WINDOWS, fit_heads, fit_knee_exponent
    from ml.sources.provenance import provenance

    present = set(available_sources())
    got = {name: [c for c in load_source(name) if c.cell_id not in held_out]
           for name in sources if name in present}
    missing = [n for n in sources if n not in present]
    if missing:
        notes.append(f"note: cycle-life source(s) {missing} absent; heads fitted without them")
    if not got:
        return {}
    delta_q = [c for name, cells in got.items() if "qdlin" in name for c in cells]
    capacity = [c for name, cells in got.items() if "qdlin" not in name for c in cells]
    heads = fit_heads({"delta_q_capacity": delta_q, "delta_q": delta_q,
                       "capacity_charge_policy": capacity, "capacity": capacity},
                      knee_cells=capacity or None)
    paces = [float(c.meta["hours_per_cycle"]) for c in capacity if c.meta.get("hours_per_cycle")]
    chem = sorted({provenance(n).chemistry for n in got if provenance(n).chemistry})
    out = {"heads": heads, "knee_exponent": fit_knee_exponent(capacity) if capacity else 3.0,
           "threshold_fraction": 0.8, "window_cycles": 100, "windows_tried": list(WINDOWS),
           "windows": sorted({int(h["window_cycles"]) for h in heads.values()}),
           "sources": sorted(got),
           "domain": {"hours_per_cycle": [min(paces), max(paces)] if paces else None,
                      "chemistry": chem[0] if len(chem) == 1 else None}}
    notes.append("note: cycle-life heads " + ", ".join(
        f"{k} (CV MAPE {v['cv_mape_pct']:.1f} %, {v['n_cells']} cells, knee exponent "
        f"{v['knee_exponent']:g})" for k, v in heads.items())
        + f"; knee exponent {out['knee_exponent']:g}")
    return out


def _training_data(splits: Splits, head_sources: tuple[str, ...]) -> list[dict]:
    from ml.sources.provenance import training_data_entry

    out = [{**training_data_entry(name, cells=c["train"], role="trajectory model (train)"),
            "split": c} for name, c in splits.counts.items()]
    present = set(available_sources())
    held = {c.cell_id for c in splits.val + splits.calib + splits.test}
    out += [training_data_entry(name, cells=sum(c.cell_id not in held
                                                for c in load_source(name)),
                                role="cycle-life head (train cells only)")
            for name in head_sources if name in present]
    return out


def check_shippable(sources: tuple[str, ...]) -> None:
    """Refuse to train a SHIPPED model on a source whose licence is not known to allow it."""
    from ml.sources.provenance import provenance

    bad = [s for s in sources if not provenance(s).shippable]
    if bad:
        raise FadecastError(
            f"source(s) {bad} may not train a shipped model: "
            + "; ".join(f"{s}: {provenance(s).licence}" for s in bad),
            code="licence_not_shippable", column="data.sources",
            expected="sources whose licence allows shipping a trained model "
                     "(ml.sources.provenance), or ship_to = \"\"", found=str(bad))


def compare_cards(old: dict, new: dict) -> list[str]:
    """Lines comparing the held-out figures of two cards' ``metrics`` side by side."""
    keys = sorted(k for k in set(old) | set(new)
                  if k.startswith(("val_", "test_")) and "_model_" in k)
    if not keys:
        return ["(no common held-out figures)"]
    width = max(len(k) for k in keys)
    lines = [f"{'figure'.ljust(width)}  {'shipped':>10}  {'new':>10}"]
    for k in keys:
        a, b = old.get(k), new.get(k)
        fa = f"{a:10.4g}" if isinstance(a, (int, float)) else f"{'-':>10}"
        fb = f"{b:10.4g}" if isinstance(b, (int, float)) else f"{'-':>10}"
        lines.append(f"{k.ljust(width)}  {fa}  {fb}")
    return lines


def ship_model(model_dir: Path, target: Path) -> Path:
    """Replace the shipped model at ``target`` by ``model_dir`` (copy, then rename), printing
    how the new card's held-out figures differ from the shipped one's (stderr)."""
    import json
    import os
    import shutil
    import tempfile

    from ml.inference import CARD_FILE, MODEL_FILE

    old_card = target / CARD_FILE
    old = json.loads(old_card.read_text(encoding="utf-8")) if old_card.is_file() else None
    new = json.loads((Path(model_dir) / CARD_FILE).read_text(encoding="utf-8"))
    if old is None:
        print(f"note: no shipped model at {target}; shipping this one", file=sys.stderr)
    else:
        print(f"shipped model {old.get('version')} vs new {new.get('version')} "
              "(held-out figures; lower errors are better, coverage target 90 %):",
              file=sys.stderr)
        for line in compare_cards(old.get("metrics") or {}, new.get("metrics") or {}):
            print("  " + line, file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".ship-"))
    tmp.chmod(0o755)  # a repository folder, not a private temp dir
    for name in (MODEL_FILE, CARD_FILE):
        shutil.copyfile(Path(model_dir) / name, tmp / name)
        (tmp / name).chmod(0o644)
    backup = target.parent / f".{target.name}.old"
    if target.exists():
        if backup.exists():
            shutil.rmtree(backup)
        os.replace(target, backup)
    os.replace(tmp, target)
    shutil.rmtree(backup, ignore_errors=True)
    print(f"note: shipped to {target} (commit it to update the repository's model)",
          file=sys.stderr)
    return target
