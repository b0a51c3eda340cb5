"""Which column is the TEST clock: Neware BTS Excel workbooks (``test`` / ``cycle`` /
``record`` sheets) and CSVs write ``Total Time`` (the test clock) beside ``Time`` (the step
clock); Digatron writes ``Programmdauer`` beside ``Schrittdauer`` under a ``[h:m:s]`` units
row, with decimal commas. Durations as text (hours past 24) or Excel time cells. Hand-made
files of ±0.5 A steps of known length, so clock and capacity are checked by hand."""
from __future__ import annotations

import datetime

import numpy as np
import pytest

from data_registry.errors import InputFormatError
from data_registry.readers import detect, open_source

STEP_S = 120  # s per step, 10 s records → 0.5 A × 120 s = 1/60 Ah per charge / discharge


def _records():
    """(record n, cycle, step, sign, step seconds k, test seconds t) of 2 cycles of a charge
    then a discharge step of STEP_S, one record every 10 s (a step's last record shares its
    time with the next step's first)."""
    n, t = 0, 0
    for c in (1, 2):
        for s, sign in ((1, 1), (2, -1)):
            for k in range(0, STEP_S + 10, 10):
                n += 1
                yield n, c, s + 2 * (c - 1), sign, k, t
                if k < STEP_S:
                    t += 10


def _hms(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def workbook(path, clock: str = "text", start_s: int = 0, bad_row: int | None = None):
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "test"
    wb.active.append(["Test name", "cell7"])
    cyc = wb.create_sheet("cycle")
    cyc.append(["Cycle Index", "Chg. Cap.(Ah)", "DChg. Cap.(Ah)"])
    rec = wb.create_sheet("record")
    rec.append(["DataPoint", "Cycle Index", "Step Index", "Step Type", "Time", "Total Time",
                "Current(A)", "Voltage(V)", "Chg. Cap.(Ah)", "DChg. Cap.(Ah)", "Date"])
    t, n = start_s, 0
    for c in (1, 2, 3):
        for s, kind, amp in ((1, "CC Chg", 0.5), (2, "Rest", 0.0), (3, "CC DChg", -0.5)):
            for k in range(0, STEP_S + 1, 10):
                n += 1
                total: object = (f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}"
                                 if clock == "text" else datetime.timedelta(seconds=t))
                if n == bad_row:
                    total = "soon"
                cap = abs(amp) * k / 3600
                rec.append([n, c, 3 * (c - 1) + s, kind, f"00:{k // 60:02d}:{k % 60:02d}",
                            total, amp, 3.8 if amp > 0 else 3.6, cap if amp > 0 else 0.0,
                            cap if amp < 0 else 0.0, "2024-01-01 10:00:00"])
                if k < STEP_S:
                    t += 10
    wb.save(path)
    return path


@pytest.mark.parametrize("clock", ["text", "timedelta"])
def test_neware_workbook_reads_total_time_not_step_time(tmp_path, clock):
    from ml.features import build_cycle_table

    # a test already 30 h old: "30:00:00" text (hours past 24), or an [h]:mm:ss cell
    p = workbook(tmp_path / "cell7.xlsx", clock=clock, start_s=30 * 3600)
    assert detect(p) == "landt_xlsx"
    df = open_source(p).read()
    assert df["test_time_second"].iloc[0] == 30 * 3600
    assert df["test_time_second"].iloc[-1] == 30 * 3600 + 9 * STEP_S  # not the step time
    table = build_cycle_table(df.assign(cell_id="cell7"), voltage_curves=False)
    assert table["discharge_capacity_ah"].to_numpy() == pytest.approx([0.5 * STEP_S / 3600] * 3)
    assert table["cycle_index"].tolist() == [1, 2, 3]


def test_unreadable_total_time_names_sheet_and_row(tmp_path):
    p = workbook(tmp_path / "bad.xlsx", bad_row=20)
    with pytest.raises(InputFormatError) as err:
        open_source(p).read()
    assert err.value.code == "not_duration" and err.value.row == 20
    assert "'soon'" in str(err.value) and "sheet record, row 21" in str(err.value)


