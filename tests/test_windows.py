"""ml.windows and ml.scaling: the model's inputs from a per-cycle table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_registry.errors import ValidationError
from ml.scaling import FeatureScaler
from ml.synthetic import make_cell
from ml.windows import (FEATURE_NAMES, WindowSpec, future_schedule, history_arrays,
                        make_windows, model_table, stack_histories, subsample_indices)


@given(n=st.integers(1, 400), m=st.integers(2, 80))
@settings(max_examples=60, deadline=None)
def test_subsample_keeps_first_last_and_order(n, m):
    idx = subsample_indices(n, m)
    assert len(idx) <= max(m, 1) and len(idx) == min(n, len(idx))
    assert idx[0] == 0 and idx[-1] == n - 1
    assert (np.diff(idx) > 0).all()
    if n <= m:
        assert len(idx) == n


def test_scaler_by_hand_and_round_trip():
    sc = FeatureScaler(("a", "b"), {"b": "log1p"}).fit(np.array([[1.0, 0.0], [3.0, np.e - 1],
                                                                 [np.nan, np.nan]]))
    # a: mean 2, std 1; b: log1p -> [0, 1]: mean 0.5, std 0.5
    z = sc.transform(np.array([[2.0, np.e ** 2 - 1], [np.nan, 0.0]]))
    assert z[0] == pytest.approx([0.0, 3.0])
    assert np.isnan(z[1, 0]) and z[1, 1] == pytest.approx(-1.0)
    again = FeatureScaler.from_dict(sc.to_dict())
    assert again.transform(np.array([[5.0, 1.0]])) == pytest.approx(
        sc.transform(np.array([[5.0, 1.0]])))
    assert sc.inverse_column("b", np.array([3.0])) == pytest.approx([np.e ** 2 - 1])


def _table(n=30, **kw):
    return model_table(make_cell("w", n_cycles=80, noise_frac=0.0, **kw).cycles.iloc[:n])


def test_model_table_columns_reference_and_relative_signals():
    t = _table(with_polarization=True, aw_every_n_cycles=10)
    assert set(FEATURE_NAMES) <= set(t.columns)
    q = t["discharge_capacity_ah"].to_numpy()
    assert t["reference_capacity_ah"].iloc[0] == pytest.approx(q[:3].max())
    assert t["retention"].to_numpy() == pytest.approx(q / q[:3].max())
    assert t["polarization_rise_volt"].iloc[:3].median() == pytest.approx(0.0, abs=1e-12)
    assert t["aw_rise_fraction"].dropna().iloc[0] == 0.0
    nominal = model_table(make_cell("w", n_cycles=80).cycles.iloc[:10], nominal_capacity_ah=6.0)
    assert nominal["reference_capacity_ah"].iloc[0] == 6.0


def test_missing_values_are_masked_zeros_and_padding_is_left():
    t = _table(with_polarization=False)
    sc = FeatureScaler(FEATURE_NAMES).fit(t[list(FEATURE_NAMES)].to_numpy())
    x, m = history_arrays(t, sc, max_history=16)
    assert x.shape == (16, len(FEATURE_NAMES)) and x.dtype == np.float32
    j = FEATURE_NAMES.index("polarization_rise_volt")
    assert (m[:, j] == 0).all() and (x[:, j] == 0).all()
    assert (m[:, FEATURE_NAMES.index("retention")] == 1).all()
    xs, ms = stack_histories([(x[:5], m[:5]), (x, m)])
    assert xs.shape == (2, 16, len(FEATURE_NAMES))
    assert (ms[0, :11] == 0).all() and (xs[0, 11:] == x[:5]).all()


def test_future_schedule_default_pace_and_given_pace():
    t = _table(20)
    pace = t["cycle_duration_hour"].iloc[-10:].median()
    cycles, hours = future_schedule(t, 3)
    assert cycles.tolist() == [21.0, 22.0, 23.0]
    assert hours == pytest.approx(t["elapsed_hour"].iloc[-1] + pace * np.array([1, 2, 3]))
    _, hours2 = future_schedule(t, 2, hours_per_cycle=10.0)
    assert hours2 == pytest.approx(t["elapsed_hour"].iloc[-1] + np.array([10.0, 20.0]))
    with pytest.raises(ValidationError, match="hours_per_cycle"):
        future_schedule(t, 2, hours_per_cycle=-1.0)


def test_make_windows_shapes_and_errors():
    t = _table(12)
    sc = FeatureScaler(FEATURE_NAMES).fit(t[list(FEATURE_NAMES)].to_numpy())
    w = make_windows(t, scaler=sc, spec=WindowSpec(max_history=8), query_cycle=[13, 14],
                     query_hour=[100.0, 110.0])
    assert w["history"].shape == (1, 8, len(FEATURE_NAMES))
    assert w["query_cycle"].shape == (1, 2) and w["query_hour"].dtype == np.float32
    two = pd.concat([make_cell("a", n_cycles=10).cycles, make_cell("b", n_cycles=10).cycles])
    with pytest.raises(ValidationError, match="one cell"):
        model_table(two)
    with pytest.raises(ValidationError, match="too short"):
        model_table(make_cell("a", n_cycles=10).cycles.iloc[:2])
