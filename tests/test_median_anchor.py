"""Level anchoring of the forecast median (ml.median_anchor) on hand-computed histories, and in
the served forecast (ml.inference.forecast) with a stand-in network."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.inference import forecast
from ml.median_anchor import (ACCELERATING, ROBUST_FIT, accelerating_level, anchor_median,
                              current_level, robust_trend_fit, weighted_trend_fit)
from ml.uncertainty import sqrt_trend_fit


def test_weighted_fit_with_unit_weights_is_the_plain_bounded_fit():
    n = np.arange(1, 11, dtype=float)
    t = 2.0 * n
    r = 1.0 - 0.01 * np.sqrt(t) - 0.001 * n
    assert weighted_trend_fit(n, t, r, np.ones_like(r)) == pytest.approx((1.0, 0.01, 0.001),
                                                                          abs=1e-9)
    rising = np.array([0.98, 1.0, 0.98, 1.0])  # no a, b >= 0 fits a rise: the mean
    x = np.arange(1, 5, dtype=float)
    assert weighted_trend_fit(x, x, rising, np.ones(4)) == pytest.approx(
        sqrt_trend_fit(x, x, rising))
    # a zero weight drops a row: the three other rows of an exact line give the line back
    bent = 1.0 - 0.002 * x
    bent[0] = 0.5
    assert weighted_trend_fit(x, x, bent, np.array([0.0, 1.0, 1.0, 1.0])) == pytest.approx(
        (1.0, 0.0, 0.002), abs=1e-9)


def test_level_ignores_a_formation_first_cycle_and_a_regeneration_spike():
    # an exact line r = 1 - 0.002 N (N = 1..20, t = 3 N) with a low first cycle (0.5, as the
    # NASA cells' first discharge) and a +0.05 jump at the last cycle (capacity regeneration
    # after a rest): the line's value at N = 20 is 0.96; the last point says 1.01 and the
    # ordinary least-squares fit says 0.9566
    n = np.arange(1, 21, dtype=float)
    r = 1.0 - 0.002 * n
    r[0], r[-1] = 0.5, r[-1] + 0.05
    # (5 reweightings leave it 0.00024 above the line; 0.96000 after 20)
    assert current_level(n, 3 * n, r) == pytest.approx(0.96, abs=5e-4)
    c0, a, b = sqrt_trend_fit(n, 3 * n, r)
    assert c0 - a * np.sqrt(60.0) - b * 20.0 == pytest.approx(0.9566, abs=1e-4)


def test_anchor_moves_a_model_that_misses_the_current_level():
    # exact line r = 1 - 0.001 N, N = 1..10: level at N = 10 is 0.99; a network whose median
    # at that cycle is 1.02 is 0.03 too high, so every quantile moves down by 0.03
    n = np.arange(1, 11, dtype=float)
    r = 1.0 - 0.001 * n
    q = np.array([[0.97, 1.00, 1.02], [0.95, 0.99, 1.01]])
    out, offset, _ = anchor_median(q, 1.02, n, 2 * n, r)
    assert offset == pytest.approx(-0.03, abs=1e-9)
    assert out == pytest.approx(q - 0.03, abs=1e-9)


def test_anchor_keeps_a_model_that_matches_the_history():
    n = np.arange(1, 11, dtype=float)
    r = 1.0 - 0.001 * n
    q = np.array([[0.97, 0.985, 0.99]])
    out, offset, _ = anchor_median(q, 0.99, n, 2 * n, r)
    assert offset == pytest.approx(0.0, abs=1e-9)
    assert out == pytest.approx(q, abs=1e-9)


def test_anchor_leaves_unfittable_histories_alone():
    q = np.array([[0.9, 0.95, 1.0]])
    out, offset, _ = anchor_median(q, 0.97, np.array([1.0, 2.0]), np.array([1.0, 2.0]),
                                np.array([1.0, 0.99]))
    assert offset == 0.0 and np.array_equal(out, q)
    assert robust_trend_fit([1.0, 2.0], [1.0, 2.0], [1.0, np.nan]) is None
    out, offset, _ = anchor_median(q, float("nan"), np.arange(1.0, 6.0), np.arange(1.0, 6.0),
                                np.ones(5))
    assert offset == 0.0 and np.array_equal(out, q)


def _flat_network(level: float):
    """A stand-in network: every sample of every query says ``level``; no loss split."""
    def run(inputs: dict) -> dict:
        h = inputs["query_cycle"].shape[1]
        return {"capacity_fraction": np.full((1, h, 16), level, dtype=np.float32),
                "loss_time_fraction": np.zeros((1, h, 16), dtype=np.float32),
                "loss_cycle_fraction": np.full((1, h, 16), 1.0 - level, dtype=np.float32)}
    return run


def test_served_median_starts_from_the_cells_level_not_the_networks(shipped_model):
    # a cell that has faded linearly from 2.0 Ah to 1.8 Ah over 101 cycles (3 h each); a
    # network that says 1.0 (no fade) everywhere: the served median starts from the cell's
    # level 0.9 of the reference (1.8 Ah) — the network's shape (flat) from there on
    card, _ = shipped_model
    n = np.arange(1, 102, dtype=float)
    hist = pd.DataFrame({"cycle_index": n, "test_time_second": n * 3 * 3600.0,
                         "discharge_capacity_ah": 2.0 * (1.0 - 0.001 * (n - 1))})
    out = forecast(hist, card=card, run=_flat_network(1.0), horizon_cycles=20)
    p50 = np.array([row["capacity_ah"]["p50"] for row in out["forecast"]])
    assert p50 == pytest.approx(np.full(20, 1.8), abs=1e-6)
    assert out["uncertainty"]["level_basis"] == ROBUST_FIT
    # a cell whose fade accelerates (2.0 Ah · (1 − 1e-4 N) to N = 81, then 5e-4 per cycle):
    # its level is the latest 20 rows' line at N = 101, 1 − 0.0081 − 0.0100 = 0.9819 of the
    # reference (1.9638 Ah), and the answer says why
    bent = hist.assign(discharge_capacity_ah=2.0 * np.where(
        n <= 81, 1.0 - 1e-4 * n, 1.0 - 1e-4 * 81 - 5e-4 * (n - 81)))
    out = forecast(bent, card=card, run=_flat_network(1.0), horizon_cycles=20,
                   nominal_capacity_ah=2.0)
    assert out["forecast"][0]["capacity_ah"]["p50"] == pytest.approx(1.9638, abs=1e-9)
    assert out["uncertainty"]["level_basis"] == ACCELERATING
    # the same network on a cell whose level it matches is left alone
    flat = hist.assign(discharge_capacity_ah=2.0)
    out = forecast(flat, card=card, run=_flat_network(1.0), horizon_cycles=20)
    assert [row["capacity_ah"]["p50"] for row in out["forecast"]] == pytest.approx([2.0] * 20)


def test_calibration_scores_the_band_as_served_with_the_anchored_median():
    # one band, one calibration: ml.training.calibration scores the band after the same
    # anchoring as forecast(); a flat network (1.0, ±0.02) on a fading synthetic cell
    from ml.synthetic import make_cell
    from ml.training.calibration import CUT_FRACTIONS, _cut_outputs, _points
    from ml.training.dataset import cut_windows, fit_scaler, prepare_cells
    from ml.uncertainty import conformal_score, history_noise, trend_check, trend_floor

    cells = prepare_cells([make_cell("c", n_cycles=80, seed=3)])
    scaler = fit_scaler(cells)

    def predict(batch):
        b, h = batch["query_cycle"].shape
        cap = np.broadcast_to(np.array([0.98, 1.0, 1.02], dtype=np.float32), (b, h, 3))
        zero = np.zeros((b, h, 3), dtype=np.float32)
        return {"capacity_fraction": cap, "loss_time_fraction": zero,
                "loss_cycle_fraction": zero + 0.01}

    scores = _points(_cut_outputs(predict, cells, scaler, max_history=64), 0.0)[0]
    w = cut_windows(cells, fraction=CUT_FRACTIONS[0], scaler=scaler, max_history=64,
                    planned=True)[0]
    qc, qh = w["query_cycle"][1:], w["query_hour"][1:]
    raw = np.tile([0.98 + 0.002, 1.0, 1.02 - 0.002], (len(qc), 1))  # 5/50/95 % of 3 samples
    floor = trend_floor(w["hist_cycle"], w["hist_retention"], qc,
                        noise=history_noise(w["hist_retention"]))
    anchored, offset, _ = anchor_median(raw, 1.0, w["hist_cycle"], w["hist_hour"],
                                     w["hist_retention"])
    assert offset < -0.005  # the cell has faded: the flat network sits above its level
    q, f = trend_check(anchored, floor, w["hist_cycle"], w["hist_hour"], w["hist_retention"],
                       qc, qh)
    expected = conformal_score(q, f, w["target_capacity"][1:])
    # (float32 model outputs: the scores agree to ~1e-5)
    assert scores[:len(expected)] == pytest.approx(expected, rel=1e-3, abs=1e-5)
    q0, f0 = trend_check(raw, floor, w["hist_cycle"], w["hist_hour"], w["hist_retention"],
                         qc, qh)
    unanchored = conformal_score(q0, f0, w["target_capacity"][1:])
    assert np.max(np.abs(unanchored - expected)) > 0.1


def test_a_fade_that_accelerates_is_levelled_on_its_latest_rows():
    # r = 1 - 1e-4 N to N = 80, then 5e-4 per cycle (N = 1..100, t = 2 N): the fade rate grows
    # five-fold, which no √t + N curve can follow. Windows of 20 rows: N 61-80 (slope -1e-4)
    # and N 81-100 (-5e-4), both exact lines; the latest one's value at N = 100 is
    # 1 - 0.008 - 0.010 = 0.982, which the data say too
    n = np.arange(1, 101, dtype=float)
    r = np.where(n <= 80, 1.0 - 1e-4 * n, 1.0 - 1e-4 * 80 - 5e-4 * (n - 80))
    assert accelerating_level(n, r) == pytest.approx(0.982, abs=1e-12)
    assert current_level(n, 2 * n, r) == pytest.approx(0.982, abs=1e-12)
    # the robust √t + N fit alone ends above the latest measurements (0.9885)
    c0, a, b = robust_trend_fit(n, 2 * n, r)
    assert c0 - a * np.sqrt(200.0) - b * 100.0 > 0.988
    # a network whose median sits at that fit's end is moved down onto the latest rows' level
    q = np.array([[0.97, 0.985, 0.99]])
    _, offset, basis = anchor_median(q, 0.9885, n, 2 * n, r)
    assert offset == pytest.approx(0.982 - 0.9885, abs=1e-12)
    assert basis == ACCELERATING
    # two odd low rows at the end of a steady fade do not make it "accelerating": the window
    # lines are Huber-weighted
    steady = 1.0 - 2e-4 * n + np.random.default_rng(3).normal(0, 5e-4, n.size)
    steady[-2:] -= 0.02
    assert accelerating_level(n, steady) is None
    assert anchor_median(q, 0.99, n, 2 * n, steady)[2] == ROBUST_FIT


def test_a_decelerating_or_steady_fade_keeps_the_robust_trend_level():
    n = np.arange(1, 201, dtype=float)
    sqrt_fade = 1.0 - 0.01 * np.sqrt(2 * n)  # the fade rate falls: no acceleration
    assert accelerating_level(n, sqrt_fade) is None
    assert current_level(n, 2 * n, sqrt_fade) == pytest.approx(1.0 - 0.2, abs=1e-6)
    assert accelerating_level(n[:19], 1.0 - 1e-6 * n[:19] ** 2) is None  # < 2 windows of rows
    # straight fades with noise: the two-standard-error test fires on about 2.3 % of them
    # (one-sided normal tail); on 400 seeded draws it must stay under 5 %
    rng = np.random.default_rng(7)
    fired = sum(accelerating_level(n, 1.0 - 5e-4 * n + rng.normal(0, 2e-3, n.size)) is not None
                for _ in range(400))
    assert fired / 400 < 0.05
    # ... and on every draw whose latest rows fall twice as fast, it fires
    bent = np.where(n <= 160, 1.0 - 5e-4 * n, 1.0 - 5e-4 * 160 - 1e-3 * (n - 160))
    assert all(accelerating_level(n, bent + rng.normal(0, 2e-3, n.size)) is not None
               for _ in range(50))
