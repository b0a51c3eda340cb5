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
    # the CONTRACTS keys, extended by the domain judgement, the uncertainty parts and the rows
    assert set(out) == {"model", "cell_id", "forecast", "end_of_life", "attribution", "domain",
                        "uncertainty", "history"}
    assert out["history"] == {"rows": len(hist), "rows_used": len(hist),
                              "basis": "all cycles", "dropped": {}}
    assert set(out["domain"]) >= {"in_domain", "reasons"}
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
    # the model reads retention: the median scales exactly; the capacity SCALE is a judged
    # condition, so a cell twice as large as any trained one is out of domain (wider band)
    assert base["domain"]["in_domain"] and not doubled["domain"]["in_domain"]
    assert any("reference capacity" in r for r in doubled["domain"]["reasons"])
    for a, b in zip(base["forecast"], doubled["forecast"]):
        assert b["capacity_ah"]["p50"] == pytest.approx(2.0 * a["capacity_ah"]["p50"], rel=1e-6)
        assert b["capacity_ah"]["p95"] - b["capacity_ah"]["p05"] > \
            2.0 * (a["capacity_ah"]["p95"] - a["capacity_ah"]["p05"])
        assert b["loss_time_fraction"] == pytest.approx(a["loss_time_fraction"], rel=1e-6)
    assert doubled["attribution"]["time_share"]["p50"] == pytest.approx(
        base["attribution"]["time_share"]["p50"], abs=0.1)


def _fake_run(cap_fn, n_samples=3, spread=0.05):
    """A model whose capacity samples at query i are ``cap_fn(i) + (-spread, 0, +spread)``."""
    def run(inputs):
        n_q = inputs["query_cycle"].shape[1]
        mid = np.array([cap_fn(i) for i in range(n_q)], dtype=np.float32)
        offs = np.linspace(-spread, spread, n_samples, dtype=np.float32)
        cap = (mid[:, None] + offs[None, :])[None]
        loss = np.full_like(cap, 0.01)
        return {"capacity_fraction": cap, "loss_time_fraction": loss,
                "loss_cycle_fraction": loss}
    return run


def test_cell_id_is_null_unless_given_or_in_the_history(loaded):
    card, run = loaded
    hist = _cell(40).drop(columns=["cell_id"])
    assert forecast(hist, card=card, run=run, horizon_cycles=2)["cell_id"] is None
    assert forecast(hist, card=card, run=run, horizon_cycles=2,
                    cell_id="fileStem")["cell_id"] == "fileStem"
    assert forecast(hist.assign(cell_id="X7"), card=card, run=run,
                    horizon_cycles=2)["cell_id"] == "X7"


def test_end_of_life_reports_reached_quantiles_and_censors_the_unreached(loaded):
    import dataclasses

    card, _ = loaded
    card = dataclasses.replace(card, conformal={}, history_weighting={})
    hist = _cell(40)
    # a history still at its reference level: the model's median at the last observed cycle
    # (1.0) matches the cell's level, so the median is not moved (ml.median_anchor)
    hist = hist.assign(discharge_capacity_ah=float(hist["discharge_capacity_ah"].iloc[:3].max()))
    last = int(hist["cycle_index"].iloc[-1])
    run = _fake_run(lambda i: 1.0 - 0.01 * i)
    # quantiles of (c-0.05, c, c+0.05) at 5/50/95 %: c-0.045, c, c+0.045; threshold 0.8:
    # p05 curve crosses at i = 16, p50 at i = 21, p95 at i = 25
    out = forecast(hist, card=card, run=run, horizon_cycles=22, eol_fraction=0.8)
    eol = out["end_of_life"]
    assert eol["cycle_index"] == {"p05": last + 16, "p50": last + 21, "p95": last + 22}
    assert eol["censored"] == {"p05": False, "p50": False, "p95": True}
    rows = {r["cycle_index"]: r for r in out["forecast"]}
    assert eol["test_time_second"]["p95"] == rows[last + 22]["test_time_second"]
    # this history's own √t + N trend stays at 1.0: the band's upper side reaches that trend
    # (ml.uncertainty.trend_check), so p95 stays unreached over 30 cycles as well
    full = forecast(hist, card=card, run=run, horizon_cycles=30, eol_fraction=0.8)["end_of_life"]
    assert full["cycle_index"] == {"p05": last + 16, "p50": last + 21, "p95": last + 30}
    assert full["censored"] == {"p05": False, "p50": False, "p95": True}
    # a history falling 0.01 per cycle (retention 0.61 at cycle 40) and a model that continues
    # it: the trend agrees, every quantile is reached. 0.61 - 0.01 i -/+ 0.045 < 0.452 at
    # i = 12 (p05), 16 (p50), 21 (p95)
    ref = float(hist["discharge_capacity_ah"].iloc[:3].max())
    linear = hist.assign(discharge_capacity_ah=ref * (1.0 - 0.01 * (hist["cycle_index"] - 1)))
    run = _fake_run(lambda i: 0.61 - 0.01 * i)
    full = forecast(linear, card=card, run=run, horizon_cycles=30,
                    eol_fraction=0.452)["end_of_life"]
    assert full["cycle_index"] == {"p05": last + 12, "p50": last + 16, "p95": last + 21}
    assert not any(full["censored"].values())
    run = _fake_run(lambda i: 1.0 - 0.01 * i)
    assert forecast(hist, card=card, run=run, horizon_cycles=20,
                    eol_fraction=0.8)["end_of_life"] is None


def test_non_finite_model_output_is_a_422(loaded):
    from data_registry.errors import FadecastError

    card, _ = loaded
    run = _fake_run(lambda i: np.nan if i == 3 else 0.99)
    with pytest.raises(FadecastError) as err:
        forecast(_cell(40), card=card, run=run, horizon_cycles=5)
    assert err.value.code == "forecast_not_finite"
    assert err.value.http_status == 422
    assert "capacity_fraction" in str(err.value)
