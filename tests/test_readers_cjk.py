"""Exports written by a Chinese, Japanese or Korean cycler UI (Neware BTS, LAND, Hokuto Denko,
WonATech …): local-language headers, full-width brackets, and the Windows code page of the lab
PC (GB18030, Shift-JIS, Big5, UHC) are read like their English twins: the same samples, the
same per-cycle capacities."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_registry.readers import open_source
from data_registry.readers.sniff import legacy_encoding
from data_registry.units import split_header
from ml.features import build_cycle_table

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "examples" / "pto_c10_raw.csv"


def _hms(seconds: float) -> str:
    """Neware's clock text: hours (beyond 24) : minutes : seconds with milliseconds."""
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return f"{h}:{m:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


@pytest.fixture(scope="module")
def english() -> pd.DataFrame:
    return open_source(RAW).read()


def _neware_zh(english: pd.DataFrame, brackets: tuple[str, str] = ("(", ")")) -> str:
    """The bundled C/10 export as Neware BTS writes it with its Chinese UI: record number,
    cycle, step, step type, step clock, whole-test clock (h:mm:ss.fff), mA, V, mAh."""
    o, c = brackets
    kind = np.where(english["current_ampere"] > 0, "恒流充电",
                    np.where(english["current_ampere"] < 0, "恒流放电", "搁置"))
    lines = [f"数据序号,循环号,工步号,工步类型,时间,总时间,电流{o}mA{c},电压{o}V{c},"
             f"充电容量{o}mAh{c},放电容量{o}mAh{c}"]
    for i, row in enumerate(english.itertuples(index=False)):
        lines.append(
            f"{i + 1},{row.cycle_count},{row.step_count},{kind[i]},0:00:00.000,"
            f"{_hms(row.test_time_second)},{row.current_ampere * 1e3!r},{row.voltage_volt!r},"
            f"{row.charging_capacity_ah * 1e3!r},{row.discharging_capacity_ah * 1e3!r}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("encoding,brackets", [("utf-8", ("(", ")")),
                                               ("gb18030", ("(", ")")),
                                               ("utf-8", ("（", "）"))])
def test_a_chinese_neware_export_reads_like_the_english_file(english, tmp_path, encoding,
                                                              brackets):
    path = tmp_path / "neware_zh.csv"
    path.write_bytes(_neware_zh(english, brackets).encode(encoding))
    src = open_source(path)
    got = src.read()
    codes = [w.code for w in src.warnings]
    assert src.format_name == "generic_csv"
    assert ("legacy_encoding" in codes) == (encoding != "utf-8")
    assert "step_time_ignored" in codes  # 时间 is the step clock beside 总时间
    assert len(got) == len(english) == 4960
    # the clock text carries milliseconds: equal to the millisecond
    np.testing.assert_allclose(got["test_time_second"], english["test_time_second"], atol=5e-4)
    np.testing.assert_allclose(got["current_ampere"], english["current_ampere"], rtol=1e-12)
    np.testing.assert_allclose(got["voltage_volt"], english["voltage_volt"], rtol=0)
    assert got["cycle_count"].tolist() == english["cycle_count"].tolist()
    np.testing.assert_allclose(got["discharging_capacity_ah"],
                               english["discharging_capacity_ah"], rtol=1e-12)


def test_the_chinese_export_gives_the_english_per_cycle_capacities(english, tmp_path):
    path = tmp_path / "neware_zh_gbk.csv"
    path.write_bytes(_neware_zh(english).encode("gb18030"))
    zh = build_cycle_table(open_source(path).read().assign(cell_id="c"))
    en = build_cycle_table(english.assign(cell_id="c"))
    assert len(zh) == len(en) == 40
    np.testing.assert_allclose(zh["discharge_capacity_ah"], en["discharge_capacity_ah"],
                               rtol=1e-9)
    np.testing.assert_allclose(zh["test_time_second"], en["test_time_second"], atol=5e-4)


def test_a_shift_jis_export_with_a_step_and_a_total_clock(tmp_path):
    """Hokuto-Denko-style Japanese headers: 経過時間 (the step's clock) beside 総経過時間 (the
    test's) is ignored; 電流 in mA, 電圧 in V."""
    lines = ["サイクル,ステップ,経過時間(s),総経過時間(s),電流(mA),電圧(V),温度(℃)",
             "1,1,0,0,0,3.00,25.0", "1,2,10,10,5,3.50,25.1", "1,2,20,20,5,3.60,25.2",
             "1,3,10,30,-5,3.40,25.3", "2,1,5,35,5,3.55,25.4"]
    path = tmp_path / "hokuto.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp932"))
    src = open_source(path)
    got = src.read()
    assert any(w.code == "legacy_encoding" and "cp932" in w.message for w in src.warnings)
    assert got["test_time_second"].tolist() == [0.0, 10.0, 20.0, 30.0, 35.0]
    assert got["current_ampere"].tolist() == [0.0, 0.005, 0.005, -0.005, 0.005]
    assert got["voltage_volt"].tolist() == [3.0, 3.5, 3.6, 3.4, 3.55]
    assert got["cycle_count"].tolist() == [1, 1, 1, 1, 2]
    assert got["ambient_temperature_celsius"].tolist() == [25.0, 25.1, 25.2, 25.3, 25.4]  # ℃


