"""ml.training: config, losses, censoring, split recovery and the identifiability behaviour."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_registry.errors import FadecastError, InputFormatError
from ml.export.card import build_card
from ml.inference import forecast
from ml.synthetic import make_cell, make_fleet
from ml.training.config import flatten, load_config
from ml.training.dataset import (cut_windows, fit_scaler, prepare_cells, sample_windows,
                                 stack_windows)
from ml.training.losses import sample_crps
from ml.training.quality import torch_runner
from ml.windows import FEATURE_NAMES, WindowSpec

ROOT = Path(__file__).resolve().parent.parent


def test_crps_by_hand():
    # samples {0, 1}, y = 0: E|X - y| = 0.5, E|X - X'| = 0.5 -> 0.5 - 0.25 = 0.25
    assert float(sample_crps(torch.tensor([0.0, 1.0]), torch.tensor(0.0))) == pytest.approx(0.25)
    # a point mass at y scores 0; at distance d scores d
    assert float(sample_crps(torch.full((8,), 2.0), torch.tensor(2.0))) == pytest.approx(0.0)
    assert float(sample_crps(torch.full((8,), 2.0), torch.tensor(3.5))) == pytest.approx(1.5)


def test_conformal_constant_is_the_kth_smallest_score():
    from ml.training.calibration import conformal_scale

    raw = np.tile([0.0, 1.0, 2.0], (10, 1))
    y = np.array([0.5] * 9 + [4.0])  # scores: nine of (-0.5)/2 = -0.25, one of (4 - 2)/2 = 1
    # alpha 0.2: k = ceil(11 * 0.8) = 9 -> -0.25 (the band may shrink); alpha 0.1: k = 10 -> 1
    assert conformal_scale(raw, y, 0.0, alpha=0.2)["scale"] == pytest.approx(-0.25)
    assert conformal_scale(raw, y, 0.0, alpha=0.1)["scale"] == pytest.approx(1.0)
    assert conformal_scale(raw, np.full(10, np.nan), 0.0)["n"] == 0


def test_weighted_conformal_counts_each_source_and_cell_equally():
    from ml.training.calibration import weighted_conformal_scale

    # band [0, 1] (eps 0): y = 1 + s gives score s. Source A: cell a1 scores {0, 1} (weight
    # 1/8 each), cell a2 score {2} (1/4); source B: one cell with eight scores of 10 (1/16 each).
    scores = np.array([0.0, 1.0, 2.0] + [10.0] * 8)
    raw = np.tile([0.0, 0.5, 1.0], (len(scores), 1))
    cell = np.array(["a1", "a1", "a2"] + ["b1"] * 8)
    group = np.array(["A"] * 3 + ["B"] * 8)
    fit = weighted_conformal_scale(raw, 1.0 + scores, cell, group, 0.0, alpha=0.6)
    # cumulative weights 1/8, 1/4, 1/2, ...: level 0.4 is first reached at score 2
    assert fit["scale"] == pytest.approx(2.0) and fit["n_cells"] == 3 and fit["n"] == 11
    assert weighted_conformal_scale(raw, 1.0 + scores, cell, group, 0.0,
                                    alpha=0.75)["scale"] == pytest.approx(1.0)
    # per point (unweighted), 8 of the 11 scores are 10: the same level would give 10
    assert conformal_scale_unweighted(raw, 1.0 + scores) == pytest.approx(10.0)


def conformal_scale_unweighted(raw, y):
    from ml.training.calibration import conformal_scale

    return conformal_scale(raw, y, 0.0, alpha=0.6)["scale"]


def test_calibrate_runs_on_a_callable_and_on_the_torch_model():
    from ml.models.fade_net import FadeNet
    from ml.training.calibration import calibrate

    torch.manual_seed(0)
    cells = prepare_cells(make_fleet(6, seed=3))
    scaler = fit_scaler(cells)
    model = FadeNet(FEATURE_NAMES, d_model=16, n_heads=2, n_samples=8)
    torch.manual_seed(1)
    via_torch = calibrate(model, cells, scaler, 16)
    torch.manual_seed(1)
    via_run = calibrate(torch_runner(model), cells, scaler, 16)
    assert via_torch["capacity"]["scale"] == pytest.approx(via_run["capacity"]["scale"],
                                                           rel=1e-5)
    assert via_torch["capacity"]["n_cells"] == 6
    assert set(via_torch["by_source"]) == {str(c.meta.get("source", "?")) for c in cells}


def test_committed_configs_load_and_flatten():
    for study in ("default", "tiny"):
        cfg = load_config(ROOT / "experiments" / study / "config.toml")
        flat = flatten(cfg)
        assert flat["name"] == study
        assert flat["model.time_term"] in {"none", "power", "onset"}
        assert all(isinstance(v, str) for v in flat.values())
    cfg = load_config(ROOT / "experiments" / "default" / "config.toml")
    assert "pybamm-dev" in cfg.data.sources and cfg.data.synthetic_cells > 0


def test_config_errors_are_named(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('name = "x"\n[model]\ntime_trm = "power"\n')
    with pytest.raises(FadecastError, match=r"time_trm.*Best matches are \['time_term'\]"):
        load_config(bad)
    bad.write_text('name = "x"\n[model]\ncycle_term = "kneee"\n')
    with pytest.raises(FadecastError, match=r"kneee"):
        load_config(bad)
    bad.write_text('name = "x"\n[data]\nsources = ["pybam-dev"]\n')
    with pytest.raises(FadecastError, match=r"pybamm-dev"):
        load_config(bad)
    bad.write_text("name = \n")
    with pytest.raises(InputFormatError, match="TOML"):
        load_config(bad)


def test_windows_are_censored_at_the_last_recorded_cycle():
    cells = prepare_cells(make_fleet(3, seed=2))
    scaler = fit_scaler(cells)
    rng = np.random.default_rng(0)
    windows = sample_windows(cells, rng, per_cell=5, scaler=scaler, max_history=16, n_queries=8)
    for w, cell in zip(windows, [c for c in cells for _ in range(5)]):
        last = cell.table["cycle_index"].iloc[-1]
        assert w["query_cycle"].max() <= last  # nothing beyond the end is a target
        assert len(w["x"]) <= 16
        # query 0 is the last history cycle, and its target is that cycle's retention
        cut_row = cell.table.index[cell.table["cycle_index"] == w["query_cycle"][0]][0]
        assert w["target_capacity"][0] == pytest.approx(cell.table["retention"].iloc[cut_row])
    batch = stack_windows(windows[:2] + [cut_windows(cells[:1], fraction=0.9, scaler=scaler,
                                                     max_history=16)[0]])
    short = batch["target_capacity"][2]
    assert np.isnan(short[np.isnan(batch["target_time"][2])]).all()
    assert np.isfinite(batch["query_cycle"]).all()  # padded queries repeat, targets stay NaN


@pytest.fixture(scope="module")
def easy_model():
    """FadeNet trained ~10 s on an easy fleet (constant rates, known exponents)."""
    from ml.models.fade_net import FadeNet
    from ml.training.loop import TrainSettings, fit

    torch.manual_seed(0)
    records = make_fleet(48, seed=5, easy=True)
    cells = prepare_cells(records)
    train, val = cells[:40], cells[40:]
    scaler = fit_scaler(train)
    model = FadeNet(FEATURE_NAMES, d_model=32, n_heads=2, n_samples=32)
    fit(model, train, val, scaler, TrainSettings(epochs=12, windows_per_cell=4, max_history=32),
        progress=False)
    card = build_card(model, scaler, WindowSpec(32), train_cells=train, conformal={},
                      dataset_hash="")
    return card, torch_runner(model), records[40:]


@pytest.mark.slow
def test_split_is_recovered_on_an_easy_fleet(easy_model):
    card, run, held_out = easy_model
    errors = []
    for rec in held_out:
        seen = int(0.4 * len(rec.cycles))
        out = forecast(rec.cycles.iloc[:seen], card=card, run=run, horizon_cycles=5)
        lt, lc = rec.truth[["loss_time_frac", "loss_cycle_frac"]].iloc[seen - 1]
        errors.append(abs(out["attribution"]["time_share"]["p50"] - lt / (lt + lc)))
    assert np.median(errors) < 0.06, errors


@pytest.mark.slow
def test_constant_rate_capacity_only_is_wide_varied_rate_is_narrower(easy_model):
    card, run, _ = easy_model
    lockstep = make_cell("one", c_rate=0.5, n_cycles=150, seed=2).cycles.iloc[:60]
    bare = lockstep[["cycle_index", "test_time_second", "discharge_capacity_ah"]]
    varied = make_cell("var", c_rate=0.2, c_rate_final=1.0, switch_cycle=30, rest_hour=12,
                       rest_every_n_cycles=10, n_cycles=150, seed=2).cycles.iloc[:60]

    def width(history):
        s = forecast(history, card=card, run=run, horizon_cycles=5)["attribution"]["time_share"]
        return s["p95"] - s["p05"]

    wide, narrow = width(bare), width(varied)
    assert wide >= 0.4, wide  # the data cannot separate time from cycles: say so
    assert narrow < 0.75 * wide, (narrow, wide)


def test_splits_are_by_cell_without_leakage():
    from ml.training.config import DataConfig
    from ml.training.pipeline import load_splits

    splits = load_splits(DataConfig(synthetic_cells=30, sources=(), val_fraction=0.2,
                                    test_fraction=0.2))
    names = ("train", "val", "calib", "test")
    ids = {name: {r.cell_id for r in getattr(splits, name)} for name in names}
    assert ids["train"] and ids["val"] and ids["calib"] and ids["test"]
    # calibration cells are neither trained on nor used to pick epochs / champions
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not (ids[a] & ids[b]), (a, b)
    assert len(set().union(*ids.values())) == 30
    again = load_splits(DataConfig(synthetic_cells=30, sources=()))
    assert [r.cell_id for r in again.val] == [r.cell_id for r in splits.val]


def test_calibration_only_synthetic_cells_join_calibration_alone(monkeypatch):
    from ml.evaluation.suites import HELDOUT_SEED
    from ml.training import pipeline
    from ml.training.config import DataConfig
    from ml.training.pipeline import load_splits

    base = load_splits(DataConfig(synthetic_cells=30, sources=()))
    more = load_splits(DataConfig(synthetic_cells=30, sources=(), calibration_synthetic_cells=6))
    for name in ("train", "val", "test"):  # nothing else moves
        assert [r.cell_id for r in getattr(more, name)] == [r.cell_id for r in getattr(base, name)]
    extra = [r for r in more.calib if r.cell_id.startswith("syncal_")]
    assert len(extra) == 6 and len(more.calib) == len(base.calib) + 6
    assert more.counts["synthetic"]["calib_only"] == 6
    # they join the synthetic source's one calibration weight, not a source of their own
    assert {r.meta["source"] for r in extra} == {"synthetic"}
    # the same draw every time (the dataset hash covers them)
    again = load_splits(DataConfig(synthetic_cells=30, sources=(), calibration_synthetic_cells=6))
    assert all(a.cycles.equals(b.cycles) for a, b in
               zip(extra, [r for r in again.calib if r.cell_id.startswith("syncal_")]))
    # another stream: neither a training fleet nor the evaluation suite's fleets redraw them
    firsts = {round(float(r.cycles["discharge_capacity_ah"].iloc[0]), 9) for r in extra}
    for seed in (0, 1, 2, HELDOUT_SEED, HELDOUT_SEED + 1):
        fleet = make_fleet(30, seed=seed)
        assert not firsts & {round(float(r.cycles["discharge_capacity_ah"].iloc[0]), 9)
                             for r in fleet}
    # without the synthetic source in the model there is no synthetic calibration either
    monkeypatch.setattr(pipeline, "available_sources", lambda: ["pybamm-dev"])
    monkeypatch.setattr(pipeline, "load_source", lambda name: [
        _renamed(r, f"pb_{i:02d}", "pybamm-dev") for i, r in enumerate(base.unique()[:20])])
    none = load_splits(DataConfig(synthetic_cells=0, sources=("pybamm-dev",),
                                  calibration_synthetic_cells=6))
    assert none.calib and not any(r.cell_id.startswith("syncal_") for r in none.unique())
    assert any("calibration_synthetic_cells ignored" in n for n in none.notes)


def _renamed(rec, cell_id: str, source: str):
    import dataclasses

    return dataclasses.replace(rec, cell_id=cell_id, meta={**rec.meta, "source": source})


def test_negative_calibration_cells_and_huge_seeds_are_refused(tmp_path):
    path = tmp_path / "c.toml"
    for text, field in (("[data]\ncalibration_synthetic_cells = -1\n",
                         "data.calibration_synthetic_cells"),
                        ("[data]\nsynthetic_seed = 4294967296\n", "data.synthetic_seed")):
        path.write_text(text)
        with pytest.raises(FadecastError) as info:
            load_config(path)
        assert info.value.column == field
        assert str(path) in str(info.value)


def test_training_is_deterministic_for_a_seed():
    from ml.models.fade_net import FadeNet
    from ml.training.loop import TrainSettings, fit

    cells = prepare_cells(make_fleet(4, seed=9))
    scaler = fit_scaler(cells)
    states = []
    for _ in range(2):
        model = FadeNet(FEATURE_NAMES, d_model=8, n_heads=2, n_samples=8, seed=1)
        fit(model, cells, [], scaler, TrainSettings(epochs=2, windows_per_cell=2, seed=4,
                                                    max_history=16), progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
