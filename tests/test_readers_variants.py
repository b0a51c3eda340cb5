"""Generic CSV variants a new-user trial tripped on: a unitless capacity column, decimal commas
that first appear after an integer row, a units row under the header, .NET TimeSpan elapsed
times, and errors that echo a very wide header.

Fixtures in tests/data/readers/variants/ are hand-written (values made up, layouts from the
trial's real exports); expected numbers are computed by hand in each test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_registry.errors import InputFormatError, ValidationError
from data_registry.readers import open_source
from data_registry.readers.generic_csv import open_generic
from data_registry.readers.headers import units_row
from data_registry.readers.sniff import read_head
from data_registry.units import parse_duration
from serving.cli import main


@pytest.fixture
def var(test_data):
    return test_data / "readers" / "variants"


def _codes(src):
    return {w.code: w for w in src.warnings}


# --- 1. a capacity column without a unit is always warned -----------------------------------

def test_unitless_small_capacity_is_read_as_ah_and_warned(var):
    src = open_source(var / "coin_nounit.csv")
    df = src.read()
    assert src.format_name == "generic_cycles_csv"
    # median 3.70 ≤ 20 → read as Ah (the rule is kept), stored as written
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([3.72, 3.70, 3.68])
    assert df["test_time_second"].tolist() == pytest.approx([36000.0, 72000.0, 108000.0])
    w = _codes(src)["capacity_unit_inferred"]
    assert w.column == "capacity"
    assert w.details["unit"] == "Ah" and w.details["median"] == pytest.approx(3.70)
    assert "'capacity'" in w.message and "3.7" in w.message and "read as Ah" in w.message
    assert "capacity_mAh" in w.message  # how to state the unit


def test_unitless_large_capacity_is_read_as_mah_and_warned(tmp_path):
    p = tmp_path / "zhang_like.csv"
    p.write_text("cycle,capacity,time_h\n1,37.2,2\n2,36.2,4\n3,35.6,6\n")
    src = open_source(p)
    df = src.read()
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([0.0372, 0.0362, 0.0356])
    w = _codes(src)["capacity_unit_inferred"]
    assert w.details["unit"] == "mAh" and w.details["median"] == pytest.approx(36.2)


def test_stated_capacity_unit_overrides_the_rule(var):
    """``capacity_unit`` (for a future --capacity-unit option): 3.72 mAh = 0.00372 Ah."""
    src = open_generic(read_head(var / "coin_nounit.csv"), 1000, "generic_cycles_csv",
                       capacity_unit="mAh")
    df = src.read()
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([0.00372, 0.00370, 0.00368])
    assert "capacity_unit_inferred" not in _codes(src)
    with pytest.raises(ValidationError, match="unknown capacity unit"):
        open_generic(read_head(var / "coin_nounit.csv"), 1000, "generic_cycles_csv",
                     capacity_unit="furlongs")


def test_capacity_with_a_unit_is_not_warned(tmp_path):
    p = tmp_path / "with_unit.csv"
    p.write_text("cycle,capacity (mAh),time_h\n1,3.72,10\n2,3.70,20\n")
    src = open_source(p)
    assert src.read()["discharge_capacity_ah"].tolist() == pytest.approx([0.00372, 0.0037])
    assert "capacity_unit_inferred" not in _codes(src)


def test_unitless_capacity_warning_reaches_stderr(var, capsys):
    code = main(["ingest", str(var / "coin_nounit.csv"), "--cell-id", "coin", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0
    assert "capacity_unit_inferred" in err and "'capacity'" in err and "read as Ah" in err


# --- 2. decimal commas detected from a sample of rows ---------------------------------------

def test_decimal_comma_after_an_integer_first_row(var):
    src = open_source(var / "decimal_comma_late.csv")
    df = src.read()
    # 4947 mAh, 4832,61 mAh, 4759,95 mAh → Ah
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([4.947, 4.83261, 4.75995])
    assert df["test_time_second"].tolist() == pytest.approx([61200.0, 122400.0, 183600.0])
    w = _codes(src)["decimal_comma"]
    assert w.row == 3  # the first line that shows one


def test_decimal_comma_beyond_the_sample_is_explained(tmp_path):
    p = tmp_path / "late.csv"
    rows = [f"{i};{5000 - i};{2 * i}" for i in range(1, 301)] + ["301;4698,5;602"]
    p.write_text("Cycle;Discharge capacity (mAh);Time (h)\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputFormatError) as exc:
        open_source(p).read()
    assert exc.value.row == 302 and exc.value.code == "not_numeric"
    assert "decimal commas seem to be in use" in str(exc.value)
    assert "4698,5" in str(exc.value)


# --- 3. a units row under the header ---------------------------------------------------------

def test_units_row_is_skipped_and_its_units_used(var):
    src = open_source(var / "units_row.csv")
    assert src.format_name == "generic_csv"
    df = src.read()
    assert df["source_row"].tolist() == [3, 4, 5]
    assert df["test_time_second"].tolist() == pytest.approx([0.0, 60.0, 120.0])  # min
    assert df["current_ampere"].tolist() == pytest.approx([1.0, 1.0, 1.0])  # 1000 mA
    assert df["voltage_volt"].tolist() == pytest.approx([3.5, 3.6, 3.7])  # mV
    assert df["charging_capacity_ah"].tolist() == pytest.approx([0.0, 0.016667, 0.033333])
    assert df["ambient_temperature_celsius"].tolist() == pytest.approx([25.0, 25.5, 26.0])
    w = _codes(src)["units_row"]
    assert w.row == 2 and w.details["units"]["Current"] == "mA"
    assert "capacity_unit_inferred" not in _codes(src)


def test_units_row_of_a_capacity_table(var):
    src = open_source(var / "capacity_units_row.csv", protocol_hours_per_cycle=2)
    assert src.format_name == "generic_cycles_csv"
    df = src.read()
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([0.00372, 0.0037, 0.00368])
    assert "capacity_unit_inferred" not in _codes(src) and "units_row" in _codes(src)


def test_units_row_with_a_wrong_unit_names_line_2(tmp_path):
    p = tmp_path / "bad_units.csv"
    p.write_text("Test Time,Cycle,Current,Voltage\ns,,V,V\n0,1,1.0,3.5\n")
    with pytest.raises(ValidationError) as exc:
        open_source(p)
    assert exc.value.row == 2 and exc.value.column == "Current"
    assert "units row" in str(exc.value)


def test_units_row_recognition():
    assert units_row(["s", "", "", "mA", "V", "mAh", "mAh"], 7) == \
        ["s", None, None, "mA", "V", "mAh", "mAh"]
    assert units_row(["(s)", "[V]", "%"], 3) == ["s", "V", "%"]
    assert units_row(["0.0", "1", "1", "-2500.0"], 4) is None  # data
    assert units_row(["Rest", "CC_Chg"], 2) is None  # step names, not units
    assert units_row(["", ""], 2) is None


# --- 4. .NET TimeSpan elapsed times ----------------------------------------------------------

def test_dotnet_timespan_past_24_hours(var):
    df = open_source(var / "dotnet_timespan.csv").read()
    # 23:59:59.5; 1 d + 33.3 s; 1 d + 2 h 3 min 4 s; 2 d
    assert df["test_time_second"].tolist() == pytest.approx(
        [86399.5, 86433.3, 93784.0, 172800.0])


def test_parse_duration_forms():
    got = parse_duration(pd.Series(["02:03:04.5", "123:04:05", "1d 10:28:12.78",
                                    "1.02:03:04", "1.00:00:33.300", "10.23:59:59.9", "1.5:00",
                                    "x"]))
    want = [7384.5, 443045.0, 124092.78, 93784.0, 86433.3, 950399.9, np.nan, np.nan]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


# --- 5. errors echo a wide header briefly ----------------------------------------------------

def test_refused_wide_table_error_is_short(tmp_path):
    p = tmp_path / "wide.csv"
    p.write_text(",".join(f"{1 + i * 1e-4:.4f}" for i in range(3000)) + "\n" +
                 ",".join("1.0" for _ in range(3000)) + "\n")
    with pytest.raises(ValidationError) as exc:
        open_source(p, format_name="capacity_table_csv")
    text = str(exc.value)
    assert len(text) < 600, text
    assert "'1.0000'" in text and "(2992 more)" in text


def test_missing_column_error_echoes_a_brief_header(tmp_path):
    p = tmp_path / "wide_samples.csv"
    names = ["Test Time", "Voltage"] + [f"cell_{i:04d}" for i in range(3000)]
    p.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    with pytest.raises(ValidationError) as exc:
        open_source(p)
    assert exc.value.code == "missing_column"
    assert len(str(exc.value)) < 700 and "(2994 more)" in str(exc.value)


def test_capacity_table_with_decimal_commas(tmp_path):
    """``Cycle;Cell24`` (no capacity name, no unit) with Excel's integer first row."""
    p = tmp_path / "cell24.csv"
    p.write_text("Cycle;Cell24\n1;4947\n2;4832,61\n3;4759,95\n")
    src = open_source(p, protocol_hours_per_cycle=16.6)
    assert src.format_name == "capacity_table_csv"
    df = src.read()
    # median 4832.61 > 20 → mAh
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([4.947, 4.83261, 4.75995])
    assert _codes(src)["capacity_unit_inferred"].details["unit"] == "mAh"
    assert "decimal_comma" in _codes(src)


