"""Property tests: any valid per-sample table goes through the pipeline with a sane clock."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml.features import build_cycle_table


@st.composite
def sample_tables(draw) -> pd.DataFrame:
    n_cells = draw(st.integers(1, 2))
    frames = []
    for cell in range(n_cells):
        n_cycles = draw(st.integers(1, 4))
        first_cycle = draw(st.integers(0, 3))
        rows = []
        t = draw(st.floats(0, 1e6))
        for c in range(first_cycle, first_cycle + n_cycles):
            for _ in range(draw(st.integers(1, 8))):
                t += draw(st.sampled_from([0.0, 0.5, 30.0, 600.0]))
                current = draw(st.sampled_from([0.0, 0.0, 1.5, -1.5, 0.01, -3.0]))
                volt = draw(st.floats(2.0, 4.5))
                rows.append((f"c{cell}", t, c, current, volt))
        frames.append(pd.DataFrame(rows, columns=["cell_id", "test_time_second", "cycle_count",
                                                  "current_ampere", "voltage_volt"]))
    df = pd.concat(frames, ignore_index=True)
    if draw(st.booleans()):
        df["discharging_capacity_ah"] = draw(st.floats(0, 2))
    if draw(st.booleans()):
        df = df.sample(frac=1.0, random_state=draw(st.integers(0, 100)))
    return df


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample_tables())
def test_any_valid_table_yields_one_row_per_cycle_and_monotone_hours(samples):
    t = build_cycle_table(samples)
    expected = samples.groupby(["cell_id", "cycle_count"]).size()
    assert len(t) == len(expected)
    for _, part in t.groupby("cell_id"):
        hours = part["elapsed_hour"].to_numpy()
        assert np.isfinite(hours).all()
        assert (np.diff(hours) >= 0).all()
        assert (np.diff(part["cycle_index"].to_numpy()) > 0).all()
        assert (np.diff(part["cumulative_high_voltage_hour"].to_numpy()) >= -1e-12).all()
    for col in ("charge_capacity_ah", "discharge_capacity_ah", "rest_second",
                "cycle_duration_second", "charge_energy_wh"):
        v = t[col].to_numpy(float)
        assert (v[np.isfinite(v)] >= 0).all(), col
    assert (t["rest_second"] <= t["cycle_duration_second"] + 1e-9).all()
