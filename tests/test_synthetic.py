"""ml.synthetic: cells with a KNOWN time/cycle split, checked against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from data_registry.errors import FadecastError
from ml.synthetic import make_cell, make_fleet

# c_rate 0.5: 2/0.5 h of current + 0.15/sqrt(0.5) h CV + 1 h of rests = 5.212132 h per cycle
HOURS_PER_CYCLE = 2.0 / 0.5 + 0.15 / np.sqrt(0.5) + 1.0


def test_truth_matches_hand_computed_power_laws():
    cell = make_cell("a", c_rate=0.5, time_scale=0.1, cycle_scale=0.05, n_cycles=50,
                     noise_frac=0.0)
    t = cell.truth.set_index("cycle_index")
    hours = 10 * HOURS_PER_CYCLE
    assert cell.cycles["test_time_second"].iloc[9] == pytest.approx(hours * 3600.0)
    assert t.loc[10, "loss_time_frac"] == pytest.approx(0.1 * np.sqrt(hours / 1000.0))
    assert t.loc[10, "loss_cycle_frac"] == pytest.approx(0.05 * 10 / 100.0)
    # noise-free capacity = nominal * (1 - time - cycle - rate loss 0.012 * c)
    q = cell.cycles["discharge_capacity_ah"].iloc[9]
    assert q == pytest.approx(5.0 * (1 - t.loc[10, "loss_time_frac"]
                                     - t.loc[10, "loss_cycle_frac"] - 0.006))


def test_same_seed_same_fleet_and_truth_is_monotone():
    a, b = make_fleet(4, seed=3), make_fleet(4, seed=3)
    c = make_fleet(4, seed=4)
    for x, y in zip(a, b):
        assert x.cycles.equals(y.cycles) and x.truth.equals(y.truth)
    assert not a[0].cycles["discharge_capacity_ah"].equals(c[0].cycles["discharge_capacity_ah"])
    for rec in a + c:
        assert (np.diff(rec.truth["loss_time_frac"]) >= 0).all()
        assert (np.diff(rec.truth["loss_cycle_frac"]) >= 0).all()
        assert (np.diff(rec.cycles["test_time_second"]) > 0).all()


def test_onset_holds_then_fades():
    cell = make_cell("b", time_onset_hour=100.0, noise_frac=0.0, n_cycles=60)
    hours = cell.truth["test_time_second"] / 3600.0
    lt = cell.truth["loss_time_frac"]
    assert (lt[hours <= 100.0] == 0).all()
    assert (lt[hours > 120.0] > 0).all()


def test_rest_recovery_is_reversible_not_a_loss():
    cell = make_cell("c", storage_hour=300.0, storage_after_cycle=20, noise_frac=0.0,
                     n_cycles=40)
    q = cell.cycles["discharge_capacity_ah"].to_numpy()
    # cycle 21 follows 300 h of storage (capped at 200 h): 0.004 * 200/10 * 5 Ah = 0.4 Ah back,
    # minus the extra time loss of the storage; the bump decays over the next cycles
    assert q[20] > q[19] + 0.3
    assert q[25] < q[20]
    assert (np.diff(cell.truth["loss_time_frac"]) >= 0).all()
    assert cell.cycles["rest_second"].iloc[19] == pytest.approx((1.0 + 300.0) * 3600.0)


def test_rate_switch_changes_pace_and_signals_grow_with_time_loss():
    cell = make_cell("d", c_rate=0.2, c_rate_final=1.0, switch_cycle=10, n_cycles=30,
                     aw_every_n_cycles=10, noise_frac=0.0)
    d = cell.cycles
    assert (d["c_rate"].iloc[:10] == 0.2).all() and (d["c_rate"].iloc[10:] == 1.0).all()
    assert d["cycle_duration_second"].iloc[5] > 3 * d["cycle_duration_second"].iloc[15]
    aw = d["aw_ohm_per_sqrt_s"]
    assert aw.notna().sum() == 4  # cycles 1, 10, 20, 30
    assert aw.dropna().is_monotonic_increasing
    assert (d["charge_capacity_ah"] > d["discharge_capacity_ah"]).all()  # SEI eats charge


def test_stopping_rule_and_errors():
    cell = make_cell("e", time_scale=0.5, cycle_scale=0.3, n_cycles=400, noise_frac=0.0)
    lt, lc = cell.truth["loss_time_frac"], cell.truth["loss_cycle_frac"]
    assert 1 - lt.iloc[-1] - lc.iloc[-1] < 0.6 <= 1 - lt.iloc[-2] - lc.iloc[-2]
    with pytest.raises(FadecastError, match="n_cells"):
        make_fleet(0)
    with pytest.raises(FadecastError, match="unknown synthetic cell parameter"):
        make_cell("f", c_rat=1.0)
