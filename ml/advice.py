"""Early-stopping advice: may a running ageing test stop now? Pure numpy, no I/O.

The policy reads what a forecast says about the end-of-life (EOL) cycle — its p05/p50/p95 — at
the last few forecast *updates* (the same cell forecast from a growing history) and answers
``stop`` only when every check passes:

``known``
    the EOL interval is narrow: p95 − p05 ≤ 2 × ``tolerance_cycles`` (CONTRACTS.md);
``stable``
    the last ``stable_updates`` updates were all known and their medians agree within
    ``tolerance_cycles``;
``in_domain``
    the latest forecast's ``domain`` answer says the cell is inside the model's training domain
    (:mod:`ml.domain`, the one domain judgement: every conditioning input, including the retention
    so far; :func:`ml.domain.verdict_failures` turns the answer into ``domain_failures``), and the
    predicted EOL median lies within ``AdvicePolicy.max_extrapolation_factor`` × the longest
    trained trajectory;
``onset_ruled_out``
    a delayed onset or knee is no longer possible to miss: the cell has already lost at least
    ``min_loss_fraction`` of its reference capacity AND the EOL p95 is reached inside the forecast.

With a spec (``min_cycles_to_eol``) the test may also stop once the pass probability
P(EOL cycle ≥ min_cycles_to_eol) has stayed above ``pass_high`` (or below ``pass_low``) for the
last ``stable_updates`` updates and the EOL cycle is known to ± ``spec_eol_rel_halfwidth`` of its
median — the pass/fail call is then settled even if the EOL is not known to the tolerance.

Once the end of life has been OBSERVED in the history, the model is not needed: the update
carries p05 = p50 = p95 = the observed cycle and the advice is ``stop``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "AdvicePolicy", "Advice", "EolEstimate", "advise",
    "eol_estimate", "extrapolation_violation",
    "interval_scale_for_coverage", "observed_eol_cycle", "pass_probability",
    "update_from_forecast",
]

_Z95 = 1.6448536269514722  # standard-normal quantile of 0.95


@dataclass(frozen=True)
class AdvicePolicy:
    """Thresholds of the stop rule (all dimensionless or counts of forecast updates)."""

    stable_updates: int = 3
    min_loss_fraction: float = 0.03
    pass_high: float = 0.95
    pass_low: float = 0.05
    #: widen every forecast interval by this factor before deciding (1 = trust the model's
    #: bands; > 1 for a model whose validation coverage falls short, see
    #: :func:`interval_scale_for_coverage`)
    interval_scale: float = 1.0
    #: a spec call also needs the (widened) EOL cycle known to ± this fraction of its median
    #: (None: no such requirement), so the EOL reported at the stop is itself usable
    spec_eol_rel_halfwidth: float | None = 0.1
    #: refuse to stop on an EOL median predicted beyond this many times the longest trained
    #: trajectory (cycles); only applied when ``advise`` is given ``trained_max_cycle``
    max_extrapolation_factor: float = 4.0

    def __post_init__(self) -> None:
        if self.stable_updates < 1:
            raise ValueError(f"stable_updates must be >= 1, got {self.stable_updates}")
        if not 0.0 <= self.min_loss_fraction < 1.0:
            raise ValueError(f"min_loss_fraction must be in [0, 1), got {self.min_loss_fraction}")
        if not self.interval_scale >= 1.0:
            raise ValueError(f"interval_scale must be >= 1, got {self.interval_scale}")
        if not 0.0 < self.pass_low < 0.5 < self.pass_high < 1.0:
            raise ValueError("need 0 < pass_low < 0.5 < pass_high < 1, got "
                             f"{self.pass_low}, {self.pass_high}")
        if not self.max_extrapolation_factor >= 1.0:
            raise ValueError("max_extrapolation_factor must be >= 1, got "
                             f"{self.max_extrapolation_factor}")


@dataclass(frozen=True)
class EolEstimate:
    """One forecast update's view of the end of life.

    ``cycle`` and ``hour`` hold (p05, p50, p95); NaN where the quantile is not reached within the
    forecast horizon. ``last_cycle`` is the last observed cycle when the update was made.
    ``observed`` is True when the EOL was seen in the history (all three equal the observed
    cycle).
    """

    last_cycle: int
    cycle: tuple[float, float, float]
    hour: tuple[float, float, float]
    threshold_fraction: float = 0.8
    pass_probability: float | None = None
    observed: bool = False

    @property
    def width_cycles(self) -> float:
        """p95 − p05 of the EOL cycle (inf when either is not reached)."""
        lo, _, hi = self.cycle
        return float(hi - lo) if math.isfinite(lo) and math.isfinite(hi) else math.inf

    @property
    def reached(self) -> bool:
        """True when all three EOL quantiles fall inside the forecast horizon."""
        return all(math.isfinite(v) for v in self.cycle)


@dataclass(frozen=True)
class Advice:
    """The policy's answer: ``decision`` is ``"stop"`` or ``"continue"``; ``checks`` says why."""

    decision: str
    reason: str
    end_of_life: EolEstimate
    checks: dict[str, bool]
    hours_saved_if_stopped: float
    pass_probability: float | None = None
    failed: list[str] = field(default_factory=list)


