"""battdat raw time series with EIS columns: read as samples, impedance rows skipped and counted.

Fixture ``battdat_raw_eis.csv`` (hand-written): lines 2-5 charge at +0.36 A every 10 s
(0.36 A * 10 s / 3600 = 0.001 Ah per row), lines 6-8 an EIS sweep (1000, 100, 10 Hz, voltage
-3.7865 V, not a sample), lines 9-11 discharge at -0.36 A.
"""
from __future__ import annotations

import numpy as np

from data_registry.readers import detect, open_source


def test_fixture_read_as_samples_with_eis_rows_skipped(test_data):
    path = test_data / "readers" / "battdat_raw_eis.csv"
    assert detect(path) == "battdat_raw_csv"
    src = open_source(path, chunk_rows=2)  # the sweep straddles chunks: one warning still
    df = src.read()
    assert df["source_row"].tolist() == [2, 3, 4, 5, 9, 10, 11]
    assert df["test_time_second"].tolist() == [10, 20, 30, 40, 80, 90, 100]
    assert df["current_ampere"].tolist() == [0.36] * 4 + [-0.36] * 3
    assert df["voltage_volt"].tolist() == [3.60, 3.61, 3.62, 3.63, 3.50, 3.49, 3.48]
    assert df["step_count"].tolist() == [1, 1, 1, 1, 3, 3, 3]
    assert np.allclose(df["charging_capacity_ah"], [0.001, 0.002, 0.003, 0.004, 0, 0, 0])
    assert np.allclose(df["discharging_capacity_ah"], [0, 0, 0, 0, 0.001, 0.002, 0.003])
    assert df["ambient_temperature_celsius"].tolist() == [25.0, 25.1, 25.2, 25.3, 25.4, 25.5,
                                                          25.6]
    assert "unix_time_second" not in df.columns  # Datenum_d: time zone unknown, not read
    (w,) = src.warnings
    assert (w.code, w.row, w.column, w.count) == ("eis_rows_skipped", 6, "Frequency_Hz", 3)
    assert w.details == {"frequency_min_hz": 10.0, "frequency_max_hz": 1000.0}
    assert "3 impedance rows (Frequency_Hz set, 10–1000 Hz)" in w.message


def test_real_p492_raw_file(shared_data):
    """p492-13-raw.csv: 2021 data lines, of which 78 EIS rows (lines 1264-1341, 500 kHz down
    to 10 mHz) — values below copied from lines 2 and 1000 of the file."""
    path = shared_data / "xcel_p492_13" / "p492-13-raw.csv"
    assert detect(path) == "battdat_raw_csv"
    src = open_source(path, chunk_rows=500)
    df = src.read()
    assert len(df) == 2021 - 78
    rows = df["source_row"].to_numpy()
    assert rows[0] == 2 and rows[-1] == 2022
    assert not ((rows >= 1264) & (rows <= 1341)).any() and 1263 in rows and 1342 in rows
    first = df.iloc[0]
    assert (first["test_time_second"], first["voltage_volt"], first["cycle_count"]) == (
        0.0, 3.27603571, 1)
    r = df[df["source_row"] == 1000].iloc[0]
    assert (r["cycle_count"], r["step_count"], r["test_time_second"]) == (4, 112, 193899.768)
    assert (r["current_ampere"], r["voltage_volt"]) == (-0.01899748, 3.4290837)
    assert (r["discharging_capacity_ah"], r["discharging_energy_wh"]) == (0.01757254,
                                                                          0.06496106)
    assert r["ambient_temperature_celsius"] == 29.8776
    assert df["voltage_volt"].min() > 2.9  # the sweep's -3.7865 V rows are gone
    (w,) = src.warnings
    assert (w.code, w.row, w.count) == ("eis_rows_skipped", 1264, 78)
    assert w.details == {"frequency_min_hz": 0.01, "frequency_max_hz": 500000.0}


def test_real_p492_summary_read_as_cycles(shared_data):
    """p492-13-summary.csv: 267 cycles, 13 without Q_dis (first at line 4, cycle 3); values
    of cycle 10 (line 11) copied from the file."""
    path = shared_data / "xcel_p492_13" / "p492-13-summary.csv"
    assert detect(path) == "battdat_summary_csv"
    src = open_source(path)
    df = src.read()
    assert len(df) == 267 - 13 and 3 not in df["cycle_index"].tolist()
    (w,) = src.warnings
    assert (w.code, w.row, w.count) == ("cycles_without_discharge_skipped", 4, 13)
    c10 = df[df["cycle_index"] == 10].iloc[0]
    assert c10["source_row"] == 11
    assert c10["test_time_second"] == 318311.748  # tsecs_end: the END of the cycle
    assert (c10["charge_capacity_ah"], c10["discharge_capacity_ah"]) == (0.01899731,
                                                                          0.01899775)
    assert (c10["charge_energy_wh"], c10["discharge_energy_wh"]) == (0.07089344, 0.06919665)
    assert c10["cycle_duration_second"] == 12599.232
    assert c10["equivalent_full_cycles"] == 5.16735753511943
    assert (df["test_time_second"].diff().dropna() > 0).all()