def test_generic_csv_with_step_time_and_total_time_reads_the_total(tmp_path):
    from ml.features import build_cycle_table

    rows = ["Cycle Index,Step Index,Time,Total Time,Current(A),Voltage(V)"] + [
        f"{c},{step},0{_hms(k)},{_hms(t)},{0.5 * sign},3.7"
        for _, c, step, sign, k, t in _records()]
    p = tmp_path / "neware_like.csv"
    p.write_text("\n".join(rows) + "\n")
    src = open_source(p)
    df = src.read()
    assert df["test_time_second"].iloc[-1] == 4 * STEP_S  # the step clock restarts at 0
    codes = {w.code: w for w in src.warnings}
    assert "step_time_ignored" in codes and "Total Time" in codes["step_time_ignored"].message
    table = build_cycle_table(df.assign(cell_id="x"), voltage_curves=False)
    assert table["discharge_capacity_ah"].to_numpy() == pytest.approx([0.5 * STEP_S / 3600] * 2)


def test_digatron_style_csv_program_duration_units_row_and_decimal_commas(tmp_path):
    from data_registry.units import parse_duration
    from ml.features import build_cycle_table

    rows = ["Schritt;Zustand;Programmdauer;Schrittdauer;Zyklus;Spannung;Strom;AhAkku",
            "[];[];[h:m:s];[h:m:s];[];[V];[A];[Ah]"] + [
        f"{step};{'LAD' if sign > 0 else 'ELA'};{_hms(t)},500;0{_hms(k)},500;{c};3,700;"
        f"{0.5 * sign:.3f};0,0".replace(".", ",") for _, c, step, sign, k, t in _records()]
    p = tmp_path / "digatron.csv"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    src = open_source(p)
    df = src.read()
    assert df["test_time_second"].iloc[0] == 0.5  # '0:00:00,500'
    assert df["test_time_second"].iloc[-1] == 4 * STEP_S + 0.5
    assert {"step_time_ignored", "units_row", "decimal_comma"} <= {w.code for w in src.warnings}
    table = build_cycle_table(df.assign(cell_id="d"), voltage_curves=False)
    assert table["discharge_capacity_ah"].to_numpy() == pytest.approx([0.5 * STEP_S / 3600] * 2)
    import pandas as pd
    assert parse_duration(pd.Series(["1:02:03,25", "26:00:00.5"])).tolist() == [3723.25,
                                                                              93600.5]


def _logger_rows(fmt: str, sep: str = ";", start=None) -> list[str]:
    import datetime as dt

    t0 = start or dt.datetime(2025, 2, 28, 23, 58, 0)  # crosses midnight and a month end
    return [sep.join(["Timestamp", "U [V]", "I [A]", "Cycle"])] + [
        sep.join([(t0 + dt.timedelta(seconds=t)).strftime(fmt), "3.7", str(0.5 * sign), str(c)])
        for _, c, _, sign, _, t in _records()]


@pytest.mark.parametrize("fmt,layout", [("%d.%m.%Y %H:%M:%S", "day_first"),
                                        ("%Y-%m-%dT%H:%M:%S", "iso"),
                                        ("%Y/%m/%d %H:%M:%S", "iso"),  # as Neware/LAND in CN
                                        ("%Y.%m.%d %H:%M:%S", "iso"),
                                        ("%m/%d/%Y %I:%M:%S %p", "month_first")])
def test_a_timestamp_column_is_the_clock_when_there_is_no_elapsed_time(tmp_path, fmt, layout):
    from data_registry.readers.timestamps import date_layout
    from ml.features import build_cycle_table

    rows = _logger_rows(fmt)
    assert date_layout([r.split(";")[0] for r in rows[1:6]]) == layout
    p = tmp_path / "logger.csv"
    p.write_text("\n".join(rows) + "\n")
    assert detect(p) == "generic_csv"
    src = open_source(p)
    df = src.read()
    # 4 steps of 120 s: the last row is 480 s after the first, across 28 Feb → 1 Mar
    assert df["test_time_second"].iloc[0] == 0.0 and df["test_time_second"].iloc[-1] == 480.0
    warn = {w.code: w for w in src.warnings}["test_time_from_timestamps"]
    assert "'Timestamp'" in warn.message
    table = build_cycle_table(df.assign(cell_id="x"), voltage_curves=False)
    assert table["discharge_capacity_ah"].to_numpy() == pytest.approx([0.5 * STEP_S / 3600] * 2)


