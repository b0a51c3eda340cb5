"""The per-cell trend check of the capacity band (ml.uncertainty.sqrt_trend_fit / trend_check) and
the leave-one-source-out calibration check (ml.evaluation.loso) on hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from data_registry.errors import FadecastError
from ml.uncertainty import (Z90, compose_band, physical_band, sqrt_trend_fit, trend_check,
                            trend_floor)


def test_sqrt_trend_fit_recovers_an_exact_trend():
    n = np.arange(1, 11, dtype=float)
    t = 2.0 * n
    r = 1.0 - 0.01 * np.sqrt(t) - 0.001 * n
    c0, a, b = sqrt_trend_fit(n, t, r)
    assert (c0, a, b) == pytest.approx((1.0, 0.01, 0.001), abs=1e-9)


def test_sqrt_trend_fit_keeps_fade_coefficients_non_negative():
    # a history that RISES: no a, b >= 0 fits a rise, the best bounded fit is its mean
    n = np.array([1.0, 2.0, 3.0, 4.0])
    r = np.array([0.98, 1.0, 0.98, 1.0])
    assert sqrt_trend_fit(n, n, r) == pytest.approx((0.99, 0.0, 0.0))
    assert sqrt_trend_fit(n[:2], n[:2], r[:2]) is None  # fewer than 3 rows


def test_trend_check_widens_toward_the_trend_only():
    # exact trend r = 1 - 0.01 sqrt(t) - 0.001 N, t = 2N; at N = 20, t = 40 the trend says
    # 1 - 0.01 * sqrt(40) - 0.02 = 0.916754; the model's median 0.95 lies 0.033246 above it
    n = np.arange(1, 11, dtype=float)
    r = 1.0 - 0.01 * np.sqrt(2 * n) - 0.001 * n
    q, floor = trend_check(np.array([[0.9, 0.95, 1.0]]), np.array([0.01]), n, 2 * n, r,
                           np.array([20.0]), np.array([40.0]))
    gap = 0.95 - (1.0 - 0.01 * math.sqrt(40.0) - 0.02)
    assert q[0, 0] == pytest.approx(0.95 - math.sqrt(0.05 ** 2 + gap ** 2))
    assert q[0, 1] == 0.95 and q[0, 2] == 1.0  # median kept, the far side unchanged
    assert floor[0] == pytest.approx(0.01)  # an exact trend has no residual scatter


def test_trend_check_adds_the_fit_scatter_to_the_floor_and_reaches_a_higher_trend():
    # the bounded fit of 0.98, 1.0, 0.98, 1.0 is the constant 0.99, rms residual 0.01
    n = np.array([1.0, 2.0, 3.0, 4.0])
    r = np.array([0.98, 1.0, 0.98, 1.0])
    q, floor = trend_check(np.array([[0.94, 0.95, 0.97]]), np.array([0.005]), n, n, r,
                           np.array([8.0]), np.array([8.0]))
    assert floor[0] == pytest.approx(math.sqrt(0.005 ** 2 + (Z90 * 0.01) ** 2))
    assert q[0, 2] == pytest.approx(0.95 + math.sqrt(0.02 ** 2 + 0.04 ** 2))
    assert q[0, 0] == 0.94


def test_band_is_never_zero_width_even_for_a_spread_free_model_on_a_constant_history():
    n = np.arange(1, 31, dtype=float)
    r = np.ones_like(n)
    fut = np.arange(31, 61, dtype=float)
    flat = np.ones((30, 3))
    q, floor = trend_check(flat, trend_floor(n, r, fut), n, 3 * n, r, fut, 3 * fut)
    band = compose_band(q, floor, scale=-1.0)  # a conformal scale that kills the model spread
    assert np.all(band[:, 2] - band[:, 0] > 0.0)
    assert np.all(floor > 0.0)


def _points(spec):
    """Rows of ml.evaluation.coverage.band_points: median 1, model half-width 0.1, no floor,
    truth at 1 - d (score d / 0.1 - 1)."""
    rows = [{"source": s, "cell_id": c, "p50": 1.0, "model_lo": 0.1, "model_hi": 0.1,
             "floor": 0.0, "widening": 1.0, "truth": 1.0 - d} for s, c, d in spec]
    return pd.DataFrame(rows)


def test_point_scores_are_the_scale_that_just_covers():
    from ml.evaluation.loso import point_scores, scaled_band

    p = _points([("A", "a1", 0.1), ("A", "a2", 0.25)])
    s = point_scores(p)
    assert s == pytest.approx([0.0, 1.5])
    band = scaled_band(p.iloc[[1]], float(s[1]))
    assert band[0, 0] == pytest.approx(0.75)


def test_loso_scale_never_uses_the_held_out_source():
    from ml.evaluation.loso import loso_scales

    # scores: A 0.0 and 1.0 (cells weigh 1/4 each), B 2.0 (1/2), C 9.0
    spec = [("A", "a1", 0.1), ("A", "a2", 0.2), ("B", "b1", 0.3), ("C", "c1", 1.0)]
    scales = loso_scales(_points(spec), ["A", "C"])
    # held-out C: A and B weigh half each; the 90 % weighted quantile is B's 2.0
    assert scales["C"] == pytest.approx(2.0)
    # held-out A: B and C half each -> C's 9.0
    assert scales["A"] == pytest.approx(9.0)
    # C's own points can be anything: its scale does not move (it would if they calibrated it)
    moved = loso_scales(_points(spec[:3] + [("C", "c1", 5.0)]), ["C"])
    assert moved["C"] == scales["C"]


def test_calibration_cells_never_include_scored_cells(shared_data, monkeypatch):
    from ml.evaluation import loso, suites

    test, calib, _ = suites.trajectory_cells("pybamm-dev")
    kept = loso.calibration_cells("pybamm-dev")
    assert {c.cell_id for c in kept}.isdisjoint({c.cell_id for c in test})
    # the validation cells that chose the epoch and champion are dropped (half of the val part)
    assert 0 < len(kept) < len(calib)
    # a suite whose calibration cells overlapped its test cells is refused, never used
    monkeypatch.setattr(suites, "trajectory_cells", lambda name, root=None: (test, test, []))
    with pytest.raises(FadecastError) as err:
        loso.calibration_cells("nasa-pcoe")
    assert err.value.code == "calibration_leak"


def test_diagnose_tells_bias_from_narrowness():
    from ml.evaluation.coverage import diagnose

    base = {"source": "S", "p05": 0.9, "p50": 1.0, "p95": 1.1, "model_lo": 0.1,
            "model_hi": 0.1, "floor": 0.01, "scale": 0.0, "widening": 1.0, "in_domain": True,
            "reasons": "", "naive_p50": 0.98, "naive_resid_rms": 0.002}
    truths = [0.85, 0.8, 0.95, 1.05]  # two below the band, two inside, none above
    rows = [{**base, "cell_id": f"c{i}", "cycles_ahead": i + 1, "third": third, "truth": y}
            for i, (y, third) in enumerate(zip(truths, ("near", "near", "mid", "far")))]
    d = diagnose(pd.DataFrame(rows))
    assert d["coverage_pct"] == 50.0
    assert (d["miss_below_pct"], d["miss_above_pct"]) == (50.0, 0.0)
    assert d["bias_pct"] == pytest.approx(100 * np.mean(np.array(truths) - 1.0))
    # |error| / half-width on the truth's side: 1.5, 2.0, 0.5, 0.5 -> median 1.0
    assert d["err_over_halfwidth_median"] == pytest.approx(1.0)
    assert d["disagreement_pct"] == pytest.approx(2.0)
    assert d["coverage_near_pct"] == 0.0 and d["coverage_far_pct"] == 100.0


def test_the_band_stays_where_a_capacity_can_be():
    q = np.array([[-0.2, 0.5, 5.8], [0.9, 1.2, 1.3], [0.97, 0.98, 0.99]])
    got = physical_band(q, np.array([1.0, 0.97, np.nan, 0.95]), np.array([0.05, 0.4, 0.9]))
    # below 0 → 0; above the history's best (1.0) + its one-step allowance (0.05) → 1.05
    assert got.tolist() == [[0.0, 0.5, 1.05], [0.9, 1.05, 1.05], [0.97, 0.98, 0.99]]
    # no finite history: only the clip at 0
    assert physical_band(q, np.array([np.nan]), np.array([0.05]))[0, 2] == 5.8


def test_a_short_history_forecast_far_ahead_is_wide_downwards_only():
    from pathlib import Path

    from serving.runtime import load_forecaster

    # cellpy's maccor_001.txt per-cycle table (Ah): a first partial discharge, then 4 cycles,
    # the last 17 % down; forecast 50 cycles ahead (12x the history)
    frame = pd.DataFrame({"cycle_index": [0, 1, 2, 3, 4],
                          "test_time_second": [11797.15, 76820.14, 115397.14, 150292.15,
                                               183171.57],
                          "discharge_capacity_ah": [0.63781, 4.54403, 4.35404, 4.28452, 3.54280],
                          "charge_capacity_ah": [0.0, 4.52259, 4.51654, 4.32611, 4.25842]})
    model = load_forecaster(str(Path(__file__).resolve().parents[1] / "models" / "production"))
    doc = model.forecast(frame, horizon_cycles=50)
    top = max(row["capacity_ah"]["p95"] for row in doc["forecast"])
    floor0 = doc["uncertainty"]["floor_fraction_first"]
    # before: p95 reached 26.5 Ah (5.8x the reference) at the horizon's end; now the history's
    # best (4.544 Ah, the reference) plus its one-step allowance
    assert doc["history"]["dropped"] == {"partial cycle": 1}
    assert top == pytest.approx(4.54403 * (1.0 + floor0), rel=1e-9)
    assert doc["forecast"][-1]["capacity_ah"]["p05"] == 0.0