def test_a_korean_per_cycle_table_in_its_code_page(tmp_path):
    lines = ["사이클,충전용량(mAh),방전용량(mAh),온도(°C)", "1,1510.0,1500.5,25", "2,1505.0,1498.25,25",
             "3,1500.0,1496.0,25"]
    path = tmp_path / "wonatech.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("cp949"))
    src = open_source(path, protocol_hours_per_cycle=2.0)
    got = src.read()
    assert src.format_name == "generic_cycles_csv"
    np.testing.assert_allclose(got["discharge_capacity_ah"], [1.5005, 1.49825, 1.496],
                               rtol=1e-12)
    np.testing.assert_allclose(got["charge_capacity_ah"], [1.51, 1.505, 1.5], rtol=1e-12)
    assert got["temperature_celsius"].tolist() == [25.0, 25.0, 25.0]


def test_a_traditional_chinese_land_export_with_slash_units(tmp_path):
    """LAND writes ``name/unit`` (``電流/mA``); its capacity per mass ``比容量/mAh/g`` splits as
    one unit, not as ``比容量/mAh`` in grams."""
    lines = ["記錄序號,循環,測試時間/s,電流/mA,電壓/V,容量/mAh,比容量/mAh/g",
             "1,1,0,0.5,3.0,0,0", "2,1,60,0.5,3.1,0.0083,10.4", "3,1,120,-0.5,3.0,0.0083,10.4"]
    path = tmp_path / "land.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("cp950"))
    got = open_source(path).read()
    assert got["test_time_second"].tolist() == [0.0, 60.0, 120.0]
    assert got["current_ampere"].tolist() == [0.0005, 0.0005, -0.0005]
    assert split_header("比容量/mAh/g") == ("比容量", "mAh/g")
    assert split_header("SpeCap/mAh/g") == ("SpeCap", "mAh/g")
    assert split_header("Ewe/V") == ("Ewe", "V")
    assert split_header("电流（ｍＡ）") == ("电流", "mA")
    assert split_header("ｻｲｸﾙ") == ("サイクル", None)  # half-width katakana
    assert split_header("ｽﾃｯﾌﾟ時間(s)") == ("ステップ時間", "s")  # voiced mark joined


def test_a_western_file_that_also_decodes_as_gb18030_stays_latin1():
    """Bytes of ``°C`` and ``Spannung (µV)`` decode under GB18030 too, but into no header word:
    the known-word count keeps latin-1."""
    data = "Zeit (s);Spannung (µV);Temperatur (°C)\n0;3,5;25,5\n".encode("latin-1")
    assert data.decode("gb18030", errors="strict")  # decodable: decodability cannot decide
    assert legacy_encoding(data) == "latin-1"
    assert legacy_encoding("循环号,电流(mA),电压(V)\n".encode("gb18030")) == "gb18030"
    assert legacy_encoding("サイクル,電流(mA),電圧(V)\n".encode("cp932")) == "cp932"
    assert legacy_encoding("ｻｲｸﾙ,ｽﾃｯﾌﾟ,電圧(V)\n".encode("cp932")) == "cp932"  # half-width


def test_a_stray_byte_or_a_cut_last_line_in_a_code_page_file_does_not_abort(english, tmp_path):
    """The head is decoded with replacement, and so is the rest of the file: a comment field
    with a byte no GB18030 sequence allows is read (pyarrow's own transcoding raised a bare
    UnicodeDecodeError), and a last line cut in the middle of a character (a file copied while
    the cycler writes) is the usual named error, not a UnicodeDecodeError."""
    from data_registry.errors import InputFormatError

    lines = _neware_zh(english.iloc[:600]).encode("gb18030").split(b"\n")
    lines[300] = lines[300].replace("恒流".encode("gb18030"), b"\x80\x80", 1)  # a stray byte
    path = tmp_path / "stray.csv"
    path.write_bytes(b"\n".join(lines))
    got = open_source(path).read()
    assert got["voltage_volt"].tolist() == english["voltage_volt"].iloc[:600].tolist()
    cut = tmp_path / "cut.csv"
    cut.write_bytes(b"\n".join(lines[:-1]) + b"\n" + "601,1,1,恒".encode("gb18030")[:-1])
    with pytest.raises(InputFormatError, match=r"cut.csv:602: truncated last line"):
        open_source(cut).read()
