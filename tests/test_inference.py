"""ml.inference: the CONTRACTS forecast JSON from a real (quickly trained) ONNX model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_registry.errors import ValidationError
from ml.inference import apply_conformal, band, forecast, load_model_dir
from ml.synthetic import make_cell


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory):
    from ml.training.quick import train_quick_model

    return train_quick_model(tmp_path_factory.getbasetemp() / "quick-model", n_cells=16,
                             epochs=4, reuse=True)


@pytest.fixture(scope="module")
def loaded(quick_model):
    return load_model_dir(quick_model)


def _cell(n=60, **kw):
    return make_cell("cellA", n_cycles=200, seed=1, **kw).cycles.iloc[:n].reset_index(drop=True)


def test_forecast_has_contract_shape(loaded):
    card, run = loaded
    hist = _cell()
    out = forecast(hist, card=card, run=run, horizon_cycles=25)
    assert set(out) == {"model", "cell_id", "forecast", "end_of_life", "attribution"}
    assert out["model"] == {"name": card.name, "version": card.version}
    assert out["cell_id"] == "cellA"
    rows = out["forecast"]
    assert len(rows) == 25
    assert [r["cycle_index"] for r in rows] == list(range(61, 86))
    for r in rows:
        assert set(r) == {"cycle_index", "test_time_second", "capacity_ah", "loss_time_fraction",
                          "loss_cycle_fraction"}
        q = r["capacity_ah"]
        assert q["p05"] <= q["p50"] <= q["p95"]
    share = out["attribution"]["time_share"]
    assert 0.0 <= share["p05"] <= share["p50"] <= share["p95"] <= 1.0


def test_default_pace_is_median_of_last_ten_cycles(loaded):
    card, run = loaded
    hist = _cell(40)
    # make the last 10 durations 7, 7, ..., 9 h: median 8 h
    dur = np.array([7.0] * 5 + [9.0] * 5) * 3600.0
    t = hist["test_time_second"].to_numpy().copy()
    t[-10:] = t[-11] + np.cumsum(dur)
    hist = hist.assign(test_time_second=t, cycle_duration_second=np.r_[
        hist["cycle_duration_second"].to_numpy()[:-10], dur])
    out = forecast(hist, card=card, run=run, horizon_cycles=3)
    times = [r["test_time_second"] for r in out["forecast"]]
    assert times == pytest.approx([t[-1] + 8.0 * 3600.0 * k for k in (1, 2, 3)])
    out2 = forecast(hist, card=card, run=run, horizon_cycles=2, hours_per_cycle=2.5)
    assert [r["test_time_second"] for r in out2["forecast"]] == pytest.approx(
        [t[-1] + 2.5 * 3600.0, t[-1] + 5.0 * 3600.0])


def test_nominal_capacity_sets_the_reference(loaded):
    card, run = loaded
    hist = _cell()
    a = forecast(hist, card=card, run=run, horizon_cycles=5)
    b = forecast(hist, card=card, run=run, horizon_cycles=5,
                 nominal_capacity_ah=float(hist["discharge_capacity_ah"].iloc[:3].max()))
    assert a["forecast"][0]["capacity_ah"] == pytest.approx(b["forecast"][0]["capacity_ah"],
                                                           rel=1e-6)


def test_end_of_life_null_within_short_horizon_and_found_in_long(loaded):
    card, run = loaded
    hist = _cell(60)
    short = forecast(hist, card=card, run=run, horizon_cycles=2, eol_fraction=0.5)
    assert short["end_of_life"] is None
    last_ret = hist["discharge_capacity_ah"].iloc[-1] / hist["discharge_capacity_ah"].iloc[:3].max()
    long = forecast(hist, card=card, run=run, horizon_cycles=3000,
                    eol_fraction=float(last_ret) - 0.02)
    eol = long["end_of_life"]
    assert eol is not None
    c = eol["cycle_index"]
    assert 60 < c["p05"] <= c["p50"] <= c["p95"]
    assert eol["threshold_fraction"] == pytest.approx(float(last_ret) - 0.02)
    rows = {r["cycle_index"]: r for r in long["forecast"]}
    assert eol["test_time_second"]["p50"] == pytest.approx(rows[c["p50"]]["test_time_second"])


def test_bad_inputs_name_the_field(loaded):
    card, run = loaded
    hist = _cell()
    with pytest.raises(ValidationError, match="horizon_cycles"):
        forecast(hist, card=card, run=run, horizon_cycles=0)
    with pytest.raises(ValidationError, match="eol_fraction"):
        forecast(hist, card=card, run=run, horizon_cycles=3, eol_fraction=1.5)
    with pytest.raises(ValidationError, match="history too short"):
        forecast(hist.iloc[:2], card=card, run=run, horizon_cycles=3)
    with pytest.raises(ValidationError, match="discharge_capacity_ah"):
        forecast(hist.drop(columns=["discharge_capacity_ah"]), card=card, run=run,
                 horizon_cycles=3)


def test_history_as_list_of_dicts_equals_dataframe(loaded):
    card, run = loaded
    hist = _cell(30)
    a = forecast(hist, card=card, run=run, horizon_cycles=4)
    b = forecast(hist.to_dict(orient="records"), card=card, run=run, horizon_cycles=4)
    assert a == b


def test_band_and_conformal_widening_by_hand():
    samples = np.arange(101, dtype=float)  # quantiles 5, 50, 95
    assert band(samples, None) == pytest.approx([5.0, 50.0, 95.0])
    # pad = 0.5 * (95 - 5 + 10) = 50 per side; the low side is clipped at 0
    assert band(samples, {"scale": 0.5, "eps": 10.0}) == pytest.approx([0.0, 50.0, 145.0])
    # a negative scale narrows but never past the median
    q = apply_conformal(np.array([5.0, 50.0, 95.0]), {"scale": -2.0, "eps": 0.0})
    assert q == pytest.approx([50.0, 50.0, 50.0])


def test_card_json_is_strict_and_round_trips(tmp_path, quick_model):
    from ml.inference import ModelCard

    card = ModelCard.load(quick_model / "model_card.json")
    card.metrics = {"a": float("nan"), "b": 1.5}
    path = card.save(tmp_path / "card.json")
    text = path.read_text()
    assert "NaN" not in text
    again = ModelCard.load(path)
    assert again.metrics == {"a": None, "b": 1.5}
    assert again.feature_scaler().to_dict() == card.feature_scaler().to_dict()
    assert again.window_spec() == card.window_spec()
    assert again.training_domain["c_rate"][0] <= again.training_domain["c_rate"][1]


def test_row_order_and_capacity_scale_invariance(loaded):
    card, run = loaded
    hist = _cell(30)
    base = forecast(hist, card=card, run=run, horizon_cycles=4)
    assert forecast(hist.sample(frac=1.0, random_state=0), card=card, run=run,
                    horizon_cycles=4) == base
    cap_cols = ["charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
                "discharge_energy_wh"]
    doubled = forecast(hist.assign(**{c: hist[c] * 2.0 for c in cap_cols}), card=card, run=run,
                       horizon_cycles=4)
    for a, b in zip(base["forecast"], doubled["forecast"]):
        for k in ("p05", "p50", "p95"):
            assert b["capacity_ah"][k] == pytest.approx(2.0 * a["capacity_ah"][k], rel=1e-6)
        assert b["loss_time_fraction"] == pytest.approx(a["loss_time_fraction"], rel=1e-6)
    assert doubled["attribution"]["time_share"] == pytest.approx(base["attribution"]["time_share"])