def test_a_comma_in_a_text_column_does_not_switch_decimal_marks(tmp_path):
    """``1,2`` in one field of a ';' file whose numbers have decimal points: still points."""
    p = tmp_path / "points.csv"
    p.write_text("Cycle;Discharge capacity (mAh);Time (h);Note\n"
                 "1;4946.5;16.5;1,2\n2;4832.25;33.0;\n3;4759.75;49.5;\n")
    src = open_source(p)
    df = src.read()
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([4.9465, 4.83225, 4.75975])
    assert df["test_time_second"].tolist() == pytest.approx([59400.0, 118800.0, 178200.0])
    assert "decimal_comma" not in _codes(src)


def test_german_and_french_headers_are_read(tmp_path):
    """Header words of German and French exports map like their English stems (units kept)."""
    de = tmp_path / "zyklen.csv"
    de.write_text("Zyklus;Entladekapazität (mAh);Ladekapazität (mAh)\n"
                  "1;4946,5;4950,0\n2;4832,25;4840,0\n3;4759,75;4761,5\n", encoding="utf-8")
    df = open_source(de, protocol_hours_per_cycle=10.0).read()
    assert df["cycle_index"].tolist() == [1, 2, 3]
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([4.9465, 4.83225, 4.75975])
    assert df["charge_capacity_ah"].tolist() == pytest.approx([4.95, 4.84, 4.7615])
    fr = tmp_path / "essai.csv"
    fr.write_text("Temps (s),Tension (V),Courant (mA),Cycle\n"
                  "0,3.50,0,1\n10,3.60,1250,1\n20,3.70,1250,1\n", encoding="utf-8")
    df = open_source(fr).read()
    assert df["test_time_second"].tolist() == [0.0, 10.0, 20.0]
    assert df["voltage_volt"].tolist() == [3.5, 3.6, 3.7]
    assert df["current_ampere"].tolist() == pytest.approx([0.0, 1.25, 1.25])


