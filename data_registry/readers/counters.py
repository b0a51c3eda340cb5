"""Vendor capacity/energy counters checked against the logged samples, per segment.

A cycler's counters integrate current (and power) internally at a high rate; the exported log
holds sparse samples. Per segment (a half cycle, a step), the counter's change is compared with
the trapezoid ∫I dt (∫I·V dt) of the logged samples. The counters are always KEPT (they are the
cycler's own measurement); disagreement becomes a warning that says which side to trust.
"""
from __future__ import annotations

import numpy as np

from data_registry.errors import IngestWarning

#: relative disagreement (|ratio − 1|) above which a segment counts as disagreeing
TOLERANCE = 0.10
#: segments with fewer logged samples are not compared
MIN_SAMPLES = 5


def segment_integrals(segment: np.ndarray, t: np.ndarray, y: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trapezoid ∫y dt over each run of equal ``segment`` values (units of y × s).

    Returns ``(first_index, last_index, integral)`` per run, in file order.
    """
    n = len(segment)
    if n == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    change = np.flatnonzero(segment[1:] != segment[:-1]) + 1
    first = np.concatenate(([0], change))
    last = np.concatenate((change - 1, [n - 1]))
    area = np.concatenate(([0.0], 0.5 * (y[1:] + y[:-1]) * np.diff(t)))
    area[first] = 0.0  # no area across a segment boundary
    csum = np.cumsum(area)
    return first, last, csum[last] - csum[first]


def counter_ratios(segment: np.ndarray, t: np.ndarray, rate: np.ndarray, counter: np.ndarray,
                   *, from_zero: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per segment with enough samples and a non-negligible integral (> 1 % of the median
    segment's): (counter change / ∫rate dt, samples per segment).

    ``from_zero``: the counter restarts at 0 in each segment (its change is its last value);
    else the change is last − first. Both sides in the same unit (e.g. A·s and C).
    """
    first, last, integral = segment_integrals(segment, t, rate)
    change = counter[last] - (0.0 if from_zero else counter[first])
    size = last - first + 1
    ok = (size >= MIN_SAMPLES) & np.isfinite(change) & np.isfinite(integral)
    if ok.any():  # rests: a noise-sized integral says nothing about the counter
        ok &= np.abs(integral) > 0.01 * np.median(np.abs(integral[ok]))
    return change[ok] / integral[ok], size[ok]


def mismatch_warning(code: str, what: str, ratios: np.ndarray, file: str, column: str,
                     reason: str, **details: float) -> IngestWarning | None:
    """One warning when some segments' |counter| / |∫| ratio is off by more than TOLERANCE."""
    r = np.abs(ratios)
    bad = np.abs(r - 1.0) > TOLERANCE
    if not bad.any():
        return None
    med = float(np.median(r))
    return IngestWarning(
        code, f"{what} counters kept, but they differ from the integral of the logged samples "
        f"by {r.min():.2f}×–{r.max():.2f}× in {int(bad.sum())} of {len(r)} segments (median "
        f"{med:.3f}×): {reason}", file, None, column, int(bad.sum()),
        {"ratio_min": float(r.min()), "ratio_median": med, "ratio_max": float(r.max()),
         "segments": len(r), **{k: float(v) for k, v in details.items()}})
