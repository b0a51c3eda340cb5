"""ml.domain, the one domain judgement: the retention so far as a judged condition, reasons that
name the input, its value and the trained range with units, and the verdict the advice reads."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.domain import RETENTION_SLACK, judge_domain, request_conditions, verdict_failures
from ml.windows import model_columns, model_table

DOMAIN = {"hours_per_cycle": [3.15, 300.0], "c_rate": [0.1, 1.0],
          "temperature_celsius": [15.0, 35.0], "reference_capacity_ah": [1.0, 5.0],
          "retention": [0.8, 1.0], "history_cycles": [16.0, 200.0],
          "cycle_index": [1.0, 250.0]}


def _raw(q, hours=5.0):
    """A hand-built raw per-cycle history: discharge capacities ``q`` (Ah), ``hours`` per cycle."""
    n = np.arange(1, len(q) + 1)
    return pd.DataFrame({"cycle_index": n, "test_time_second": 3600.0 * hours * n,
                         "discharge_capacity_ah": np.asarray(q, float), "c_rate": 0.5,
                         "temperature_celsius": 25.0})


# 3 cycles at 2.0/2.1/2.05 Ah (reference 2.1 Ah), 5 at 1.9, then 10 at 1.5 Ah
Q = [2.0, 2.1, 2.05] + [1.9] * 5 + [1.5] * 10


def test_retention_so_far_is_the_median_of_the_last_10_cycles_over_the_reference():
    cond = request_conditions(model_table(_raw(Q)), planned_hours_per_cycle=5.0)
    assert cond["retention"] == pytest.approx(1.5 / 2.1)  # by hand: the last 10 are all 1.5
    # a stated nominal capacity is the reference
    assert request_conditions(model_table(_raw(Q), nominal_capacity_ah=3.0),
                              planned_hours_per_cycle=5.0)["retention"] == pytest.approx(0.5)
    # the serving path's column arrays give the same conditions as the DataFrame
    assert request_conditions(model_columns(_raw(Q)), planned_hours_per_cycle=5.0) == cond
    # a median: one odd cycle among the last 10 does not move it
    odd = list(Q)
    odd[-1] = 0.2
    assert request_conditions(model_table(_raw(odd)),
                              planned_hours_per_cycle=5.0)["retention"] == pytest.approx(1.5 / 2.1)


def test_retention_outside_the_cards_range_is_out_of_domain_with_units():
    got = judge_domain(request_conditions(model_table(_raw(Q)), planned_hours_per_cycle=5.0),
                       DOMAIN)
    assert not got["in_domain"] and "retention" in got["checked"]
    # the only problem, named with its value, reference and the trained range in %
    assert got["reasons"] == ["retention so far 71.4 % of the reference capacity 2.1 Ah, "
                              "median of the last 10 cycles, below the trained range 80.0–100.0 %"]
    # above the range (a nominal far below the measured capacity): median 1.9 / 1.5 = 126.7 %
    high = judge_domain(request_conditions(model_table(_raw(Q[:8]), nominal_capacity_ah=1.5),
                                           planned_hours_per_cycle=5.0), DOMAIN)
    assert any(r.startswith("retention so far 126.7 % of the reference capacity 1.5 Ah")
               and "above the trained range 80.0–100.0 %" in r for r in high["reasons"])


def test_retention_slack_is_a_share_of_the_trained_span():
    span = DOMAIN["retention"][1] - DOMAIN["retention"][0]
    edge = DOMAIN["retention"][0] - RETENTION_SLACK * span  # 0.79 by hand
    assert edge == pytest.approx(0.79)
    base = {"retention": None}
    inside = judge_domain({**base, "retention": edge + 1e-6}, DOMAIN)
    outside = judge_domain({**base, "retention": edge - 1e-6}, DOMAIN)
    assert inside["in_domain"] and inside["checked"] == ["retention"]
    assert not outside["in_domain"] and "below the trained range" in outside["reasons"][0]
    assert judge_domain({"retention": 1.0 + RETENTION_SLACK * span - 1e-6}, DOMAIN)["in_domain"]
    assert not judge_domain({"retention": 1.011}, DOMAIN)["in_domain"]
    # a card without a retention range (older cards) does not judge it; NaN is not judged
    older = {k: v for k, v in DOMAIN.items() if k != "retention"}
    assert "retention" not in judge_domain({"retention": 0.1}, older)["checked"]
    assert judge_domain({"retention": float("nan")}, DOMAIN)["checked"] == []


def test_every_range_reason_carries_its_units():
    table = model_table(_raw([2.0] * 20, hours=1.0))
    got = judge_domain(request_conditions(table, planned_hours_per_cycle=1.0), DOMAIN)
    assert "planned hours per cycle 1 h below the trained range 3.15–300 h" in got["reasons"]
    assert "observed hours per cycle 1 h below the trained range 3.15–300 h" in got["reasons"]
    fast = _raw([2.0] * 20)
    fast["c_rate"] = 3.0
    got = judge_domain(request_conditions(model_table(fast), planned_hours_per_cycle=5.0), DOMAIN)
    assert got["reasons"] == ["C-rate 3 1/h above the trained range 0.1–1 1/h"]


def test_verdict_failures_read_the_forecasts_domain_answer():
    assert verdict_failures({"in_domain": True, "reasons": [], "checked": ["c_rate"]}) == []
    assert verdict_failures({"in_domain": False, "reasons": ["a", "b"]}) == ["a", "b"]
    # out of domain without a reason still fails the check
    assert verdict_failures({"in_domain": False, "reasons": []}) == [
        "outside the model's training domain (no reason given)"]
    assert verdict_failures(None) == [] and verdict_failures({}) == []
    # a card without a domain: the forecast says so, and the advice reads the same line
    unknown = judge_domain({"retention": 0.9}, {})
    assert verdict_failures(unknown) == ["the model card records no training domain"]


def test_small_median_is_numpys_median_bit_for_bit():
    from ml.domain import _median

    rng = np.random.default_rng(7)
    for size in (1, 2, 3, 9, 10, 11, 32, 33, 200):
        for _ in range(20):
            v = rng.normal(1.0, 0.3, size)
            if size > 3:
                v[: size // 3] = v[0]  # ties
            assert _median(v) == float(np.median(v)), (size, v)