def test_a_matlab_file_is_recognised_and_refused_with_what_to_do(tmp_path):
    p = tmp_path / "B0005.mat"
    p.write_bytes(b"MATLAB 5.0 MAT-file, Platform: PCWIN, Created on: Fri Apr 17 2009"
                  + b" " * 60 + bytes(range(256)) * 4)
    with pytest.raises(InputFormatError, match="MATLAB .mat file.*export the cycling data to "
                                               "CSV") as e:
        open_source(p)
    assert e.value.code == "unsupported_format" and e.value.found == "matlab_mat"


def test_neware_cycle_export_and_energy_or_percent_columns_are_no_capacities(tmp_path):
    from data_registry.readers import detect

    p = tmp_path / "neware_cycle.csv"
    p.write_text("Cycle Index,Chg. Cap.(Ah),DChg. Cap.(Ah),Chg.-DChg. Eff(%),Chg. Energy(Wh),"
                 "DChg. Energy(Wh)\n1,1.01,1.00,99.0,3.7,3.6\n2,1.00,0.99,99.0,3.7,3.6\n"
                 "3,0.99,0.985,99.5,3.7,3.55\n")
    assert detect(p) == "generic_cycles_csv"
    df = open_source(p, protocol_hours_per_cycle=4.0).read()
    assert df["discharge_capacity_ah"].tolist() == [1.00, 0.99, 0.985]
    assert df["charge_capacity_ah"].tolist() == [1.01, 1.00, 0.99]
    assert df["discharge_energy_wh"].tolist() == [3.6, 3.6, 3.55]
    # a capacity table: the one unitless column is the capacity, not Energy (Wh) or CE (%)
    p = tmp_path / "cell.csv"
    p.write_text("cycle,cellA,Energy (Wh),CE (%)\n1,1.00,3.6,99\n2,0.99,3.6,99\n"
                 "3,0.985,3.6,99\n")
    assert detect(p) == "capacity_table_csv"
    src = open_source(p, protocol_hours_per_cycle=4.0)
    assert src.read()["discharge_capacity_ah"].tolist() == [1.00, 0.99, 0.985]


def test_a_per_cycle_statistics_export_with_current_and_voltage_is_per_cycle(tmp_path):
    from data_registry.readers import detect

    rows = ["Cycle_Index,Test_Time(s),Current(A),Voltage(V),Charge_Capacity(Ah),"
            "Discharge_Capacity(Ah)"] + [f"{n},{14400 * n},-0.5,3.0,1.0,{1 - 0.01 * n:.2f}"
                                         for n in range(1, 6)]
    p = tmp_path / "stats.csv"
    p.write_text("\n".join(rows) + "\n")
    assert detect(p) == "generic_cycles_csv"
    df = open_source(p).read()
    assert df["discharge_capacity_ah"].tolist() == [0.99, 0.98, 0.97, 0.96, 0.95]
    # the same columns with cycles repeating row after row are samples
    rows = [rows[0]] + [f"{1 + k // 3},{10 * k},-0.5,3.0,0.0,{0.001 * k:.3f}" for k in range(9)]
    p.write_text("\n".join(rows) + "\n")
    assert detect(p) == "generic_csv"


