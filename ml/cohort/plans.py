"""Forecasts from the cohort law: a planned sibling with no data yet, or a cell's next cycles.

Every row gives the capacity (Ah) and the time- and cycle-driven loss fractions (of the cohort
reference, interaction shared evenly) as p05 / p50 / p95 over posterior draws. A planned
sibling's own level is drawn from the population spread of levels (``offset_sd``) and its
rate-dependent undegraded capacity from the shared ``c0 + g · (rate − 0.5)``; the cohort's
median residual noise is added to capacities.
"""
from __future__ import annotations

import numpy as np

from ml.cohort import law
from ml.cohort.histories import CellHistory
from ml.cohort.posterior import CohortPosterior

__all__ = ["forecast_rows", "extend_history", "plan_forecast", "cell_forecast"]


def _q(values: np.ndarray) -> list[dict[str, float]]:
    qs = np.quantile(values, [0.05, 0.5, 0.95], axis=0)
    return [{"p05": float(a), "p50": float(b), "p95": float(c)} for a, b, c in zip(*qs)]


def forecast_rows(post: CohortPosterior, cell: CellHistory, draws: np.ndarray,
                  offset: np.ndarray, rows: slice = slice(None)) -> list[dict]:
    """CONTRACTS forecast rows of ``cell`` (all cycles or ``rows``) for parameter ``draws``."""
    th = post.shared(draws)
    lt, lc = law.losses(cell, th)
    inter = law.interaction(lt, lc, th)
    cap = law.undegraded_fraction(cell.typical_c_rate, th, offset) - lt - lc - inter
    noise = np.random.default_rng(11).standard_normal(cap.shape) * float(np.median(post.noise))
    cap_ah = (cap + noise)[:, rows] * post.reference_ah
    half = 0.5 * inter
    lt_s, lc_s = (lt + half)[:, rows], (lc + half)[:, rows]
    out = []
    for k, cq, tq, yq in zip(range(cap_ah.shape[1]), _q(cap_ah), _q(lt_s), _q(lc_s)):
        i = np.arange(cell.n)[rows][k]
        out.append({"cycle_index": int(cell.cycle_index[i]),
                    "test_time_second": float(cell.hours[i] * 3600.0),
                    "capacity_ah": cq, "loss_time_fraction": tq, "loss_cycle_fraction": yq})
    return out


def plan_forecast(post: CohortPosterior, plan: CellHistory, draws: np.ndarray) -> list[dict]:
    """Capacity forecast of a planned sibling (its own level drawn from the population)."""
    offset = np.random.default_rng(13).standard_normal(draws.shape[0]) * post.prior.offset_sd
    return forecast_rows(post, plan, draws, offset)


def extend_history(cell: CellHistory, horizon_cycles: int) -> CellHistory:
    """The cell's history plus ``horizon_cycles`` future cycles at its recent pace (median
    of the last 10 cycles' durations, last C-rate, rest and temperature)."""
    k = min(10, cell.n)
    op = float(np.median(cell.operating_hour[-k:]))
    rest = float(np.median(cell.rest_hour[-k:]))
    n = int(horizon_cycles)
    idx = cell.cycle_index[-1] + np.arange(1, n + 1)
    hours = cell.hours[-1] + np.cumsum(np.full(n, op + rest))
    return CellHistory(cell.cell_id, np.concatenate([cell.cycle_index, idx]),
                       np.concatenate([cell.hours, hours]),
                       np.concatenate([cell.operating_hour, np.full(n, op)]),
                       np.concatenate([cell.rest_hour, np.full(n, rest)]),
                       np.concatenate([cell.c_rate, np.full(n, cell.c_rate[-1])]),
                       np.concatenate([cell.temperature_celsius,
                                       np.full(n, cell.temperature_celsius[-1])]),
                       None, cell.estimated)


def cell_forecast(post: CohortPosterior, i: int, draws: np.ndarray,
                  horizon_cycles: int) -> list[dict]:
    """The next ``horizon_cycles`` cycles of observed cell ``i`` (its own fitted level)."""
    cell = post.cells[i]
    ext = extend_history(cell, horizon_cycles)
    # future cycles repeat the last C-rate (the level follows the median rate of all cycles)
    return forecast_rows(post, ext, draws, post.offset(draws, i), slice(cell.n, None))

