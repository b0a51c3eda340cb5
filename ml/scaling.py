"""Per-feature scaling of model inputs, with a JSON-able state stored in the model card.

Each feature gets ``z = (f(x) - mean) / std`` with ``f`` the identity or ``log1p`` (for counts and
durations spanning decades). NaN stays NaN (the window builder turns it into a masked 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from data_registry.errors import FadecastError

__all__ = ["FeatureScaler", "TRANSFORMS"]

TRANSFORMS = ("identity", "log1p")


def _forward(name: str, values: np.ndarray) -> np.ndarray:
    if name == "log1p":
        return np.log1p(np.maximum(values, 0.0))
    return values


@dataclass
class FeatureScaler:
    """Standardizes named features after an optional ``log1p``.

    Parameters
    ----------
    features:
        Feature names in model order.
    transforms:
        ``{feature: "identity" | "log1p"}``; missing features use ``identity``.
    """

    features: tuple[str, ...]
    transforms: Mapping[str, str] = field(default_factory=dict)
    mean_: np.ndarray | None = None
    std_: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.features = tuple(self.features)
        for name, t in self.transforms.items():
            if t not in TRANSFORMS:
                raise FadecastError(f"transform of feature '{name}' not recognised",
                                    code="bad_transform", column=name,
                                    expected=f"one of {list(TRANSFORMS)}", found=repr(t))

    def transform_of(self, feature: str) -> str:
        """The transform applied to ``feature`` before standardizing."""
        return self.transforms.get(feature, "identity")

    def fit(self, values: np.ndarray) -> "FeatureScaler":
        """Learn mean and std per feature from ``values`` [..., F] (NaN ignored).

        A feature never observed gets mean 0 and std 1; a constant one std 1.
        """
        x = self._apply_transforms(np.asarray(values, dtype=float).reshape(-1, len(self.features)))
        with np.errstate(invalid="ignore"):
            counts = np.sum(~np.isnan(x), axis=0)
            mean = np.where(counts > 0, np.nanmean(np.where(counts > 0, x, 0.0), axis=0), 0.0)
            std = np.where(counts > 1, np.nanstd(np.where(counts > 0, x, 0.0), axis=0), 1.0)
        std = np.where((std > 1e-8) & np.isfinite(std), std, 1.0)
        self.mean_ = np.nan_to_num(mean).astype(np.float64)
        self.std_ = std.astype(np.float64)
        return self

    def _apply_transforms(self, x: np.ndarray) -> np.ndarray:
        out = x.copy()
        for j, name in enumerate(self.features):
            out[:, j] = _forward(self.transform_of(name), out[:, j])
        return out

    def _check_fitted(self) -> None:
        if self.mean_ is None or self.std_ is None:
            raise FadecastError("the feature scaler is not fitted; call fit() first",
                                code="not_fitted", expected="a fitted scaler",
                                found="an unfitted one")

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scale ``values`` [..., F]; NaN stays NaN. Returns float64 of the same shape."""
        self._check_fitted()
        x = np.asarray(values, dtype=float)
        shape = x.shape
        flat = self._apply_transforms(x.reshape(-1, len(self.features)))
        return ((flat - self.mean_) / self.std_).reshape(shape)

    def inverse_column(self, feature: str, scaled: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform` for one feature (used to check the in-graph inverse)."""
        self._check_fitted()
        j = self.features.index(feature)
        x = np.asarray(scaled, dtype=float) * self.std_[j] + self.mean_[j]
        return np.expm1(x) if self.transform_of(feature) == "log1p" else x

    def to_dict(self) -> dict:
        """JSON-able state: ``{feature: {"transform", "mean", "std"}}`` in model order."""
        self._check_fitted()
        return {name: {"transform": self.transform_of(name), "mean": float(self.mean_[j]),
                       "std": float(self.std_[j])} for j, name in enumerate(self.features)}

    @classmethod
    def from_dict(cls, state: Mapping[str, Mapping[str, float | str]]) -> "FeatureScaler":
        """Rebuild a fitted scaler from :meth:`to_dict` output (key order = model order)."""
        try:
            names = tuple(state)
            scaler = cls(names, {n: str(state[n]["transform"]) for n in names})
            scaler.mean_ = np.array([float(state[n]["mean"]) for n in names])
            scaler.std_ = np.array([float(state[n]["std"]) for n in names])
        except (KeyError, TypeError, ValueError) as exc:
            raise FadecastError(f"bad scaler state in model card: {exc}", code="bad_model_card",
                                column="scaler", expected="{feature: {transform, mean, std}}",
                                found=type(state).__name__) from exc
        return scaler
