"""The early-stopping policy: each check, the spec shortcut and the numbers it reports."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ml.advice import (
    AdvicePolicy, EolEstimate, advise, eol_estimate, observed_eol_cycle,
    interval_scale_for_coverage, pass_probability, update_from_forecast,
)
from ml.domain import judge_domain, verdict_failures


def _est(last, p05, p50, p95, pp=None):
    return EolEstimate(last_cycle=last, cycle=(p05, p50, p95), hour=(p05 / 2, p50 / 2, p95 / 2),
                       threshold_fraction=0.8, pass_probability=pp)


def _forecast(last, rows, eol=None):
    """A CONTRACTS-shaped forecast with given capacity quantiles per future cycle."""
    return {
        "model": {"name": "m", "version": "1"}, "cell_id": None,
        "forecast": [{"cycle_index": last + 1 + i, "test_time_second": 3600.0 * (last + 1 + i),
                      "capacity_ah": {"p05": a, "p50": b, "p95": c},
                      "loss_time_fraction": {"p05": 0, "p50": 0, "p95": 0},
                      "loss_cycle_fraction": {"p05": 0, "p50": 0, "p95": 0}}
                     for i, (a, b, c) in enumerate(rows)],
        "end_of_life": eol,
        "attribution": {"time_share": {"p05": 0.1, "p50": 0.5, "p95": 0.9}},
    }


STABLE = [_est(100, 600, 640, 680), _est(110, 605, 642, 680), _est(120, 600, 640, 680)]


def test_stop_when_known_stable_in_domain_and_degrading():
    adv = advise(STABLE, planned_cycles=1000, tolerance_cycles=40, hours_per_cycle=2.5,
                 loss_so_far_fraction=0.05)
    assert adv.decision == "stop"
    assert adv.reason == "stop now: 80 % at cycle 640 ± 40"
    assert adv.hours_saved_if_stopped == pytest.approx((1000 - 120) * 2.5)
    assert all(adv.checks.values())


def test_interval_wider_than_tolerance_continues():
    adv = advise(STABLE, planned_cycles=1000, tolerance_cycles=39, hours_per_cycle=1.0,
                 loss_so_far_fraction=0.05)
    assert adv.decision == "continue"
    assert adv.failed == ["known"]
    assert "wider than ± 39 cycles" in adv.reason


def test_unstable_medians_continue():
    ups = [_est(100, 560, 600, 640), _est(110, 600, 640, 680), _est(120, 620, 660, 700)]
    adv = advise(ups, planned_cycles=1000, tolerance_cycles=50, hours_per_cycle=1.0,
                 loss_so_far_fraction=0.05)
    assert adv.decision == "continue" and adv.failed == ["stable"]
    assert not adv.checks["stable"] and adv.checks["known"]


def test_too_few_updates_is_not_stable():
    adv = advise(STABLE[-2:], planned_cycles=1000, tolerance_cycles=40, hours_per_cycle=1.0,
                 loss_so_far_fraction=0.05)
    assert adv.decision == "continue" and adv.failed == ["stable"]


def test_flat_cell_never_stops_even_when_interval_is_narrow():
    adv = advise(STABLE, planned_cycles=1000, tolerance_cycles=40, hours_per_cycle=1.0,
                 loss_so_far_fraction=0.01)
    assert adv.decision == "continue" and adv.failed == ["onset_ruled_out"]
    assert "1.0 % of capacity lost so far" in adv.reason


def test_unreached_p95_never_stops():
    ups = [_est(100 + 10 * i, 600, 640, math.nan) for i in range(3)]
    adv = advise(ups, planned_cycles=1000, tolerance_cycles=400, hours_per_cycle=1.0,
                 loss_so_far_fraction=0.1)
    assert adv.decision == "continue" and adv.failed == ["onset_ruled_out"]
    assert not adv.checks["known"]


def test_out_of_domain_says_which_check_failed():
    # the forecast's domain answer (ml.domain) is what gates the stop
    verdict = judge_domain({"c_rate": 2.1, "temperature_range_celsius": [25.0, 25.0]},
                           {"c_rate": [0.1, 1.0], "temperature_celsius": {"min": 20, "max": 30}})
    bad = verdict_failures(verdict)
    assert bad == ["C-rate 2.1 1/h above the trained range 0.1–1 1/h"]
    base = dict(planned_cycles=1000, tolerance_cycles=40, hours_per_cycle=1.0,
                loss_so_far_fraction=0.05)
    assert advise(STABLE, **base).decision == "stop"  # the same updates, in domain
    adv = advise(STABLE, domain_failures=bad, **base)
    assert adv.decision == "continue" and adv.failed == ["in_domain"]
    assert adv.checks == {"known": True, "stable": True, "in_domain": False,
                          "onset_ruled_out": True}
    assert "C-rate 2.1 1/h above" in adv.reason


def test_retention_alone_out_of_domain_blocks_a_confident_stop():
    # every other check passes; only the retention so far lies below the trained range
    verdict = judge_domain({"retention": 0.5, "reference_capacity_ah": 2.0},
                           {"retention": [0.6, 1.0]})
    bad = verdict_failures(verdict)
    assert bad == ["retention so far 50.0 % of the reference capacity 2 Ah, median of the "
                   "last 10 cycles, below the trained range 60.0–100.0 %"]
    adv = advise(STABLE, planned_cycles=1000, tolerance_cycles=40, hours_per_cycle=1.0,
                 loss_so_far_fraction=0.5, domain_failures=bad)
    assert adv.decision == "continue" and adv.failed == ["in_domain"]
    assert adv.reason == f"continue: outside the model's training domain ({bad[0]})"
    # a spec call that would otherwise be settled is held back as well
    sure = [_est(100 + 10 * i, 620, 640, 660, pp=0.99) for i in range(3)]
    spec = dict(planned_cycles=1000, tolerance_cycles=40, hours_per_cycle=1.0,
                loss_so_far_fraction=0.5, spec_min_cycles=300)
    assert advise(sure, **spec).decision == "stop"
    assert advise(sure, domain_failures=bad, **spec).decision == "continue"


def test_spec_pass_stops_before_eol_is_known():
    loose = AdvicePolicy(spec_eol_rel_halfwidth=None)
    ups = [_est(100 + 10 * i, 400, 700, 1000, pp=0.97 + 0.01 * i) for i in range(3)]
    adv = advise(ups, planned_cycles=1000, tolerance_cycles=20, hours_per_cycle=1.0,
                 loss_so_far_fraction=0.05, spec_min_cycles=300, policy=loose)
    assert adv.decision == "stop" and adv.pass_probability == pytest.approx(0.99)
    assert "passes the spec" in adv.reason
    # one update below 0.95 among the last three: not settled yet
    ups[0] = _est(100, 400, 700, 1000, pp=0.9)
    adv = advise(ups, planned_cycles=1000, tolerance_cycles=20, hours_per_cycle=1.0,
                 loss_so_far_fraction=0.05, spec_min_cycles=300, policy=loose)
    assert adv.decision == "continue"


def test_spec_call_by_default_needs_eol_within_ten_percent():
    # half-width 300 of 700 (43 %): the pass is certain but the EOL is not usable yet
    ups = [_est(100 + 10 * i, 400, 700, 1000, pp=0.99) for i in range(3)]
    kw = dict(planned_cycles=1000, tolerance_cycles=20, hours_per_cycle=1.0,
              loss_so_far_fraction=0.05, spec_min_cycles=300)
    assert advise(ups, **kw).decision == "continue"
    # ± 70 of 700 is exactly 10 %: stop; widened x1.5 it is 15 %: continue
    ups = [_est(100 + 10 * i, 630, 700, 770, pp=0.99) for i in range(3)]
    assert advise(ups, **kw).decision == "stop"
    assert advise(ups, policy=AdvicePolicy(interval_scale=1.5), **kw).decision == "continue"


def test_spec_fail_stops():
    ups = [_est(100 + 10 * i, 182, 200, 218, pp=0.01) for i in range(3)]  # ± 9 %
    adv = advise(ups, planned_cycles=1000, tolerance_cycles=5, hours_per_cycle=1.0,
                 loss_so_far_fraction=0.08, spec_min_cycles=300)
    assert adv.decision == "stop" and "fails the spec" in adv.reason


def test_pass_probability_from_capacity_quantiles():
    # spec 103 -> look at cycle 102; threshold 0.8 Ah = p05 there -> P(above) = 0.95
    fc = _forecast(100, [(0.9, 0.95, 1.0), (0.8, 0.9, 1.0), (0.7, 0.8, 0.9)])
    assert pass_probability(fc, 103, last_cycle=100, reference_capacity_ah=1.0) == \
        pytest.approx(0.95, abs=1e-9)
    # at cycle 103 the median equals the threshold -> 0.5
    assert pass_probability(fc, 104, last_cycle=100, reference_capacity_ah=1.0) == \
        pytest.approx(0.5)
    # threshold 0.85 at cycle 102: z = (0.85 - 0.9) / (0.1 / 1.645) = -0.8224 -> 0.7945
    assert pass_probability(fc, 103, last_cycle=100, reference_capacity_ah=1.0,
                            eol_fraction=0.85) == pytest.approx(0.7945, abs=1e-4)


def test_pass_probability_observed_and_beyond_horizon():
    fc = _forecast(100, [(0.9, 0.95, 1.0)],
                   eol={"threshold_fraction": 0.8,
                        "cycle_index": {"p05": 300, "p50": 400, "p95": 500},
                        "test_time_second": {"p05": 1, "p50": 2, "p95": 3}})
    kw = dict(last_cycle=100, reference_capacity_ah=1.0)
    assert pass_probability(fc, 90, **kw) == 1.0
    assert pass_probability(fc, 200, observed_eol=150, **kw) == 0.0
    assert pass_probability(fc, 90, observed_eol=95, **kw) == 1.0
    # beyond the horizon: EOL-cycle quantiles; spec 400.5 -> median -> 0.5
    assert pass_probability(fc, 400.5, **kw) == pytest.approx(0.5)
    assert pass_probability(fc, 300.5, **kw) == pytest.approx(0.95, abs=1e-9)


def test_eol_estimate_reads_contract_json_and_null():
    fc = _forecast(100, [(0.9, 0.95, 1.0)],
                   eol={"threshold_fraction": 0.8,
                        "cycle_index": {"p05": 300, "p50": 400, "p95": 500},
                        "test_time_second": {"p05": 3600, "p50": 7200, "p95": 10800}})
    est = eol_estimate(fc, last_cycle=100)
    assert est.cycle == (300, 400, 500) and est.hour == (1, 2, 3) and est.width_cycles == 200
    none = eol_estimate(_forecast(100, [(0.9, 0.95, 1.0)]), last_cycle=100)
    assert not none.reached and none.width_cycles == math.inf
    assert "not reached" in advise([none], planned_cycles=500, tolerance_cycles=10,
                                   hours_per_cycle=1, loss_so_far_fraction=0.1).reason


def test_censored_upper_quantile_reads_as_not_reached():
    # the forecast clamps an unreached p95 to the horizon end and flags it (ml.inference)
    fc = _forecast(100, [(0.85, 0.9, 1.0), (0.79, 0.85, 0.95), (0.7, 0.79, 0.9)],
                   eol={"threshold_fraction": 0.8,
                        "cycle_index": {"p05": 102, "p50": 103, "p95": 103},
                        "test_time_second": {"p05": 367200.0, "p50": 370800.0,
                                             "p95": 370800.0},
                        "censored": {"p05": False, "p50": False, "p95": True}})
    est = update_from_forecast(fc, last_cycle=100, reference_capacity_ah=1.0, eol_fraction=0.8)
    assert est.cycle[:2] == (102.0, 103.0) and math.isnan(est.cycle[2])
    assert est.hour[:2] == (102.0, 103.0) and math.isnan(est.hour[2])
    assert est.threshold_fraction == 0.8 and est.width_cycles == math.inf
    adv = advise([est], planned_cycles=200, tolerance_cycles=50, hours_per_cycle=1.0,
                 loss_so_far_fraction=0.2, policy=AdvicePolicy(stable_updates=1))
    assert adv.decision == "continue" and adv.failed == ["onset_ruled_out"]
    assert "80 % at cycle 103 (upper bound beyond the forecast)" in adv.reason
    # without the flag the same numbers are a reached, 1-cycle-wide EOL
    fc["end_of_life"]["censored"]["p95"] = False
    est = update_from_forecast(fc, last_cycle=100, reference_capacity_ah=1.0, eol_fraction=0.8)
    assert est.cycle == (102.0, 103.0, 103.0) and est.width_cycles == 1.0


def test_observed_end_of_life_is_returned_and_stops():
    # the forecast from a history past EOL would say "last + 1"; the observation wins
    fc = _forecast(150, [(0.5, 0.6, 0.7)],
                   eol={"threshold_fraction": 0.8,
                        "cycle_index": {"p05": 151, "p50": 151, "p95": 151},
                        "test_time_second": {"p05": 1.0, "p50": 1.0, "p95": 1.0}})
    kw = dict(last_cycle=150, reference_capacity_ah=1.0, eol_fraction=0.8)
    ups = [update_from_forecast(fc, **kw), update_from_forecast(fc, **kw),
           update_from_forecast(fc, observed_eol=137, observed_eol_hour=274.0, **kw)]
    now = ups[-1]
    assert now.observed and now.cycle == (137.0, 137.0, 137.0) and now.hour == (274.0,) * 3
    adv = advise(ups, planned_cycles=300, tolerance_cycles=5, hours_per_cycle=2.0,
                 loss_so_far_fraction=0.25, domain_failures=["c_rate 9 above"])
    assert adv.decision == "stop"
    assert adv.reason == "stop now: end of life (80 %) observed at cycle 137"
    assert adv.end_of_life.cycle == (137.0, 137.0, 137.0)
    assert adv.hours_saved_if_stopped == pytest.approx((300 - 150) * 2.0)
    assert not ups[0].observed


def test_extrapolated_eol_fails_in_domain_only_beyond_the_factor():
    from ml.advice import extrapolation_violation

    base = dict(planned_cycles=1000, tolerance_cycles=40, hours_per_cycle=1.0,
                loss_so_far_fraction=0.05)
    # EOL median 640: inside 4 x 160 = 640, outside 4 x 159 = 636
    assert advise(STABLE, trained_max_cycle=160, **base).decision == "stop"
    adv = advise(STABLE, trained_max_cycle=159, **base)
    assert adv.decision == "continue" and adv.failed == ["in_domain"]
    assert "predicted EOL cycle 640 beyond 4× the longest trained trajectory (159 cycles)" \
        in adv.reason
    assert extrapolation_violation(STABLE[-1], None) is None
    assert advise(STABLE, trained_max_cycle=300, policy=AdvicePolicy(
        max_extrapolation_factor=2.0), **base).decision == "continue"


def test_observed_eol_cycle():
    cyc = np.array([1, 2, 3, 4, 5])
    assert observed_eol_cycle(cyc, np.array([1, .9, .79, .7, .6]), 0.8) == 3
    assert observed_eol_cycle(np.array([1, 2]), np.array([1, .9]), 0.8) is None
    # one noisy row, or two odd rows at the end, are no end of life (three in a row are)
    assert observed_eol_cycle(cyc, np.array([1, .78, .95, .94, .93]), 0.8) is None
    assert observed_eol_cycle(cyc, np.array([1, .95, .94, .09, .05]), 0.8) is None


def test_interval_scale_from_measured_coverage():
    # a "90 %" band that covered 68.27 % is really ± 1 sigma: widen by z(0.95) / 1 = 1.6449
    assert interval_scale_for_coverage(0.6827) == pytest.approx(1.6449, abs=2e-3)
    assert interval_scale_for_coverage(0.9) == 1.0 and interval_scale_for_coverage(None) == 1.0
    assert interval_scale_for_coverage(0.97) == 1.0


def test_interval_scale_widens_decisions():
    base = dict(planned_cycles=1000, tolerance_cycles=40, hours_per_cycle=1.0,
                loss_so_far_fraction=0.05)
    assert advise(STABLE, **base).decision == "stop"
    wide = advise(STABLE, policy=AdvicePolicy(interval_scale=1.5), **base)
    assert wide.decision == "continue" and wide.failed == ["known"]
    fc = _forecast(100, [(0.9, 0.95, 1.0), (0.8, 0.9, 1.0)])
    # threshold at p05 of cycle 102: 0.95 as given; widened x2 -> z = -1.645 / 2 -> 0.7945
    assert pass_probability(fc, 103, last_cycle=100, reference_capacity_ah=1.0,
                            interval_scale=2.0) == pytest.approx(0.7945, abs=1e-4)
    with pytest.raises(ValueError, match="interval_scale"):
        AdvicePolicy(interval_scale=0.5)


def test_policy_validates_thresholds():
    with pytest.raises(ValueError, match="stable_updates"):
        AdvicePolicy(stable_updates=0)
    with pytest.raises(ValueError, match="pass_low"):
        AdvicePolicy(pass_low=0.6)
    with pytest.raises(ValueError, match="tolerance_cycles"):
        advise(STABLE, planned_cycles=10, tolerance_cycles=0, hours_per_cycle=1,
               loss_so_far_fraction=0.1)


def test_pass_probability_agrees_with_a_calibrated_end_of_life_interval():
    import math as _m

    from ml.advice import pass_probability

    # rows whose band stays well above the threshold (0.8 Ah of 1 Ah) up to cycle 300: on
    # their own they say the cell passes any spec within them for sure; the answer's
    # end-of-life interval, calibrated on its own, says 120 / 150 / 200
    rows = [{"cycle_index": c, "capacity_ah": {"p05": 0.95, "p50": 0.97, "p95": 0.99}}
            for c in range(101, 301)]
    eol = {"cycle_index": {"p05": 120, "p50": 150, "p95": 200},
           "censored": {"p05": False, "p50": False, "p95": False}}
    doc = {"forecast": rows, "end_of_life": eol}
    kw = {"last_cycle": 100, "reference_capacity_ah": 1.0}
    assert pass_probability(doc, 150, **kw) == 1.0  # an interval that is the band's crossings
    calibrated = {"forecast": rows,
                  "end_of_life": {**eol, "calibrated_widening": {"p05": 0.3, "p95": 0.0}}}
    # split normal through 120 / 150 / 200 at 149.5 (below the median: the lower half, sd
    # 30 / 1.645): P = 0.5·erfc((149.5 − 150) / (sd·√2))
    sd = 30 / 1.6448536269514722
    assert pass_probability(calibrated, 150, **kw) == pytest.approx(
        0.5 * _m.erfc(-0.5 / (sd * _m.sqrt(2))), rel=1e-9)
    assert pass_probability(calibrated, 120, **kw) == pytest.approx(
        0.5 * _m.erfc(-30.5 / (sd * _m.sqrt(2))), rel=1e-9)  # just above 0.95 at p05
    # a censored p95 is a lower bound: above the median the rows decide alone
    open_above = {"forecast": rows, "end_of_life": {
        **calibrated["end_of_life"], "censored": {"p05": False, "p50": False, "p95": True}}}
    assert pass_probability(open_above, 180, **kw) == 1.0
    assert pass_probability(open_above, 150, **kw) == pass_probability(calibrated, 150, **kw)
