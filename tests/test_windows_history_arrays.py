"""``history_arrays`` reads only the kept rows of each feature column (no [rows, F] frame copy
first): the arrays must be IDENTICAL to the previous whole-frame implementation, kept here."""
from __future__ import annotations

import numpy as np
import pytest

from ml.scaling import FeatureScaler
from ml.synthetic import make_cell
from ml.windows import (CONTEXT_FEATURES, CONTEXT_Z_LIMIT, FEATURE_NAMES, FEATURES,
                        future_schedule, history_arrays, model_table, subsample_indices)


def _reference(table, scaler, max_history):
    """``ml.windows.history_arrays`` as of 37a4035."""
    idx = subsample_indices(len(table), max_history)
    raw = table[list(scaler.features)].to_numpy(dtype="float64")[idx]
    mask = np.isfinite(raw)
    scaled = scaler.transform(np.where(mask, raw, np.nan))
    for j, name in enumerate(scaler.features):
        if name in CONTEXT_FEATURES:
            with np.errstate(invalid="ignore"):
                mask[:, j] &= np.abs(scaled[:, j]) <= CONTEXT_Z_LIMIT
    return np.where(mask, scaled, 0.0).astype(np.float32), mask.astype(np.float32)


@pytest.mark.parametrize("kw,n,max_history", [({}, 200, 32), ({"aw_every_n_cycles": 7}, 50, 64),
                                              ({"with_polarization": False}, 5, 32),
                                              ({"temperature_celsius": 60.0}, 120, 16)])
def test_history_arrays_equal_the_whole_frame_version(kw, n, max_history):
    cyc = make_cell("h", seed=4, n_cycles=max(n, 3), **kw).cycles.iloc[:n]
    table = model_table(cyc)
    rng = np.random.default_rng(0)
    scaler = FeatureScaler(FEATURE_NAMES, {name: t for name, _, t in FEATURES})
    scaler.fit(rng.normal(size=(50, len(FEATURE_NAMES))) + 1.0)
    x, m = history_arrays(table, scaler, max_history)
    xr, mr = _reference(table, scaler, max_history)
    assert np.array_equal(x, xr) and np.array_equal(m, mr)
    assert x.dtype == np.float32 and m.dtype == np.float32
    cycles, hours = future_schedule(table, 7)
    assert cycles[0] == table["cycle_index"].iloc[-1] + 1
    assert hours[0] > table["elapsed_hour"].iloc[-1]
