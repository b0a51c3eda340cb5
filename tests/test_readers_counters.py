"""Vendor counters vs the integral of the logged samples (readers/counters.py, Indigo, Neware)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from data_registry.readers import open_source
from data_registry.readers.counters import counter_ratios, mismatch_warning, segment_integrals
from data_registry.readers.indigo import counters_restart, dropped_counter


def test_segment_integrals_by_hand():
    seg = np.array([1, 1, 1, 2, 2, 3])
    t = np.array([0.0, 10.0, 30.0, 40.0, 50.0, 60.0])
    y = np.array([1.0, 1.0, 3.0, 5.0, 5.0, 7.0])
    first, last, area = segment_integrals(seg, t, y)
    # segment 1: 10 * 1 + 20 * (1 + 3) / 2 = 50; segment 2: 10 * 5 = 50; the 30->40 s gap
    # between segments belongs to neither; segment 3: one sample, no area
    assert first.tolist() == [0, 3, 5] and last.tolist() == [2, 4, 5]
    assert area.tolist() == [50.0, 50.0, 0.0]


def test_counter_ratios_and_warning():
    seg = np.repeat([1, 2, 3], 6)
    t = np.tile(np.arange(6) * 10.0, 3) + np.repeat([0.0, 100.0, 200.0], 6)
    current = np.repeat([2.0, -2.0, 2.0], 6)  # 2 A for 50 s = 100 C per segment
    counter = np.concatenate([np.arange(6) * 20.0, -np.arange(6) * 20.0,
                              np.arange(6) * 30.0])  # last segment: 150 C logged as 150
    ratios, size = counter_ratios(seg, t, current, counter, from_zero=True)
    assert ratios.tolist() == [1.0, 1.0, 1.5] and size.tolist() == [6, 6, 6]
    assert mismatch_warning("c", "capacity", ratios[:2], "f", "col", "why") is None
    w = mismatch_warning("c", "capacity", ratios, "f.h5", "col", "why")
    assert (w.code, w.count, w.details["ratio_max"], w.details["segments"]) == ("c", 1, 1.5, 3)
    assert "1.00×–1.50× in 1 of 3 segments" in w.message


def test_restart_and_dropped_counter_by_hand():
    seg = np.repeat([1, 2], 4)
    t = np.tile(np.arange(4) * 100.0, 2)
    current = np.full(8, 1.0)  # 100 C per 100 s
    counter = np.array([0.0, 100, 200, 0.0, 0.0, 100, 0.0, 300])
    assert counters_restart(seg, counter)
    assert not counters_restart(seg, counter + 1000.0)
    # 0 where more than 36 C has flowed since the segment began: index 3 (300 C) and 6 (200 C)
    assert dropped_counter(seg, t, current, counter).tolist() == [False, False, False, True,
                                                                  False, False, True, False]


def test_indigo_counters_reported_not_rescaled(shared_data):
    path = shared_data / "parsers" / "indigo_beep" / "indigo_test_sample.h5"
    src = open_source(path, chunk_rows=100_000)
    df = src.read()
    by_code = {w.code: w for w in src.warnings}
    assert set(by_code) == {"counter_missing", "counter_vs_logged_current"}
    miss = by_code["counter_missing"]
    assert (miss.row, miss.count) == (7882, 189)
    # record 7882 ends a charge of 19.03 Ah (record 7881) with the counter already reset to
    # 0: stored as missing, not as a 19 Ah drop to 0 inside the half cycle
    end, reset = (df[df["source_row"] == r].iloc[0] for r in (7881, 7882))
    assert end["charging_capacity_ah"] == pytest.approx(19.03189, abs=1e-5)
    assert np.isnan(reset["charging_capacity_ah"]) and np.isnan(reset["charging_energy_wh"])
    spread = by_code["counter_vs_logged_current"]
    assert spread.details["ratio_median"] == pytest.approx(1.0, abs=0.005)
    assert 1.4 < spread.details["ratio_max"] < 1.5
    # the first half cycle restarts at 0: first sample 31.5 s into a 5 A discharge reads
    # 114.526 C = 0.031813 Ah, kept as is (not zeroed by subtracting the first sample)
    assert df["discharging_capacity_ah"].iloc[0] == pytest.approx(114.526 / 3600, rel=1e-5)


def test_neware_energy_sign_warning(shared_data):
    folder = shared_data / "parsers" / "navani_examples"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = open_source(folder / "test.nda")
        df = src.read()
        clean = open_source(folder / "test.ndax")
        clean.read()
    (w,) = src.warnings
    assert (w.code, w.count) == ("energy_counter_sign", 3)
    assert w.details["median_voltage_volt"] == pytest.approx(-0.0957, abs=1e-4)
    assert (df["charging_energy_wh"].dropna() >= 0).all()
    assert clean.warnings == []