def _triple(block: Mapping[str, Any] | None) -> tuple[float, float, float]:
    if not block:
        return (math.nan, math.nan, math.nan)
    return tuple(math.nan if block.get(k) is None else float(block[k])  # type: ignore[return-value]
                 for k in ("p05", "p50", "p95"))


def eol_estimate(forecast: Mapping[str, Any], *, last_cycle: int,
                 pass_prob: float | None = None) -> EolEstimate:
    """Read the end-of-life quantiles out of a CONTRACTS forecast document.

    Parameters
    ----------
    forecast:
        The forecast JSON (``end_of_life`` null: the median EOL is not reached within the
        horizon). A quantile flagged in ``end_of_life["censored"]`` (clamped to the horizon's
        end, see :func:`ml.inference.forecast`) is read as not reached (NaN).
    last_cycle:
        Last observed cycle index of the history the forecast was made from.
    pass_prob:
        P(EOL ≥ spec) for this update, if a spec is in play.
    """
    eol = forecast.get("end_of_life") or {}
    censored = eol.get("censored") or {}
    keys = ("p05", "p50", "p95")
    cycles = tuple(math.nan if censored.get(k) else v
                   for k, v in zip(keys, _triple(eol.get("cycle_index"))))
    seconds = tuple(math.nan if censored.get(k) else v
                    for k, v in zip(keys, _triple(eol.get("test_time_second"))))
    return EolEstimate(
        last_cycle=int(last_cycle),
        cycle=cycles,  # type: ignore[arg-type]
        hour=tuple(s / 3600.0 for s in seconds),  # type: ignore[arg-type]
        threshold_fraction=float(eol.get("threshold_fraction", math.nan)) if eol else math.nan,
        pass_probability=pass_prob,
    )


def interval_scale_for_coverage(coverage_90: float | None) -> float:
    """Factor that turns a band with MEASURED coverage ``coverage_90`` (fraction of truths inside
    the nominal 90 % band on validation cells) into a band that would cover 90 %, assuming
    normal errors: z(0.95) / z((1 + coverage) / 2). 1 when the coverage is unknown or ≥ 90 %.
    """
    from statistics import NormalDist

    if coverage_90 is None or not math.isfinite(coverage_90) or coverage_90 >= 0.9:
        return 1.0
    c = min(max(float(coverage_90), 0.05), 0.9)
    return _Z95 / NormalDist().inv_cdf((1.0 + c) / 2.0)


def _split_normal_sf(x: float, q05: float, q50: float, q95: float, widen: float = 1.0) -> float:
    """P(X > x) for a split normal through the 5/50/95 % quantiles (steps where a side is 0);
    ``widen`` multiplies both half-widths."""
    scale = widen * ((q50 - q05) if x <= q50 else (q95 - q50)) / _Z95
    if not scale > 0:
        return 1.0 if x < q50 else (0.5 if x == q50 else 0.0)
    return 0.5 * math.erfc((x - q50) / (scale * math.sqrt(2.0)))


#: consecutive observed retentions below the threshold that make an observed end of life
OBSERVED_EOL_ROWS = 3


