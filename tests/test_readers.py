"""Readers on small hand-written fixtures: generic samples / cycles / EIS, detection, chunking."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from data_registry.errors import (InputFormatError, MissingDependencyError, UnknownFormatError,
                                  ValidationError)
from data_registry.readers import FORMATS, detect, open_source


@pytest.fixture
def rd(test_data):
    return test_data / "readers"


def test_generic_samples_values(rd):
    src = open_source(rd / "generic_samples.csv")
    assert (src.format_name, src.kind) == ("generic_csv", "samples")
    df = src.read()
    assert len(df) == 8
    assert df["source_row"].tolist() == list(range(2, 10))
    assert df["test_time_second"].iloc[-1] == 5520.0
    assert df["cycle_count"].dtype == np.int64
    assert df["cycle_count"].tolist() == [1] * 7 + [2]
    # 1 A for 3540 s = 0.98333 Ah (hand-computed, matches the file's counter)
    assert df["charging_capacity_ah"].iloc[2] == pytest.approx(3540 / 3600, rel=1e-6)
    assert (df.loc[df["step_count"] == 4, "current_ampere"] < 0).all()
    assert "cell_id" not in df.columns
    assert src.warnings == []


def test_chunking_preserves_rows_and_order(rd):
    whole = open_source(rd / "generic_samples.csv").read()
    parts = list(open_source(rd / "generic_samples.csv", chunk_rows=3).chunks())
    assert len(parts) >= 2
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)


def test_generic_cycles(rd):
    src = open_source(rd / "generic_cycles.csv")
    assert (src.format_name, src.kind) == ("generic_cycles_csv", "cycles")
    df = src.read()
    assert df["cycle_index"].tolist() == [1, 2, 3]
    assert df["discharge_capacity_ah"].tolist() == [1.10, 1.09, 1.08]
    assert df["test_time_second"].iloc[-1] == 21600.0


def test_generic_cycles_without_time_refused_then_estimated(rd):
    with pytest.raises(ValidationError, match="no elapsed-time column") as e:
        open_source(rd / "generic_cycles_no_time.csv")
    assert e.value.column == "test_time_second" and e.value.code == "missing_column"
    src = open_source(rd / "generic_cycles_no_time.csv", protocol_hours_per_cycle=2.5)
    df = src.read()
    # mAh header converted once: 1100 mAh -> 1.1 Ah; time = cycle × 2.5 h
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([1.10, 1.09, 1.08])
    assert df["test_time_second"].tolist() == [9000.0, 18000.0, 27000.0]
    assert df["test_time_estimated"].tolist() == [1, 1, 1]
    assert [w.code for w in src.warnings] == ["test_time_estimated"]


def test_generic_eis(rd):
    src = open_source(rd / "generic_eis.csv")
    assert (src.format_name, src.kind) == ("generic_eis_csv", "eis")
    df = src.read()
    assert df.groupby("measurement_id").size().to_dict() == {"m1": 6, "m2": 6}
    assert df["z_imag_ohm"].iloc[5] == pytest.approx(-0.0151)
    assert df.loc[df["measurement_id"] == "m2", "cycle_count"].iloc[0] == 50
    assert df["frequency_hz"].max() == 10000.0


def test_aliases_with_units_converted_once(tmp_path):
    p = tmp_path / "aliases.csv"
    p.write_text("Time (h),Voltage (mV),Current (mA),cycle,charge_capacity_mah\n"
                 "0,3400,0,1,0\n0.5,3600,500,1,250\n1.0,3700,500,1,500\n")
    df = open_source(p).read()
    assert df["test_time_second"].tolist() == [0.0, 1800.0, 3600.0]
    assert df["voltage_volt"].tolist() == pytest.approx([3.4, 3.6, 3.7])
    assert df["current_ampere"].tolist() == pytest.approx([0.0, 0.5, 0.5])
    assert df["charging_capacity_ah"].tolist() == pytest.approx([0.0, 0.25, 0.5])


def test_gzip_is_read_transparently(rd, tmp_path):
    p = tmp_path / "samples.csv.gz"
    p.write_bytes(gzip.compress((rd / "generic_samples.csv").read_bytes()))
    assert detect(p) == "generic_csv"
    pd.testing.assert_frame_equal(open_source(p).read(),
                                  open_source(rd / "generic_samples.csv").read())


def test_formats_table_is_data():
    names = [f.name for f in FORMATS]
    assert len(names) == len(set(names))
    for f in FORMATS:
        assert f.kind in {"samples", "cycles", "eis"}
        assert f.needs == "" or f.needs.split(":")[0] in {"extra", "tool", "unsupported"}
        assert callable(f.detector)


def test_forced_wrong_format(rd):
    with pytest.raises(InputFormatError, match="not a arbin_csv file") as e:
        open_source(rd / "generic_samples.csv", format_name="arbin_csv")
    assert e.value.code == "wrong_format" and e.value.found == "generic_csv"


def test_unknown_format_name_suggests():
    with pytest.raises(UnknownFormatError, match=r"did you mean \['arbin_csv'"):
        open_source(__file__, format_name="arbin_cvs")


def test_biologic_peis_text_negates_minus_im(rd):
    src = open_source(rd / "biologic_peis.txt")
    assert (src.format_name, src.kind) == ("biologic_peis_txt", "eis")
    df = src.read()
    assert len(df) == 14
    assert df["measurement_id"].drop_duplicates().tolist() == ["biologic_peis#1",
                                                               "biologic_peis#2"]
    first = df.iloc[0]
    assert first["frequency_hz"] == 1e4 and first["source_row"] == 7
    assert first["z_real_ohm"] == pytest.approx(0.020012)
    assert first["z_imag_ohm"] == pytest.approx(-0.000052)   # file: -Im(Z) = 0.000052
    low = df[(df["measurement_id"] == "biologic_peis#2") & (df["frequency_hz"] == 0.01)]
    assert low["z_imag_ohm"].iloc[0] < 0 and low["cycle_count"].iloc[0] == 2
    assert df["voltage_volt"].iloc[-1] == pytest.approx(3.905)


def test_mpr_without_galvani_names_the_extra(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_galvani(name, *args, **kw):
        if name.startswith("galvani"):
            raise ImportError("no galvani")
        return real(name, *args, **kw)
    monkeypatch.setattr(builtins, "__import__", no_galvani)
    p = tmp_path / "x.mpr"
    p.write_bytes(b"BIO-LOGIC MODULAR FILE\x1a" + b" " * 100)
    assert detect(p) == "biologic_mpr"
    with pytest.raises(MissingDependencyError, match=r"optional extra 'biologic'.*pip install "
                       r"fadecast\[biologic\]") as e:
        open_source(p)
    assert e.value.code == "missing_dependency" and e.value.file == "x.mpr"


def test_res_without_mdbtools_names_the_tool(tmp_path, monkeypatch):
    import shutil
    monkeypatch.setattr(shutil, "which", lambda name: None)
    p = tmp_path / "x.res"
    p.write_bytes(b"\x00\x01\x00\x00Standard Jet DB\x00" + b"\x00" * 100)
    assert detect(p) == "arbin_res"
    with pytest.raises(MissingDependencyError, match=r"system tool mdbtools \(mdb-export\)") as e:
        open_source(p)
    assert e.value.file == "x.res"


def test_every_format_opener_is_importable():
    import importlib
    for f in FORMATS:
        if f.opener:
            module, _, func = f.opener.partition(":")
            assert callable(getattr(importlib.import_module(module), func)), f.name


def test_chunks_are_bounded_by_chunk_rows(tmp_path):
    n = 5000
    lines = ["test_time_second,voltage_volt,current_ampere,cycle_count"]
    lines += [f"{i},{3.0 + (i % 100) / 1000:.3f},0,{1 + i // 1000}" for i in range(n)]
    p = tmp_path / "long.csv"
    p.write_text("\n".join(lines) + "\n")
    sizes = [len(c) for c in open_source(p, chunk_rows=700).chunks()]
    assert sum(sizes) == n and max(sizes) <= 700 and len(sizes) >= n // 700
    rows = pd.concat(open_source(p, chunk_rows=700).chunks())["source_row"].to_numpy()
    assert np.array_equal(rows, np.arange(2, n + 2))


def test_blank_lines_are_skipped_but_counted(tmp_path):
    p = tmp_path / "blank.csv"
    p.write_text("test_time_second,voltage_volt,current_ampere,cycle_count\r\n"
                 "0,3.5,0,1\r\n\r\n10,3.6,0,1\r\n\n20,3.7,0,1\r\n")
    df = open_source(p).read()
    assert df["source_row"].tolist() == [2, 4, 6]


def test_bdf_human_headers_any_unit(tmp_path):
    p = tmp_path / "bdf.csv"
    p.write_text("Test Time / min,Voltage / mV,Current / mA,Cycle Count / 1,"
                 "Charge Capacity / mAh,Discharge Capacity / mAh\n"
                 "0,3400,0,1,0,0\n1,3500,600,1,10,0\n2,3600,600,1,20,0\n")
    src = open_source(p)
    assert src.format_name == "bdf_csv"
    df = src.read()
    assert df["test_time_second"].tolist() == [0.0, 60.0, 120.0]
    assert df["voltage_volt"].tolist() == pytest.approx([3.4, 3.5, 3.6])
    assert df["current_ampere"].tolist() == pytest.approx([0.0, 0.6, 0.6])
    assert df["charging_capacity_ah"].tolist() == pytest.approx([0.0, 0.01, 0.02])


def test_arbin_csv_with_text_datetime(tmp_path):
    p = tmp_path / "mits.csv"
    p.write_text("Data_Point,Date_Time,Test_Time(s),Step_Index,Cycle_Index,Current(A),"
                 "Voltage(V),Charge_Capacity(Ah),Discharge_Capacity(Ah)\n"
                 "1,05/09/2017 10:20:30,0.5,1,1,0,3.30,0,0\n"
                 "2,05/09/2017 10:20:31,1.5,1,1,0,3.31,0,0\n")
    src = open_source(p)
    assert src.format_name == "arbin_csv"
    df = src.read()
    assert "unix_time_second" not in df.columns
    assert df["test_time_second"].tolist() == [0.5, 1.5]


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_line_numbers_exact_with_blank_lines_and_bare_cr(tmp_path, eol):
    """Fast path (one record per line) and exact path give the same 1-based lines: a blank
    line at line 4 and a bare CR inside line 7 (pyarrow would end a record there)."""
    head = "test_time_second,voltage_volt,current_ampere,cycle_count"
    lines = [head] + [f"{10 * i},{3.5 + i / 100:.2f},0,1" for i in range(8)]
    p = tmp_path / "clean.csv"
    p.write_text(eol.join(lines) + eol, newline="")
    df = open_source(p, chunk_rows=3).read()
    assert df["source_row"].tolist() == list(range(2, 10))
    blank = lines[:3] + [""] + lines[3:]
    p2 = tmp_path / "blank.csv"
    p2.write_text(eol.join(blank) + eol, newline="")
    df2 = open_source(p2, chunk_rows=100).read()
    assert df2["source_row"].tolist() == [2, 3, 5, 6, 7, 8, 9, 10]
    assert df2["test_time_second"].tolist() == df["test_time_second"].tolist()
    if eol == "\r\n":
        bare = lines[:6] + [lines[6].replace(",0,1", ",0\r,1")] + lines[7:]
        p3 = tmp_path / "bare_cr.csv"
        p3.write_text(eol.join(bare) + eol, newline="")
        with pytest.raises(InputFormatError) as e:
            open_source(p3).read()
        assert e.value.row == 7


def test_bare_cr_splitting_a_line_into_two_records_is_refused_at_its_line(tmp_path):
    p = tmp_path / "mac.csv"
    p.write_bytes(b"test_time_second,voltage_volt,current_ampere,cycle_count\n"
                  b"0,3.5,0,1\n10,3.6,0,1\r20,3.7,0,1\n30,3.8,0,1\n")
    with pytest.raises(InputFormatError, match=r"mac.csv:3: carriage return inside a line") as e:
        open_source(p).read()
    assert e.value.code == "bare_carriage_return"


def test_abandoned_stream_stops_its_parsing_thread(tmp_path):
    import threading

    lines = ["test_time_second,voltage_volt,current_ampere,cycle_count"]
    lines += [f"{i},{3.0 + (i % 100) / 1000:.3f},0,1" for i in range(3000)]
    p = tmp_path / "many.csv"
    p.write_text("\n".join(lines) + "\n")
    chunks = open_source(p, chunk_rows=10).chunks()
    first = next(chunks)
    assert first["source_row"].tolist() == list(range(2, 12))
    chunks.close()
    assert not [t for t in threading.enumerate() if t.name == "fadecast-csv"]


def test_parse_error_arrives_after_the_chunks_before_it(tmp_path):
    """The parsing thread's error is raised in order: rows before line 502 are delivered."""
    lines = ["test_time_second,voltage_volt,current_ampere,cycle_count"]
    lines += [f"{i},{3.0 + (i % 100) / 1000:.3f},0,1" for i in range(1000)]
    lines[501] = "500,n/a,0,1"  # file line 502
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(lines) + "\n")
    got = []
    with pytest.raises(InputFormatError, match=r"bad.csv:502 column 'voltage_volt': non-numeric value") as e:
        for chunk in open_source(p, chunk_rows=100).chunks():
            got.append(chunk)
    assert e.value.column == "voltage_volt" and e.value.found == "'n/a'"
    rows = pd.concat(got)["source_row"].to_numpy()
    assert rows.max() < 502 and len(rows) >= 300


