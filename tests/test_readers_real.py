"""Readers on the REAL vendor files in ../shared/data/parsers (read in place; skipped if absent).

Every file there is either read, or refused with a precise message naming the format and what
is missing. Numbers pinned below were checked against the raw files (head/tail/awk, the
vendor's own cycle summaries) — not copied from the reader's output.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_registry.errors import FadecastError, InputFormatError, ValidationError
from data_registry.readers import FORMATS, detect, open_source

HERE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "parsers"

# relative path → format read, or (error class, code, message regex) for a refusal
EXPECTED: dict[str, object] = {
    "arbin_csv_beep/2017-05-09_test-TC-contact_CH33.csv": "arbin_csv",
    "arbin_csv_beep/2017-05-09_test-TC-contact_CH33_Metadata.csv":
        (InputFormatError, "unsupported_format",
         "recognised but not supported: Arbin _Metadata.csv sidecar"),
    "arbin_csv_beep/FastCharge_000025_CH8.csv": "arbin_csv",
    "arbin_csv_beep/FastCharge_000025_CH8_Metadata.csv":
        (InputFormatError, "unsupported_format", "recognised but not supported: Arbin"),
    "arbin_res_cellpy/20160805_test001_45_cc_01.res": "arbin_res",
    "arbin_res_cellpy/aux_one_x_dx.res": "arbin_res",
    "batteryarchive_format_battdat/CALCE_CX2-33_prism_LCO_25C_0-100_0.5-0.5C_d_cycle_data.csv":
        "batteryarchive_cycles_csv",
    "batteryarchive_format_battdat/CALCE_CX2-33_prism_LCO_25C_0-100_0.5-0.5C_d_timeseries.csv":
        "batteryarchive_timeseries_csv",
    "bdf_csv_cellpy/batmo_bdf.csv": "bdf_csv",
    "biologic_beep/test_loopsnewoutput_MB_CE1_short10k.csv": "biologic_txt",
    "biologic_beep/test_loopsnewoutput_MB_CE1_short10k.mpl":
        (InputFormatError, "unsupported_format",
         "recognised but not supported: BioLogic .mpl acquisition log"),
    "biologic_cellpy/biol.mpr": "biologic_mpr",
    "generic_csv_cellpy/custom_data_001.csv":
        (InputFormatError, "unsupported_format",
         "recognised but not supported: PRIME instrument custom CSV"),
    "indigo_beep/indigo_test_sample.h5": "indigo_h5",
    "maccor_beep/PreDiag_000229_000229_truncated.034": "maccor_txt",
    "maccor_beep/PreDiag_000412_00008Fshort.022": "maccor_txt",
    "maccor_beep/PredictionDiagnostics_000109_tztest.010": "maccor_txt",
    "maccor_beep/PredictionDiagnostics_000151_paused.052": "maccor_txt",
    "maccor_beep/PredictionDiagnostics_000151_test.052": "maccor_txt",
    "maccor_beep/maccor_test_file_4267-66-6519.041": "maccor_txt",
    "maccor_beep/maccor_test_file_4267-66-6519.EDA0001.041": "maccor_eis",
    "maccor_beep/xTESLADIAG_000019_CH70.070": "maccor_txt",
    "maccor_txt_cellpy/maccor_001.txt": "maccor_txt",
    "maccor_txt_cellpy/maccor_002.txt": "maccor_txt",
    "navani_examples/00_test_01_OCV_C01.mpr": "biologic_mpr",
    "navani_examples/00_test_02_OCV_C01.mpr": "biologic_mpr",
    # navani's MB test files hold Ewe = -1.65 V: kept with warning voltage_below_range
    # (floor -5 V, see data_registry.validate.VOLTAGE_FLOOR_V)
    "navani_examples/00_test_02_MB_C01.mpr": "biologic_mpr",
    "navani_examples/00_test_04_MB_C01.mpr": "biologic_mpr",
    "navani_examples/arbin_example.res": "arbin_res",
    "navani_examples/bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx": "landt_xlsx",
    "navani_examples/jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr": "biologic_mpr",
    "navani_examples/test.nda": "neware_nda",
    "navani_examples/test.ndax": "neware_ndax",
    "neware_cellpy/20260302_IFE_BTS85_2_9_8_1.ndax": "neware_ndax",
    "neware_cellpy/neware_uio.csv": "neware_csv",
    "neware_cellpy/nw_regular_export_ife_example.csv": "neware_regular_csv",
    "novonix_beep/test_Nova_Form-CH01-01_short.csv": "novonix_csv",
    "novonix_beep/test_Nova_Form-CH01-01_short_metadata.csv":
        (ValidationError, "missing_column",
         r"column 'test_time_second': per-cycle file has no elapsed-time column; estimate it "
         r"from the protocol with --hours-per-cycle H or --c-rate C"),
    "pec_cellpy/Test25195.csv": "pec_csv",
    "pec_cellpy/Test25205.csv": "pec_csv",
    "pec_cellpy/Test25209.csv": "pec_csv",
    "pec_cellpy/pec.csv": "pec_csv",
}
ALL_FILES = sorted(p.relative_to(HERE).as_posix() for p in HERE.rglob("*") if p.is_file()) \
    if HERE.is_dir() else []
REFUSAL_WORDS = ("recognised but not supported", "optional extra", "system tool",
                 "value outside", "fastnda", "galvani", "mdbtools")


NEEDS_MDB = pytest.mark.needs_tool("mdb-export")
PARAMS = [pytest.param(r, marks=NEEDS_MDB) if r.endswith(".res") else r for r in ALL_FILES]


@pytest.mark.parametrize("rel", PARAMS or ["(no shared data)"])
def test_every_real_file_is_read_or_refused_precisely(shared_data, rel):
    path = shared_data / "parsers" / rel
    expected = EXPECTED.get(rel)
    if isinstance(expected, str):
        src = open_source(path)
        assert src.format_name == expected
        n = sum(len(c) for c in src.chunks())
        assert n > 0
        kind = next(f.kind for f in FORMATS if f.name == expected)
        assert src.kind == kind
    elif expected is not None:
        cls, code, pattern = expected
        with pytest.raises(cls, match=pattern) as e:
            open_source(path).read()
        assert e.value.code == code and e.value.file == path.name
    else:  # a file added to the folder later: it must still get a precise answer
        try:
            open_source(path).read()
        except FadecastError as exc:
            assert exc.file == path.name
            assert any(w in str(exc) for w in REFUSAL_WORDS) or exc.code != "unknown_format"


def test_expected_table_covers_the_folder(shared_data):
    missing = sorted(set(ALL_FILES) - set(EXPECTED))
    assert not missing, f"add these files to EXPECTED: {missing}"


def read(shared_data, rel, **kw):
    src = open_source(shared_data / "parsers" / rel, **kw)
    return src, src.read()


def test_arbin_csv_fastcharge(shared_data):
    src, df = read(shared_data, "arbin_csv_beep/FastCharge_000025_CH8.csv")
    assert len(df) == 248                       # 249 lines - header
    assert df["test_time_second"].iloc[0] == pytest.approx(10.0024)
    assert df["test_time_second"].iloc[-1] == pytest.approx(1800.01, abs=1e-3)
    assert df["voltage_volt"].iloc[0] == pytest.approx(3.3011441)
    assert df["ambient_temperature_celsius"].iloc[0] == pytest.approx(30.109268)
    assert src.metadata["arbin_test_id"] == "153"
    assert src.metadata["arbin_schedule_file_name"].endswith("4_4C.SDU")


def test_arbin_csv_contact_test_empty_cycle_column(shared_data):
    src, df = read(shared_data, "arbin_csv_beep/2017-05-09_test-TC-contact_CH33.csv")
    assert len(df) == 287
    assert df["test_time_second"].iloc[-1] == pytest.approx(1022.8913)
    assert df["current_ampere"].iloc[0] == pytest.approx(6.600444793701172)  # 6.6 A charge
    assert df["charging_capacity_ah"].iloc[-1] == pytest.approx(0.6082700490951538)
    assert (df["cycle_count"] == 0).all()
    assert [w.code for w in src.warnings] == ["cycle_count_missing"]
    assert src.metadata["arbin_test_id"] == "144"


def test_maccor_beep_signed_current_and_split_capacity(shared_data):
    _, df = read(shared_data, "maccor_beep/PreDiag_000229_000229_truncated.034")
    assert len(df) == 4061                      # 4063 lines - preamble - header
    assert df["test_time_second"].iloc[-1] == pytest.approx(82621.28)
    assert df["voltage_volt"].iloc[0] == pytest.approx(3.45922026)
    dis = df[df["discharging_capacity_ah"] > 0]
    assert (dis["current_ampere"] < 0).all()    # State D rows: discharge, negative current
    assert df["discharging_capacity_ah"].max() == pytest.approx(4.7626133936)


def test_maccor_timezone_file_keeps_monotonic_test_time(shared_data):
    # wall clock repeats 01:xx on 2019-11-03 (DST fall-back); Test (Sec) does not
    src, df = read(shared_data, "maccor_beep/PredictionDiagnostics_000109_tztest.010")
    assert len(df) == 2165 and src.warnings == []
    assert np.all(np.diff(df["test_time_second"].to_numpy()) >= 0)
    assert df["test_time_second"].iloc[0] == pytest.approx(1804441.3)
    assert "unix_time_second" not in df.columns
    assert src.metadata["start_local_time"] == "11/02/2019 23:28:51"  # awk: line 3, field 12


def test_maccor_paused_file(shared_data):
    _, paused = read(shared_data, "maccor_beep/PredictionDiagnostics_000151_paused.052")
    _, full = read(shared_data, "maccor_beep/PredictionDiagnostics_000151_test.052")
    assert (len(paused), len(full)) == (332, 333)
    assert paused["current_ampere"].iloc[0] == pytest.approx(-4.8400091554)


def test_maccor_cellpy_duration_style(shared_data):
    _, df = read(shared_data, "maccor_txt_cellpy/maccor_001.txt")
    assert len(df) == 6704
    row = df[df["source_row"] == 1500].iloc[0]  # line 1500: '0d 11:27:13.34', state D, 0.50004 A
    assert row["test_time_second"] == pytest.approx(11 * 3600 + 27 * 60 + 13.34, abs=1e-3)
    assert row["current_ampere"] == pytest.approx(-0.50004)


def test_maccor_cellpy_minutes_style(shared_data):
    src, df = read(shared_data, "maccor_txt_cellpy/maccor_002.txt")
    assert [w.code for w in src.warnings] == ["latin1_encoding", "time_unit_inferred"]
    # TestTime 621.775833 at 2:02:10 AM, test started 3:40:24 PM the day before: minutes
    row = df[df["source_row"] == 1000].iloc[0]  # grep -n: line 1000
    assert row["test_time_second"] == pytest.approx(621.775833 * 60)
    assert df["cycle_count"].iloc[-1] == 2


def test_maccor_eis(shared_data):
    _, df = read(shared_data, "maccor_beep/maccor_test_file_4267-66-6519.EDA0001.041")
    assert len(df) == 60 and df["measurement_id"].nunique() == 1
    assert df["frequency_hz"].iloc[0] == pytest.approx(999999.0)
    assert df["z_real_ohm"].iloc[0] == pytest.approx(0.773446)
    assert df["z_imag_ohm"].iloc[0] == pytest.approx(-0.849201)   # Z'' kept: Im(Z) < 0
    assert df["voltage_volt"].iloc[0] == pytest.approx(3.909893)


def test_bdf_hours_and_flipped_sign(shared_data):
    src, df = read(shared_data, "bdf_csv_cellpy/batmo_bdf.csv")
    assert len(df) == 21206
    assert df["test_time_second"].iloc[0] == pytest.approx(0.138888888888889 * 3600)
    assert [w.code for w in src.warnings] == ["current_sign_flipped"]
    # the file says +0.00605 A in its first 'discharge' step: negative once canonical
    assert df["current_ampere"].iloc[0] == pytest.approx(-0.00605515800906498)
    dis = df[df["discharging_capacity_ah"] > 0]
    assert (dis["current_ampere"] <= 0).all()


def test_batteryarchive_cycles_and_timeseries(shared_data):
    src, cyc = read(shared_data, "batteryarchive_format_battdat/"
                    "CALCE_CX2-33_prism_LCO_25C_0-100_0.5-0.5C_d_cycle_data.csv")
    assert src.kind == "cycles" and cyc["cycle_index"].tolist() == list(range(1, 10))
    assert cyc["test_time_second"].iloc[0] == pytest.approx(12923.434)
    assert cyc["discharge_capacity_ah"].iloc[1] == pytest.approx(1.295)
    _, ts = read(shared_data, "batteryarchive_format_battdat/"
                 "CALCE_CX2-33_prism_LCO_25C_0-100_0.5-0.5C_d_timeseries.csv")
    assert len(ts) == 15 and ts["test_time_second"].iloc[0] == pytest.approx(30.009)


def test_biologic_text_absolute_time_and_mah(shared_data):
    src, df = read(shared_data, "biologic_beep/test_loopsnewoutput_MB_CE1_short10k.csv")
    assert len(df) == 9999
    # time/s column holds wall-clock stamps: 15:36:22.757 → 15:36:45.513 = 22.756 s
    assert df["test_time_second"].iloc[1] == pytest.approx(22.756, abs=1e-6)
    assert df["current_ampere"].iloc[1] == pytest.approx(2.49326220703125)  # 2493.26 mA
    assert src.metadata["biologic_log_file"].endswith(".mpl")
    assert src.metadata["biologic_device"].startswith("BCS-815")


def test_neware_flat_csv(shared_data):
    _, df = read(shared_data, "neware_cellpy/neware_uio.csv")
    assert len(df) == 9065 and df["test_time_second"].iloc[1] == 60.0
    dis = df[df["discharging_capacity_ah"] > 0]
    assert (dis["current_ampere"] < 0).all()


def test_neware_regular_export_matches_its_cycle_rows(shared_data):
    _, df = read(shared_data, "neware_cellpy/nw_regular_export_ife_example.csv")
    per = df.groupby("cycle_count").agg(qc=("charging_capacity_ah", "max"),
                                        qd=("discharging_capacity_ah", "max"))
    # the file's own cycle rows: cycle 1 Chg 0.02256 / DChg 0.33067; cycle 2 0.32780 / 0.33172
    assert per.loc[1, "qd"] == pytest.approx(0.33067, abs=1e-5)
    assert per.loc[2, "qc"] == pytest.approx(0.32780, abs=1e-5)
    assert per.loc[2, "qd"] == pytest.approx(0.33172, abs=1e-5)
    assert per.index.max() == 20


def test_neware_binary(shared_data):
    _, nda = read(shared_data, "navani_examples/test.nda")
    assert len(nda) == 439 and nda["voltage_volt"].iloc[0] == pytest.approx(-0.0911, abs=1e-4)
    src, big = read(shared_data, "neware_cellpy/20260302_IFE_BTS85_2_9_8_1.ndax")
    assert len(big) == 252951
    assert [w.code for w in src.warnings] == ["unix_time_backwards"]


def test_biologic_mpr(shared_data):
    src, df = read(shared_data, "navani_examples/jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr")
    assert len(df) == 46102 and [w.code for w in src.warnings] == ["current_from_dq"]
    assert df["cycle_count"].max() == 6
    # C/24 GCPL: derived current ±0.089 mA
    assert df["current_ampere"].max() == pytest.approx(8.9e-5, rel=0.02)
    assert df["current_ampere"].min() == pytest.approx(-8.9e-5, rel=0.02)


def test_indigo(shared_data):
    _, df = read(shared_data, "indigo_beep/indigo_test_sample.h5")
    assert len(df) == 20000
    assert df["current_ampere"].iloc[0] == pytest.approx(-4.996267, rel=1e-6)
    assert df["unix_time_second"].iloc[0] == pytest.approx(1570746395.467835)


def test_excel_workbook(shared_data):
    src, df = read(shared_data, "navani_examples/bs542_004_gr_li_50ua_50mv_1v_191020_"
                   "Channel_11.xlsx")
    assert len(df) == 4526 and src.metadata["excel_data_sheets"] == "Channel_11_1"
    assert df["test_time_second"].iloc[0] == pytest.approx(1.001)
    assert df["voltage_volt"].iloc[0] == pytest.approx(2.637298583984375)


@NEEDS_MDB
def test_arbin_res(shared_data):
    src, df = read(shared_data, "navani_examples/arbin_example.res")
    assert len(df) == 2150 and [w.code for w in src.warnings] == ["records_reordered"]
    assert df["source_row"].tolist() == list(range(1, 2151))   # Data_Point order
    assert df["voltage_volt"].iloc[0] == pytest.approx(3.8591957)


def test_pec_units(shared_data):
    _, df = read(shared_data, "pec_cellpy/pec.csv")
    assert len(df) == 16255
    # 'Current (mA)' -1633.9 on line 39 → -1.6339 A; 'Voltage (mV)' 3269.2348 → V
    row = df[df["source_row"] == 39].iloc[0]
    assert row["current_ampere"] == pytest.approx(-1.6339)
    assert row["voltage_volt"] == pytest.approx(3.2692348)


def test_novonix(shared_data):
    src, df = read(shared_data, "novonix_beep/test_Nova_Form-CH01-01_short.csv")
    assert len(df) == 3942 and df["source_row"].iloc[0] == 59
    assert src.metadata["capacity_(ah)"] == "0.24"


def test_detect_by_content_not_extension(shared_data, tmp_path):
    odd = tmp_path / "renamed.bin"
    odd.write_bytes((shared_data / "parsers" / "maccor_beep" /
                     "maccor_test_file_4267-66-6519.EDA0001.041").read_bytes())
    assert detect(odd) == "maccor_eis"


@pytest.mark.parametrize("rel", ["maccor_txt_cellpy/maccor_001.txt",
                                 "biologic_beep/test_loopsnewoutput_MB_CE1_short10k.csv",
                                 "neware_cellpy/neware_uio.csv",
                                 "neware_cellpy/nw_regular_export_ife_example.csv"])
def test_small_chunks_give_the_same_table(shared_data, rel):
    # text columns (state, clock strings) and carried state (clock origin) across chunk and
    # read-buffer boundaries must not change a single value
    whole = open_source(shared_data / "parsers" / rel).read()
    parts = list(open_source(shared_data / "parsers" / rel, chunk_rows=777).chunks())
    assert len(parts) > 3
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)


def test_gzipped_neware_regular_export(shared_data, tmp_path):
    import gzip
    rel = "neware_cellpy/nw_regular_export_ife_example.csv"
    gz = tmp_path / "regular.csv.gz"
    gz.write_bytes(gzip.compress((shared_data / "parsers" / rel).read_bytes()))
    pd.testing.assert_frame_equal(open_source(gz).read(),
                                  open_source(shared_data / "parsers" / rel).read())


def test_novonix_summary_with_protocol(shared_data):
    src, df = read(shared_data, "novonix_beep/test_Nova_Form-CH01-01_short_metadata.csv",
                   protocol_hours_per_cycle=20.0)
    assert src.kind == "cycles" and len(df) == 1
    assert df["cycle_index"].iloc[0] == 1 and df["test_time_estimated"].iloc[0] == 1
    assert df["test_time_second"].iloc[0] == 72000.0
    assert df["discharge_capacity_ah"].iloc[0] == pytest.approx(0.076631919)
    assert df["mean_charge_voltage_volt"].iloc[0] == pytest.approx(5.12566938665875)
    assert [w.code for w in src.warnings] == ["test_time_estimated"]
