"""Baselines: exact recovery on noise-free data built by hand, bounds, sklearn conventions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_registry.errors import FadecastError, ValidationError
from ml.models.baselines import (ElasticNetCycleLife, NaiveSqrtBaseline, PersistenceBaseline,
                                 PowerLawBaseline, early_cycle_features, retention_history)

N = np.arange(1.0, 61.0)
# hours: 8 h cycles plus a rest of 0, 4 or 12 h in turn -> t is NOT proportional to N
T = np.cumsum(8.0 + np.array([0.0, 4.0, 12.0])[N.astype(int) % 3])


def test_naive_sqrt_recovers_a_noise_free_cell():
    q = 0.99 - 0.01 * np.sqrt(T) - 0.0005 * N
    m = NaiveSqrtBaseline().fit(N, T, q)
    assert (m.c0_, m.a_, m.b_) == pytest.approx((0.99, 0.01, 0.0005), rel=1e-7)
    t_last, n_last = T[-1], N[-1]
    share = 0.01 * np.sqrt(t_last) / (0.01 * np.sqrt(t_last) + 0.0005 * n_last)
    assert m.time_share() == pytest.approx(share, rel=1e-6)
    assert m.predict([100.0], [1600.0])[0] == pytest.approx(0.99 - 0.4 - 0.05, rel=1e-7)
    lt, lc = m.losses([100.0], [1600.0])
    assert (lt[0], lc[0]) == pytest.approx((0.4, 0.05), rel=1e-6)


def test_naive_sqrt_clips_a_negative_cycle_term_to_zero():
    q = 1.0 - 0.01 * np.sqrt(T) + 0.0002 * N  # capacity "gains" with cycles
    m = NaiveSqrtBaseline().fit(N, T, q)
    assert m.b_ == 0.0
    # with b fixed at 0 the fit is plain least squares on [1, -sqrt(t)]
    design = np.column_stack([np.ones_like(T), -np.sqrt(T)])
    c0, a = np.linalg.lstsq(design, q, rcond=None)[0]
    assert (m.c0_, m.a_) == pytest.approx((c0, a), rel=1e-6)
    assert m.time_share() == 1.0


def test_power_law_recovers_a_noise_free_cell():
    q = 1.0 - 0.003 * T**0.5 - 2e-5 * N**1.3
    m = PowerLawBaseline().fit(N, T, q)
    assert m.p_ == pytest.approx(0.5, abs=1e-3) and m.c_ == pytest.approx(1.3, abs=1e-2)
    assert m.a_ == pytest.approx(0.003, rel=1e-2) and m.b_ == pytest.approx(2e-5, rel=5e-2)
    np.testing.assert_allclose(m.predict(N, T), q, atol=1e-7)
    lt, lc = m.losses([N[-1]], [T[-1]])
    share = 0.003 * T[-1] ** 0.5 / (0.003 * T[-1] ** 0.5 + 2e-5 * N[-1] ** 1.3)
    assert m.time_share() == pytest.approx(share, abs=2e-3)


def test_persistence():
    q = np.linspace(1.0, 0.9, 60)
    assert PersistenceBaseline().fit(N, T, q).predict([70, 80], [900, 1000]).tolist() == [0.9, 0.9]
    m3 = PersistenceBaseline(last_k=3).fit(N, T, q)
    assert m3.level_ == pytest.approx(np.mean(q[-3:]))
    assert np.isnan(m3.time_share())
    with pytest.raises(FadecastError, match="'last_k' parameter of PersistenceBaseline must be"):
        PersistenceBaseline(last_k=0).fit(N, T, q)


def test_conventions_and_input_errors():
    m = NaiveSqrtBaseline()
    assert vars(m) == {}  # the constructor stores nothing learned
    with pytest.raises(FadecastError, match="not fitted"):
        m.predict([1], [1])
    with pytest.raises(ValidationError, match="too few cycles"):
        m.fit([1, 2], [1, 2], [1, 1])
    with pytest.raises(ValidationError, match="non-finite"):
        m.fit([1, 2, 3], [1, np.nan, 3], [1, 1, 1])
    with pytest.raises(ValidationError, match="one length"):
        m.fit([1, 2, 3], [1, 2], [1, 1, 1])


def test_fit_table_is_invariant_to_capacity_units():
    q_ah = 5.0 * (0.99 - 0.01 * np.sqrt(T) - 0.0005 * N)
    table = pd.DataFrame({"cycle_index": N, "test_time_second": T * 3600.0,
                          "discharge_capacity_ah": q_ah})
    milli = table.assign(discharge_capacity_ah=q_ah * 1000.0)
    a = NaiveSqrtBaseline().fit_table(table)
    b = NaiveSqrtBaseline().fit_table(milli)
    assert (a.c0_, a.a_, a.b_) == pytest.approx((b.c0_, b.a_, b.b_), rel=1e-9)
    assert a.reference_capacity_ah_ == pytest.approx(q_ah[:3].max())
    n, t, q, ref = retention_history(table, nominal_capacity_ah=5.0)
    assert ref == 5.0 and q[0] == pytest.approx(q_ah[0] / 5.0) and t[-1] == pytest.approx(T[-1])


def test_early_cycle_features_by_hand():
    n = np.arange(1, 101)
    cycles = pd.DataFrame({"cycle_index": n, "discharge_capacity_ah": 1.1 - 1e-4 * n})
    f = early_cycle_features(cycles, n_cycles=100)
    assert f["q2_ah"] == pytest.approx(1.0998)
    assert f["qmax_minus_q2_ah"] == pytest.approx(0.0, abs=1e-12)
    assert f["fade_slope_ah_per_cycle"] == pytest.approx(-1e-4)
    assert f["fade_intercept_ah"] == pytest.approx(1.1)
    assert f["qn_minus_q2_ah"] == pytest.approx(-1e-4 * 96)  # median of cycles 96-100 is 98
    assert f["late_fade_slope_ah_per_cycle"] == pytest.approx(-1e-4)
    assert f["log10_fade_rate"] == pytest.approx(-4.0)
    assert f["log10_late_fade_rate"] == pytest.approx(-4.0)
    assert f["log10_capacity_drop"] == pytest.approx(np.log10(0.0096))
    rising = early_cycle_features(cycles.assign(discharge_capacity_ah=1.0 + 1e-4 * n))
    assert rising["log10_fade_rate"] == -7.0 and rising["log10_capacity_drop"] == -5.0
    assert "log10_delta_q_v_variance" not in f
    dq = cycles.assign(delta_q_v_variance_ah2=np.where(n == 100, 1e-5, np.nan),
                       delta_q_v_minimum_ah=-0.01, delta_q_v_mean_ah=-0.001,
                       delta_q_v_skewness=-0.5)
    g = early_cycle_features(dq, n_cycles=100)
    assert g["log10_delta_q_v_variance"] == pytest.approx(-5.0)
    assert g["log10_abs_delta_q_v_minimum"] == pytest.approx(-2.0)
    assert g["log10_abs_delta_q_v_mean"] == pytest.approx(-3.0)
    assert g["delta_q_v_skewness"] == -0.5


def test_elastic_net_recovers_a_log_linear_law():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["x1", "x2", "noise"])
    y = 10 ** (3.0 + 0.2 * X["x1"] - 0.1 * X["x2"])
    m = ElasticNetCycleLife(features=("x1", "x2", "noise")).fit(X[:40], y[:40])
    pred = m.predict(X[40:])
    assert np.mean(np.abs(pred - y[40:]) / y[40:]) < 0.02
    assert abs(m.coef_["x1"]) > abs(m.coef_["noise"])
    with pytest.raises(ValidationError, match="column 'x1'.*non-finite"):
        ElasticNetCycleLife().fit(X.assign(x1=np.nan), y)
    with pytest.raises(FadecastError, match="not fitted"):
        ElasticNetCycleLife().predict(X)