@pytest.mark.parametrize("eol, blank", [("\n", False), ("\r\n", False), ("\n", True),
                                        ("\r\n", True)])
def test_fast_and_exact_line_paths_agree(tmp_path, monkeypatch, eol, blank):
    """Forcing the exact (numpy newline index) path gives the same frames as the fast one."""
    import data_registry.readers.csv_stream as cs

    rng = np.random.default_rng(3)
    lines = ["test_time_second,voltage_volt,current_ampere,cycle_count"]
    lines += [f"{i},{3 + rng.random():.4f},{rng.normal():.3f},{1 + i // 400}"
              for i in range(6000)]
    if blank:
        lines.insert(3700, "")
    p = tmp_path / "f.csv"
    p.write_text(eol.join(lines) + eol, newline="")
    taken = []
    original = cs._parse_fast

    def counting(*a, **k):
        out = original(*a, **k)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(cs, "_parse_fast", counting)
    fast = open_source(p, chunk_rows=333, max_line_bytes=200).read()
    # ~124 KB in 64 KiB reads: two pieces; only the one with the blank line goes exact
    assert len(taken) == 2 and taken.count(False) == int(blank)
    monkeypatch.setattr(cs, "_parse_fast", lambda *a, **k: None)
    exact = open_source(p, chunk_rows=333, max_line_bytes=200).read()
    pd.testing.assert_frame_equal(fast, exact)
    assert fast["source_row"].iloc[-1] == 6001 + int(blank)
