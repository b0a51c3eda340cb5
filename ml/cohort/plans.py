"""Forecasts from the cohort law: a planned sibling with no data yet, or a cell's next cycles.

Every row gives the capacity (Ah) and the time- and cycle-driven loss fractions (of the cohort
reference, interaction shared evenly) as p05 / p50 / p95 over posterior draws. A planned
sibling's own level is drawn from the population spread of levels (``offset_sd``) and its
rate-dependent undegraded capacity from the shared ``c0 + g · (rate − 0.5)``; the cohort's
median residual noise is added to capacities.

**Plan clocks.** A plan carries its planned clock (``test_time_second``). With the default
``clock="given"`` that clock is used as sent. With ``clock="follows_capacity"`` the given clock
is read as the schedule at the cohort's reference capacity, and every cycle is shortened by the
constant-current time the faded cell no longer needs, ``2 · (1 − capacity/reference) / c_rate``
hours (charge and discharge at ``c_rate``; CV holds and rests kept as planned), with the
capacity the cohort law itself predicts for the plan (posterior mean, population-mean level;
a fixed point of a few iterations, since the capacity depends on the hours). A C/5 cell at
70 % retention runs ~3 h less per cycle than at 100 %: a clock that ignores this overstates
the plan's elapsed hours (diagnosed on the training/calibration cohorts cd1–cd8, one sibling
from the others at 60 %: mean what-if error 1.63 % of nominal with the protocol clock, 1.11 %
with this one, 1.11 % with the recorded future clock). The plan must give ``c_rate``.
"""
from __future__ import annotations

import numpy as np

from ml.cohort import law
from ml.cohort.histories import CellHistory
from ml.cohort.posterior import CohortPosterior
from ml.inference import losses_within_level

from data_registry.errors import ValidationError

__all__ = ["forecast_rows", "extend_history", "plan_forecast", "cell_forecast", "PLAN_CLOCKS",
           "clock_following_capacity", "with_plan_clock"]

PLAN_CLOCKS = ("given", "follows_capacity")
_CLOCK_ITERATIONS = 4
_MIN_OPERATING_HOUR = 1e-3


def _q(values: np.ndarray) -> list[dict[str, float]]:
    qs = np.quantile(values, [0.05, 0.5, 0.95], axis=0)
    return [{"p05": float(a), "p50": float(b), "p95": float(c)} for a, b, c in zip(*qs)]


def forecast_rows(post: CohortPosterior, cell: CellHistory, draws: np.ndarray,
                  offset: np.ndarray, rows: slice = slice(None)) -> list[dict]:
    """CONTRACTS forecast rows of ``cell`` (all cycles or ``rows``) for parameter ``draws``."""
    th = post.shared(draws)
    lt, lc = law.losses(cell, th)
    # the overlap of the two losses never cancels more than the smaller of them: unbounded,
    # −k·Lt·Lc grows quadratically far past end of life and the capacity rose again (review)
    inter = np.maximum(law.interaction(lt, lc, th), -np.minimum(lt, lc))
    level = law.undegraded_fraction(cell.typical_c_rate, th, offset)
    cap = level - lt - lc - inter
    noise = np.random.default_rng(11).standard_normal(cap.shape) * float(np.median(post.noise))
    # a capacity is never below zero, nor a cell's losses above what it had (its level)
    cap_ah = np.maximum(cap + noise, 0.0)[:, rows] * post.reference_ah
    half = 0.5 * inter
    # the even split of a large (negative) interaction can take a share just below zero
    lt_s, lc_s = losses_within_level(np.maximum(lt + half, 0.0), np.maximum(lc + half, 0.0),
                                     level[:, 0], axis=1)
    lt_s, lc_s = lt_s[:, rows], lc_s[:, rows]
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


def _with_operating_hours(plan: CellHistory, operating: np.ndarray) -> CellHistory:
    """``plan`` with other operating hours (rests kept; the clock starts where it did)."""
    start = float(plan.hours[0] - plan.operating_hour[0] - plan.rest_hour[0])
    hours = max(start, 0.0) + np.cumsum(operating + plan.rest_hour)
    return CellHistory(plan.cell_id, plan.cycle_index, hours, operating, plan.rest_hour,
                       plan.c_rate, plan.temperature_celsius, None, plan.estimated)


def clock_following_capacity(post: CohortPosterior, plan: CellHistory,
                             iterations: int = _CLOCK_ITERATIONS) -> CellHistory:
    """The plan with each cycle's hours shortened by ``2 (1 − capacity/reference) / c_rate``
    (h), capacity from the cohort law at the posterior mean (module doc).

    Raises
    ------
    ValidationError
        The plan has no ``c_rate`` (its rate would be guessed from the very clock this
        replaces).
    """
    if "c_rate" in plan.estimated:
        raise ValidationError("a plan whose clock follows capacity needs its C-rate",
                              code="missing_column", file=plan.cell_id, column="c_rate",
                              expected="c_rate per planned cycle (1/h of the reference "
                              "capacity)", found="no c_rate column")
    theta = np.asarray(post.mean[:len(law.SHARED)], dtype=float)[None, :]
    current = plan
    for _ in range(max(1, int(iterations))):
        frac = law.capacity_fraction(current, theta, 0.0)[0]
        shrink = 2.0 * np.clip(1.0 - frac, 0.0, 1.0) / plan.c_rate
        op = np.maximum(plan.operating_hour - shrink, _MIN_OPERATING_HOUR)
        current = _with_operating_hours(plan, op)
    return current


def with_plan_clock(post: CohortPosterior, plan: CellHistory, clock: str = "given"
                    ) -> CellHistory:
    """``plan`` under the clock mode ``clock`` (one of :data:`PLAN_CLOCKS`)."""
    if clock == "given":
        return plan
    if clock == "follows_capacity":
        return clock_following_capacity(post, plan)
    raise ValidationError("unknown plan clock", code="bad_option", column="plan_clock",
                          expected=" or ".join(PLAN_CLOCKS), found=repr(clock))


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

