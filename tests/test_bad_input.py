"""The bad-input catalogue: every kind of broken file gets a precise error or a named warning.

Errors are pinned by class, message and location (file, row = 1-based file line, column, code).
"""
from __future__ import annotations

import gzip

import pandas as pd
import pytest

from data_registry.errors import (InputFormatError, UnknownFormatError, ValidationError)
from data_registry.readers import open_source

HEADER = "test_time_second,voltage_volt,current_ampere,cycle_count\n"
GOOD = HEADER + "0,3.5,0,1\n10,3.6,1,1\n20,3.7,1,1\n30,3.8,1,1\n"


def _rows(*lines: str) -> str:
    return HEADER + "".join(line + "\n" for line in lines)


# id, file bytes, error class, message regex, attributes (file defaults to 'bad.csv')
ERRORS = [
    ("empty_file", b"", InputFormatError, "the file is empty", {"code": "empty_file"}),
    ("blank_lines_only", b"\n\n  \n", InputFormatError, "the file is empty",
     {"code": "empty_file"}),
    # a UTF-8 byte-order mark and nothing else (found by the API fuzz test: an IndexError)
    ("bom_only", b"\xef\xbb\xbf", InputFormatError, "the file is empty",
     {"code": "empty_file"}),
    ("header_only", HEADER.encode(), InputFormatError, r"no data rows \(header only\?\)",
     {"code": "no_data"}),
    ("unknown_format", b"hello,world\n1,2\n", UnknownFormatError,
     r"unknown file format.*expected one of \[.*'generic_csv'.*'arbin_csv'",
     {"code": "unknown_format"}),
    ("binary_garbage", bytes(range(256)) * 40, UnknownFormatError,
     "no reader recognises it.*found binary data", {"code": "unknown_format"}),
    ("gzip_of_garbage", gzip.compress(bytes(range(256)) * 40), UnknownFormatError,
     "found binary data", {"code": "unknown_format"}),
    ("truncated_last_line", (GOOD + "40,3.9").encode(), InputFormatError,
     r"bad.csv:6: truncated last line.*expected 4 fields, found 2 fields",
     {"row": 6, "code": "truncated_line"}),
    ("wrong_delimiter", (HEADER + "0;3.5;0;1\n10;3.6;1;1\n").encode(), InputFormatError,
     r"bad.csv:2: wrong number of fields \(delimiter ','\).*expected 4 fields, found 1",
     {"row": 2, "code": "field_count"}),
    ("extra_field", _rows("0,3.5,0,1", "10,3.6,1,1,7").encode(), InputFormatError,
     r"bad.csv:3: wrong number of fields.*found 5 fields", {"row": 3, "code": "field_count"}),
    ("missing_required_column", b"test_time_second,voltage_volt,cycle_count\n0,3.5,1\n",
     ValidationError, r"bad.csv:1 column 'current_ampere': missing required column",
     {"row": 1, "column": "current_ampere", "code": "missing_column"}),
    ("non_numeric_value", _rows("0,3.5,0,1", "10,n/a,1,1").encode(), InputFormatError,
     r"bad.csv:3 column 'voltage_volt': non-numeric value \(expected a number, found 'n/a'\)",
     {"row": 3, "column": "voltage_volt", "code": "not_numeric"}),
    ("empty_required_value", _rows("0,3.5,0,1", "10,,1,1").encode(), ValidationError,
     r"bad.csv:3 column 'voltage_volt': missing or non-finite value.*found an empty/NaN",
     {"row": 3, "column": "voltage_volt", "code": "not_finite"}),
    ("nan_value", _rows("0,3.5,0,1", "10,3.6,nan,1").encode(), ValidationError,
     r"bad.csv:3 column 'current_ampere': missing or non-finite",
     {"row": 3, "column": "current_ampere", "code": "not_finite"}),
    ("inf_value", _rows("0,3.5,0,1", "10,3.6,1,1", "20,inf,1,1").encode(), ValidationError,
     r"bad.csv:4 column 'voltage_volt': missing or non-finite value.*found 'inf'",
     {"row": 4, "column": "voltage_volt", "code": "not_finite"}),
    ("sustained_time_backwards", _rows("0,3.5,0,1", "100,3.6,0,1", "200,3.6,0,1",
                                       "50,3.6,0,1", "60,3.6,0,1", "70,3.6,0,1").encode(),
     ValidationError, r"bad.csv:5 column 'test_time_second': time goes backwards",
     {"row": 5, "column": "test_time_second", "code": "time_backwards"}),
    ("negative_time", _rows("-5,3.5,0,1", "10,3.6,1,1").encode(), ValidationError,
     r"bad.csv:2 column 'test_time_second': value outside .*expected s in \[0, inf\]",
     {"row": 2, "code": "negative_value"}),
    ("negative_capacity", (HEADER.strip() + ",charging_capacity_ah\n0,3.5,0,1,0\n"
                           "10,3.6,1,1,-0.2\n").encode(), ValidationError,
     r"bad.csv:3 column 'charging_capacity_ah': value outside the physically possible "
     r"range \(expected Ah in \[0, inf\], found -0.2\)",
     {"row": 3, "column": "charging_capacity_ah", "code": "negative_value"}),
    ("voltage_impossible", _rows("0,3.5,0,1", "10,36.5,1,1").encode(), ValidationError,
     r"bad.csv:3 column 'voltage_volt': value outside .*expected V in \[-0.5, 10\], "
     r"found 36.5", {"row": 3, "column": "voltage_volt", "code": "out_of_range"}),
    ("fractional_cycle", _rows("0,3.5,0,1", "10,3.6,1,1.5").encode(), ValidationError,
     r"bad.csv:3 column 'cycle_count': expected a whole number",
     {"row": 3, "column": "cycle_count", "code": "not_integer"}),
    ("unknown_unit", b"time (fortnights),voltage_volt,current_ampere,cycle_count\n0,3,0,1\n",
     UnknownFormatError, "no reader recognises it", {"code": "unknown_format"}),
    ("cycles_index_not_increasing", b"cycle_index,test_time_second,discharge_capacity_ah\n"
     b"1,100,1.1\n2,200,1.09\n2,300,1.08\n", ValidationError,
     r"bad.csv:4 column 'cycle_index': cycle_index must increase",
     {"row": 4, "column": "cycle_index", "code": "cycle_index_order"}),
    ("eis_negative_frequency", b"measurement_id,frequency_hz,z_real_ohm,z_imag_ohm\n"
     b"a,100,0.1,-0.01\na,-10,0.2,-0.02\n", ValidationError,
     r"bad.csv:3 column 'frequency_hz': value outside",
     {"row": 3, "column": "frequency_hz", "code": "negative_value"}),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_bad_input_errors(tmp_path, case):
    _, data, cls, pattern, attrs = case
    p = tmp_path / "bad.csv"
    p.write_bytes(data)
    with pytest.raises(cls, match=pattern) as e:
        open_source(p).read()
    assert e.value.file == "bad.csv"
    for k, v in attrs.items():
        assert getattr(e.value, k) == v, k


def test_unknown_unit_when_forced(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("test_time_second,voltage_volt,Current (furlongs),cycle_count\n0,3,0,1\n")
    with pytest.raises(ValidationError, match=r"unknown unit in header 'Current \(furlongs\)'"
                       r".*expected a current unit, found 'furlongs'") as e:
        open_source(p, format_name="generic_csv")
    assert (e.value.code, e.value.column, e.value.row) == ("unknown_unit",
                                                           "Current (furlongs)", 1)


def test_multiline_quoted_field_is_refused(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_bytes((HEADER.strip() + ",step_count\n" + '0,3.5,0,1,"1\n"\n10,3.6,1,1,2\n').encode())
    with pytest.raises(InputFormatError) as e:
        open_source(p).read()
    assert e.value.code in {"multiline_field", "field_count"} and e.value.row == 2


def test_file_not_found(tmp_path):
    with pytest.raises(InputFormatError, match="no such file") as e:
        open_source(tmp_path / "nope.csv")
    assert e.value.code == "file_not_found"


def test_a_folder_given_to_ingest_is_told_how_to_pass_its_files(tmp_path, capsys):
    from serving.cli import main

    folder = tmp_path / "exports"
    folder.mkdir()
    assert main(["--home", str(tmp_path / "home"), "ingest", str(folder), "--cell-id",
                 "c1"]) != 0
    err = capsys.readouterr().err
    assert "is a folder, not a file" in err and f"{folder}/*.csv --cell-id ID" in err
    assert "fadecast follow" in err


def test_non_utf8_read_as_latin1_with_warning(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("test_time_second,voltage_volt,current_ampere,cycle_count,Temperature (°C)\n"
                  "0,3.5,0,1,25.5\n10,3.6,1,1,26.0\n".encode("latin-1"))
    src = open_source(p)
    df = src.read()
    assert df["ambient_temperature_celsius"].tolist() == [25.5, 26.0]
    assert [w.code for w in src.warnings] == ["latin1_encoding"]


def test_bom_is_accepted(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    src = open_source(p)
    df = src.read()
    assert len(df) == 4 and df["source_row"].tolist() == [2, 3, 4, 5]
    assert src.warnings == []


def test_decimal_comma_accepted_with_warning(tmp_path):
    p = tmp_path / "comma.csv"
    p.write_text("test_time_second;voltage_volt;current_ampere;cycle_count\n"
                 "0;3,512;0;1\n10,5;3,6;1,25;1\n")
    src = open_source(p)
    df = src.read()
    assert df["voltage_volt"].tolist() == [3.512, 3.6]
    assert df["test_time_second"].tolist() == [0.0, 10.5]
    assert df["current_ampere"].tolist() == [0.0, 1.25]
    assert [(w.code, w.row) for w in src.warnings] == [("decimal_comma", 2)]


def test_isolated_backward_row_dropped_with_warning(tmp_path):
    p = tmp_path / "back.csv"
    p.write_text(_rows("0,3.5,0,1", "100,3.6,0,1", "50,3.6,0,1", "200,3.6,0,1",
                       "300,3.6,0,1"))
    src = open_source(p)
    df = src.read()
    assert df["test_time_second"].tolist() == [0, 100, 200, 300]
    (w,) = src.warnings
    assert (w.code, w.row, w.column, w.file) == ("time_backwards_row", 4, "test_time_second",
                                                 "back.csv")
    assert w.line().startswith("warning: time_backwards_row: back.csv:4: ")


def test_duplicated_rows_dropped_with_warning(tmp_path):
    p = tmp_path / "dup.csv"
    p.write_text(_rows("0,3.5,0,1", "10,3.6,1,1", "10,3.6,1,1", "20,3.7,1,1"))
    src = open_source(p)
    assert len(src.read()) == 3
    assert [(w.code, w.row, w.count) for w in src.warnings] == [("duplicate_rows", 4, 1)]


def test_cycle_counter_reset_renumbered_with_warning(tmp_path):
    p = tmp_path / "reset.csv"
    p.write_text(_rows("0,3.5,0,1", "10,3.6,1,2", "20,3.7,1,3", "30,3.7,1,1", "40,3.7,1,2"))
    src = open_source(p)
    assert src.read()["cycle_count"].tolist() == [1, 2, 3, 4, 5]
    assert [(w.code, w.row) for w in src.warnings] == [("cycle_count_reset", 5)]


@pytest.mark.parametrize("extra, ok", [(0, True), (1, False)])
def test_line_length_limit(tmp_path, extra, ok):
    limit = 64
    line = "10,3.6,1,1"
    padded = line.replace("3.6", "3." + "6" * (limit - len(line) + extra) + "0")
    assert len(padded) == limit + extra
    p = tmp_path / "long.csv"
    p.write_text(_rows("0,3.5,0,1", padded))
    if ok:
        assert len(open_source(p, max_line_bytes=limit).read()) == 2
    else:
        with pytest.raises(InputFormatError, match=r"long.csv:3: line too long \(expected at "
                           rf"most {limit} bytes per line, found {limit + 1} bytes\)") as e:
            open_source(p, max_line_bytes=limit).read()
        assert (e.value.row, e.value.code) == (3, "line_too_long")


def test_line_without_end_longer_than_limit_refused_early(tmp_path):
    p = tmp_path / "huge.csv"
    p.write_bytes(HEADER.encode() + b"1" * 5000)
    with pytest.raises(InputFormatError, match="line too long") as e:
        open_source(p, max_line_bytes=1000).read()
    assert e.value.row == 2


def test_gzip_file_read_transparently(tmp_path):
    p = tmp_path / "cell.csv.gz"
    p.write_bytes(gzip.compress(GOOD.encode()))
    assert open_source(p).read()["voltage_volt"].tolist() == [3.5, 3.6, 3.7, 3.8]


def test_wrong_file_type_for_forced_format(tmp_path):
    p = tmp_path / "cell.csv"
    p.write_text(GOOD)
    with pytest.raises(InputFormatError, match=r"cell.csv: file is not a maccor_eis file") as e:
        open_source(p, format_name="maccor_eis")
    assert e.value.code == "wrong_format" and e.value.found == "generic_csv"


def test_recognised_but_unsupported(tmp_path):
    p = tmp_path / "x_Metadata.csv"
    p.write_text(",test_id,device_id,schedule_file_name\n0,1,2,a.sdu\n")
    with pytest.raises(InputFormatError, match=r"x_Metadata.csv: recognised but not supported: "
                       r"Arbin _Metadata.csv sidecar") as e:
        open_source(p)
    assert e.value.code == "unsupported_format"


def test_unsupported_excel_layout(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    wb.active.title = "Notes"
    wb.active.append(["just", "some", "notes"])
    p = tmp_path / "book.xlsx"
    wb.save(p)
    with pytest.raises(InputFormatError, match=r"book.xlsx: unsupported Excel sheet layout") as e:
        open_source(p, format_name="landt_xlsx")
    assert e.value.code == "unsupported_layout"


def _cycling_csv(tmp_path, *, time_factor=1.0, capacity_factor=1.0, sign=1.0):
    """Two CC cycles (1 A, 10 s steps) whose capacity counters are exactly ∫I dt."""
    rows = ["test_time_second,voltage_volt,current_ampere,cycle_count,step_count,"
            "charging_capacity_ah,discharging_capacity_ah"]
    t = 0.0
    for cyc in (1, 2):
        for step, s in ((1, 1.0), (2, -1.0)):
            for k in range(60):
                q = k * 10.0 / 3600.0 * capacity_factor
                rows.append(f"{t * time_factor:g},{3.5 + 0.01 * s * k / 6:.4f},{sign * s:g},"
                            f"{cyc},{step},{q if s > 0 else 0.0:.9g},{q if s < 0 else 0.0:.9g}")
                t += 10.0
    p = tmp_path / "cell.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


@pytest.mark.parametrize("kw, code, column", [
    ({"time_factor": 1000.0}, "time_ms_as_seconds", "test_time_second"),
    ({"capacity_factor": 1000.0}, "capacity_mah_as_ah", "charging_capacity_ah"),
    ({"sign": -1.0}, "current_sign_flipped", "current_ampere"),
])
def test_unit_and_sign_slips_are_corrected_with_a_warning(tmp_path, kw, code, column):
    src = open_source(_cycling_csv(tmp_path, **kw))
    df = src.read()
    (w,) = src.warnings
    assert (w.code, w.column, w.file) == (code, column, "cell.csv")
    assert df["test_time_second"].iloc[-1] == pytest.approx(2390.0)
    assert df["charging_capacity_ah"].max() == pytest.approx(590 / 3600)
    assert (df.loc[df["step_count"] == 1, "current_ampere"] > 0).all()


def test_ambiguous_format_lists_candidates(tmp_path):
    p = tmp_path / "both.csv"
    p.write_text("Data_Point,Test_Time,Step_Index,Cycle_Index,Current,Voltage,DataPoint,"
                 "Cycle Index,Step Index,Step Type,Voltage(V)\n1,0,1,1,0,3.5,1,1,1,Rest,3.5\n")
    with pytest.raises(UnknownFormatError, match=r"ambiguous file format.*candidates "
                       r"\['arbin_csv', 'neware_csv'\]") as e:
        open_source(p)
    assert e.value.code == "ambiguous_format"
    assert open_source(p, format_name="arbin_csv").format_name == "arbin_csv"


def test_gzipped_binary_format_is_refused_clearly(tmp_path):
    p = tmp_path / "x.nda.gz"
    p.write_bytes(gzip.compress(b"NEWARE" + b"\x00" * 200))
    with pytest.raises(InputFormatError, match=r"x.nda.gz: a gzip'd neware_nda file cannot be "
                       r"read in place") as e:
        open_source(p)
    assert e.value.code == "gzip_unsupported"


def test_eis_without_measurement_id_is_split_where_the_sweep_restarts(tmp_path):
    """No spectrum id: a new spectrum starts where the frequency sweep turns back (issue 11)."""
    p = tmp_path / "eis.csv"
    p.write_text("frequency_hz,z_real_ohm,z_imag_ohm\n100,0.1,-0.01\n10,0.2,-0.02\n"
                 "100,0.1,-0.01\n10,0.25,-0.03\n1,0.3,-0.04\n")
    src = open_source(p)
    df = src.read()
    assert df["measurement_id"].tolist() == ["eis#1", "eis#1", "eis#2", "eis#2", "eis#2"]
    assert [(w.code, w.row, w.column) for w in src.warnings] == [
        ("eis_spectra_split", 1, "measurement_id")]


def test_utf16_text_is_read_from_its_utf8_transcription(tmp_path):
    """Excel's "Unicode text" (UTF-16 with a BOM, either byte order, gzip'd too): read like the
    UTF-8 file, warned, its transcription removed with the source; errors name the file."""
    import gc

    plain = tmp_path / "u8.csv"
    plain.write_text(GOOD)
    want = open_source(plain).read()
    for name, data in (("u16.csv", GOOD.encode("utf-16")),
                       ("u16be.csv", b"\xfe\xff" + GOOD.encode("utf-16-be")),
                       ("u16.csv.gz", gzip.compress(GOOD.encode("utf-16")))):
        p = tmp_path / name
        p.write_bytes(data)
        src = open_source(p)
        folder = src.keep_alive.path.parent
        assert src.keep_alive.name == name
        assert "utf16_encoding" in {w.code for w in src.warnings}
        pd.testing.assert_frame_equal(src.read(), want)
        del src
        gc.collect()
        assert not folder.exists()  # the transcription went with its source
    bad = tmp_path / "bad16.csv"
    bad.write_bytes((GOOD + "20,oops,1,1\n").encode("utf-16"))
    with pytest.raises(InputFormatError, match=r"bad16.csv:\d+"):
        open_source(bad).read()


def test_an_ole2_file_that_is_no_workbook_is_recognised_but_refused(tmp_path):
    """An OLE2 header without a readable workbook (a damaged .xls, an old Word file); a real
    .xls is read (tests/test_readers_xls.py)."""
    p = tmp_path / "old.xls"
    p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500)
    with pytest.raises(InputFormatError, match=r"old.xls: recognised but not supported: legacy "
                       r"Office \(OLE2\) file that does not open as an Excel workbook") as e:
        open_source(p)
    assert e.value.code == "unsupported_format"


# --- tolerances (issue 11): each one names its exact warning code, or the error it must give ---
# id, file text, open_source options, expected warning codes, check of the canonical rows
TOLERANCES = [
    ("glitch_row_negative_time",
     _rows("0,3.5,0,1", "100,3.6,0,1", "-84.8,3.6,0,1", "200,3.6,0,1", "300,3.6,0,1"), {},
     ["time_backwards_row"], lambda df: df["test_time_second"].tolist() == [0, 100, 200, 300]),
    ("counter_noise_clamped",
     "test_time_second,voltage_volt,current_ampere,cycle_count,discharging_energy_wh\n"
     "0,3.6,-1,1,0\n10,3.6,-1,1,0.01\n20,3.6,-1,2,-9.7e-06\n30,3.6,-1,2,0.01\n", {},
     ["counter_noise_clamped"],
     lambda df: df["discharging_energy_wh"].tolist() == [0.0, 0.01, 0.0, 0.01]),
    ("minute_clock",
     "time_min,voltage_volt,current_ampere,cycle_count\n0,3.5,0,1\n1.5,3.6,1,1\n", {},
     [], lambda df: df["test_time_second"].tolist() == [0.0, 90.0]),
    ("day_hour_clock",
     "time,voltage_volt,current_ampere,cycle_count\n0d 00:00:00,3.5,0,1\n1d 02:03:04,3.6,1,1\n",
     {}, [], lambda df: df["test_time_second"].tolist() == [0.0, 93784.0]),
    ("skip_row_policy",
     _rows("0,3.5,0,1", "10,ERR,0,1", "20,3.6,0,1", "30,99,0,1"), {"on_error": "skip-row"},
     ["row_skipped"], lambda df: df["source_row"].tolist() == [2, 4]),
    ("flipped_eis_sign",
     "measurement_id,frequency_hz,z_real_ohm,z_imag_ohm\n"
     + "".join(f"a,{f},{0.05 + 0.01 * k},{0.002 * (k + 1)}\n"
               for k, f in enumerate((1000, 100, 10, 1, 0.1, 0.01))), {},
     ["eis_imaginary_sign_flipped"], lambda df: (df["z_imag_ohm"] < 0).all()),
    ("clockless_per_cycle_table_with_hours",
     "Cycle,Capacity (mAh)\n1,150.2\n2,150.0\n3,149.7\n", {"protocol_hours_per_cycle": 2.0},
     ["test_time_estimated"],
     lambda df: df["test_time_second"].tolist() == [7200.0, 14400.0, 21600.0]
     and df["discharge_capacity_ah"].tolist() == [0.1502, 0.15, 0.1497]
     and (df["test_time_estimated"] == 1).all()),
]


@pytest.mark.parametrize("case", TOLERANCES, ids=[c[0] for c in TOLERANCES])
def test_tolerances_warn_with_their_code(tmp_path, case):
    _, text, options, codes, check = case
    p = tmp_path / "tol.csv"
    p.write_text(text)
    src = open_source(p, **options)
    df = src.read()
    assert [w.code for w in src.warnings if w.code != "unknown_columns"] == codes
    assert all(w.file == "tol.csv" and w.row is not None for w in src.warnings)
    assert check(df), df.to_dict("list")


def test_glitch_warning_names_its_line(tmp_path):
    p = tmp_path / "tol.csv"
    p.write_text(_rows("0,3.5,0,1", "100,3.6,0,1", "-84.8,3.6,0,1", "200,3.6,0,1"))
    src = open_source(p)
    src.read()
    (w,) = src.warnings
    assert "at line 4" in w.message and w.details["lines"] == [4]


def test_counter_noise_beyond_tolerance_is_an_error(tmp_path):
    """−0.005 Wh against a 0.01 Wh scale is 50 %, not noise: refused, naming line and column."""
    p = tmp_path / "bad.csv"
    p.write_text("test_time_second,voltage_volt,current_ampere,cycle_count,discharging_energy_wh"
                 "\n0,3.6,-1,1,0\n10,3.6,-1,1,0.01\n20,3.6,-1,2,-0.005\n")
    with pytest.raises(ValidationError) as e:
        open_source(p).read()
    assert (e.value.code, e.value.row, e.value.column) == ("negative_value", 4,
                                                           "discharging_energy_wh")


def test_clockless_per_cycle_table_names_the_cli_flags(tmp_path):
    p = tmp_path / "caps.csv"
    p.write_text(",Cycle,Cell24\n0,1,1.10\n1,2,1.09\n")
    with pytest.raises(ValidationError) as e:
        open_source(p).read()
    assert e.value.code == "missing_column" and e.value.column == "test_time_second"
    assert "--hours-per-cycle H or --c-rate C" in str(e.value)
    assert "protocol_hours_per_cycle" not in str(e.value)


def test_skip_row_lists_each_line_and_reason(tmp_path):
    p = tmp_path / "tol.csv"
    p.write_text(_rows("0,3.5,0,1", "10,ERR,0,1", "20,3.6,0,1", "30,99,0,1", "40,3.6,0,1.5"))
    src = open_source(p, on_error="skip-row")
    df = src.read()
    assert df["source_row"].tolist() == [2, 4]
    (w,) = src.warnings
    assert w.count == 3
    assert [(r["line"], r["column"], r["code"]) for r in w.details["rows"]] == [
        (3, "voltage_volt", "not_numeric"), (5, "voltage_volt", "out_of_range"),
        (6, "cycle_count", "not_integer")]
    with pytest.raises(InputFormatError) as e:  # the default policy still refuses
        open_source(p).read()
    assert (e.value.code, e.value.row) == ("not_numeric", 3)
