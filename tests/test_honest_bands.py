"""Honest uncertainty (ml.uncertainty), the domain judgement (ml.domain), the cycle-life head
(ml.models.cycle_life_head) on hand-built cases, and the served forecast/advice carrying them."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.domain import judge_domain, request_conditions, same_chemistry
from ml.models.cycle_life_head import apply_knee, eol_draws, select_head
from ml.uncertainty import (QUANTISATION_FRACTION, Z90, compose_band, conformal_score,
                            history_noise, identifiability_weight, share_band, trend_floor)

DOMAIN = {"hours_per_cycle": [3.15, 300.0], "c_rate": [0.1, 1.0],
          "temperature_celsius": [15.0, 35.0], "reference_capacity_ah": [1.0, 5.0],
          "history_cycles": [16.0, 200.0], "cycle_index": [1.0, 250.0],
          "chemistry": ["LFP/graphite"], "sources": ["synthetic"]}


def _table(n=40, hours=4.0, c_rate=0.5, temp=25.0, ref=2.0):
    cyc = np.arange(1, n + 1, dtype=float)
    return pd.DataFrame({"cycle_index": cyc, "cycle_duration_hour": hours,
                         "c_rate": c_rate, "temperature_celsius": temp,
                         "reference_capacity_ah": ref, "retention": 1.0 - 0.001 * cyc})


# ---- noise, floor, band ----------------------------------------------------------------------

def test_history_noise_recovers_gaussian_scatter_around_a_trend():
    rng = np.random.default_rng(0)
    n = np.arange(4000)
    r = 1.0 - 2e-4 * n + rng.normal(0.0, 0.003, n.size)
    assert history_noise(r) == pytest.approx(0.003, rel=0.08)


def test_history_noise_of_a_constant_history_is_the_reporting_resolution():
    assert history_noise(np.ones(30)) == QUANTISATION_FRACTION
    # steps of 0.01 only: the smallest step / sqrt(12) (a rounding error's sd)
    assert history_noise(np.r_[np.ones(10), np.full(10, 0.99)]) == pytest.approx(
        0.01 / math.sqrt(12))


def test_trend_floor_is_the_prediction_interval_of_a_noisy_line():
    # cycles 0, 1, 2 (mean 1, Sxx 2), scatter sd 0.01, asked at cycle 4
    n, r = np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.9, 1.0])
    want = Z90 * 0.01 * math.sqrt(1 + 1 / 3 + (4.0 - 1.0) ** 2 / 2.0)
    got = trend_floor(n, r, np.array([4.0]), noise=0.01)
    assert got[0] == pytest.approx(want)
    # farther ahead -> wider; the default sigma is the history's own scatter
    assert trend_floor(n, r, np.array([10.0]), noise=0.01)[0] > got[0]
    assert trend_floor(n, r, np.array([4.0]))[0] == pytest.approx(
        want / 0.01 * history_noise(r))


def test_compose_band_adds_model_spread_and_floor_in_quadrature():
    q = np.array([[0.9, 1.0, 1.05]])
    out = compose_band(q, np.array([0.04]), scale=0.0)
    assert out[0, 0] == pytest.approx(1.0 - math.sqrt(0.1 ** 2 + 0.04 ** 2))
    assert out[0, 2] == pytest.approx(1.0 + math.sqrt(0.05 ** 2 + 0.04 ** 2))
    # a model with NO spread still gets the floor: never a zero-width band
    flat = compose_band(np.array([[1.0, 1.0, 1.0]]), np.array([0.01]), scale=-1.0)
    assert flat[0, 2] - flat[0, 0] == pytest.approx(0.02)
    # widening (out of domain) scales the model part only
    wide = compose_band(q, np.array([0.0]), scale=0.0, widening=2.0)
    assert wide[0, 0] == pytest.approx(0.8) and wide[0, 2] == pytest.approx(1.1)


def test_conformal_score_is_the_scale_that_just_covers_the_point():
    q = np.array([[0.9, 1.0, 1.05], [0.9, 1.0, 1.05]])
    floor = np.array([0.02, 0.02])
    y = np.array([0.7, 1.2])
    s = conformal_score(q, floor, y)
    band = compose_band(q, floor, 0.0)
    for i in range(2):
        edge = compose_band(q[i:i + 1], floor[i:i + 1], float(s[i]))[0]
        assert min(abs(edge[0] - y[i]), abs(edge[2] - y[i])) < 1e-9
    # a point the floor alone covers scores -1 (any scale covers it)
    assert conformal_score(q[:1], np.array([0.5]), np.array([0.8]))[0] == -1.0
    assert band.shape == q.shape


def test_time_share_is_unknown_before_any_fade_and_model_led_after():
    flat = np.full(50, 1.0)
    assert identifiability_weight(flat, 0.001) == 1.0
    q = share_band(np.full(32, 0.0), 1.0)  # a model saying 0.00 confidently
    assert q[0] == pytest.approx(0.05, abs=1e-6) and q[2] == pytest.approx(0.95, abs=1e-6)
    faded = 1.0 - 0.002 * np.arange(50)  # 10 % lost, noise 0.001: clearly measured
    assert identifiability_weight(faded, 0.001) == 0.0
    q = share_band(np.full(32, 0.3), 0.0)
    assert q[0] == pytest.approx(0.3) and q[2] == pytest.approx(0.3)
    # half unknown: mixture of a point at 0.3 and U(0, 1): p05 = 0.1, p95 = 0.9
    half = share_band(np.full(32, 0.3), 0.5)
    assert half[0] == pytest.approx(0.1) and half[2] == pytest.approx(0.9)  # by hand


# ---- domain ------------------------------------------------------------------------------------

def test_domain_judges_every_conditioning_input():
    ok = judge_domain(request_conditions(_table(), planned_hours_per_cycle=4.0,
                                         chemistry="LFP"), DOMAIN)
    assert ok["in_domain"] and ok["reasons"] == []
    assert {"hours_per_cycle", "c_rate", "temperature_celsius", "reference_capacity_ah",
            "chemistry", "history_cycles"} <= set(ok["checked"])
    # 1 h per cycle against a 3.15-300 h training range: OUT (a linear 5 % slack said in)
    fast = judge_domain(request_conditions(_table(), planned_hours_per_cycle=1.0), DOMAIN)
    assert not fast["in_domain"] and "planned hours per cycle 1 h below" in fast["reasons"][0]
    cases = {"C-rate": _table(c_rate=3.0), "temperature": _table(temp=60.0),
             "reference capacity": _table(ref=50.0), "shorter than any trained": _table(n=5)}
    for word, table in cases.items():
        got = judge_domain(request_conditions(table, planned_hours_per_cycle=4.0), DOMAIN)
        assert not got["in_domain"] and any(word in r for r in got["reasons"]), (word, got)
    nmc = judge_domain(request_conditions(_table(), planned_hours_per_cycle=4.0,
                                          chemistry="NMC811"), DOMAIN)
    assert nmc["reasons"] == ["chemistry 'NMC811' not among the trained ['LFP/graphite']"]
    assert same_chemistry("lfp", "LFP/graphite") and not same_chemistry("LCO", "LFP/graphite")
    assert not judge_domain({}, {})["in_domain"]  # no recorded domain: never "in"


# ---- cycle-life head ---------------------------------------------------------------------------

HEAD = {"heads": {"delta_q": {"features": ["log10_delta_q_v_variance"], "needs_nominal": False,
                              "mean": [-4.0], "std": [0.5], "coef": [-0.2],
                              "intercept": 2.8, "residual_sd_log10": 0.1}},
        "knee_exponent": 3.0, "domain": {"hours_per_cycle": [0.5, 1.0],
                                         "chemistry": "LFP/graphite"}}


def test_head_prediction_gates_and_truncation():
    got = select_head(HEAD, {"log10_delta_q_v_variance": -4.5}, nominal_given=False,
                      hours_per_cycle=0.7)
    assert got[0] == "delta_q" and got[1] == pytest.approx(2.8 + 0.2) and got[2] == 0.1
    assert select_head(HEAD, {"log10_delta_q_v_variance": -4.5}, nominal_given=False,
                       hours_per_cycle=5.0) is None  # pace outside the head's cells
    assert select_head(HEAD, {"log10_delta_q_v_variance": -4.5}, nominal_given=False,
                       hours_per_cycle=0.7, chemistry="NMC") is None
    assert select_head(HEAD, {"log10_delta_q_v_variance": -9.0}, nominal_given=False,
                       hours_per_cycle=0.7) is None  # 10 sd away from its training cells
    assert select_head(HEAD, {}, nominal_given=False, hours_per_cycle=0.7) is None
    # draws: median 10^3 = 1000 cycles; a cell alive at cycle 1200 only gets draws beyond it
    d = eol_draws(3.0, 0.1, 100.0, 64)
    assert np.median(d) == pytest.approx(1000.0, rel=0.03)
    assert (eol_draws(3.0, 0.1, 1200.0, 64) > 1200.0).all()


def test_knee_bends_each_sample_through_the_threshold_at_its_draw():
    fut = np.arange(101.0, 1001.0)
    cap = np.full((fut.size, 2), 0.98)  # a flat trajectory: "never" without the head
    new, extra = apply_knee(cap, fut, 100.0, np.array([400.0, 800.0]), exponent=3.0)
    assert np.interp(400.0, fut, new[:, 0]) == pytest.approx(0.8)
    assert np.interp(800.0, fut, new[:, 1]) == pytest.approx(0.8)
    assert (np.diff(new[:, 0]) <= 0).all() and (extra >= 0).all()
    assert new[0, 0] > 0.979  # the knee is late, not an immediate drop


# ---- the served forecast and advice ------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_model(tmp_path_factory):
    from ml.training.quick import train_quick_model

    return train_quick_model(tmp_path_factory.getbasetemp() / "quick-model", n_cells=16,
                             epochs=4, reuse=True)


def test_forecast_of_a_flat_history_has_a_band_and_an_unknown_share(quick_model):
    from ml.inference import forecast, load_model_dir

    card, run = load_model_dir(quick_model)
    n = np.arange(1, 41)
    flat = pd.DataFrame({"cycle_index": n, "test_time_second": 5 * 3600.0 * n,
                         "discharge_capacity_ah": np.full(n.size, 2.0)})
    doc = forecast(flat, card=card, run=run, horizon_cycles=60)
    widths = [r["capacity_ah"]["p95"] - r["capacity_ah"]["p05"] for r in doc["forecast"]]
    assert min(widths) > 0.0
    share = doc["attribution"]["time_share"]
    assert share["p05"] <= 0.06 and share["p95"] >= 0.94
    assert doc["attribution"]["identifiable"] is False
    assert doc["domain"]["in_domain"] and doc["domain"]["widened"] is None
    # the same cell asked at 0.5 h per cycle: outside the trained paces, and a wider band
    fast = forecast(flat, card=card, run=run, horizon_cycles=60, hours_per_cycle=0.5)
    assert not fast["domain"]["in_domain"] and fast["domain"]["widened"]
    assert any("planned hours per cycle 0.5 h" in r for r in fast["domain"]["reasons"])


def test_advice_carries_the_domain(quick_model):
    from serving.predict import advice_document
    from serving.runtime import load_forecaster

    model = load_forecaster(str(quick_model))
    n = np.arange(1, 61)
    frame = pd.DataFrame({"cycle_index": n, "test_time_second": 3600.0 * n,
                          "discharge_capacity_ah": 2.0 - 0.002 * n})
    body = advice_document(model, frame, planned_cycles=300, tolerance_cycles=20)
    assert body["domain"]["in_domain"] is False and body["checks"]["in_domain"] is False
    assert any("observed hours per cycle 1 h" in r for r in body["domain"]["reasons"])
    assert body["decision"] == "continue" and "training domain" in body["reason"]