def test_unsigned_current_is_signed_by_a_step_state_column(tmp_path):
    from data_registry.readers.conventions import state_words_sense
    from ml.features import build_cycle_table

    words = pd.Series(["CC Chg", "CCCV_Chg", "Charge", "C", "LAD", "CC DChg", "Discharge",
                       "D", "ELA", "Entladen", "Rest", "Pause", "OCV", None])
    assert state_words_sense(words).tolist() == [1] * 5 + [-1] * 5 + [0] * 4
    rows, t = ["Time (s),Voltage (V),Current (A),Cycle,Step Type"], 0
    for c in (1, 2):
        for state, amp in (("CC Chg", 0.5), ("Rest", 0.0), ("CC DChg", 0.5)):
            for k in range(0, 130, 10):
                rows.append(f"{t},3.7,{amp},{c},{state}")
                if k < 120:
                    t += 10
    p = tmp_path / "unsigned.csv"
    p.write_text("\n".join(rows) + "\n")
    src = open_source(p)
    df = src.read()
    assert df["current_ampere"].min() == -0.5 and df["current_ampere"].max() == 0.5
    assert "current_signed_from_state" in _codes(src) and "unknown_columns" not in _codes(src)
    table = build_cycle_table(df.assign(cell_id="u"), voltage_curves=False)
    assert table["discharge_capacity_ah"].to_numpy() == pytest.approx([0.5 * 120 / 3600] * 2)
    # a signed current is left as written, state column or not
    p.write_text("\n".join([rows[0]] + [r.replace(",0.5,1,CC DChg", ",-0.5,1,CC DChg")
                                        for r in rows[1:]]) + "\n")
    assert "current_signed_from_state" not in _codes(open_source(p))


def test_bare_headers_say_which_units_they_were_read_in(tmp_path):
    p = tmp_path / "bare.csv"
    p.write_text("Time,Voltage,Current,Cycle\n0,3.7,500,1\n10,3.7,500,1\n20,3.7,-500,1\n")
    src = open_source(p)
    assert src.read()["current_ampere"].max() == 500.0  # read as documented: A
    warn = _codes(src)["units_assumed"]
    assert "'Current' in A (first rows up to 500)" in warn.message and warn.count == 3
    p.write_text("Time (s),Voltage (V),Current (mA),Cycle\n0,3.7,500,1\n10,3.7,500,1\n")
    assert "units_assumed" not in _codes(open_source(p))


def test_state_words_are_whole_tokens_and_a_column_without_them_is_no_state(tmp_path):
    from data_registry.readers.conventions import state_words_sense

    words = ["Disconnect", "Display", "Elapsed", "Exchg", "Ladder", "Charger off", "CCD",
             "CC_D", "CVD", "D_CC", "DSG", "Entl.", "Charging", "CHA", "CCC", "PAU", "R"]
    assert state_words_sense(pd.Series(words)).tolist() == [0] * 6 + [-1] * 6 + [1] * 3 + [0] * 2
    p = tmp_path / "typed.csv"
    p.write_text("Time (s),Voltage (V),Current (A),Cycle,Type\n" +
                 "".join(f"{k},3.7,1.0,1,NMC\n" for k in range(5)))
    codes = _codes(open_source(p))
    assert "current_signed_from_state" not in codes and "Type" in codes["unknown_columns"].message


def test_per_cycle_rule_needs_consecutive_cycles_and_says_so(tmp_path):
    from data_registry.readers import detect

    head = "Time (s),Voltage (V),Current (A),Cycle,Capacity (Ah)\n"
    p = tmp_path / "sparse.csv"  # one sample every 2 h, cycles of 1.5 h: numbers are skipped
    p.write_text(head + "".join(f"{7200 * k},3.6,1.0,{1 + (4 * k) // 3},0.5\n"
                                for k in range(8)))
    assert detect(p) == "generic_csv"
    p.write_text(head + "".join(f"{7200 * k},3.6,-1.0,{k + 1},{1 - 0.01 * k:.2f}\n"
                                for k in range(8)))
    assert detect(p) == "generic_cycles_csv"
    assert "read_as_per_cycle" in _codes(open_source(p))


def test_capacity_table_units_outside_the_unit_table_are_still_capacities(tmp_path):
    p = tmp_path / "mahr.csv"
    p.write_text("Cycle,B1 (mAhr),B2 (mAhr)\n1,1000,990\n2,990,980\n3,985,975\n")
    src = open_source(p, capacity_column="B1 (mAhr)", protocol_hours_per_cycle=2.0)
    assert src.read()["discharge_capacity_ah"].tolist() == [1.0, 0.99, 0.985]
