"""Which rows carry the capacity trend: labelled capacity checks, pulses, partial cycles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.features.cycle_kinds import label_kinds, trend_rows
from ml.windows import future_schedule, model_columns, trend_subset

PRODUCTION = Path(__file__).resolve().parents[1] / "models" / "production"


def test_labels_are_read_as_checks_pulses_or_other():
    got = label_kinds(np.array(["Capacity check", "RPT 3", "Reference performance test",
                                "check-up", "HPPC", "EIS", "pulse test", "Aging cycle", None,
                                np.nan, "cycling"], dtype=object))
    assert got.tolist() == ["check", "check", "check", "check", "pulse", "pulse", "pulse", "",
                            "", "", ""]


def test_three_labelled_checks_are_the_trajectory():
    q = np.array([0.0217, 0.0019, 0.0190, 0.0190, 0.0215, 0.0190, 0.0213, 0.0190])
    labels = np.array(["Capacity check", "HPPC", "Aging", "Aging", "Capacity check", "Aging",
                       "Capacity check", "Aging"], dtype=object)
    rows = trend_rows(q, labels)
    assert rows.basis == "capacity checks"
    assert np.flatnonzero(rows.keep).tolist() == [0, 4, 6]
    assert rows.note() == {"rows": 8, "rows_used": 3, "basis": "capacity checks",
                           "dropped": {"not a capacity check": 5}}


def test_two_checks_are_too_few_then_pulses_and_partials_leave():
    q = np.array([1.00, 0.99, 0.10, 0.98, 0.97, 0.40, 0.96, 0.95])
    labels = np.array(["Capacity check", None, "HPPC", None, "Capacity check", None, None,
                       None], dtype=object)
    rows = trend_rows(q, labels)
    assert rows.basis == "all cycles"
    # the HPPC row by its label; 0.40 is below half its neighbours' median (0.965) and the
    # next row comes back to 0.96 > 0.8 × 0.965: a partial cycle
    assert np.flatnonzero(~rows.keep).tolist() == [2, 5]
    assert rows.dropped == {"pulse or impedance": 1, "partial cycle": 1}


def test_a_cell_that_dies_keeps_its_last_rows():
    q = np.array([1.0, 0.99, 0.98, 0.97, 0.96, 0.30, 0.10, 0.05])  # sudden death, no recovery
    assert trend_rows(q).keep.all()
    # one low row that comes back is a partial cycle; the final collapse is not
    q2 = np.array([1.0, 0.99, 0.30, 0.98, 0.97, 0.96, 0.20, 0.10])
    assert np.flatnonzero(~trend_rows(q2).keep).tolist() == [2]


def test_trend_subset_keeps_input_order_and_drops_one_cycle_columns_for_checks():
    frame = pd.DataFrame({
        "cycle_index": [1, 2, 3, 4, 5, 6, 7],
        "test_time_second": [3600.0 * h for h in (50, 54, 58, 108, 112, 116, 166)],
        "discharge_capacity_ah": [2.0, 1.8, 1.8, 1.96, 1.8, 1.8, 1.93],
        "cycle_duration_second": [180000.0, 14400, 14400, 180000, 14400, 14400, 180000],
        "cycle_label": ["Capacity check", "Aging", "Aging", "Capacity check", "Aging",
                        "Aging", "Capacity check"]})
    sub, rows = trend_subset(frame)
    assert sub["cycle_index"].tolist() == [1, 4, 7]
    assert "cycle_label" not in sub and "cycle_duration_second" not in sub
    assert rows.basis == "capacity checks"
    # the same on a mapping of arrays, rows given out of order
    shuffled = {k: np.asarray(v)[[6, 0, 3, 1, 2, 4, 5]] for k, v in frame.items()}
    sub2, _ = trend_subset(shuffled)
    assert sorted(sub2["cycle_index"].tolist()) == [1, 4, 7]
    # the planned clock between checks: (166 − 108) h over 3 cycles, not a check's 50 h
    table = model_columns(frame)
    _, hours = future_schedule(table, 2)
    assert hours == pytest.approx([166 + 58 / 3, 166 + 2 * 58 / 3])
    assert table.attrs["history"]["rows_used"] == 3
    assert table["retention"][-1] == pytest.approx(1.93 / 2.0)


def test_unlabelled_clean_history_is_untouched():
    frame = {"cycle_index": np.arange(1, 6), "test_time_second": np.arange(1, 6) * 3600.0,
             "discharge_capacity_ah": np.array([1.0, 0.99, 0.98, 0.97, 0.96])}
    same, rows = trend_subset(frame)
    assert same is frame and rows is None


def test_served_forecast_and_advice_of_a_labelled_history():
    from serving.predict import advice_document
    from serving.runtime import load_forecaster

    n = np.arange(1, 121)
    check = n % 20 == 1  # a capacity check every 20 cycles, capacity-limited ageing between
    q = np.where(check, 2.0 * (1 - 2e-4 * n), 1.7)
    q[n % 20 == 2] = 0.2  # an HPPC right after each check
    labels = np.where(check, "Capacity check", np.where(n % 20 == 2, "HPPC", "Aging cycle"))
    frame = pd.DataFrame({"cycle_index": n, "test_time_second": n * 4 * 3600.0,
                          "discharge_capacity_ah": q, "cycle_label": labels})
    model = load_forecaster(str(PRODUCTION))
    doc = model.forecast(frame, horizon_cycles=10)
    assert doc["history"] == {"rows": 120, "rows_used": 6, "basis": "capacity checks",
                              "dropped": {"not a capacity check": 114}}
    assert doc["domain"]["pace"]["hours_per_cycle"] == pytest.approx(4.0)
    assert doc["forecast"][0]["cycle_index"] == 121  # after the last OBSERVED cycle (120)
    p50 = doc["forecast"][0]["capacity_ah"]["p50"]
    assert 1.9 < p50 < 2.0  # the checks' level (~1.96), not the 1.7 Ah capacity-limited cycles
    adv = advice_document(model, frame, planned_cycles=400, tolerance_cycles=50)
    assert adv["history"]["basis"] == "capacity checks"


def test_api_rows_carry_labels(tmp_path):
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import Settings

    n = np.arange(1, 61)
    rows = [{"cycle_index": int(i), "test_time_second": float(i) * 7200.0,
             "discharge_capacity_ah": float(2.0 * (1 - 3e-4 * i)) if i % 10 == 1 else 1.7,
             "cycle_label": "Capacity check" if i % 10 == 1 else "Aging cycle"} for i in n]
    app = create_app(Settings(model_uri=str(PRODUCTION)))
    with TestClient(app) as client:
        got = client.post("/v1/forecast", json={"history": rows, "horizon_cycles": 5})
    assert got.status_code == 200, got.text
    assert got.json()["history"]["rows_used"] == 6


def test_real_battdat_summary_uses_its_capacity_checks(shared_data):
    from serving.runtime import load_forecaster
    from data_registry.readers import open_source

    path = shared_data / "xcel_p492_13" / "p492-13-summary.csv"
    table = open_source(path).read()
    raw = pd.read_csv(path)
    checks = raw[raw["Cycle_Label"] == "Capacity check"]
    assert table["cycle_label"].eq("Capacity check").sum() == len(checks) == 5
    doc = load_forecaster(str(PRODUCTION)).forecast(
        table.drop(columns=["source_row"]), horizon_cycles=20)
    assert doc["history"]["basis"] == "capacity checks" and doc["history"]["rows_used"] == 5
    # the clock: per-cycle time between checks (tsecs_end), median of the four gaps
    t, c = checks["tsecs_end"].to_numpy(), checks["Cycle_Index"].to_numpy()
    pace_h = float(np.median(np.diff(t) / np.diff(c))) / 3600.0
    assert doc["domain"]["pace"]["hours_per_cycle"] == pytest.approx(pace_h)
    assert doc["forecast"][0]["cycle_index"] == int(table["cycle_index"].max()) + 1


def test_records_keep_truth_rows_of_the_kept_cycles():
    from ml.sources import CellRecord, trend_records

    n = np.arange(1, 13)
    q = 2.0 - 0.01 * n
    q[4] = 0.6  # cycle 5: a partial discharge, the capacity comes back at cycle 6
    cycles = pd.DataFrame({"cycle_index": n, "test_time_second": n * 3600.0,
                           "discharge_capacity_ah": q})
    truth = pd.DataFrame({"cycle_index": n, "loss_time_frac": n * 0.001})
    clean = CellRecord("clean", cycles.assign(discharge_capacity_ah=2.0 - 0.01 * n), truth)
    with pytest.warns(UserWarning, match=r"odd cycle\(s\) \[5\]"):
        out = trend_records([CellRecord("odd", cycles, truth), clean], "test")
    assert out[0].cycles["cycle_index"].tolist() == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    # truth rows follow the cycles (evaluation reads truth by row position)
    assert out[0].truth["loss_time_frac"].tolist() == pytest.approx(
        [0.001 * c for c in (1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12)])
    assert out[1] is clean


def test_real_nasa_cells_lose_only_their_partial_discharges(shared_data):
    import warnings

    from ml.sources import load_source

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = {r.cell_id: r for r in load_source("nasa-pcoe", root=shared_data)}
    note = [str(w.message) for w in caught if "capacity trend" in str(w.message)]
    assert note and "B0034 cycle(s) [1]" in note[0] and "B0050 cycle(s) [1, 9, 12]" in note[0]
    # B0034's first discharge (0.746 Ah, neighbours ~1.6 Ah) is no longer its reference
    assert recs["B0034"].cycles["cycle_index"].iloc[0] == 2
    # B0036's first discharge from the delivered charge (1.00 Ah, then 1.80 Ah: 0.56x, above
    # the partial-cycle half) goes by the first-row rule
    assert "B0036 cycle(s) [1]" in note[0]
    assert recs["B0036"].cycles["discharge_capacity_ah"].iloc[0] == pytest.approx(1.8011, abs=1e-4)
    assert len(recs["B0005"].cycles) == 168  # a clean cell keeps every row
    # B0038 / B0040: at most 1.10 / 0.79 Ah for 12 cycles, then ~1.74 / ~1.72 Ah under a
    # new discharge protocol: the trend starts at cycle 13 (the warning lists 5 rows a cell)
    assert "B0040 cycle(s) [1, 2, 3, 4, 5]" in note[0]
    for cid in ("B0038", "B0040"):
        kept = recs[cid].cycles
        assert kept["cycle_index"].iloc[0] == 13
        assert kept["discharge_capacity_ah"].iloc[:5].min() > 1.7


def test_rows_without_a_discharge_are_not_capacity():
    # a charge-only formation cycle, a rest cycle and the running cycle (0 so far)
    q = np.array([0.0, 1.00, 0.99, 0.0, 0.98, 0.97, 0.0])
    rows = trend_rows(q)
    assert np.flatnonzero(rows.keep).tolist() == [1, 2, 4, 5]
    assert rows.dropped == {"no discharge": 3}
    # NaN is no value at all: nothing is filtered, the feature path refuses the row
    assert trend_rows(np.where(q == 0, np.nan, q)).keep.all()
    # nothing measured at all: left to the feature path's refusal (it names the row)
    assert trend_rows(np.zeros(4)).keep.all()
    # a labelled check without a discharge is no check
    labels = np.array(["Capacity check"] * 4 + [None] * 3, dtype=object)
    got = trend_rows(np.array([1.0, 0.0, 0.98, 0.97, 0.9, 0.9, 0.9]), labels)
    assert got.basis == "capacity checks" and np.flatnonzero(got.keep).tolist() == [0, 2, 3]
    assert got.dropped == {"no discharge": 1, "not a capacity check": 3}


def test_a_cut_last_cycle_and_a_double_counted_first_cycle_leave():
    # a file cut mid-discharge: one low row at the very end after normal rows
    q = np.array([1.94, 1.90, 1.88, 1.86, 1.84, 1.82, 0.52])
    assert trend_rows(q).dropped == {"unfinished last cycle": 1}
    # a BDF-style formation cycle holding two discharges: 0.277 Ah, then ~0.14 Ah cycles
    q2 = np.array([0.2767, 0.1468, 0.1478, 0.1489, 0.1494, 0.1322, 0.1312, 0.1312])
    got = trend_rows(q2)
    assert got.dropped == {"double-counted cycle": 1} and not got.keep[0]
    # a slow, real fade is never touched
    assert trend_rows(np.linspace(1.0, 0.6, 50)).keep.all()


def test_an_end_of_life_the_history_already_shows_is_reported_as_observed():
    from serving.runtime import load_forecaster

    n = np.arange(1, 41)
    q = 2.0 * (1.0 - 0.008 * n)  # 80 % of 2.0 Ah at cycle 25; one noisy dip at cycle 12
    q[11] = 1.55
    frame = pd.DataFrame({"cycle_index": n, "test_time_second": n * 5 * 3600.0,
                          "discharge_capacity_ah": q})
    doc = load_forecaster(str(PRODUCTION)).forecast(frame, horizon_cycles=5)
    eol = doc["end_of_life"]
    # reference = max of the first 3 cycles (1.984 Ah); retention < 0.8 from cycle 26 on
    # (1.584 / 1.984 = 0.798); the single dip at 12 does not count (three rows in a row do)
    assert eol["observed"] is True
    assert eol["cycle_index"] == {"p05": 26, "p50": 26, "p95": 26}
    assert eol["test_time_second"]["p50"] == pytest.approx(26 * 5 * 3600.0)


def test_invalid_values_are_refused_by_row_not_filtered():
    from data_registry.errors import ValidationError

    base = {"cycle_index": np.arange(1, 11), "test_time_second": np.arange(1, 11) * 3600.0}
    for bad, code in ((-0.98, "out_of_range"), (np.nan, "not_finite")):
        q = np.linspace(1.0, 0.95, 10)
        q[5] = bad
        with pytest.raises(ValidationError) as err:
            model_columns({**base, "discharge_capacity_ah": q})
        assert err.value.row is not None  # names the row, as before the trend rules
    text = np.array([str(v) for v in np.linspace(1.0, 0.95, 10)], dtype=object)
    text[5] = "abc"
    with pytest.raises(ValidationError):
        model_columns(pd.DataFrame({**base, "discharge_capacity_ah": text}))


def test_too_few_measuring_rows_says_what_was_left_out():
    from data_registry.errors import ValidationError

    q = np.zeros(20)
    q[[3, 9]] = 1.0
    with pytest.raises(ValidationError, match="history too short once") as err:
        model_columns({"cycle_index": np.arange(1, 21), "test_time_second":
                       np.arange(1, 21) * 3600.0, "discharge_capacity_ah": q})
    assert "2 of 20 rows (no discharge: 18)" in str(err.value)


def test_the_forecast_starts_after_the_last_observed_cycle_even_when_it_is_left_out():
    from serving.runtime import load_forecaster

    n = np.arange(1, 31)
    q = np.linspace(2.0, 1.9, 30)
    q[-1] = 0.0  # the running cycle: no discharge yet
    frame = pd.DataFrame({"cycle_index": n, "test_time_second": n * 4 * 3600.0,
                          "discharge_capacity_ah": q})
    doc = load_forecaster(str(PRODUCTION)).forecast(frame, horizon_cycles=3)
    assert [r["cycle_index"] for r in doc["forecast"]] == [31, 32, 33]
    assert doc["forecast"][0]["test_time_second"] == pytest.approx((120 + 4) * 3600.0)
    assert doc["history"]["dropped"] == {"no discharge": 1}


def test_records_are_cut_once():
    from ml.sources import CellRecord, trend_records

    labels = ["Capacity check" if i % 5 == 0 else "Aging" for i in range(30)]
    q = np.where(np.arange(30) % 5 == 0, 2.0 - 0.004 * np.arange(30), 1.7)
    q[10] = 1.6  # a low check: as a check it stays; judged by numbers among checks it would go
    cycles = pd.DataFrame({"cycle_index": np.arange(1, 31), "test_time_second":
                           np.arange(1, 31) * 3600.0, "discharge_capacity_ah": q,
                           "cycle_label": labels})
    with pytest.warns(UserWarning):
        rec = trend_records([CellRecord("x", cycles)])[0]
    table = model_columns(rec.cycles)
    assert table.n_rows == 6 and table.attrs["history"]["basis"] == "capacity checks"


def test_a_first_discharge_of_a_part_charged_cell_is_not_the_reference():
    # NASA B0036's shape: 1.00 Ah from the delivered charge, then ~1.80 Ah
    q = np.array([1.00, 1.80, 1.80, 1.79, 1.79, 1.78, 1.78])
    rows = trend_rows(q)
    assert np.flatnonzero(~rows.keep).tolist() == [0]
    assert rows.dropped == {"first discharge of a part-charged cell": 1}
    # 0.81x the next five's median (1.79) stays: within what a first cycle may differ
    assert trend_rows(np.r_[1.45, q[1:]]).keep.all()
    # within the fast path's ratio (max < 1.5 min) the first row is still judged: 0.75x
    assert not trend_rows(np.r_[1.35, q[1:]]).keep[0]
    # too few rows after it to judge: kept
    assert trend_rows(np.array([1.0, 1.8, 1.8])).keep.all()


def test_a_slice_of_a_trend_cut_record_is_judged_on_its_own():
    # an evaluation cuts the first rows of a record that ml.sources.trend_records already cut;
    # pandas copies attrs into the slice, which must not inherit the record's last cycle
    q = [0.75, 1.60, 1.60, 1.59, 1.58, 1.58, 1.57, 1.56, 1.55, 1.55, 1.54, 1.53]
    frame = pd.DataFrame({"cycle_index": np.arange(1, 13), "test_time_second":
                          3600.0 * 4 * np.arange(1, 13), "discharge_capacity_ah": q})
    record, rows = trend_subset(frame)
    assert rows is not None and record.attrs["last_observed"] == (12.0, 48.0)
    assert trend_subset(record) == (record, None)  # the record itself: the rules ran once
    head = record.iloc[:6]
    assert head.attrs.get("last_observed") == (12.0, 48.0)  # what pandas does
    table = model_columns(head)
    # nothing to leave out of the slice: no note, and the forecast starts after ITS last row
    assert "last_observed" not in table.attrs and "history" not in table.attrs
    cycles, hours = future_schedule(table, horizon_cycles=3, hours_per_cycle=4.0)
    assert cycles.tolist() == [8.0, 9.0, 10.0] and hours.tolist() == [32.0, 36.0, 40.0]
    # a slice that does leave a row out gets its own note and last cycle
    frame2 = frame.assign(discharge_capacity_ah=q[:6] + [0.2] + q[7:])
    cut2, _ = trend_subset(frame2)
    part = model_columns(pd.concat([frame.iloc[:1], cut2.iloc[:5]]).assign(
        discharge_capacity_ah=[0.75, 1.6, 1.6, 1.59, 1.58, 1.58]))
    assert part.attrs["history"]["rows"] == 6 and part.attrs["last_observed"] == (6.0, 24.0)


def test_rows_before_a_protocol_change_that_raised_the_capacity_leave():
    # NASA B0040's shape: ~0.9 Ah fading, then a new discharge protocol holds ~2.19 Ah
    low = [0.851, 1.0, 0.994, 0.985, 0.964, 0.936, 0.984, 0.977, 0.959, 0.936, 0.941, 0.904]
    high = [2.158, 2.187, 2.19, 2.188, 2.191, 2.191, 2.179, 2.189]
    rows = trend_rows(np.array(low + high))
    assert np.flatnonzero(rows.keep).tolist() == list(range(12, 20))
    assert rows.dropped == {"before a capacity rise (protocol change)": 12}
    # the rise must hold: 1.26x the largest of the five rows before it (1.0 × 1.26 > 1.25) …
    assert not trend_rows(np.array([1.0, 0.99, 0.98, 1.26, 1.26, 1.26])).keep[:3].any()
    # … not 1.24x, and not for fewer than 3 rows (a test that just changed: wait and see)
    assert trend_rows(np.array([1.0, 0.99, 0.98, 1.24, 1.24, 1.24])).keep.all()
    assert trend_rows(np.array([1.0, 0.99, 0.98, 0.97, 1.3, 1.3])).keep.all()
    # a recovery after a rest (+8 %, decaying) and a 3-row spike that comes back: no change
    rest = np.r_[np.linspace(1.0, 0.9, 10), 0.98, 0.95, 0.93, np.linspace(0.92, 0.85, 10)]
    assert trend_rows(rest).keep.all()
    spike = np.r_[np.linspace(1.0, 0.95, 10), 1.3, 1.3, 1.3, np.linspace(0.95, 0.9, 10)]
    assert "before a capacity rise (protocol change)" not in trend_rows(spike).dropped
    # a fall is never cut (it may be the cell dying)
    assert trend_rows(np.r_[np.full(6, 2.0), np.full(6, 1.2)]).keep.all()
    # two rises: the trend starts at the last one
    two = np.r_[np.full(5, 1.0), np.full(5, 1.5), np.full(5, 2.0)]
    assert np.flatnonzero(trend_rows(two).keep).tolist() == list(range(10, 15))
    # the end of a temporary dip (6 slow or cold cycles at 0.72x, cycles 300-305 of a fading
    # cell) is no protocol change: the level it returns to is not above the earlier history
    fade = 1.0 - 0.0004 * np.arange(400)
    dip = fade.copy()
    dip[300:306] *= 0.72
    assert "before a capacity rise (protocol change)" not in trend_rows(dip).dropped
    assert "before a capacity rise (protocol change)" not in trend_rows(dip[:309]).dropped


def test_a_served_forecast_after_a_protocol_change_starts_from_the_new_level():
    from serving.runtime import load_forecaster

    low = np.linspace(0.95, 0.90, 12)
    high = 2.19 - 0.0005 * np.arange(8)
    n = np.arange(1, 21)
    frame = pd.DataFrame({"cycle_index": n, "test_time_second": n * 4.5 * 3600.0,
                          "discharge_capacity_ah": np.r_[low, high]})
    doc = load_forecaster(str(PRODUCTION)).forecast(frame, horizon_cycles=20)
    assert doc["history"]["dropped"] == {"before a capacity rise (protocol change)": 12}
    assert doc["forecast"][0]["cycle_index"] == 21
    # the new level (2.19 Ah, fading 0.5 mAh per cycle) carries on; read as one trend with
    # the 0.9 Ah rows (before the rule) the median was a flat 1.03 Ah
    p50 = [row["capacity_ah"]["p50"] for row in doc["forecast"]]
    assert 2.0 < p50[-1] < 2.2 and 2.1 < p50[0] < 2.2


def test_a_negligible_discharge_is_no_capacity_measurement():
    # BEEP's Maccor PreDiag…022 "short" file: diagnostic cycles at ~4.7 Ah, the cycles
    # between them log a current offset over a rest (1e-5 Ah)
    q = np.array([4.7148, 4.7087, 3.9e-4, 0.0, 3e-5, 4e-5, 2e-5, 0.0, 4.6115, 3.7e-4, 0.0])
    rows = trend_rows(q)
    assert np.flatnonzero(rows.keep).tolist() == [0, 1, 8]
    assert rows.dropped == {"no discharge": 8}
    # 0.01 % of the largest is the line: 0.00048 Ah stays a (partial) measurement, 0.00046
    # does not
    edge = np.array([4.7, 4.69, 0.00048, 4.68, 4.67, 0.00046, 4.66])
    got = trend_rows(edge)
    assert got.dropped == {"no discharge": 1, "partial cycle": 1}
    # a cell fading to nothing through small steps keeps every row (Zhang 2020 25C05's end,
    # mAh: down to 0.07 % of its 37 mAh)
    death = np.r_[np.linspace(37.0, 2.0, 40), 1.50, 1.17, 0.90, 0.65, 0.48,
                  np.geomspace(0.365, 0.024, 32)]
    assert trend_rows(death).keep.all()
