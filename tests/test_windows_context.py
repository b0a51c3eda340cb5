"""Conditions the model never saw are masked, not extrapolated (ml.windows.history_arrays)."""
from __future__ import annotations

import numpy as np

from ml.scaling import FeatureScaler
from ml.synthetic import make_cell
from ml.windows import CONTEXT_Z_LIMIT, FEATURE_NAMES, history_arrays, model_table


def _scaler() -> FeatureScaler:
    # Training data at 15–35 °C (mean 25, std 5) and C/10–1C: fitted on hand-made values.
    n = len(FEATURE_NAMES)
    values = np.zeros((200, n))
    j_t = FEATURE_NAMES.index("temperature_celsius")
    values[:, j_t] = np.linspace(25 - 5 * np.sqrt(3), 25 + 5 * np.sqrt(3), 200)  # std 5
    return FeatureScaler(FEATURE_NAMES).fit(values)


def _table(temperature: float | None):
    cell = make_cell("ctx", seed=3, c_rate=0.1, n_cycles=40).cycles
    if temperature is None:
        cell = cell.drop(columns=["temperature_celsius"], errors="ignore")
    else:
        cell = cell.assign(temperature_celsius=temperature)
    return model_table(cell)


def test_temperature_far_outside_training_is_masked_like_a_missing_column():
    scaler = _scaler()
    j = FEATURE_NAMES.index("temperature_celsius")
    x60, m60 = history_arrays(_table(60.0), scaler, 32)   # z = 7 > limit
    x_none, m_none = history_arrays(_table(None), scaler, 32)
    assert (60.0 - 25.0) / 5.0 > CONTEXT_Z_LIMIT
    assert m60[:, j].sum() == 0 and np.all(x60[:, j] == 0)
    np.testing.assert_array_equal(x60, x_none)
    np.testing.assert_array_equal(m60, m_none)


def test_temperature_inside_training_is_kept_and_scaled():
    scaler = _scaler()
    j = FEATURE_NAMES.index("temperature_celsius")
    x30, m30 = history_arrays(_table(30.0), scaler, 32)
    assert np.all(m30[:, j] == 1)
    assert abs(scaler.mean_[j] - 25.0) < 1e-9 and abs(scaler.std_[j] - 5.0) < 0.03
    np.testing.assert_allclose(x30[:, j], (30.0 - scaler.mean_[j]) / scaler.std_[j], rtol=1e-5)
