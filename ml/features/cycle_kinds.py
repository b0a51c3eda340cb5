"""Which per-cycle rows carry a cell's capacity TREND: ageing cycles, capacity checks, pulses.

Tests that last months rarely cycle one way: ageing cycles (often capacity-limited, partial
depth, at the ageing rate) are interrupted by reference performance tests — a slow full
"capacity check", HPPC pulses, impedance sweeps — and by partial cycles around them. Read as one
trajectory, a DOE Battery Data Hub cell (``p492-13-summary.csv``) goes 0.0217 Ah (check) →
0.0019 (HPPC) → 0.0010 (partial) → 0.0190 (ageing, capacity-limited: flat by design) → 0.0215
(check) …; a forecaster fed that sawtooth extrapolates noise. The rules, in order:

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
   step. A cell that really dies (its capacity never returns) keeps every row.

Pure functions over arrays; :func:`trend_rows` returns the mask and what it did, for the
answer's ``history`` note.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CHECK_LABEL", "PULSE_LABEL", "MIN_CHECKS", "PARTIAL_FRACTION",
           "RECOVERED_FRACTION", "TrendRows", "trend_rows", "label_kinds"]

#: labels of a reference capacity measurement (case-insensitive, anywhere in the label)
CHECK_LABEL = re.compile(r"capacity[\s_-]*(check|test|measure)|\brpt\b|reference[\s_-]*perf|"
                         r"check[\s_-]*up|\bdiagnostic|\brefer[ea]nce[\s_-]*(cycle|test)",
                         re.IGNORECASE)
#: labels of rows that are not a capacity measurement at all
PULSE_LABEL = re.compile(r"hppc|pulse|dcir|gitt|\beis\b|impedance|resistance|\bocv\b",
                         re.IGNORECASE)
#: fewest labelled capacity checks that make a trajectory
MIN_CHECKS = 3
#: a row below this fraction of its neighbours' median capacity may be a partial cycle …
PARTIAL_FRACTION = 0.5
#: … when a later row comes back above this fraction of that median
RECOVERED_FRACTION = 0.8
#: neighbours on each side whose median judges a row
NEIGHBOURS = 5


@dataclass(frozen=True)
class TrendRows:
    """Rows kept for the capacity trend (``keep``, in the input's order) and why.

    ``basis`` is ``"all cycles"`` or ``"capacity checks"``; ``dropped`` counts the rows left out
    by reason (``"not a capacity check"``, ``"pulse or impedance"``, ``"partial cycle"``)."""

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


def _partial(capacity: np.ndarray) -> np.ndarray:
    """Rows (in cycle order) whose capacity is a partial cycle's: below
    :data:`PARTIAL_FRACTION` of the median of up to :data:`NEIGHBOURS` rows on each side,
    with a later row back above :data:`RECOVERED_FRACTION` of that median."""
    q = np.asarray(capacity, dtype=np.float64)
    n = q.size
    if n < 3:
        return np.zeros(n, dtype=bool)
    later_max = np.full(n, -np.inf)
    if n > 1:  # the largest capacity strictly after each row
        later_max[:-1] = np.maximum.accumulate(np.where(np.isfinite(q), q, -np.inf)[::-1])[::-1][1:]
    out = np.zeros(n, dtype=bool)
    low = np.flatnonzero(np.isfinite(q) & (q < PARTIAL_FRACTION * np.nanmax(q)))
    for i in low:  # only rows below half the largest capacity can be partial: usually few
        nb = np.concatenate([q[max(0, i - NEIGHBOURS):i], q[i + 1:i + 1 + NEIGHBOURS]])
        nb = nb[np.isfinite(nb)]
        if not nb.size:
            continue
        ref = float(np.median(nb))
        out[i] = q[i] < PARTIAL_FRACTION * ref and later_max[i] > RECOVERED_FRACTION * ref
    return out


def trend_rows(capacity: np.ndarray, labels: np.ndarray | None = None) -> TrendRows:
    """Which rows (in CYCLE order) carry the capacity trend (module docstring's rules).

    Parameters
    ----------
    capacity:
        Discharge capacity per cycle (Ah; NaN where unknown).
    labels:
        The source's label per cycle (str or None), or None when it gives none.
    """
    q = np.asarray(capacity, dtype=np.float64)
    keep = np.ones(q.size, dtype=bool)
    dropped: dict[str, int] = {}
    basis = "all cycles"
    if labels is not None and len(labels) == q.size:
        kinds = label_kinds(np.asarray(labels, dtype=object))
        checks = (kinds == "check") & np.isfinite(q)
        if int(checks.sum()) >= MIN_CHECKS:
            basis = "capacity checks"
            dropped["not a capacity check"] = int((~checks).sum())
            keep = checks
        else:
            pulse = kinds == "pulse"
            if pulse.any():
                dropped["pulse or impedance"] = int(pulse.sum())
                keep = ~pulse
    if basis == "all cycles":
        idx = np.flatnonzero(keep)
        part = _partial(q[idx])
        if part.any():
            dropped["partial cycle"] = int(part.sum())
            keep = keep.copy()
            keep[idx[part]] = False
    return TrendRows(keep=keep, basis=basis, dropped=dropped)