def observed_eol_row(retention: np.ndarray, eol_fraction: float) -> int | None:
    """Row of the observed end of life: the first of :data:`OBSERVED_EOL_ROWS` consecutive
    retentions below ``eol_fraction`` (one noisy row, or two odd rows at the end of a
    history, do not end a cell's life); None when the history shows none. The one rule of the
    forecast, the advice and the backtest."""
    below = np.asarray(retention, dtype=float) < eol_fraction
    k = OBSERVED_EOL_ROWS
    if below.size < k:
        return None
    run = np.lib.stride_tricks.sliding_window_view(below, k).all(axis=1)
    hit = np.flatnonzero(run)
    return int(hit[0]) if hit.size else None


def observed_eol_cycle(cycle_index: np.ndarray, retention: np.ndarray,
                       eol_fraction: float) -> int | None:
    """Cycle of :func:`observed_eol_row` (None if the history shows no end of life)."""
    row = observed_eol_row(retention, eol_fraction)
    return None if row is None else int(np.asarray(cycle_index)[row])


def pass_probability(forecast: Mapping[str, Any], min_cycles_to_eol: float, *,
                     last_cycle: int, reference_capacity_ah: float, eol_fraction: float = 0.8,
                     observed_eol: int | None = None, interval_scale: float = 1.0) -> float:
    """P(EOL cycle ≥ ``min_cycles_to_eol``) from a forecast's quantiles.

    Observed history decides when it can (EOL already seen → 0 or 1; spec cycle already passed
    without EOL → 1). Otherwise each forecast row up to the cycle before the spec gives
    P(capacity above the threshold there) through a split normal on its p05/p50/p95, and the
    smallest of them bounds P(EOL ≥ spec) (the cell must stay above at every one of those
    cycles). Beyond the horizon the EOL-cycle quantiles are used when all three are reached,
    else the rows up to the horizon's end (an upper bound).

    Parameters
    ----------
    forecast:
        CONTRACTS forecast JSON (``capacity_ah`` in Ah).
    min_cycles_to_eol:
        The spec: the cell passes when its EOL cycle is at or after this cycle.
    last_cycle:
        Last observed cycle index.
    reference_capacity_ah:
        The reference capacity the threshold fraction applies to (Ah).
    eol_fraction:
        End of life = capacity below this fraction of the reference.
    observed_eol:
        First observed cycle below the threshold, if any.
    interval_scale:
        Widen the forecast bands by this factor first (see :class:`AdvicePolicy`).
    """
    spec = float(min_cycles_to_eol)
    if observed_eol is not None:
        return 1.0 if observed_eol >= spec else 0.0
    if spec <= last_cycle + 1:
        return 1.0
    eol = forecast.get("end_of_life") or {}
    rows = forecast.get("forecast") or []
    thr_ah = float(eol_fraction) * reference_capacity_ah
    if not rows:
        return math.nan
    last_needed = int(math.ceil(spec)) - 1
    if last_needed > int(rows[-1]["cycle_index"]):
        q05, q50, q95 = _triple(eol.get("cycle_index"))
        if all(math.isfinite(v) for v in (q05, q50, q95)):
            return _split_normal_sf(spec - 0.5, q05, q50, q95, interval_scale)
    # EOL >= spec needs the capacity above the threshold at EVERY cycle before the spec, so
    # its probability is at most each marginal: take the smallest (also keeps P monotone).
    prob = 1.0
    for r in rows:
        if int(r["cycle_index"]) > last_needed:
            break
        c05, c50, c95 = _triple(r["capacity_ah"])
        prob = min(prob, _split_normal_sf(thr_ah, c05, c50, c95, interval_scale))
    # an end-of-life interval calibrated on its own (ml.training.eol_calibration) bounds it too:
    # the answer's interval and this probability must not disagree (its lower half only where
    # a censored p95 is a lower bound)
    if eol.get("calibrated_widening"):
        q05, q50, q95 = _triple(eol.get("cycle_index"))
        censored = bool((eol.get("censored") or {}).get("p95"))
        if all(math.isfinite(v) for v in (q05, q50, q95)) and (not censored
                                                              or spec - 0.5 < q50):
            prob = min(prob, _split_normal_sf(spec - 0.5, q05, q50, q95, interval_scale))
    return prob


