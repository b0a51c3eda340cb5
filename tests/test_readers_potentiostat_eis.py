"""Potentiostat impedance files: Gamry ``.DTA`` (ZCURVE tables) and Scribner ZPlot / ZView
``.z`` (ZPLOT2 ASCII and ZPlotW/Z60W layouts). Hand-made files in each vendor's layout, holding
a Randles circuit with a known Warburg coefficient σ, so the stored values and the A_w fit are
checked against hand-computed numbers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_registry.errors import InputFormatError
from data_registry.readers import detect, open_source
from ml.features.warburg import warburg_table

SIGMA = 2500.0  # Ω s^-½
FREQ = np.logspace(np.log10(2e5), np.log10(0.0159), 60)


def randles(freq: np.ndarray) -> np.ndarray:
    """Rs + (Cdl ∥ (Rct + Warburg)): Z′ → Rs + Rct + σ ω^-½ at low frequency."""
    w = 2 * np.pi * freq
    zw = SIGMA * (1 - 1j) / np.sqrt(w)
    return 800.0 + 1.0 / (1j * w * 2e-7 + 1.0 / (3000.0 + zw))


Z = randles(FREQ)
GAMRY_HEAD = [
    "EXPLAIN", "TAG\tEISPOT", "TITLE\tLABEL\tPotentiostatic EIS\tTest &Identifier",
    "DATE\tLABEL\t4/23/2018\tDate", "TIME\tLABEL\t16:43:15\tTime",
    "NOTES\tNOTES\t2\t&Notes...", "\tcell 7 after 50 cycles", "\t",
    "PSTAT\tPSTAT\tREF3000-34128\tPotentiostat",
    "VDC\tPOTEN\t-5.00000E-002\tT\tDC &Voltage (V)",
    "OCVCURVE\tTABLE\t2", "\tPt\tT\tVf\tVm\tAch\tOver\tTemp",
    "\t#\ts\tV vs. Ref.\tV\tV\tbits\tdeg C",
    "\t0\t0.258333\t-3.46699E-001\t-3.46699E-001\t-5.59133E-004\t..........a\t-327.67",
    "\t1\t0.516667\t-3.46692E-001\t-3.46356E-001\t-5.72667E-004\t..........a\t-327.67",
    "EOC\tQUANT\t-0.3410517\tOpen Circuit (V)",
    "ZCURVE\tTABLE", "\tPt\tTime\tFreq\tZreal\tZimag\tZsig\tZmod\tZphz\tIdc\tVdc\tIERange",
    "\t#\ts\tHz\tohm\tohm\tV\tohm\t°\tA\tV\t#",
]


def gamry_rows(comma: bool = False) -> list[str]:
    rows = []
    for i, (f, z) in enumerate(zip(FREQ, Z)):
        fields = [f"{i}", f"{2 * i + 1}", f"{f:.7g}", f"{z.real:.7g}", f"{z.imag:.7g}", "1",
                  f"{abs(z):.7g}", f"{np.degrees(np.angle(z)):.7g}", "-2.5E-006",
                  f"{-0.3411 + 1e-5 * i:.7g}", "7"]
        if comma:
            fields = [x.replace(".", ",") for x in fields]
        rows.append("\t" + "\t".join(fields))
    return rows


def _write(path: Path, lines: list[str], encoding: str = "latin-1") -> Path:
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def _codes(src) -> set[str]:
    return {w.code for w in src.warnings}


# --- Gamry ------------------------------------------------------------------------------------

def test_gamry_spectrum_values_lines_and_warburg(tmp_path):
    p = _write(tmp_path / "EIS_cell7.DTA", GAMRY_HEAD + gamry_rows())
    assert detect(p) == "gamry_dta"
    src = open_source(p)
    df = src.read()
    assert (src.kind, len(df)) == ("eis", 60)
    first_row = len(GAMRY_HEAD) + 1  # 1-based line of the first ZCURVE row
    assert df["source_row"].tolist() == list(range(first_row, first_row + 60))
    assert df["measurement_id"].unique().tolist() == ["EIS_cell7"]
    assert df["frequency_hz"].to_numpy() == pytest.approx(FREQ, rel=1e-6)
    assert df["z_real_ohm"].to_numpy() == pytest.approx(Z.real, rel=1e-6)
    assert df["z_imag_ohm"].to_numpy() == pytest.approx(Z.imag, rel=1e-6)  # Im(Z), kept
    assert df["voltage_volt"].iloc[3] == pytest.approx(-0.3411 + 3e-5)
    # the OCV table's rows are not impedance rows; its "Time" is not the test clock
    assert "test_time_second" not in df or df["test_time_second"].isna().all()
    assert "eis_cycle_count_unknown" in _codes(src)
    assert src.metadata["gamry_tag"] == "EISPOT"
    assert src.metadata["gamry_date"] == "4/23/2018"
    fit = warburg_table(df.assign(cell_id="c7"))
    assert fit["aw_ohm_per_sqrt_s"].iloc[0] == pytest.approx(SIGMA, rel=0.01)


def test_gamry_decimal_commas_read_as_points(tmp_path):
    p = _write(tmp_path / "comma.DTA", GAMRY_HEAD + gamry_rows(comma=True))
    df = open_source(p).read()
    assert df["z_real_ohm"].to_numpy() == pytest.approx(Z.real, rel=1e-6)
    assert df["frequency_hz"].iloc[-1] == pytest.approx(0.0159, rel=1e-6)


def test_gamry_aborted_run_keeps_its_rows_and_says_so(tmp_path):
    lines = GAMRY_HEAD + gamry_rows()[:20] + [
        "EXPERIMENTABORTED\tTOGGLE\tT\tExperiment Aborted"]
    src = open_source(_write(tmp_path / "abort.DTA", lines))
    assert len(src.read()) == 20
    assert {"gamry_experiment_aborted", "eis_cycle_count_unknown"} <= _codes(src)


def test_gamry_two_spectra_get_two_ids(tmp_path):
    second = ["ZCURVE2\tTABLE"] + GAMRY_HEAD[-2:] + gamry_rows()[:10]
    df = open_source(_write(tmp_path / "two.DTA", GAMRY_HEAD + gamry_rows()[:10]
                            + second)).read()
    assert df.groupby("measurement_id").size().to_dict() == {"two#1": 10, "two#2": 10}


def test_gamry_without_impedance_is_refused_naming_its_tables(tmp_path):
    lines = ["EXPLAIN", "TAG\tCV", "CURVE1\tTABLE", "\tPt\tT\tVf", "\t#\ts\tV", "\t0\t0.1\t0.2"]
    with pytest.raises(InputFormatError) as err:
        open_source(_write(tmp_path / "cv.DTA", lines))
    assert err.value.code == "unsupported_format"
    assert "TAG CV" in str(err.value) and "CURVE1" in str(err.value)


def test_gamry_bad_value_and_unit_name_the_line(tmp_path):
    rows = gamry_rows()
    rows[4] = rows[4].replace(f"\t{Z[4].real:.7g}\t", "\tn/a\t")
    with pytest.raises(InputFormatError) as err:
        open_source(_write(tmp_path / "bad.DTA", GAMRY_HEAD + rows)).read()
    assert (err.value.row, err.value.column) == (len(GAMRY_HEAD) + 5, "Zreal")
    head = GAMRY_HEAD[:-1] + [GAMRY_HEAD[-1].replace("\tohm\tohm", "\tmohm\tohm")]
    with pytest.raises(InputFormatError) as err:
        open_source(_write(tmp_path / "unit.DTA", head + gamry_rows())).read()
    assert err.value.code == "unknown_unit" and "mohm" in str(err.value)


# --- ZPlot / ZView ----------------------------------------------------------------------------

ZVIEW_HEADER = "Freq(Hz)\tAmpl\tBias\tTime(Sec)\tZ'(a)\tZ''(b)\tGD\tErr\tRange"


def _zrow(i: int, sep: str) -> str:
    return sep.join([f"{FREQ[i]:.6E}", "1.0000E-02", "0.0000E+00", f"{2.67 + 0.7 * i:.6E}",
                     f"{Z[i].real:.6E}", f"{Z[i].imag:.6E}", "0.0000E+00", "0", "3"])


def test_zplot2_ascii_layout(tmp_path):
    lines = ["ZPLOT2 ASCII", "  Measured Data, ZPlot:       3.2c",
             "  Experiment Type:            Sweep Frequency, Control Voltage",
             "  Data Points:                60", "  " + ZVIEW_HEADER, "End Comments"]
    p = _write(tmp_path / "cell3_c100.z", lines + [_zrow(i, "\t") for i in range(60)])
    assert detect(p) == "zview_z"
    src = open_source(p)
    df = src.read()
    assert df["source_row"].tolist() == list(range(7, 67))
    assert df["z_real_ohm"].to_numpy() == pytest.approx(Z.real, rel=1e-5)
    assert df["z_imag_ohm"].to_numpy() == pytest.approx(Z.imag, rel=1e-5)
    assert df["measurement_id"].unique().tolist() == ["cell3_c100"]
    assert _codes(src) == {"eis_cycle_count_unknown"}
    fit = warburg_table(df.assign(cell_id="c3"))
    assert fit["aw_ohm_per_sqrt_s"].iloc[0] == pytest.approx(SIGMA, rel=0.01)


def test_z60w_layout_and_a_short_file_is_warned(tmp_path):
    lines = ['"Z60W Data File: Version 1.1"'] + ['""'] * 7 + ["0,2,0,1,0.1,10000", "60",
                                                           '"  ' + ZVIEW_HEADER.replace(
                                                               "\t", "    ") + '"']
    p = _write(tmp_path / "autolab.txt", lines + [_zrow(i, ",") for i in range(45)])
    assert detect(p) == "zview_z"
    src = open_source(p)
    df = src.read()
    assert len(df) == 45 and df["source_row"].iloc[0] == 12
    assert df["frequency_hz"].to_numpy() == pytest.approx(FREQ[:45], rel=1e-6)
    warn = {w.code: w for w in src.warnings}["zview_point_count_mismatch"]
    assert warn.details == {"declared": 60, "read": 45}


def test_zview_row_with_missing_fields_names_its_line(tmp_path):
    lines = ["ZPLOT2 ASCII", "  " + ZVIEW_HEADER, "End Comments"]
    rows = [_zrow(i, "\t") for i in range(10)]
    rows[6] = "\t".join(rows[6].split("\t")[:5])
    with pytest.raises(InputFormatError) as err:
        open_source(_write(tmp_path / "cut.z", lines + rows)).read()
    assert err.value.row == 10 and "5 fields" in str(err.value)


def test_maccor_impedance_export_is_not_taken_for_zview(tmp_path):
    lines = ["MACCOR, INC.  AC Impedance Test", "", "Freq(Hz)\tPolar(V)\ttime(sec)\tZ'(a)\t"
             "Z''(b)\tPhase_Angle\tZ-Mag"] + [
        f"{FREQ[i]:.6g}\t0\t{i}\t{Z[i].real:.6g}\t{Z[i].imag:.6g}\t0\t{abs(Z[i]):.6g}"
        for i in range(10)]
    assert detect(_write(tmp_path / "x.EDA0001.041", lines)) == "maccor_eis"


# --- a stated cycle (--eis-cycle) -------------------------------------------------------------

def test_a_stated_cycle_places_the_spectrum_through_ingest_and_warburg(tmp_path, capsys):
    from data_registry.store import Registry
    from serving.cli import main

    p = _write(tmp_path / "EIS_c050.DTA", GAMRY_HEAD + gamry_rows())
    src = open_source(p, eis_cycle=50)
    df = src.read()
    assert df["cycle_count"].tolist() == [50] * 60
    assert "eis_cycle_count_unknown" not in _codes(src)
    home = tmp_path / "home"
    reg = Registry(home)
    reg.ingest([p], cell_id="c7", reader_options={"eis_cycle": 50})
    assert reg.load_eis("c7")["cycle_count"].unique().tolist() == [50]
    z = _write(tmp_path / "c7_c100.z", ["ZPLOT2 ASCII", "  " + ZVIEW_HEADER, "End Comments"]
               + [_zrow(i, "\t") for i in range(60)])
    assert main(["warburg", "--eis", str(z), "--eis-cycle", "100", "--json"]) == 0
    fits = json.loads(capsys.readouterr().out)
    assert [f["cycle_count"] for f in fits] == [100]
    assert fits[0]["aw_ohm_per_sqrt_s"] == pytest.approx(SIGMA, rel=0.01)


def test_a_stated_cycle_cannot_place_several_spectra_and_is_unused_on_cycling_files(tmp_path):
    second = ["ZCURVE2\tTABLE"] + GAMRY_HEAD[-2:] + gamry_rows()[:10]
    two = _write(tmp_path / "two.DTA", GAMRY_HEAD + gamry_rows()[:10] + second)
    with pytest.raises(InputFormatError) as err:
        open_source(two, eis_cycle=5).read()
    assert err.value.column == "eis_cycle" and "several" in str(err.value)
    cycling = _write(tmp_path / "cyc.csv", [
        "test_time_second,current_ampere,voltage_volt,cycle_index",
        "0,1.0,3.5,1", "10,1.0,3.6,1", "20,-1.0,3.4,1"], encoding="utf-8")
    src = open_source(cycling, eis_cycle=5)
    assert "reader_option_unused" in _codes(src) and len(src.read()) == 3


# --- an impedance table under a preamble (CH Instruments) -------------------------------------

CHI_HEAD = ["Feb. 20, 2020   15:55:08", "A.C. Impedance", "File: c:\\data\\cell3.bin",
            "Data Source:  Experiment", "Instrument Model:  CHI660E", "Header: ", "Note: ", "",
            "Init E (V) = 0", "High Frequency (Hz) = 2e+6", "Low Frequency (Hz) = 0.1",
            "Amplitude (V) = 0.025", "", "Freq/Hz, Z'/ohm, Z\"/ohm, Z/ohm, Phase/deg", ""]


def test_chi_text_export_found_under_its_preamble(tmp_path):
    rows = [f"{f:.4e}, {z.real:.5e}, {z.imag:.5e}, {abs(z):.5e}, "
            f"{np.degrees(np.angle(z)):.1f}" for f, z in zip(FREQ, Z)]
    p = _write(tmp_path / "cell3_c20.txt", CHI_HEAD + rows)
    assert detect(p) == "eis_table_txt"
    src = open_source(p)
    df = src.read()
    assert df["source_row"].iloc[0] == len(CHI_HEAD) + 1  # the blank line under the header
    assert df["z_imag_ohm"].to_numpy() == pytest.approx(Z.imag, rel=1e-5)
    assert df["measurement_id"].unique().tolist() == ["cell3_c20#1"]
    assert "CHI660E" in src.metadata["preamble"]
    fit = warburg_table(df.assign(cell_id="c3"))
    assert fit["aw_ohm_per_sqrt_s"].iloc[0] == pytest.approx(SIGMA, rel=0.01)
    # the same table with its header as the first line is the generic EIS CSV
    plain = _write(tmp_path / "plain.csv", CHI_HEAD[-2:-1] + rows, encoding="utf-8")
    assert detect(plain) == "generic_eis_csv"
    assert open_source(plain).read()["z_real_ohm"].to_numpy() == pytest.approx(Z.real,
                                                                               rel=1e-5)


def test_dotted_file_names_keep_their_dates_as_spectrum_ids(tmp_path):
    a = _write(tmp_path / "cell7_2024.05.01.DTA", GAMRY_HEAD + gamry_rows())
    b = _write(tmp_path / "cell7_2024.06.01.z", ["ZPLOT2 ASCII", "  " + ZVIEW_HEADER,
                                                 "End Comments"] + [
        _zrow(i, "\t").replace(f"{FREQ[i]:.6E}", f"+{FREQ[i]:.6E}") for i in range(10)])
    assert open_source(a).read()["measurement_id"].unique().tolist() == ["cell7_2024.05.01"]
    df = open_source(b).read()  # rows written with a leading '+' are rows too
    assert df["measurement_id"].unique().tolist() == ["cell7_2024.06.01"] and len(df) == 10


def test_gamry_unit_case_and_an_optional_column_in_another_unit(tmp_path):
    head = GAMRY_HEAD[:-1] + [GAMRY_HEAD[-1].replace("\tohm\tohm\t", "\tOhm\tOhm\t")
                                               .replace("\tA\tV\t#", "\tA\tmV\t#")]
    src = open_source(_write(tmp_path / "case.DTA", head + gamry_rows()))
    df = src.read()
    assert df["z_real_ohm"].to_numpy() == pytest.approx(Z.real, rel=1e-6)
    assert "voltage_volt" not in df or df["voltage_volt"].isna().all()
    assert "gamry_column_skipped" in _codes(src)


def test_a_generic_eis_csv_repeating_its_header_is_not_taken_for_a_preamble(tmp_path):
    rows = ["frequency_hz,z_real_ohm,z_imag_ohm"] + [
        f"{f:.6g},{z.real:.6g},{z.imag:.6g}" for f, z in zip(FREQ[:10], Z[:10])]
    p = _write(tmp_path / "two.csv", rows + rows, encoding="utf-8")
    assert detect(p) == "generic_eis_csv"
