"""Which per-cycle rows carry a cell's capacity TREND: ageing cycles, capacity checks, pulses.

Tests that last months rarely cycle one way: ageing cycles (often capacity-limited, partial
depth, at the ageing rate) are interrupted by reference performance tests — a slow full
"capacity check", HPPC pulses, impedance sweeps — and by partial cycles around them. Read as one
trajectory, a DOE Battery Data Hub cell (``p492-13-summary.csv``) goes 0.0217 Ah (check) →
0.0019 (HPPC) → 0.0010 (partial) → 0.0190 (ageing, capacity-limited: flat by design) → 0.0215
(check) …; a forecaster fed that sawtooth extrapolates noise. The rules, in order:

0. **No discharge.** A row whose discharge capacity is 0 (a charge-only or rest cycle, the
   cycle a running test is still in) — or below :data:`NEGLIGIBLE_FRACTION` (0.01 %) of the
   largest in the history: a current offset integrated over a rest (BEEP's Maccor
   ``PreDiag…022`` logs 3e-5 Ah "cycles" of a 4.7 Ah cell between its diagnostic cycles) — is
   not a capacity measurement; it is left out when any row has one. Read as capacity, those
   rows made the answer "end of life already reached at cycle 6" for a cell at 4.6 Ah at
   cycle 36. A cell fading to nothing through small steps keeps its rows (Zhang 2020's 25C05
   ends at 0.024 of 37 mAh, 0.07 %). Invalid values (negative, NaN, inf, text) are never
   filtered: the feature path refuses them, naming the row.
1. **Labelled capacity checks.** When the rows carry a ``cycle_label`` (the source's own words:
   "Capacity check", "RPT", "Reference performance test", "check-up" …) and at least
   :data:`MIN_CHECKS` labelled checks have a capacity, the checks ARE the capacity trajectory
   (what the field calls the cell's capacity: same rate, full depth each time); the cycle
   numbers and the clock stay the test's, so the cycles between two checks count.
2. **Labelled pulses and impedance sweeps** (HPPC, pulse, DCIR, GITT, EIS …) are never trend
   rows.
3. **Partial cycles** (labels or not): a row whose capacity is below :data:`PARTIAL_FRACTION`
   of its neighbours' median while a LATER row comes back above :data:`RECOVERED_FRACTION` of
   it. Capacity that comes back was never lost: a pulse, a partial discharge, a formation
   step. A cell that really dies (its capacity never returns) keeps every row — except a LAST
   row below half the row before it when that one had not halved too (one sudden low row at
   the very end is a file cut mid-discharge: "unfinished last cycle"; a steep decline over
   rows is a death and stays).
4. **First discharge from the delivered state of charge**: a FIRST row below
   :data:`FIRST_FRACTION` of the median of the :data:`NEIGHBOURS` rows after it. A fresh cell
   arrives part-charged and many tests discharge it before the first full charge (NASA PCoE
   B0036: 1.00 Ah, then 1.79 Ah); ageing cannot add a quarter of the capacity in one cycle. Read
   as the reference, that row made the production model forecast no fade at all (B0036 cut at
   cycle 79: flat 0.958 against a true 0.864 at cycle 197; without the row, 0.923).
5. **A protocol change that raised the capacity** (rule 4 anywhere in the history): rows
   before a row from which the capacity stays above ``1 / FIRST_FRACTION`` (1.25×) of the
   largest of the :data:`NEIGHBOURS` rows before it — the next :data:`NEIGHBOURS` rows (at
   least :data:`MIN_AFTER_RISE`) each, and the median of every row from it on, which must also
   be 1.25× the 90th percentile of ALL the rows before (the end of a temporary dip — a few
   slow-rate, cold or partial-depth cycles — comes back to the old level and is no change).
   Ageing cannot add a quarter of the capacity and keep it; a slower discharge, a lower
   cut-off voltage or a warmer chamber can (NASA PCoE B0038 / B0040 rise from ≤ 1.10 /
   0.79 Ah to ~1.74 / 1.72 Ah at cycle 13, when their discharge changed, and stay there;
   read as one trend, the rise made every forecaster extrapolate nonsense).
   The trend starts at the new level; the cycle numbers and the clock stay the test's. A
   recovery after a rest comes back down and a spike is short, so neither fires; a FALL is
   never cut (it may be the cell dying).
6. **Double-counted cycles**: a row above :data:`DOUBLE_FRACTION` × its neighbours' median —
   capacity cannot grow by half; two discharges were written under one cycle number (a BDF
   export's formation cycle holds two) — would inflate the reference capacity.

Pure functions over arrays; :func:`trend_rows` returns the mask and what it did, for the
answer's ``history`` note.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CHECK_LABEL", "PULSE_LABEL", "MIN_CHECKS", "PARTIAL_FRACTION",
           "RECOVERED_FRACTION", "FIRST_FRACTION", "NEGLIGIBLE_FRACTION", "DOUBLE_FRACTION",
           "MIN_AFTER_RISE", "TrendRows", "trend_rows", "label_kinds"]

#: labels of a reference capacity measurement (case-insensitive, anywhere in the label)
CHECK_LABEL = re.compile(r"capacity[\s_-]*(check|test|measure)|\brpt\b|reference[\s_-]*perf|"
                         r"check[\s_-]*up|\bdiagnostic|\brefer[ea]nce[\s_-]*(cycle|test)",
                         re.IGNORECASE)
#: labels of rows that are not a capacity measurement at all
PULSE_LABEL = re.compile(r"hppc|pulse|dcir|gitt|\beis\b|impedance|resistance|\bocv\b",
                         re.IGNORECASE)
#: a discharge below this fraction of the history's largest is no capacity measurement (rule 0)
NEGLIGIBLE_FRACTION = 1e-4
#: fewest labelled capacity checks that make a trajectory
MIN_CHECKS = 3
#: a row below this fraction of its neighbours' median capacity may be a partial cycle …
PARTIAL_FRACTION = 0.5
#: … when a later row comes back above this fraction of that median
RECOVERED_FRACTION = 0.8
#: a first row below this fraction of the next rows' median discharged a part-charged new cell
FIRST_FRACTION = 0.8
#: a row above this multiple of its neighbours' median counted two discharges
DOUBLE_FRACTION = 1.5
#: neighbours on each side whose median judges a row
NEIGHBOURS = 5
#: fewest rows at the new level that make a capacity rise a protocol change (rule 5)
MIN_AFTER_RISE = 3


@dataclass(frozen=True)
class TrendRows:
    """Rows kept for the capacity trend (``keep``, in the input's order) and why.

    ``basis`` is ``"all cycles"`` or ``"capacity checks"``; ``dropped`` counts the rows left out
    by reason (``"no discharge"``, ``"not a capacity check"``, ``"pulse or impedance"``,
    ``"partial cycle"``, ``"first discharge of a part-charged cell"``, ``"before a capacity
    rise (protocol change)"``, ``"unfinished last cycle"``, ``"double-counted cycle"``)."""

    keep: np.ndarray
    basis: str = "all cycles"
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """True when any row was left out."""
        return not bool(self.keep.all())

    def note(self) -> dict:
        """The forecast answer's ``history`` entry (rows read, rows used, basis, dropped)."""
        return {"rows": int(self.keep.size), "rows_used": int(self.keep.sum()),
                "basis": self.basis, "dropped": dict(self.dropped)}


def label_kinds(labels: np.ndarray) -> np.ndarray:
    """Kind of each label: ``"check"``, ``"pulse"`` or ``""`` (ageing, other, or none)."""
    out = np.full(len(labels), "", dtype=object)
    for i, text in enumerate(labels):
        if text is None or (isinstance(text, float) and text != text):
            continue
        s = str(text)
        if CHECK_LABEL.search(s):
            out[i] = "check"
        elif PULSE_LABEL.search(s):
            out[i] = "pulse"
    return out


def _neighbour_medians(q: np.ndarray) -> np.ndarray:
    """Median of up to :data:`NEIGHBOURS` finite rows on each side of every row (the row
    itself left out; NaN where it has none)."""
    pad = np.full(q.size + 2 * NEIGHBOURS, np.nan)
    pad[NEIGHBOURS:NEIGHBOURS + q.size] = q
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * NEIGHBOURS + 1).copy()
    win[:, NEIGHBOURS] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: NaN
        return np.nanmedian(win, axis=1)


def _partial(q: np.ndarray) -> np.ndarray:
    """Rows below :data:`PARTIAL_FRACTION` of their neighbours' median with a later row back
    above :data:`RECOVERED_FRACTION` of it (capacity that comes back was never lost)."""
    later_max = np.full(q.size, -np.inf)  # the largest capacity strictly after each row
    later_max[:-1] = np.maximum.accumulate(np.where(np.isfinite(q), q, -np.inf)[::-1])[::-1][1:]
    ref = _neighbour_medians(q)
    with np.errstate(invalid="ignore"):
        return (q < PARTIAL_FRACTION * ref) & (later_max > RECOVERED_FRACTION * ref)


def _first_partial(q: np.ndarray) -> np.ndarray:
    """The first row, when it is below :data:`FIRST_FRACTION` of the median of the
    :data:`NEIGHBOURS` rows after it (at least 3 of them)."""
    out = np.zeros(q.size, dtype=bool)
    after = q[1:1 + NEIGHBOURS]
    if after.size >= 3:
        out[0] = bool(q[0] < FIRST_FRACTION * float(np.median(after)))
    return out


def _may_rise(q: np.ndarray) -> bool:
    """Whether some row exceeds ``1 / FIRST_FRACTION`` × an EARLIER row (else rules 4 and 5
    cannot fire): the running minimum, O(n)."""
    return q.size >= 2 and bool(np.any(q[1:] * FIRST_FRACTION > np.minimum.accumulate(q)[:-1]))


def _before_rise(q: np.ndarray) -> np.ndarray:
    """The rows before the LAST persistent capacity rise (rule 5; none when there is none)."""
    out = np.zeros(q.size, dtype=bool)
    if q.size < MIN_AFTER_RISE + 1 or not _may_rise(q):
        return out
    pad = np.concatenate([np.full(NEIGHBOURS, -np.inf), q, np.full(NEIGHBOURS, np.inf)])
    before = np.lib.stride_tricks.sliding_window_view(pad[:-1 - NEIGHBOURS], NEIGHBOURS).max(axis=1)
    after = np.lib.stride_tricks.sliding_window_view(pad[NEIGHBOURS:], NEIGHBOURS).min(axis=1)
    level = before[:q.size] / FIRST_FRACTION  # the capacity a rise at row i must keep
    rows = np.arange(q.size)
    with np.errstate(invalid="ignore"):
        candidates = np.flatnonzero((rows >= 1) & (rows <= q.size - MIN_AFTER_RISE)
                                    & (after[:q.size] > level))
    for i in candidates[::-1]:  # the last rise that holds
        new = float(np.median(q[i:]))
        # … and lifts the capacity above the WHOLE history before it: the end of a temporary
        # dip (a slow-rate or cold check, a partial-depth block) returns to the old level
        if new > level[i] and new * FIRST_FRACTION > float(np.quantile(q[:i], 0.9)):
            out[:i] = True
            break
    return out


def _doubled(q: np.ndarray) -> np.ndarray:
    """Rows above :data:`DOUBLE_FRACTION` of their neighbours' median."""
    with np.errstate(invalid="ignore"):
        return q > DOUBLE_FRACTION * _neighbour_medians(q)


def _unfinished(q: np.ndarray) -> np.ndarray:
    """The last row, when it is below :data:`PARTIAL_FRACTION` of the row before it while that
    one was not below the same fraction of ITS predecessor (one sudden low row at the very end
    is a file cut mid-discharge; a steep decline over rows is a death and stays)."""
    out = np.zeros(q.size, dtype=bool)
    if q.size >= 3:
        out[-1] = bool(q[-1] < PARTIAL_FRACTION * q[-2] and q[-2] >= PARTIAL_FRACTION * q[-3])
    return out


#: the row rules after "no discharge", in order; each judges the rows the previous ones kept
_RULES = (("partial cycle", _partial), ("first discharge of a part-charged cell", _first_partial),
          ("before a capacity rise (protocol change)", _before_rise),
          ("double-counted cycle", _doubled),
          ("unfinished last cycle", _unfinished))


def trend_rows(capacity: np.ndarray, labels: np.ndarray | None = None) -> TrendRows:
    """Which rows (in CYCLE order) carry the capacity trend (module docstring's rules).

    Parameters
    ----------
    capacity:
        Discharge capacity per cycle (Ah; 0 where the cycle did not discharge).
    labels:
        The source's label per cycle (str or None), or None when it gives none.
    """
    q = np.asarray(capacity, dtype=np.float64)
    keep = np.ones(q.size, dtype=bool)
    if not (np.isfinite(q).all() and (q >= 0).all()):
        return TrendRows(keep=keep)  # invalid values: the feature path refuses them by row
    # 0 (or noise): the cycle did not discharge (charge-only, rest, still running)
    measured = q > NEGLIGIBLE_FRACTION * q.max() if q.size else q > 0
    if not measured.any():
        return TrendRows(keep=keep)  # nothing measured: refused by the feature path
    positive = q[measured]
    if labels is None and measured.all() and positive.max() < DOUBLE_FRACTION * positive.min() \
            and not _may_rise(q):
        return TrendRows(keep=keep)  # no rule can fire (a fast path: the usual history)
    dropped: dict[str, int] = {}
    if not measured.all():
        dropped["no discharge"] = int((~measured).sum())
        keep = measured.copy()
    basis = "all cycles"
    if labels is not None and len(labels) == q.size:
        kinds = label_kinds(np.asarray(labels, dtype=object))
        checks = (kinds == "check") & measured
        if int(checks.sum()) >= MIN_CHECKS:
            basis = "capacity checks"
            dropped["not a capacity check"] = int((keep & ~checks).sum())
            keep = checks
        else:
            pulse = keep & (kinds == "pulse")
            if pulse.any():
                dropped["pulse or impedance"] = int(pulse.sum())
                keep = keep & ~pulse
    if basis == "all cycles":
        for why, rule in _RULES:
            idx = np.flatnonzero(keep)
            if idx.size < 3:
                break
            odd = rule(q[idx])
            if odd.any():
                dropped[why] = int(odd.sum())
                keep = keep.copy()
                keep[idx[odd]] = False
    return TrendRows(keep=keep, basis=basis, dropped=dropped)
