"""One rule for the planned pace of future cycles (CONTRACTS: median duration of the last 10
observed cycles), and per-cycle durations of histories that skip cycles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.evaluation.trajectory import planned_future_hours
from ml.features.timing import cycle_clock_hours, default_hours_per_cycle
from ml.training.dataset import planned_hours
from ml.windows import future_schedule, model_table


def _every_tenth(n_rows: int = 40, hours_per_cycle: float = 3.0) -> pd.DataFrame:
    """Cycles 1, 11, 21, … each taking ``hours_per_cycle``: a cycler export that records
    every 10th cycle."""
    n = 1.0 + 10.0 * np.arange(n_rows)
    return pd.DataFrame({"cycle_index": n, "test_time_second": n * hours_per_cycle * 3600.0,
                         "discharge_capacity_ah": 1.0 - 3e-4 * n})


def test_clock_of_a_history_that_skips_cycles_is_per_cycle():
    # rows at cycles 1, 2, 5, 6 ending at 2 h, 4 h, 10 h, 13 h
    got = cycle_clock_hours(np.array([2.0, 4.0, 10.0, 13.0]), np.array([1, 2, 5, 6]))
    assert got == pytest.approx([2.0, 2.0, 2.0, 3.0])  # (10 − 4) h over 3 cycles = 2 h each
    # a table that does not start with the test: the first row's clock is unknown
    assert np.isnan(cycle_clock_hours(np.array([50.0, 60.0]), np.array([7, 8]))[0])


def test_default_pace_is_the_median_of_the_last_ten_cycles():
    # 15 rows, one cycle each; the last ten take 1, 2, 3, 3, 4 … 9 h (the 100 h ones are older)
    steps = np.array([100.0] * 5 + [1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    hours = np.cumsum(steps)
    assert default_hours_per_cycle(hours, np.arange(1, 16)) == pytest.approx(4.5)
    assert np.isnan(default_hours_per_cycle(np.array([np.nan, np.nan]), np.array([3, 4])))


def test_the_feature_keeps_the_whole_gap_between_rows():
    """``cycle_duration_hour`` (a network input) is the time since the previous row, as the
    network was trained; only the planned clock is per cycle."""
    table = model_table(_every_tenth())
    assert table["cycle_duration_hour"].to_numpy()[1:] == pytest.approx(30.0)


def test_served_training_and_evaluation_plans_agree_on_a_history_that_skips_cycles():
    raw = _every_tenth()
    table = model_table(raw)
    cycles, hours = future_schedule(table, 5)
    last_h = raw["test_time_second"].iloc[-1] / 3600.0
    assert cycles.tolist() == [392.0, 393.0, 394.0, 395.0, 396.0]
    assert hours == pytest.approx(last_h + 3.0 * np.arange(1, 6))
    assert planned_hours(table, cycles) == pytest.approx(hours)
    assert planned_future_hours(raw, cycles) == pytest.approx(hours)


def test_served_forecast_of_a_history_that_skips_cycles_runs_the_true_clock():
    from serving.runtime import load_forecaster

    model = load_forecaster(str(Path(__file__).resolve().parents[1] / "models" / "production"))
    doc = model.forecast(_every_tenth(), horizon_cycles=3)
    assert doc["domain"]["pace"]["hours_per_cycle"] == pytest.approx(3.0)
    # no "rests every few cycles" note: the recent mean is per cycle too, not the row gap
    assert doc["domain"]["pace"]["recent_mean_hours_per_cycle"] == pytest.approx(3.0)
    assert doc["domain"]["pace"]["note"] is None
    t = [r["test_time_second"] / 3600.0 for r in doc["forecast"]]
    assert np.diff(t) == pytest.approx([3.0, 3.0])
