"""Evaluation: error figures, calibration (split conformal by cell) and the suites behind
``fadecast evaluate`` (model vs the naive √t + N baseline and the other baselines)."""
from ml.evaluation.calibration import (conformal_quantile, interval_scores, reliability_curve,
                                       split_conformal_by_cell)
from ml.evaluation.metrics import (interval_coverage, mae, mape, mean_interval_width,
                                   pinball_loss, rmse, time_share_errors)

__all__ = ["mape", "rmse", "mae", "interval_coverage", "mean_interval_width",
           "time_share_errors", "pinball_loss", "reliability_curve", "conformal_quantile",
           "interval_scores", "split_conformal_by_cell"]
