"""Experiment design: which ONE more sibling would pin the time share best.

For every candidate protocol of a grid (C-rates × rest patterns) a planned sibling is simulated
from the current MAP law (its expected capacities, no noise) for the same elapsed hours as the
cohort's longest-running cell; the Laplace covariance of the cohort + that sibling is
recomputed (Gauss–Newton curvature with the new cell's rows, noise at the cohort's median
level), and the expected 90 % time-share width of the EXISTING cells is read from draws of
it. The candidate with the smallest expected width is advised.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.cohort import law
from ml.cohort.histories import CellHistory
from ml.cohort.posterior import CohortPosterior, _Problem, tempered_cov

__all__ = ["Candidate", "CANDIDATES", "planned_cell", "time_share_widths", "rank_candidates"]

RATES = (0.1, 0.2, 0.5, 1.0, 2.0)
RESTS = (("no extra rest", 0.0, 0), ("4 h rest every cycle", 4.0, 1),
         ("12 h rest every cycle", 12.0, 1), ("48 h rest every 5 cycles", 48.0, 5))
MAX_CANDIDATE_CYCLES = 1000
WELL_PINNED_WIDTH = 0.10


@dataclass(frozen=True)
class Candidate:
    """A sibling protocol: constant C-rate, extra rest at full charge every n cycles."""

    c_rate: float
    rest_hour: float
    rest_every_n_cycles: int
    label: str

    @property
    def name(self) -> str:
        return f"{self.c_rate:g}C, {self.label}"


CANDIDATES: tuple[Candidate, ...] = tuple(Candidate(c, h, n, lab) for c in RATES
                                          for lab, h, n in RESTS)


def planned_cell(cand: Candidate, *, hours_budget: float, base_rest_hour: float,
                 temperature_celsius: float, cell_id: str = "candidate") -> CellHistory:
    """The candidate's schedule for ``hours_budget`` elapsed hours (2 h / C-rate operating
    time per cycle plus the cohort's usual rests plus the extra rest)."""
    operating = 2.0 / cand.c_rate
    per = operating + base_rest_hour
    extra_every = max(cand.rest_every_n_cycles, 1)
    mean_per = per + (cand.rest_hour / extra_every if cand.rest_every_n_cycles else 0.0)
    n = int(np.clip(np.ceil(hours_budget / mean_per), 3, MAX_CANDIDATE_CYCLES))
    idx = np.arange(1, n + 1)
    rest = np.full(n, base_rest_hour)
    if cand.rest_every_n_cycles:
        rest = rest + np.where(idx % extra_every == 0, cand.rest_hour, 0.0)
    op = np.full(n, operating)
    return CellHistory(cell_id, idx.astype(np.int64), np.cumsum(op + rest), op, rest,
                       np.full(n, cand.c_rate), np.full(n, temperature_celsius))


def time_share_widths(post: CohortPosterior, cov: np.ndarray | None = None,
                      n_existing: int | None = None) -> np.ndarray:
    """90 % widths (p95 − p05) of each existing cell's time share under ``cov`` (default:
    the posterior's own, interval scale included)."""
    n_existing = len(post.cells) if n_existing is None else n_existing
    cov = post.cov if cov is None else cov
    size = post.mean.size
    z = np.random.default_rng(7).standard_normal((300, cov.shape[0]))
    w, v = np.linalg.eigh((cov + cov.T) / 2.0)
    draws = z @ (v * np.sqrt(np.clip(w, 0, None))).T
    draws = post.mean + draws[:, :size]
    shares = post.time_share_draws(draws)[:, :n_existing]
    q = np.quantile(shares, [0.05, 0.95], axis=0)
    return q[1] - q[0]


def _augmented_cov(post: CohortPosterior, extra: CellHistory) -> np.ndarray:
    p = post.n_shared
    x = np.concatenate([post.mean, [0.0]])
    f = law.capacity_fraction(extra, post.mean[None, :p], 0.0)[0]
    sim = CellHistory(extra.cell_id, extra.cycle_index, extra.hours, extra.operating_hour,
                      extra.rest_hour, extra.c_rate, extra.temperature_celsius,
                      f * post.reference_ah)
    noise = np.concatenate([post.noise, [float(np.median(post.noise))]])
    prob = _Problem([*post.cells, sim], post.reference_ah, post.prior, noise)
    h_data, h_prior = prob.curvatures(x)
    cov = tempered_cov(h_data, h_prior, post.prior.interval_scale, post.fixed)
    # keep the existing parameters' block (the new offset is marginalised out)
    return cov[:post.mean.size, :post.mean.size]


def rank_candidates(post: CohortPosterior,
                    candidates: tuple[Candidate, ...] = CANDIDATES) -> dict:
    """Current width, every candidate's expected width, the best one and the advice text."""
    now = time_share_widths(post)
    hours = max(float(c.hours[-1]) for c in post.cells)
    rests = np.concatenate([c.rest_hour for c in post.cells])
    base_rest = float(np.median(rests)) if rests.size and np.any(rests > 0) else 0.0
    temp = float(np.median(np.concatenate([c.temperature_celsius for c in post.cells])))
    rows = []
    for cand in candidates:
        extra = planned_cell(cand, hours_budget=hours, base_rest_hour=min(base_rest, 4.0),
                             temperature_celsius=temp)
        widths = time_share_widths(post, _augmented_cov(post, extra))
        rows.append({"c_rate": cand.c_rate, "rest_hour": cand.rest_hour,
                     "rest_every_n_cycles": cand.rest_every_n_cycles, "label": cand.name,
                     "cycles": int(extra.n), "hours": float(extra.hours[-1]),
                     "expected_time_share_width": float(np.mean(widths))})
    rows.sort(key=lambda r: r["expected_time_share_width"])
    width = float(np.mean(now))
    best = rows[0]
    single = len(post.cells) == 1
    if single:
        advice = (f"one cell cannot separate time from cycles (90 % time-share width "
                  f"{width:.2f}); run a sibling at {best['label']} for {best['hours']:.0f} h "
                  f"(expected width {best['expected_time_share_width']:.2f})")
    elif width > WELL_PINNED_WIDTH:
        advice = (f"the split is poorly pinned (90 % width {width:.2f}); run a sibling at "
                  f"{best['label']} for {best['hours']:.0f} h (expected width "
                  f"{best['expected_time_share_width']:.2f})")
    else:
        advice = (f"the split is well pinned (90 % width {width:.2f}); if another sibling is "
                  f"run, {best['label']} narrows it most (expected width "
                  f"{best['expected_time_share_width']:.2f})")
    return {"time_share_width": width,
            "time_share_width_per_cell": {c.cell_id: float(w) for c, w in zip(post.cells, now)},
            "next_protocol": {**best, "time_share_width_now": width,
                              "candidates": rows},
            "advice": advice, "run_a_sibling": bool(single or width > WELL_PINNED_WIDTH)}