def test_day_first_is_seen_from_a_day_above_twelve_and_a_bad_stamp_names_its_line(tmp_path):
    import datetime as dt

    from data_registry.readers.timestamps import date_layout

    assert date_layout(["02/03/2025 10:00:00", "13/03/2025 10:00:00"]) == "day_first"
    assert date_layout(["02/03/2025 10:00:00", "soon"]) is None
    rows = _logger_rows("%d/%m/%Y %H:%M:%S", start=dt.datetime(2025, 3, 13, 9, 0, 0))
    rows[30] = rows[30].replace(rows[30].split(";")[0], "13/03/2025 25:00:00")
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputFormatError) as err:
        open_source(p).read()
    assert (err.value.code, err.value.row, err.value.column) == ("not_time", 31, "Timestamp")


def test_camel_case_headers_landt_style(tmp_path):
    from data_registry.readers.headers import camel_stem
    from ml.features import build_cycle_table

    assert (camel_stem("TestTime"), camel_stem("CycleIndex"), camel_stem("DChg")) == (
        "test_time", "cycle_index", "dchg")
    rows = ["Record,Cycle,Step,TestTime,StepTime,Current/mA,Voltage/V"] + [
        f"{n},{c},{step},{t},{k},{5.0 * sign},3.7" for n, c, step, sign, k, t in _records()]
    p = tmp_path / "landt.csv"
    p.write_text("\n".join(rows) + "\n")
    src = open_source(p)
    df = src.read()
    assert df["test_time_second"].iloc[-1] == 4 * STEP_S  # TestTime, not StepTime
    assert "step_time_ignored" in {w.code for w in src.warnings}
    table = build_cycle_table(df.assign(cell_id="l"), voltage_curves=False)
    assert table["discharge_capacity_ah"].to_numpy() == pytest.approx([5e-3 * STEP_S / 3600] * 2)


def test_ambiguous_slash_dates_are_ordered_from_the_whole_column(tmp_path):
    import datetime as dt

    # day first, every field ≤ 12 in the head: 11/03 23:50 → 12/03 00:30 crosses midnight
    # only after the head; read month first it would jump from 3 Nov to 3 Dec
    rows = ["Timestamp;U [V];I [A];Cycle"]
    t = dt.datetime(2025, 3, 11, 22, 0, 0)
    for k in range(400):
        rows.append(f"{t:%d/%m/%Y %H:%M:%S};3.7;{0.5 if k < 200 else -0.5};1")
        t += dt.timedelta(seconds=30)
    p = tmp_path / "day_first.csv"
    p.write_text("\n".join(rows) + "\n")
    df = open_source(p).read()
    assert df["test_time_second"].iloc[-1] == 399 * 30
    warn = next(w for w in open_source(p).warnings if w.code == "test_time_from_timestamps")
    assert "day first" in warn.message


def test_iso_offsets_are_honoured_and_an_unknown_stamp_layout_is_named(tmp_path):
    rows = ["Timestamp,Voltage (V),Current (A),Cycle",
            "2025-03-30T01:58:00+01:00,3.7,0.5,1", "2025-03-30T01:59:00+01:00,3.7,0.5,1",
            "2025-03-30T03:00:00+02:00,3.7,0.5,1", "2025-03-30T03:01:00+02:00,3.7,0.5,1"]
    p = tmp_path / "dst.csv"
    p.write_text("\n".join(rows) + "\n")
    assert open_source(p).read()["test_time_second"].tolist() == [0, 60, 120, 180]
    p.write_text("\n".join([rows[0]] + [f"day {k} noon,3.7,0.5,1" for k in range(4)]) + "\n")
    with pytest.raises(InputFormatError) as err:
        open_source(p)
    assert err.value.column == "Timestamp" and "'day 0 noon'" in str(err.value)


def test_step_time_stays_the_clock_when_the_total_is_not_read_as_one(tmp_path):
    # an EIS table: "Total Time" is no EIS column, so "Time" must stay the clock
    p = tmp_path / "eis.csv"
    p.write_text("\n".join(["Frequency (Hz),Z' (ohm),Z'' (ohm),Time (s),Total Time (s)"]
                           + [f"{1000 / (k + 1)},{1 + k},-{k},{k},{k}" for k in range(10)])
                 + "\n")
    src = open_source(p)
    assert src.read()["test_time_second"].tolist() == list(range(10))
    assert "step_time_ignored" not in {w.code for w in src.warnings}
    # a per-cycle table: Total Time is its clock, the step-like Time beside it is not
    p = tmp_path / "cycles.csv"
    p.write_text("\n".join(["Cycle,Discharge capacity (Ah),Time (h),Total Time (h)"]
                           + [f"{n},{1 - 0.001 * n},0.5,{2 * n}" for n in range(1, 6)]) + "\n")
    assert open_source(p).read()["test_time_second"].tolist() == [7200.0 * n
                                                                  for n in range(1, 6)]
    # German: Prüfdauer (test duration) beside Zeit (step time)
    p = tmp_path / "pruef.csv"
    p.write_text("\n".join(["Zeit;Prüfdauer;Spannung;Strom;Zyklus"]
                           + [f"{k % 5};{k};3,7;0,5;1" for k in range(12)]) + "\n",
                 encoding="utf-8")
    assert open_source(p).read()["test_time_second"].tolist() == list(range(12))