def update_from_forecast(forecast: Mapping[str, Any], *, last_cycle: int,
                         reference_capacity_ah: float, eol_fraction: float = 0.8,
                         spec_min_cycles: float | None = None,
                         observed_eol: int | None = None,
                         interval_scale: float = 1.0,
                         observed_eol_hour: float | None = None) -> EolEstimate:
    """One policy update from one forecast: EOL quantiles plus, with a spec, P(pass).

    Parameters are those of :func:`eol_estimate` and :func:`pass_probability`; with
    ``observed_eol`` (first observed cycle below the threshold, in the history the forecast was
    made from) the EOL is that cycle for all three quantiles, at ``observed_eol_hour`` (h of
    test time; NaN when not given), and ``observed`` is set.
    """
    pp = None
    if spec_min_cycles is not None:
        pp = pass_probability(forecast, spec_min_cycles, last_cycle=last_cycle,
                              reference_capacity_ah=reference_capacity_ah,
                              eol_fraction=eol_fraction, observed_eol=observed_eol,
                              interval_scale=interval_scale)
    if observed_eol is not None:
        hour = math.nan if observed_eol_hour is None else float(observed_eol_hour)
        return EolEstimate(int(last_cycle), (float(observed_eol),) * 3, (hour,) * 3,
                           float(eol_fraction), pp, observed=True)
    est = eol_estimate(forecast, last_cycle=last_cycle, pass_prob=pp)
    if not math.isfinite(est.threshold_fraction):
        est = EolEstimate(est.last_cycle, est.cycle, est.hour, float(eol_fraction), pp)
    return est


def extrapolation_violation(est: EolEstimate, trained_max_cycle: float | None,
                            max_factor: float = 4.0) -> str | None:
    """A reason line when the EOL median lies beyond ``max_factor`` × the longest trained
    trajectory ``trained_max_cycle`` (cycles; the card's ``training_domain["cycle_index"][1]``),
    else None (also when either is unknown or the EOL was observed)."""
    mid = est.cycle[1]
    if est.observed or trained_max_cycle is None or not math.isfinite(mid) or \
            not float(trained_max_cycle) > 0:
        return None
    if mid > max_factor * float(trained_max_cycle):
        return (f"predicted EOL cycle {mid:.0f} beyond {max_factor:g}× the longest trained "
                f"trajectory ({float(trained_max_cycle):.0f} cycles)")
    return None


def _fmt_pct(est: EolEstimate) -> str:
    return f"{100 * est.threshold_fraction:.0f} %" if math.isfinite(est.threshold_fraction) \
        else "end of life"


def _fmt_eol(est: EolEstimate) -> str:
    pct = _fmt_pct(est)
    lo, mid, hi = est.cycle
    if not math.isfinite(mid):
        return f"{pct} not reached within the forecast"
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{pct} at cycle {mid:.0f} ± {(hi - lo) / 2:.0f}"
    return f"{pct} at cycle {mid:.0f} (upper bound beyond the forecast)"


