"""Is a forecast request inside the model's training domain? Judged on EVERY conditioning input.

The ONE domain judgement of fadecast: every forecast answer carries its verdict (``domain``), and
the advice answer and the backtest replay read the verdict of the forecast they decide on
(:func:`verdict_failures`) — there is no second check that could disagree.

A forecast conditions on the planned pace (hours per future cycle), the observed pace, the C-rate,
the temperature, the capacity scale (reference capacity, Ah), the retention so far, the chemistry
where the caller states it, and the history length. Each is compared with the range the card's
``training_domain`` records (``ml.export.card.training_domain``):

* positive scale quantities (hours per cycle, C-rate, reference capacity) on a LOG scale: inside
  when within ``lo / RELATIVE_SLACK`` … ``hi · RELATIVE_SLACK`` (a 1 h/cycle request against a
  trained 3.15–300 h range is outside, which a linear "5 % of the span" slack missed);
* temperature on a linear scale with ``TEMPERATURE_SLACK_C`` degrees either side;
* retention so far (median of the last 10 cycles' discharge capacity / the reference capacity)
  on a linear scale, with ``RETENTION_SLACK`` × the trained span either side (a cell faded
  further than any training cell, or far above its reference, is outside);
* chemistry against the trained list (case-insensitive) when both sides state one;
* history length: shorter than the shortest window the model was trained on, or longer than
  ``HORIZON_FACTOR`` × the longest trained trajectory.

Pure functions over a per-cycle model table (``ml.windows.model_table``) and plain dicts.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = ["same_chemistry", "share_fade_rate", "RELATIVE_SLACK", "TEMPERATURE_SLACK_C", "RETENTION_SLACK",
           "HORIZON_FACTOR", "RECENT_CYCLES", "request_conditions", "judge_domain",
           "verdict_failures"]

#: a positive quantity within a factor 1.1 beyond the trained range still counts as inside
RELATIVE_SLACK = 1.1
#: temperatures within 2 °C of the trained range count as inside
TEMPERATURE_SLACK_C = 2.0
#: a history longer than this many times the longest trained trajectory is outside
HORIZON_FACTOR = 4.0
#: retention within this fraction of the trained span beyond the range counts as inside
#: (0.05: a 0.56–1.03 trained range admits 0.53–1.05)
RETENTION_SLACK = 0.05
#: the pace, C-rate and retention "so far" are medians of this many last cycles
RECENT_CYCLES = 10

_LOG_SCALE = (("hours_per_cycle", "planned hours per cycle", "h"),
              ("observed_hours_per_cycle", "observed hours per cycle", "h"),
              ("c_rate", "C-rate", "1/h"),
              ("reference_capacity_ah", "reference capacity", "Ah"))
#: which training-domain entry each request condition is judged against
_DOMAIN_KEY = {"hours_per_cycle": "hours_per_cycle", "observed_hours_per_cycle": "hours_per_cycle",
               "c_rate": "c_rate", "reference_capacity_ah": "reference_capacity_ah",
               "temperature_celsius": "temperature_celsius"}


def share_fade_rate(retention: np.ndarray, elapsed_hour: np.ndarray) -> float | None:
    """How fast the cell has faded for its age: log(loss so far / √elapsed hours), the loss
    = max of the first 3 retentions − median of the last 3 (fractions of the reference);
    None before any fade or without a clock.

    The time share is learnt from cells whose time/cycle split is known; a history fading
    faster for its age than any of them asks the network to extrapolate the split: the
    leave-pybamm-dev-out model's share errors were largest on pybamm-dev cells above the
    training cells' 95th percentile (session 5's note) — an axis found by looking at where
    that model failed, so its bound is the training percentile, never tuned."""
    r = np.asarray(retention, dtype=np.float64)
    t = np.asarray(elapsed_hour, dtype=np.float64)
    r, t = r[np.isfinite(r)], t[np.isfinite(t)]
    if r.size < 3 or not t.size or t[-1] <= 0:
        return None
    loss = float(np.max(r[:3]) - np.median(r[-3:]))
    return math.log(loss / math.sqrt(float(t[-1]))) if loss > 0 else None


def same_chemistry(stated: str, trained: str) -> bool:
    """True when ``stated`` names ``trained`` (case-insensitive), or its cathode part:
    "LFP" matches "LFP/graphite"."""
    a, b = str(stated).strip().lower(), str(trained).strip().lower()
    return a == b or a == b.split("/")[0].strip() or b == a.split("/")[0].strip()


def _rows(table: Any) -> int:
    """Cycles in a model table (a DataFrame, or ``ml.windows.ModelColumns`` with ``n_rows``)."""
    n = getattr(table, "n_rows", None)
    return len(table) if n is None else int(n)


def _float_values(col: Any) -> np.ndarray:
    """A column as float64 (NaN where not a number): plain float64 arrays as they are."""
    if isinstance(col, np.ndarray) and col.dtype == np.float64:
        return col
    return pd.to_numeric(col, errors="coerce").to_numpy(float)


def _median(v: np.ndarray) -> float:
    """``np.median`` of a non-empty finite array; a few values through ``sorted`` (the same
    number: the middle value, or the two middle values' sum / 2), which costs ~1 us where
    ``np.median`` costs ~15 us."""
    if v.size > 32:
        return float(np.median(v))
    s = sorted(v.tolist())
    m = len(s) // 2
    return float(s[m]) if len(s) % 2 else float((s[m - 1] + s[m]) / 2.0)


def _median_tail(table: Any, name: str, n: int = RECENT_CYCLES) -> float | None:
    if name not in table.columns:
        return None
    v = _float_values(table[name])[-n:]
    v = v[np.isfinite(v)]
    return _median(v) if v.size else None


def request_conditions(table: Any, *, planned_hours_per_cycle: float,
                       chemistry: str | None = None) -> dict[str, Any]:
    """The conditioning inputs of one forecast request.

    Parameters
    ----------
    table:
        The history as :func:`ml.windows.model_table` returns it (``cycle_duration_hour``,
        ``c_rate``, ``temperature_celsius``, ``reference_capacity_ah`` …), or its columns as
        arrays (:func:`ml.windows.model_columns`).
    planned_hours_per_cycle:
        The pace the forecast assumes for future cycles (h).
    chemistry:
        The caller's statement of the cell chemistry, if any.

    ``retention`` is the median of the table's last :data:`RECENT_CYCLES` ``retention`` values
    (discharge capacity / reference capacity, the reference as CONTRACTS defines it).
    """
    n_rows = _rows(table)
    ref = _median_tail(table, "reference_capacity_ah", n=n_rows)
    temps = table.get("temperature_celsius")
    temps = _float_values(pd.Series(dtype=float) if temps is None else temps)
    temps = temps[np.isfinite(temps)]
    last = table["cycle_index"]
    last = last.iloc[-1] if isinstance(last, pd.Series) else last[-1]
    return {"hours_per_cycle": float(planned_hours_per_cycle),
            "observed_hours_per_cycle": _median_tail(table, "cycle_duration_hour"),
            "c_rate": _median_tail(table, "c_rate"),
            "temperature_celsius": (_median(temps) if temps.size else None),
            "temperature_range_celsius": ([float(temps.min()), float(temps.max())]
                                          if temps.size else None),
            "reference_capacity_ah": ref,
            "retention": _median_tail(table, "retention"),
            "chemistry": chemistry or None,
            "history_cycles": int(n_rows),
            "last_cycle_index": float(last)}


def domain_bounds(rule: Any) -> tuple[float | None, float | None]:
    """(low, high) of one training-domain rule of the model card: ``{"min", "max"}`` or a
    pair; (None, None) where the card holds no usable bounds."""
    if isinstance(rule, Mapping):
        lo, hi = rule.get("min"), rule.get("max")
    elif isinstance(rule, (list, tuple)) and len(rule) == 2:
        lo, hi = rule
    else:
        return None, None
    try:
        return (None if lo is None else float(lo)), (None if hi is None else float(hi))
    except (TypeError, ValueError):
        return None, None


def _ok(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def judge_domain(conditions: Mapping[str, Any], domain: Mapping[str, Any] | None) -> dict:
    """``{"in_domain": bool, "reasons": [...], "checked": [...]}`` for one request.

    ``reasons`` has one line per condition outside the trained range (naming the input, its
    value and the trained range, with units); ``checked`` lists the conditions that could be
    judged (both sides known). A card without a training domain judges nothing and says so in
    ``reasons`` (not in domain: the model's domain is unknown).
    """
    if not domain:
        return {"in_domain": False, "reasons": ["the model card records no training domain"],
                "checked": []}
    reasons: list[str] = []
    checked: list[str] = []
    for name, label, unit in _LOG_SCALE:
        value = conditions.get(name)
        lo, hi = domain_bounds(domain.get(_DOMAIN_KEY[name]))
        if not _ok(value) or lo is None or hi is None:
            continue
        checked.append(name)
        v = float(value)
        if v <= 0 or v < lo / RELATIVE_SLACK:
            reasons.append(f"{label} {v:.4g} {unit} below the trained range "
                           f"{lo:.4g}–{hi:.4g} {unit}")
        elif v > hi * RELATIVE_SLACK:
            reasons.append(f"{label} {v:.4g} {unit} above the trained range "
                           f"{lo:.4g}–{hi:.4g} {unit}")
    value = conditions.get("retention")
    lo, hi = domain_bounds(domain.get("retention"))
    if _ok(value) and lo is not None and hi is not None:
        checked.append("retention")
        v, slack = float(value), RETENTION_SLACK * max(hi - lo, 0.0)
        side = "below" if v < lo - slack else "above" if v > hi + slack else None
        if side:
            ref = conditions.get("reference_capacity_ah")
            of = f"the reference capacity {float(ref):.4g} Ah" if _ok(ref) else \
                "the reference capacity"
            reasons.append(f"retention so far {100 * v:.1f} % of {of}, median of the last "
                           f"{RECENT_CYCLES} cycles, {side} the trained range "
                           f"{100 * lo:.1f}–{100 * hi:.1f} %")
    lo, hi = domain_bounds(domain.get("temperature_celsius"))
    temps = conditions.get("temperature_range_celsius")
    if temps and lo is not None and hi is not None:
        checked.append("temperature_celsius")
        if temps[0] < lo - TEMPERATURE_SLACK_C or temps[1] > hi + TEMPERATURE_SLACK_C:
            reasons.append(f"temperature {temps[0]:.4g}–{temps[1]:.4g} °C outside the trained "
                           f"range {lo:.4g}–{hi:.4g} °C")
    chem = conditions.get("chemistry")
    allowed = [str(a) for a in (domain.get("chemistry") or [])]
    if chem and allowed:
        checked.append("chemistry")
        if not any(same_chemistry(chem, a) for a in allowed):
            reasons.append(f"chemistry '{chem}' not among the trained {sorted(allowed)}")
    n = conditions.get("history_cycles")
    lo, hi = domain_bounds(domain.get("history_cycles"))
    if _ok(n) and lo is not None:
        checked.append("history_cycles")
        if float(n) < lo:
            reasons.append(f"history of {int(n)} cycles shorter than any trained window "
                           f"({lo:.0f} cycles)")
    _, longest = domain_bounds(domain.get("cycle_index"))
    last = conditions.get("last_cycle_index")
    if _ok(last) and longest is not None:
        checked.append("last_cycle_index")
        if float(last) > HORIZON_FACTOR * longest:
            reasons.append(f"cycle {float(last):.0f} beyond {HORIZON_FACTOR:g}× the longest "
                           f"trained trajectory ({longest:.0f} cycles)")
    return {"in_domain": not reasons, "reasons": reasons, "checked": checked}


def verdict_failures(verdict: Mapping[str, Any] | None) -> list[str]:
    """The lines that fail the advice policy's ``in_domain`` check, read from a forecast's
    ``domain`` answer (:func:`judge_domain`): its ``reasons`` when it is out of domain, none
    when it is inside. A forecast without a ``domain`` answer (a stand-in forecaster that
    judges nothing) fails nothing."""
    if not verdict or verdict.get("in_domain", True):
        return []
    reasons = [str(r) for r in (verdict.get("reasons") or [])]
    return reasons or ["outside the model's training domain (no reason given)"]
