"""Metrics and calibration against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from data_registry.errors import ValidationError
from ml.evaluation import (conformal_quantile, interval_coverage, interval_scores, mae, mape,
                           mean_interval_width, pinball_loss, reliability_curve, rmse,
                           split_conformal_by_cell, time_share_errors)
from ml.evaluation.metrics import summary_quantiles


def test_point_metrics_by_hand():
    assert mape([100, 200], [110, 180]) == pytest.approx(10.0)
    assert rmse([0, 0], [3, 4]) == pytest.approx(np.sqrt(12.5))
    assert mae([0, 0], [3, -4]) == pytest.approx(3.5)
    np.testing.assert_allclose(time_share_errors([0.2, 0.9], [0.5, 0.8]), [0.3, 0.1])
    assert summary_quantiles([1, 2, 3, 4, 5]) == {"p50": 3.0, "p90": pytest.approx(4.6)}


def test_interval_metrics_by_hand():
    y = [1.0, 2.0, 3.0, 4.0]
    assert interval_coverage(y, [0, 0, 0, 0], [2, 2, 2.5, 5]) == 0.75
    assert mean_interval_width([0, 1], [2, 4]) == 2.5
    np.testing.assert_allclose(interval_scores([1.0, 5.0, 3.0], [2, 2, 2], [4, 4, 4]),
                               [1.0, 1.0, -1.0])


def test_pinball_loss_by_hand():
    assert pinball_loss([1.0], [0.0], 0.9) == pytest.approx(0.9)
    assert pinball_loss([1.0], [2.0], 0.9) == pytest.approx(0.1)
    # the true quantile minimises it
    y = np.random.default_rng(0).normal(size=4000)
    grid = np.linspace(0.5, 2.0, 31)
    best = grid[np.argmin([pinball_loss(y, np.full_like(y, g), 0.9) for g in grid])]
    assert best == pytest.approx(np.quantile(y, 0.9), abs=0.06)


def test_metric_input_errors():
    with pytest.raises(ValidationError, match="mape: y_true contains zeros"):
        mape([0, 1], [1, 1])
    with pytest.raises(ValidationError, match="one length"):
        rmse([1, 2], [1])
    with pytest.raises(ValidationError, match="non-finite"):
        mae([np.nan], [1])
    with pytest.raises(ValidationError, match="upper below lower"):
        interval_coverage([1], [2], [0])
    with pytest.raises(ValidationError, match="level"):
        pinball_loss([1], [1], 1.0)


def test_conformal_quantile_by_hand():
    scores = np.arange(1.0, 10.0)  # n = 9
    assert conformal_quantile(scores, 0.1) == 9.0  # ceil(10 * 0.9) = 9th
    assert conformal_quantile(scores, 0.2) == 8.0  # ceil(10 * 0.8) = 8th
    assert conformal_quantile(scores[:5], 0.1) == np.inf  # ceil(6 * 0.9) = 6 > 5
    with pytest.raises(ValidationError, match="alpha"):
        conformal_quantile(scores, 0.0)


def test_split_conformal_by_cell_by_hand():
    ids = ["a", "a", "b", "b", "c", "c"]
    scores = [1.0, 3.0, 2.0, 10.0, 5.0, 5.0]
    # medians 2, 6, 5 -> sorted [2, 5, 6]; alpha 0.5: ceil(4 * 0.5) = 2nd -> 5
    assert split_conformal_by_cell(ids, scores, alpha=0.5) == 5.0
    # maxima 3, 10, 5 -> sorted [3, 5, 10] -> 2nd -> 5; alpha 0.25: ceil(3) = 3rd -> 10
    assert split_conformal_by_cell(ids, scores, alpha=0.5, within_cell="max") == 5.0
    assert split_conformal_by_cell(ids, scores, alpha=0.25, within_cell="max") == 10.0


def test_conformal_band_covers_new_cells():
    rng = np.random.default_rng(1)
    calib = np.abs(rng.normal(size=199))
    q = conformal_quantile(calib, 0.1)
    fresh = np.abs(rng.normal(size=20000))
    assert np.mean(fresh <= q) == pytest.approx(0.9, abs=0.03)


def test_reliability_curve_by_hand():
    curve = reliability_curve([1, 2, 3, 4], {0.5: [2, 2, 2, 2], 0.9: [4, 4, 4, 3]})
    assert curve["level"].tolist() == [0.5, 0.9]
    assert curve["observed"].tolist() == [0.5, 0.75]
    with pytest.raises(ValidationError, match="wrong length"):
        reliability_curve([1, 2], {0.5: [1]})