def test_unrecognised_table_is_diagnosed_but_a_date_line_is_not_called_a_header(tmp_path):
    from data_registry.errors import UnknownFormatError
    from data_registry.readers.generic_csv import table_diagnosis
    from data_registry.readers.sniff import read_head

    p = tmp_path / "logger.csv"
    p.write_text("Zeitstempel;Spannung;Zyklus\n1;3,7;1\n")
    text = table_diagnosis(read_head(p))
    assert "'Spannung' → voltage_volt" in text and "current_ampere" in text
    with pytest.raises(UnknownFormatError) as err:
        detect(p)
    assert "still needs" in str(err.value)
    p.write_text("Feb. 20, 2020   15:55:08\nA.C. Impedance\n")
    assert table_diagnosis(read_head(p)) is None


def test_excel_time_cells_and_mixed_numbers_in_a_total_time_column(tmp_path):
    import datetime as dt

    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "record"
    ws.append(["Cycle Index", "Step Index", "Total Time(h)", "Current(A)", "Voltage(V)"])
    values = [0, "0:00:10", dt.time(0, 0, 20), dt.timedelta(hours=30), 31.5]
    for k, v in enumerate(values):
        ws.append([1, 1, v, 0.5, 3.7])
    # an h:mm:ss cell past 24 h: Excel stores 2.5 days, openpyxl returns a 1900-01-01 date
    ws.append([1, 1, 2.5, 0.5, 3.7])
    ws.cell(row=7, column=3).number_format = "h:mm:ss"
    p = tmp_path / "mixed.xlsx"
    wb.save(p)
    secs = open_source(p).read()["test_time_second"].tolist()
    # numbers are in the header's unit (h); durations and time cells are already seconds
    assert secs == [0.0, 10.0, 20.0, 30 * 3600.0, 31.5 * 3600.0, 60 * 3600.0]


def test_a_vendor_wall_clock_uses_the_same_layout_rule(tmp_path):
    """An EC-Lab text export with absolute time from a European install (day first): the head
    holds 12/03 only, so the order comes from the whole column, where 13/03 appears."""
    import datetime as dt

    t = dt.datetime(2021, 3, 12, 23, 0, 0)
    rows = ["mode\ttime/s\tEcell/V\tI/mA\tcycle number"]
    for k in range(300):  # 30 s apart: 23:00 on 12 March to 01:29:30 on 13 March
        rows.append(f"1\t{t:%d/%m/%Y %H:%M:%S}.000\t3.7\t{500 if k < 150 else -500}\t1")
        t += dt.timedelta(seconds=30)
    p = tmp_path / "eclab.txt"
    p.write_text("\n".join(rows) + "\n")
    assert detect(p) == "biologic_txt"
    df = open_source(p).read()
    assert df["test_time_second"].iloc[-1] == pytest.approx(299 * 30)
    assert (np.diff(df["test_time_second"].to_numpy()) == 30).all()


def test_stamp_edge_cases_and_the_line_of_a_stamp_that_breaks_the_layout(tmp_path):
    import pandas as pd

    from data_registry.readers.timestamps import slash_order, stamp_seconds

    def rel(values, layout):
        x = stamp_seconds(pd.Series(values), layout)
        return (x - x[0]).tolist()

    assert rel(["01/02/25 1:05:00 PM", "01/02/25 12:05:00 AM", "01/02/25 13:05:00 PM"],
               "month_first")[1:] == [-46800.0, pytest.approx(float("nan"), nan_ok=True)]
    assert rel(["12/31/99 23:59:00", "01/01/00 00:01:00"], "month_first") == [0.0, 120.0]
    assert rel(["11.03.2025 23:59:59,5", "12.03.2025 00:00:00"], "day_first") == [0.0, 0.5]
    assert rel(["2025-03-01 10:00:00", "2025-03-01T10:00:01,5"], "iso") == [0.0, 1.5]
    # the day is the field that changes while the other stays (11/03 → 12/03 → 01/04 …)
    days = [f"{d:02d}/03/2025 12:00:00" for d in range(1, 13)]
    assert slash_order(days) == "day_first" and slash_order(["03/01/2025 10:00:00"] * 5) == \
        "month_first"
    rows = ["Timestamp,Voltage,Current,Cycle", ",V,A,"] + [
        f"2025-05-05 14:36:0{k},3.6,1.0,1" for k in range(6)]
    rows[5] = "2025-05-05 14:36:03 CEST,3.6,1.0,1"
    p = tmp_path / "late.csv"
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputFormatError) as err:
        open_source(p)
    assert err.value.row == 6 and "CEST" in str(err.value)  # line 6, after the units row


