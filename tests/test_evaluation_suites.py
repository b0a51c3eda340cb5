"""Suites and ``fadecast evaluate``: exact figures on noise-free cells, the model path through
ml.inference + onnxruntime on a quickly trained model, one JSON document on stdout."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from data_registry.errors import FadecastError
from ml.evaluation.commands import evaluate_command, flat_metrics, plain
from ml.evaluation.forecasters import BaselineForecaster, ModelForecaster, first_crossing
from ml.evaluation.suites import format_table, run_suite
from ml.evaluation.calibration import conformal_quantile
from ml.evaluation.trajectory import (calibrate_band, cut, evaluate_trajectories,
                                      true_time_share)
from ml.sources import CellRecord


def _sqrt_cell(cell_id="exact", n=50, a=0.01, b=0.0005, steady_from=None):
    """Capacity exactly 5 Ah * (1 - a*sqrt(t) - b*N); truth split known; uneven rests. With
    ``steady_from``, cycles after it last the median of the 10 durations before it (so the
    schedule planned at that cut is the true one)."""
    cyc = np.arange(1, n + 1)
    dur = 6.0 + np.array([0.0, 5.0, 11.0])[cyc % 3]
    if steady_from is not None:
        dur[steady_from:] = np.median(dur[steady_from - 10:steady_from])
    hours = np.cumsum(dur)
    lt, lc = a * np.sqrt(hours), b * cyc
    cycles = pd.DataFrame({"cell_id": cell_id, "cycle_index": cyc,
                           "test_time_second": hours * 3600.0,
                           "discharge_capacity_ah": 5.0 * (1 - lt - lc)})
    truth = pd.DataFrame({"cycle_index": cyc, "loss_time_frac": lt, "loss_cycle_frac": lc})
    return CellRecord(cell_id, cycles, truth, {"nominal_capacity_ah": 5.0})


def test_cut_and_truth_share_by_hand():
    rec = _sqrt_cell(n=50)
    seen, fc, fh = cut(rec)
    assert seen == 20 and fc[0] == 21 and len(fc) == 30
    # the PLANNED schedule: hours at cycle 20 + the median of the last 10 durations per cycle
    t = rec.cycles["test_time_second"].iloc[19] / 3600  # hours at the end of cycle 20
    durations = 6.0 + np.array([0.0, 5.0, 11.0])[np.arange(11, 21) % 3]
    assert fh == pytest.approx(t + np.median(durations) * (fc - 20))
    assert fh[0] != pytest.approx(rec.cycles["test_time_second"].iloc[20] / 3600)  # not truth
    share = 0.01 * np.sqrt(t) / (0.01 * np.sqrt(t) + 0.0005 * 20)
    assert true_time_share(rec, seen) == pytest.approx(share)
    short = _sqrt_cell(n=8)
    assert cut(short)[0] == 5  # never fewer than 5 seen cycles


def test_a_protocol_with_periodic_rests_plans_its_mean_pace():
    """Rest every 5 cycles (the protocol's metadata): the plan is the mean pace over the last
    whole periods covering >= 10 cycles, not the median cycle (which drops the rests)."""
    cyc = np.arange(1, 51)
    dur = np.where(cyc % 5 == 0, 8.0 + 48.0, 8.0)  # 8 h cycles, +48 h every 5th
    rec = CellRecord("rests", pd.DataFrame({
        "cell_id": "rests", "cycle_index": cyc, "test_time_second": np.cumsum(dur) * 3600.0,
        "discharge_capacity_ah": np.linspace(5.0, 4.5, 50)}), None,
        {"nominal_capacity_ah": 5.0, "rest_every_n_cycles": 5})
    seen, fc, fh = cut(rec)
    t = np.cumsum(dur)[seen - 1]
    # 10 cycles = 2 periods: (8 * 10 + 2 * 48) / 10 = 17.6 h per cycle (the median is 8 h)
    assert fh == pytest.approx(t + 17.6 * (fc - seen))
    plain_rec = CellRecord("rests", rec.cycles, None, {"nominal_capacity_ah": 5.0})
    assert cut(plain_rec)[2] == pytest.approx(t + 8.0 * (fc - seen))


def test_first_crossing_interpolates():
    assert first_crossing(np.array([1.0, 2, 3]), np.array([0.9, 0.85, 0.7]), 0.8) == \
        pytest.approx(2 + 1 / 3)
    assert first_crossing(np.array([1.0, 2]), np.array([0.9, 0.85]), 0.8) is None


def test_naive_is_exact_on_its_own_law():
    cells = [_sqrt_cell("c1", steady_from=20), _sqrt_cell("c2", a=0.004, b=0.001,
                                                           steady_from=20)]
    res = evaluate_trajectories(cells, {"naive_sqrt": BaselineForecaster("naive_sqrt", 0.0),
                                        "persistence": BaselineForecaster("persistence")})
    naive = res["figures"]["naive_sqrt"]
    assert naive["time_share_abs_error_median"] == pytest.approx(0.0, abs=1e-6)
    assert naive["capacity_error_pct_of_reference"] == pytest.approx(0.0, abs=1e-6)
    assert naive["interval_width_90_pct_of_reference"] == 0.0
    # persistence: its error is the mean future drop, computed by hand for cell c1
    c1 = cells[0].cycles["discharge_capacity_ah"].to_numpy()
    ref = c1[:3].max()
    drop1 = np.mean(np.abs(c1[20:] - c1[19])) / ref * 100
    c2 = cells[1].cycles["discharge_capacity_ah"].to_numpy()
    drop2 = np.mean(np.abs(c2[20:] - c2[19])) / c2[:3].max() * 100
    assert res["figures"]["persistence"]["capacity_error_pct_of_reference"] == \
        pytest.approx((drop1 + drop2) / 2)
    assert np.isnan(res["figures"]["persistence"]["time_share_abs_error_median"])


def test_calibrate_band_by_hand():
    cells = [_sqrt_cell("c1", steady_from=20), _sqrt_cell("c2", a=0.004, b=0.001,
                                                           steady_from=20)]
    assert calibrate_band(cells, "naive_sqrt") == pytest.approx(0.0, abs=1e-9)
    scores = []
    for rec in cells:  # persistence: |q_k - q_20| / ref / sqrt(k), k = 1 … 30
        q = rec.cycles["discharge_capacity_ah"].to_numpy()
        scores += list(np.abs(q[20:] - q[19]) / q[:3].max() / np.sqrt(np.arange(1, 31)))
    assert calibrate_band(cells, "persistence") == pytest.approx(conformal_quantile(scores, 0.1))


def test_synthetic_suite_baselines_and_table():
    out = run_suite("synthetic")
    assert out["suite"] == "synthetic" and len(out["cells"]) == 24
    figs = {r["figure"]: r for r in out["figures"]}
    cap = figs["capacity_error_pct_of_reference"]["values"]
    assert cap["naive_sqrt"] < cap["persistence"]  # fading cells: persistence is worst
    assert figs["cells_scored"]["values"]["naive_sqrt"] == 24
    assert figs["capacity_error_pct_of_reference"]["model_vs_naive"] is None  # no model
    text = format_table(out)
    assert "naive_sqrt" in text.splitlines()[1] and "model/naive" in text.splitlines()[1]


def test_unknown_suite_is_named():
    with pytest.raises(FadecastError, match=r"best matches are \['synthetic'\]"):
        run_suite("synthetc")
    args = argparse.Namespace(model=None, suite=["nope"], json=True, tracking_uri=None)
    with pytest.raises(FadecastError, match="unknown suite 'nope'"):
        evaluate_command(args)


def test_plain_makes_json_safe():
    assert plain({"a": float("nan"), "b": np.float32(1.5), "c": [np.int64(2)]}) == \
        {"a": None, "b": 1.5, "c": [2]}


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory):
    from ml.training.quick import train_quick_model

    return train_quick_model(tmp_path_factory.mktemp("evalmodel") / "model", n_cells=16,
                             epochs=4)


def test_model_path_through_onnxruntime(quick_model, capsys):
    model = ModelForecaster.from_uri(str(quick_model))
    rec = _sqrt_cell("m1", n=60)
    seen, fc, fh = cut(rec)
    f = model(rec.cycles.iloc[:seen], fc, fh)
    assert f.p50.shape == fc.shape and (f.p05 <= f.p50).all() and (f.p50 <= f.p95).all()
    assert 0.0 <= f.time_share_band[0] <= f.time_share <= f.time_share_band[1] <= 1.0
    assert f.reference_capacity_ah == pytest.approx(rec.cycles["discharge_capacity_ah"][:3].max())
    # the command: one JSON document on stdout, model figures and ratios filled in
    args = argparse.Namespace(model=str(quick_model), suite=["synthetic"], json=True,
                              tracking_uri=None)
    assert evaluate_command(args) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["model"]["name"] and "running suite synthetic" in captured.err
    figs = {r["figure"]: r for r in doc["suites"][0]["figures"]}
    cap = figs["capacity_error_pct_of_reference"]
    assert cap["values"]["model"] > 0
    assert cap["model_vs_naive"] == pytest.approx(cap["values"]["model"]
                                                  / cap["values"]["naive_sqrt"])
    ts_cover = figs["time_share_coverage_90_pct"]["values"]
    assert 0 <= ts_cover["model"] <= 100 and ts_cover["naive_sqrt"] is None  # no band: NaN


def test_pybamm_dev_suite_real(shared_data):
    out = run_suite("pybamm-dev", root=shared_data)
    assert len(out["cells"]) == 9
    figs = {r["figure"]: r["values"] for r in out["figures"]}
    assert figs["cells_scored"]["naive_sqrt"] == 9
    assert figs["capacity_error_pct_of_reference"]["naive_sqrt"] < \
        figs["capacity_error_pct_of_reference"]["persistence"]
    assert 0 <= figs["time_share_abs_error_median"]["naive_sqrt"] <= 1


def test_flat_metrics_and_mlflow_run(tmp_path, capsys):
    results = [{"suite": "severson", "figures": [
        {"figure": "mape@100", "values": {"model": 12.5, "naive_sqrt": float("nan"), "x": None}}]}]
    assert flat_metrics(results) == {"severson/mape_100/model": 12.5}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from ml.evaluation import commands
    run_id = commands.log_evaluation(results, {"name": "m", "version": "7"}, uri)
    import mlflow
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.data.params == {"model": "m:7", "suites": "severson"}
    assert run.data.metrics == {"severson/mape_100/model": 12.5}


def test_geslin_suite_real(shared_data):
    out = run_suite("geslin2024", root=shared_data)
    figs = {r["figure"]: r["values"] for r in out["figures"]}
    n_test = len(out["cells"])
    assert n_test >= 8 and figs["cells_scored"]["naive_sqrt"] == n_test
    # fading cells: extrapolating beats holding the last value
    assert figs["capacity_error_pct_of_reference"]["naive_sqrt"] < \
        figs["capacity_error_pct_of_reference"]["persistence"]
    assert np.isnan(figs["time_share_abs_error_median"]["naive_sqrt"])  # no truth here


def test_severson_variance_model_matches_the_paper(shared_data):
    """Severson 2019's one-feature 'variance model' scored 14.1 % / 138 cycles on its primary
    test set (one anomalous cell excluded); our elastic net on log10 var ΔQ100-10(V) must land
    near it, and the capacity-curve features at 300 cycles must beat those at 100."""
    from ml.evaluation.cycle_life import elastic_net_scores
    from ml.models.baselines import CAPACITY_FEATURES
    from ml.sources import load_source

    train = load_source("severson-qdlin-train", root=shared_data)
    test = load_source("severson-qdlin-test1", root=shared_data)
    s = elastic_net_scores(train, test, 100, ("log10_delta_q_v_variance",))
    assert s["cells"] == 43
    assert 10.0 < s["mape_pct_excl_anomalous"] < 17.0
    assert 100.0 < s["rmse_cycles_excl_anomalous"] < 180.0
    tr, te = load_source("severson-train", root=shared_data), load_source("severson-test1",
                                                                           root=shared_data)
    at100 = elastic_net_scores(tr, te, 100, CAPACITY_FEATURES)["mape_pct"]
    at300 = elastic_net_scores(tr, te, 300, CAPACITY_FEATURES)["mape_pct"]
    assert at300 < at100


def test_available_suites_follow_the_data(tmp_path):
    from ml.evaluation.suites import available_suites

    assert available_suites(root=tmp_path) == ["synthetic"]
    for folder in ("pybamm-dev", "severson2019", "nasa_pcoe"):
        (tmp_path / folder).mkdir()
    assert available_suites(root=tmp_path) == ["pybamm-dev", "severson", "synthetic",
                                               "nasa-pcoe"]


def test_no_champion_falls_back_to_baselines(monkeypatch, capsys):
    from data_registry.errors import NotFoundError

    def no_champion(cls, uri=None, *, tracking_uri=None):
        raise NotFoundError("no registered model for models:/fadecast-forecaster@champion")

    monkeypatch.setattr(ModelForecaster, "from_uri", classmethod(no_champion))
    args = argparse.Namespace(model=None, suite=["synthetic"], json=False, tracking_uri=None)
    assert evaluate_command(args) == 0
    captured = capsys.readouterr()
    assert "evaluating the baselines only" in captured.err
    assert captured.out.startswith("== suite synthetic (24 test cells)")
    args.model = "/nowhere/model"  # an explicit model that cannot be found is an error
    with pytest.raises(NotFoundError):
        evaluate_command(args)


class _Judged:
    """A method whose answer says whether it was in domain: the naive fit, shifted by
    ``bias`` on the cells it calls out of domain."""

    def __init__(self, out_of_domain: set[str], bias: float) -> None:
        self.base = BaselineForecaster("naive_sqrt", 0.0)
        self.out, self.bias = out_of_domain, bias

    def __call__(self, history, fc, fh):
        import dataclasses

        f = self.base(history, fc, fh)
        cell = str(history["cell_id"].iloc[0])
        shift = self.bias if cell in self.out else 0.0
        return dataclasses.replace(f, p50=f.p50 + shift, p05=f.p50 + shift - 0.001,
                                   p95=f.p50 + shift + 0.001, in_domain=cell not in self.out)


def test_in_domain_figures_cover_the_cells_the_model_called_in_domain():
    cells = [_sqrt_cell("c1", steady_from=20), _sqrt_cell("c2", a=0.004, b=0.001,
                                                           steady_from=20)]
    res = evaluate_trajectories(cells, {"model": _Judged({"c2"}, 0.05),
                                        "persistence": BaselineForecaster("persistence")})
    model, pers = res["figures"]["model"], res["figures"]["persistence"]
    # c2 is 5 % of the reference off everywhere (out of domain), c1 exact (in domain)
    assert model["capacity_error_pct_of_reference"] == pytest.approx(2.5, abs=1e-6)
    assert model["capacity_error_pct_in_domain"] == pytest.approx(0.0, abs=1e-6)
    assert model["cells_in_domain"] == 1 and pers["cells_in_domain"] == 1
    assert model["coverage_90_pct"] == pytest.approx(50.0)  # c2's narrow band misses all
    assert model["coverage_90_pct_in_domain"] == pytest.approx(100.0)
    # the other method is scored on the SAME cell: c1's persistence error by hand
    c1 = cells[0].cycles["discharge_capacity_ah"].to_numpy()
    assert pers["capacity_error_pct_in_domain"] == pytest.approx(
        np.mean(np.abs(c1[20:] - c1[19])) / c1[:3].max() * 100)
    assert np.isnan(pers["coverage_90_pct_in_domain"])  # persistence has no band
    assert [r.get("model_in_domain") for r in res["per_cell"]] == [True, False]


def test_a_source_the_card_never_trained_is_scored_on_all_its_unseen_cells(shared_data):
    from types import SimpleNamespace

    from ml.evaluation.suites import trajectory_cells
    from ml.sources import load_source, split_by_cell

    split = split_by_cell(load_source("nasa-pcoe", root=shared_data))
    test, calib, _ = trajectory_cells("nasa-pcoe", shared_data)
    assert sorted(c.cell_id for c in test) == sorted(split["test"])
    never = SimpleNamespace(training_domain={"sources": ["pybamm-dev", "synthetic"]},
                            training_data=[])
    test2, calib2, notes = trajectory_cells("nasa-pcoe", shared_data, card=never)
    ids = {c.cell_id for c in test2}
    assert ids == set(split["train"]) | set(split["test"])  # every cell but the val ones
    assert not ids & {c.cell_id for c in calib2} and len(ids) > 3 * len(test)
    assert notes[0].startswith(f"the model card names no training on nasa-pcoe: all {len(ids)}")
    # a card that trained on the source keeps the split's test cells
    trained = SimpleNamespace(training_domain={"sources": ["nasa-pcoe"]}, training_data=[])
    assert {c.cell_id for c in trajectory_cells("nasa-pcoe", shared_data, card=trained)[0]} \
        == set(split["test"])


def _linear_cell(cell_id: str) -> CellRecord:
    """1 Ah · (1 − 0.002 N), N = 1..200, 2 h per cycle: 80 % is crossed at N = 100 exactly
    (first_crossing interpolates between 0.800 at 100 and 0.798 at 101)."""
    n = np.arange(1, 201, dtype=float)
    cycles = pd.DataFrame({"cell_id": cell_id, "cycle_index": n, "test_time_second": n * 7200.0,
                           "discharge_capacity_ah": 1.0 - 0.002 * n})
    return CellRecord(cell_id, cycles, None, {"nominal_capacity_ah": 1.0})


class _WithInterval:
    """The naive forecast with a stated end-of-life interval per cell."""

    def __init__(self, intervals):
        self.base, self.intervals = BaselineForecaster("naive_sqrt", band_scale=0.01), intervals

    def __call__(self, history, fc, fh):
        import dataclasses

        cell = str(history["cell_id"].iloc[0])
        return dataclasses.replace(self.base(history, fc, fh),
                                   eol_interval=self.intervals[cell])


def test_the_end_of_life_interval_is_scored_where_the_truth_crosses():
    from ml.evaluation.forecasters import answer_interval

    cells = [_linear_cell("a"), _linear_cell("b"), _linear_cell("c")]
    # the truth by the service rule is 101 (first of three rows below 0.8): a holds it (90–110),
    # b does not (105–120), c's answer had no end of life (inf, inf)
    method = _WithInterval({"a": (90.0, 110.0), "b": (105.0, 120.0), "c": (np.inf, np.inf)})
    res = evaluate_trajectories(cells, {"model": method,
                                        "persistence": BaselineForecaster("persistence")})
    model = res["figures"]["model"]
    assert model["eol_cells"] == 3
    assert model["eol_coverage_90_pct"] == pytest.approx(100.0 / 3)
    assert model["eol_interval_cells"] == 3
    assert [r["model_eol_interval_holds"] for r in res["per_cell"]] == [True, False, False]
    assert "eol_coverage_90_pct" not in res["figures"]["persistence"]  # states no interval
    # the answer's interval: a censored p95 is open above; no end of life holds nothing
    eol = {"cycle_index": {"p05": 90, "p50": 100, "p95": 300},
           "censored": {"p05": False, "p50": False, "p95": True}}
    assert answer_interval(eol) == (90.0, np.inf)
    assert answer_interval({**eol, "censored": None}) == (90.0, 300.0)
    assert answer_interval(None) == (np.inf, np.inf)
