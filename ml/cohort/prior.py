"""The population prior of the cohort law: plain numbers in a small JSON artifact.

``population_prior.json`` (beside this module) holds, per shared parameter of
:data:`ml.cohort.law.SHARED`, a Gaussian ``mean`` / ``sd`` learned from training cohorts
(:mod:`ml.cohort.training`), the per-cell level spread ``offset_sd``, the residual-noise floor
and ``interval_scale`` — the factor on the Laplace covariance chosen on held-aside calibration
cohorts so that 90 % time-share intervals cover 90 % of the truth, and
``capacity_interval_scale``, the same for what-if capacity bands. The service loads it with
numpy only; when the file is absent a weak built-in prior (:func:`weak_prior`) is used and the
answer's ``cohort.prior`` says so.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_registry.errors import FadecastError
from ml.cohort.law import SHARED

__all__ = ["PopulationPrior", "weak_prior", "load_prior", "save_prior", "PRIOR_FILE"]

PRIOR_FILE = Path(__file__).resolve().parent / "population_prior.json"


@dataclass(frozen=True)
class PopulationPrior:
    """Gaussian prior on the shared parameters + the per-cell spread + calibration constants."""

    mean: tuple[float, ...]
    sd: tuple[float, ...]
    offset_sd: float = 0.01
    noise_floor: float = 3e-4
    interval_scale: float = 1.0
    name: str = "weak"
    provenance: dict[str, Any] = field(default_factory=dict)
    capacity_interval_scale: float = 1.0

    @property
    def mean_array(self) -> np.ndarray:
        return np.asarray(self.mean, dtype=float)

    @property
    def sd_array(self) -> np.ndarray:
        return np.asarray(self.sd, dtype=float)

    def with_scale(self, scale: float) -> "PopulationPrior":
        """The same prior with another interval scale (calibration)."""
        return PopulationPrior(self.mean, self.sd, self.offset_sd, self.noise_floor,
                               float(scale), self.name, dict(self.provenance),
                               self.capacity_interval_scale)

    def with_capacity_scale(self, scale: float) -> "PopulationPrior":
        """The same prior with another capacity-band scale (calibration)."""
        return PopulationPrior(self.mean, self.sd, self.offset_sd, self.noise_floor,
                               self.interval_scale, self.name, dict(self.provenance),
                               float(scale))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shared"] = {n: {"mean": m, "sd": s} for n, m, s in zip(SHARED, self.mean, self.sd)}
        del d["mean"], d["sd"]
        return d


def weak_prior() -> PopulationPrior:
    """Wide defaults (used before a prior is learned): √t-like time, linear cycle loss."""
    mean = (np.log(0.1), 0.5, np.log(0.03), 1.0, 1.0, 0.0, 50.0, 1.0, -0.02, 0.5, 0.0)
    sd = (2.5, 0.35, 2.5, 0.45, 1.0, 0.7, 15.0, 0.2, 0.05, 1.0, 2.0)
    return PopulationPrior(tuple(map(float, mean)), tuple(map(float, sd)))


def load_prior(path: str | os.PathLike[str] | None = None) -> PopulationPrior:
    """The prior stored at ``path`` (default :data:`PRIOR_FILE`; weak prior if absent)."""
    p = Path(path) if path is not None else PRIOR_FILE
    if not p.is_file():
        if path is not None:
            raise FadecastError("cohort prior file not found", code="model_not_found",
                                file=str(p), expected="a population_prior.json",
                                found="nothing")
        return weak_prior()
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        shared = d["shared"]
        mean = tuple(float(shared[n]["mean"]) for n in SHARED)
        sd = tuple(float(shared[n]["sd"]) for n in SHARED)
        return PopulationPrior(mean, sd, float(d["offset_sd"]), float(d["noise_floor"]),
                               float(d["interval_scale"]), str(d.get("name", p.stem)),
                               dict(d.get("provenance", {})),
                               float(d.get("capacity_interval_scale", 1.0)))
    except (ValueError, KeyError, TypeError) as exc:
        raise FadecastError(f"cohort prior file is not valid: {exc}", code="bad_model",
                            file=str(p), expected="the JSON written by ml.cohort.training",
                            found=type(exc).__name__) from exc


def save_prior(prior: PopulationPrior, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the prior as JSON (temp file, then rename)."""
    p = Path(path) if path is not None else PRIOR_FILE
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(prior.to_dict(), indent=1, sort_keys=True) + "\n",
                   encoding="utf-8")
    tmp.replace(p)
    return p
