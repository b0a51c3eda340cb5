"""Forecasting models (torch): FadeNet and its pluggable monotone time and cycle terms.

``ml.models.baselines`` (numpy/scikit-learn) is imported on its own; importing this package
does not load torch until ``FadeNet`` or a term is used.
"""
from __future__ import annotations

__all__ = ["FadeNet", "TIME_TERMS", "CYCLE_TERMS"]


def __getattr__(name: str):
    if name == "FadeNet":
        from ml.models.fade_net import FadeNet
        return FadeNet
    if name == "TIME_TERMS":
        from ml.models.time_terms import TIME_TERMS
        return TIME_TERMS
    if name == "CYCLE_TERMS":
        from ml.models.cycle_terms import CYCLE_TERMS
        return CYCLE_TERMS
    raise AttributeError(name)