def test_excel_column_of_h_mm_ss_cells_past_a_day_and_newer_neware_ids(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Record ID", "Cycle ID", "Step ID", "Total Time(h)", "Current(A)", "Voltage(V)"])
    for k, days in enumerate((1.5, 2.0, 2.5)):
        ws.append([k + 1, 1, 1, days, 0.5, 3.7])
        ws.cell(row=k + 2, column=4).number_format = "h:mm:ss"
    p = tmp_path / "days.xlsx"
    wb.save(p)
    df = open_source(p).read()
    assert df["test_time_second"].tolist() == [36 * 3600.0, 48 * 3600.0, 60 * 3600.0]
    assert df["cycle_count"].tolist() == [1, 1, 1]


def test_a_workbook_of_per_cycle_sheets_only_is_read_as_cycles(tmp_path, capsys):
    import openpyxl

    from serving.cli import main

    wb = openpyxl.Workbook()
    wb.active.title = "test"
    ws = wb.create_sheet("cycle")  # Neware's cycle sheet: no clock
    ws.append(["Cycle Index", "Chg. Cap.(Ah)", "DChg. Cap.(Ah)", "Chg.-DChg. Eff(%)"])
    for n in range(1, 41):
        ws.append([n, 1.0 - 0.001 * n, 0.999 - 0.001 * n, 99.9])
    p = tmp_path / "neware_cycles.xlsx"
    wb.save(p)
    assert detect(p) == "xlsx_cycles"
    with pytest.raises(Exception) as err:
        open_source(p)
    assert "--hours-per-cycle" in str(err.value) and "'cycle'" in str(err.value)
    df = open_source(p, protocol_hours_per_cycle=3.0).read()
    assert df["discharge_capacity_ah"].iloc[:2].tolist() == pytest.approx([0.998, 0.997])
    assert df["test_time_second"].iloc[1] == 2 * 3 * 3600
    assert main(["forecast", "--cycles", str(p), "--hours-per-cycle", "3",
                 "--horizon-cycles", "5", "--json"]) == 0
    assert "forecast" in capsys.readouterr().out
    # an Arbin statistics sheet with its own clock needs nothing more
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Statistics_1-006"
    ws.append(["Cycle_Index", "Test_Time(s)", "Charge_Capacity(Ah)", "Discharge_Capacity(Ah)"])
    for n in range(1, 6):
        ws.append([n, 7200 * n, 1.0, 1.0 - 0.01 * n])
    p = tmp_path / "arbin_stats.xlsx"
    wb.save(p)
    df = open_source(p).read()
    assert df["test_time_second"].tolist() == [7200.0 * n for n in range(1, 6)]


def _stamp(start: datetime.datetime, seconds: float) -> str:
    return (start + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")


def test_neware_bts8_csv_step_clock_beside_its_realtime(tmp_path):
    """Neware BTS 8: ``Time(h:min:s.ms)`` (a unit that is the clock's text layout) restarts at
    every step; ``Realtime`` is the wall clock, so it is the test clock. ``Cycle ID`` /
    ``Step ID`` and ``Capacitance_Chg/DChg(mAh)`` are its names for cycle, step and the
    capacity counters."""
    from ml.features import build_cycle_table

    start = datetime.datetime(2024, 5, 1, 23, 59, 0)  # the test runs past midnight
    rows = ["Record ID,Realtime,Time(h:min:s.ms),Step ID,Cycle ID,Current(mA),Voltage(V),"
            "Capacitance_Chg(mAh),Capacitance_DChg(mAh),DCIR(O)"] + [
        f"{n},{_stamp(start, t)},{_hms(k)}.000,"
        f"{step},{c},{500.0 * sign},3.7,{500.0 * k / 3600 if sign > 0 else 0.0},"
        f"{500.0 * k / 3600 if sign < 0 else 0.0},0"
        for n, c, step, sign, k, t in _records()]
    p = tmp_path / "bts8.csv"
    p.write_text("\n".join(rows) + "\n")
    src = open_source(p)
    df = src.read()
    codes = {w.code: w.message for w in src.warnings}
    assert "Time(h:min:s.ms)" in codes["step_time_ignored"] and "Realtime" in codes[
        "step_time_ignored"]
    assert "test_time_from_timestamps" in codes
    assert df["test_time_second"].tolist() == [t for *_, t in _records()]
    assert df["test_time_second"].iloc[-1] == 4 * STEP_S
    assert df["current_ampere"].iloc[0] == 0.5 and df["cycle_count"].iloc[-1] == 2
    assert df["charging_capacity_ah"].max() == pytest.approx(0.5 * STEP_S / 3600)
    table = build_cycle_table(df.assign(cell_id="x"), voltage_curves=False)
    assert table["discharge_capacity_ah"].to_numpy() == pytest.approx([0.5 * STEP_S / 3600] * 2)


def test_land_export_cur_and_absolute_time_is_samples_not_a_capacity_table(tmp_path):
    """LAND/Lanhe: ``Cur(mA)``, a step clock ``Relative Time(h:min:s.ms)`` and the wall clock
    ``Absolute Time``: read as samples (it was taken for a per-cycle table: Cycle +
    CapaCity), the clock from the stamps."""
    start = datetime.datetime(2024, 5, 1, 9, 0, 0)
    rows = ["Record Index,Cycle,Step,Relative Time(h:min:s.ms),Absolute Time,Cur(mA),"
            "Voltage(V),CapaCity(mAh)"] + [
        f"{n},{c},{step},{_hms(k)}.000,{_stamp(start, t)},{500.0 * sign},3.7,"
        f"{500.0 * k / 3600}"
        for n, c, step, sign, k, t in _records()]
    p = tmp_path / "land.csv"
    p.write_text("\n".join(rows) + "\n")
    assert detect(p) == "generic_csv"
    df = open_source(p).read()
    assert df["test_time_second"].tolist() == [t for *_, t in _records()]
    assert df["current_ampere"].tolist() == [0.5 * sign for *_, sign, _, _ in _records()]


def test_a_test_clock_beside_a_timestamp_stays_the_clock(tmp_path):
    """A monotonic elapsed time beside a wall clock is the test clock (one glitch row is not a
    restart); only a clock that starts again twice or more gives way to the stamps."""
    start = datetime.datetime(2024, 5, 1, 9, 0, 0)
    times = [0, 10, 20, 30, 25, 40, 50, 60]  # one row back in time: a glitch, not a step clock
    rows = ["Timestamp,Time (s),Voltage (V),Current (A),Cycle"] + [
        f"{_stamp(start, 3 * t)},{t},3.7,0.5,1"
        for t in times]
    p = tmp_path / "t.csv"
    p.write_text("\n".join(rows) + "\n")
    src = open_source(p)
    df = src.read()
    assert "step_time_ignored" not in {w.code for w in src.warnings}
    assert df["test_time_second"].max() == 60.0  # the elapsed column, not 3 × it


def test_a_land_workbook_takes_its_clock_from_absolute_time_cells(tmp_path):
    """A LAND-style sheet without an elapsed time: ``Absolute Time`` date cells (past
    midnight) are the test clock; ``Relative Time`` (the step's) is not read."""
    import openpyxl

    start = datetime.datetime(2024, 5, 1, 23, 59, 0)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Record"
    ws.append(["Record Index", "Cycle", "Step", "Relative Time(h:min:s.ms)", "Absolute Time",
               "Cur(mA)", "Voltage(V)"])
    for n, c, step, sign, k, t in _records():
        ws.append([n, c, step, f"{_hms(k)}.000", start + datetime.timedelta(seconds=t),
                   500.0 * sign, 3.7])
    p = tmp_path / "land.xlsx"
    wb.save(p)
    src = open_source(p)
    df = src.read()
    assert src.format_name == "landt_xlsx"
    assert [w.code for w in src.warnings] == ["test_time_from_timestamps"]
    assert df["test_time_second"].tolist() == [float(t) for *_, t in _records()]
    assert df["current_ampere"].tolist() == [0.5 * sign for *_, sign, _, _ in _records()]
