"""The joint MAP fit of the cohort law to every sibling and its Laplace posterior (numpy/scipy).

Residuals: every observed cycle of every cell, scaled by that cell's noise level (first
cycle skipped — it starts from the as-built state, not a charged one — when a cell has four or
more cycles), plus one row per shared parameter ``(θ − μ)/sd`` (the population prior) and one
per cell offset ``δ_i / σ_δ``. The MAP is found by ``scipy.optimize.least_squares`` from three
starts (time-heavy, balanced, cycle-heavy); the noise levels are re-estimated from the MAP
residuals and the fit repeated once. The posterior is the Laplace approximation
``N(θ̂, κ² (JᵀJ)⁻¹)`` with J the Jacobian of the scaled residuals (central differences) and κ
the prior's calibrated ``interval_scale`` applied to the DATA part only (a tempered
likelihood): precision = JdᵀJd / κ² + JpᵀJp, so residual correlation widens what the data
decided and leaves prior-dominated directions at the prior's width. A time onset the MAP puts
at ≤ 0 (none) is conditioned on — the Laplace curvature cannot see the one-sided kink.
Quantiles come from draws of that Gaussian pushed through the law.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from ml.cohort import law
from ml.cohort.histories import CellHistory
from ml.cohort.prior import PopulationPrior

__all__ = ["CohortPosterior", "fit_cohort", "N_DRAWS"]

N_DRAWS = 400
_SEED = 20261206


@dataclass
class CohortPosterior:
    """Joint posterior of the shared law and the per-cell offsets."""

    cells: list[CellHistory]
    reference_ah: float
    mean: np.ndarray  # shared (P) then one offset per cell
    h_data: np.ndarray  # Gauss-Newton curvature of the scaled data residuals
    h_prior: np.ndarray  # curvature of the prior rows
    noise: np.ndarray  # per cell, fraction of reference
    prior: PopulationPrior
    cost: float
    fixed: tuple[int, ...] = ()  # parameters conditioned on (held at the MAP)

    def cov_at(self, scale: float | None = None) -> np.ndarray:
        """Covariance with the data curvature tempered by κ² (κ = ``scale`` or the prior's)."""
        kappa = self.prior.interval_scale if scale is None else scale
        return tempered_cov(self.h_data, self.h_prior, kappa, self.fixed)

    @property
    def cov(self) -> np.ndarray:
        return self.cov_at()

    @property
    def n_shared(self) -> int:
        return len(law.SHARED)

    def draws(self, n: int = N_DRAWS, seed: int = _SEED, scale: float | None = None
              ) -> np.ndarray:
        """(n, P + cells) draws of the tempered Laplace posterior (fixed seed: answers are
        reproducible); κ = ``scale`` or the prior's time-share ``interval_scale``."""
        z = np.random.default_rng(seed).standard_normal((n, self.mean.size))
        return self.mean + z @ _cov_root(self.cov_at(scale)).T

    def shared(self, draws: np.ndarray) -> np.ndarray:
        return draws[:, :self.n_shared]

    def offset(self, draws: np.ndarray, i: int) -> np.ndarray:
        return draws[:, self.n_shared + i]

    def index(self, cell_id: str) -> int:
        return [c.cell_id for c in self.cells].index(cell_id)

    def time_share_draws(self, draws: np.ndarray) -> np.ndarray:
        """(draws, cells): time share at each cell's last observed cycle."""
        out = np.empty((draws.shape[0], len(self.cells)))
        th = self.shared(draws)
        for i, cell in enumerate(self.cells):
            lt, lc = law.last_split_losses(cell, th)
            out[:, i] = law.time_share(lt, lc)
        return out


def tempered_cov(h_data: np.ndarray, h_prior: np.ndarray, kappa: float,
                 fixed: tuple[int, ...] = ()) -> np.ndarray:
    """inv(h_data / κ² + h_prior), with the ``fixed`` parameters' rows/columns zeroed."""
    h = h_data / kappa ** 2 + h_prior
    free = np.setdiff1d(np.arange(h.shape[0]), np.asarray(fixed, dtype=int))
    sub = h[np.ix_(free, free)]
    w, v = np.linalg.eigh((sub + sub.T) / 2.0)
    cov = np.zeros_like(h)
    cov[np.ix_(free, free)] = (v / np.clip(w, 1e-12 * max(w.max(), 1.0), None)) @ v.T
    return cov


def _cov_root(cov: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((cov + cov.T) / 2.0)
    return v * np.sqrt(np.clip(w, 0.0, None))


def _fit_rows(cell: CellHistory) -> slice:
    return slice(1 if cell.n >= 4 else 0, None)


class _Problem:
    def __init__(self, cells: list[CellHistory], reference_ah: float, prior: PopulationPrior,
                 noise: np.ndarray) -> None:
        self.cells = cells
        self.y = [c.capacity_ah[_fit_rows(c)] / reference_ah for c in cells]
        self.noise = noise
        self.prior = prior
        self.mu = prior.mean_array
        self.sd = prior.sd_array
        self.P = len(law.SHARED)

    def batch(self, xs: np.ndarray) -> np.ndarray:
        """Scaled residuals of every parameter row of ``xs`` (K, P + cells) → (K, rows)."""
        th = xs[:, :self.P]
        parts = []
        for i, (cell, y) in enumerate(zip(self.cells, self.y)):
            f = law.capacity_fraction(cell, th, xs[:, self.P + i])[:, _fit_rows(cell)]
            parts.append((y[None, :] - f) / self.noise[i])
        parts.append((th - self.mu) / self.sd)
        parts.append(xs[:, self.P:] / self.prior.offset_sd)
        return np.concatenate(parts, axis=1)

    def residuals(self, x: np.ndarray) -> np.ndarray:
        return self.batch(x[None, :])[0]

    def curvatures(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(data, prior) Gauss–Newton curvatures JᵀJ at ``x``."""
        jac = self.jacobian(x)
        n_prior = x.size  # one prior row per parameter, appended last
        jd, jp = jac[:-n_prior], jac[-n_prior:]
        return jd.T @ jd, jp.T @ jp

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """Central differences of the scaled residuals, all columns in one vectorised call."""
        h = 1e-6 * np.maximum(1.0, np.abs(x))
        steps = np.diag(h)
        r = self.batch(np.concatenate([x + steps, x - steps]))
        return ((r[:x.size] - r[x.size:]) / (2 * h[:, None])).T


def _starts(prior: PopulationPrior, cells: list[CellHistory], reference_ah: float) -> list:
    c0 = float(np.median([np.max(c.capacity_ah[:3]) / reference_ah for c in cells]))
    base = prior.mean_array.copy()
    base[law.I_C0] = c0
    out = []
    for shift in (0.0, 1.5, -1.5):
        x = np.concatenate([base, np.zeros(len(cells))])
        x[law.I_LA] += shift
        x[law.I_LB] -= shift
        out.append(x)
    return out


def fit_cohort(cells: list[CellHistory], prior: PopulationPrior,
               reference_ah: float) -> CohortPosterior:
    """MAP + Laplace posterior of the cohort law over ``cells`` (capacities needed)."""
    noise = np.full(len(cells), 2e-3)
    best = None
    for x0 in _starts(prior, cells, reference_ah):
        prob = _Problem(cells, reference_ah, prior, noise)
        res = least_squares(prob.residuals, x0, jac=prob.jacobian, method="lm",
                            max_nfev=300, x_scale="jac")
        if best is None or res.cost < best.cost:
            best = res
    x = best.x
    for _ in range(2):
        rms = []
        for i, cell in enumerate(cells):
            f = law.capacity_fraction(cell, x[None, :len(law.SHARED)],
                                      x[len(law.SHARED) + i])[0, _fit_rows(cell)]
            r = cell.capacity_ah[_fit_rows(cell)] / reference_ah - f
            rms.append(np.sqrt(np.mean(r ** 2)) if r.size else prior.noise_floor)
        noise = np.maximum(np.asarray(rms), prior.noise_floor)
        prob = _Problem(cells, reference_ah, prior, noise)
        best = least_squares(prob.residuals, x, jac=prob.jacobian, method="lm",
                             max_nfev=200, x_scale="jac")
        x = best.x
    fixed: tuple[int, ...] = ()
    if x[law.I_ON] <= 0.0:  # no onset: condition on it (the kink has no curvature)
        x = x.copy()
        x[law.I_ON] = 0.0
        fixed = (law.I_ON,)
    h_data, h_prior = prob.curvatures(x)
    return CohortPosterior(list(cells), float(reference_ah), x, h_data, h_prior, noise, prior,
                           float(best.cost), fixed)
