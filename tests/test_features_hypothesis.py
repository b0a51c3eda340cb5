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


_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10 ** 6),
                    st.sampled_from(["n/a", "", "1e3", " 2.5 ", "abc", None]))
_COLUMNS = ["cycle_index", "test_time_second", "discharge_capacity_ah", "charge_capacity_ah",
            "c_rate", "hours_per_cycle", "mean_charge_voltage_volt", "cell_id", "junk"]


@st.composite
def user_cycle_tables(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    cols = draw(st.lists(st.sampled_from(_COLUMNS), min_size=1, max_size=len(_COLUMNS),
                         unique=True))
    return pd.DataFrame({c: draw(st.lists(_VALUES, min_size=n, max_size=n)) for c in cols})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_cycle_tables())
def test_user_tables_either_complete_or_raise_a_located_fadecast_error(cycles):
    from data_registry.errors import FadecastError
    from ml.features import complete_cycle_table

    try:
        t = complete_cycle_table(cycles)
    except FadecastError as exc:
        assert exc.column is not None and str(exc)
        return
    assert len(t) == len(cycles)
    for _, part in t.groupby("cell_id"):
        assert (np.diff(part["cycle_index"].to_numpy()) > 0).all()
        assert (np.diff(part["elapsed_hour"].to_numpy()) >= 0).all()
    assert np.isfinite(t["elapsed_hour"]).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample_tables(), st.integers(1, 12))
def test_blocked_kernels_equal_one_pass(samples, block_rows):
    from ml.features.sample_cycles import sample_cycles
    from ml.features.sample_frame import prepare_samples

    whole = sample_cycles(prepare_samples(samples), block_rows=10 ** 9)
    blocked = sample_cycles(prepare_samples(samples), block_rows=block_rows)
    pd.testing.assert_frame_equal(blocked, whole, rtol=1e-9, atol=1e-12)
