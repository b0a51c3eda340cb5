"""Properties of the stop rule that must hold for every input (hypothesis)."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from ml.advice import AdvicePolicy, EolEstimate, advise, pass_probability

finite = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)


def _forecast(last, caps):
    return {"forecast": [{"cycle_index": last + 1 + i, "test_time_second": float(i),
                          "capacity_ah": {"p05": lo, "p50": mid, "p95": hi}}
                         for i, (lo, mid, hi) in enumerate(caps)], "end_of_life": None}


# a fading cell: each quantile falls by a random non-negative step per cycle
steps = st.tuples(st.floats(0, 0.02), st.floats(0, 0.02), st.floats(0, 0.02))


@settings(max_examples=80, deadline=None)
@given(st.floats(0.6, 1.0), st.floats(0.0, 0.1), st.floats(0.0, 0.1),
       st.lists(steps, min_size=2, max_size=30), st.floats(0.5, 0.95))
def test_pass_probability_is_a_probability_and_falls_as_the_spec_rises(mid, dlo, dhi, drops,
                                                                       eol):
    lo, hi, caps = mid - dlo, mid + dhi, []
    for a, b, c in drops:
        lo, mid, hi = lo - a, mid - b, hi - c
        caps.append((min(lo, mid), mid, max(hi, mid)))
    fc = _forecast(100, caps)
    probs = [pass_probability(fc, spec, last_cycle=100, reference_capacity_ah=1.0,
                              eol_fraction=eol) for spec in range(102, 102 + len(caps))]
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert all(b <= a for a, b in zip(probs, probs[1:]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=6),
       st.floats(0.0, 0.0299), st.floats(0.1, 1e3), st.one_of(st.none(), st.floats(1, 1e4)),
       st.lists(st.floats(0, 1), min_size=6, max_size=6))
def test_never_stops_a_cell_that_has_barely_faded(triples, loss, tol, spec, probs):
    ups = [EolEstimate(last_cycle=10 * i, cycle=tuple(sorted(t)), hour=(1, 2, 3),
                       threshold_fraction=0.8, pass_probability=probs[i])
           for i, t in enumerate(triples)]
    adv = advise(ups, planned_cycles=1000, tolerance_cycles=tol, hours_per_cycle=1.0,
                 loss_so_far_fraction=loss, spec_min_cycles=spec)
    assert adv.decision == "continue" and "onset_ruled_out" in adv.failed


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=6),
       st.floats(0.03, 0.5), st.floats(0.1, 1e3), st.integers(0, 5000), st.floats(0, 10))
def test_stop_only_when_every_check_passes(triples, loss, tol, planned, pace):
    ups = [EolEstimate(last_cycle=10 * i, cycle=tuple(sorted(t)), hour=(1, 2, 3),
                       threshold_fraction=0.8) for i, t in enumerate(triples)]
    adv = advise(ups, planned_cycles=planned, tolerance_cycles=tol, hours_per_cycle=pace,
                 loss_so_far_fraction=loss, policy=AdvicePolicy(stable_updates=3))
    assert (adv.decision == "stop") == all(adv.checks.values())
    assert adv.hours_saved_if_stopped == max(0.0, planned - ups[-1].last_cycle) * pace
    assert adv.reason.startswith("stop now" if adv.decision == "stop" else "continue")
    assert not math.isnan(adv.hours_saved_if_stopped)