def advise(updates: Sequence[EolEstimate], *, planned_cycles: int, tolerance_cycles: float,
           hours_per_cycle: float, loss_so_far_fraction: float,
           domain_failures: Sequence[str] = (), spec_min_cycles: float | None = None,
           policy: AdvicePolicy = AdvicePolicy(),
           trained_max_cycle: float | None = None) -> Advice:
    """Stop or continue the test, given the latest forecast updates (oldest first).

    Parameters
    ----------
    updates:
        EOL estimates of successive forecast updates; the last one is "now".
    planned_cycles:
        The cycle at which the test is planned to end.
    tolerance_cycles:
        How precisely the EOL cycle must be known (cycles, > 0).
    hours_per_cycle:
        Expected duration of each remaining cycle (h), for ``hours_saved_if_stopped``.
    loss_so_far_fraction:
        Capacity lost so far as a fraction of the reference (1 − last retention).
    domain_failures:
        Why the latest forecast is outside the training domain: the ``reasons`` of its
        ``domain`` answer (:func:`ml.domain.verdict_failures`); any entry fails the
        ``in_domain`` check, so the answer is ``continue`` (an observed EOL still stops).
    spec_min_cycles:
        Optional spec: the cell passes when EOL ≥ this cycle.
    trained_max_cycle:
        Longest trained trajectory (cycles, the card's ``training_domain["cycle_index"][1]``);
        when given, an EOL median beyond ``policy.max_extrapolation_factor`` × it fails
        ``in_domain`` (see :func:`extrapolation_violation`).

    An update with ``observed`` set (EOL seen in the history) answers ``stop`` at once.
    """
    if not updates:
        raise ValueError("advise needs at least one forecast update")
    if not tolerance_cycles > 0:
        raise ValueError(f"tolerance_cycles must be > 0, got {tolerance_cycles}")
    now = updates[-1]
    hours_saved = max(0.0, float(planned_cycles - now.last_cycle)) * max(0.0, hours_per_cycle)
    pp = now.pass_probability if spec_min_cycles is not None else None
    if now.observed:
        checks = {"known": True, "stable": True, "in_domain": True, "onset_ruled_out": True}
        level = f" ({_fmt_pct(now)})" if math.isfinite(now.threshold_fraction) else ""
        return Advice("stop", f"stop now: end of life{level} observed at cycle "
                      f"{now.cycle[1]:.0f}", now, checks, hours_saved, pp, [])
    beyond = extrapolation_violation(now, trained_max_cycle, policy.max_extrapolation_factor)
    domain_failures = list(domain_failures) + ([beyond] if beyond else [])
    recent = list(updates[-policy.stable_updates:])
    enough = len(recent) >= policy.stable_updates
    widen = policy.interval_scale
    known = widen * now.width_cycles <= 2.0 * tolerance_cycles
    medians = [u.cycle[1] for u in recent]
    stable = enough and all(widen * u.width_cycles <= 2.0 * tolerance_cycles
                            for u in recent) and \
        float(np.max(medians) - np.min(medians)) <= tolerance_cycles
    onset = loss_so_far_fraction >= policy.min_loss_fraction and math.isfinite(now.cycle[2])
    checks = {"known": bool(known), "stable": bool(stable), "in_domain": not domain_failures,
              "onset_ruled_out": bool(onset)}
    spec_call: str | None = None
    spec_eol_ok = policy.spec_eol_rel_halfwidth is None or (
        math.isfinite(now.width_cycles) and now.cycle[1] > 0
        and widen * now.width_cycles / 2 <= policy.spec_eol_rel_halfwidth * now.cycle[1])
    if pp is not None and enough and spec_eol_ok and \
            all(u.pass_probability is not None for u in recent):
        probs = [float(u.pass_probability) for u in recent]  # type: ignore[arg-type]
        if min(probs) >= policy.pass_high:
            spec_call = "pass"
        elif max(probs) <= policy.pass_low:
            spec_call = "fail"
    eol_text = _fmt_eol(now)

    failed: list[str] = []
    if domain_failures:
        failed.append("in_domain")
        reason = f"continue: outside the model's training domain ({'; '.join(domain_failures)})"
    elif not onset:
        failed.append("onset_ruled_out")
        if loss_so_far_fraction < policy.min_loss_fraction:
            reason = (f"continue: only {100 * loss_so_far_fraction:.1f} % of capacity lost so far "
                      f"(< {100 * policy.min_loss_fraction:.1f} %), a delayed onset or knee is "
                      f"still possible; {eol_text}")
        else:
            reason = f"continue: {eol_text}, so a later knee cannot be ruled out"
    elif spec_call is not None:
        verdict = "passes" if spec_call == "pass" else "fails"
        reason = (f"stop now: the cell {verdict} the spec (P(EOL ≥ cycle "
                  f"{spec_min_cycles:.0f}) = {pp:.2f}); {eol_text}")
        return Advice("stop", reason, now, checks, hours_saved, pp, [])
    elif known and stable:
        return Advice("stop", f"stop now: {eol_text}", now, checks, hours_saved, pp, [])
    elif not known:
        failed.append("known")
        reason = f"continue: {eol_text} is wider than ± {tolerance_cycles:g} cycles"
    else:
        failed.append("stable")
        reason = (f"continue: {eol_text}, but not yet stable over the last "
                  f"{policy.stable_updates} updates")
    return Advice("continue", reason, now, checks, hours_saved, pp, failed)
