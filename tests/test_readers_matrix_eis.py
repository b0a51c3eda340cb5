"""Headerless lab-script layouts: the EIS matrix (one spectrum per line, Re(Z) then ±Im(Z),
frequencies in a side file) and the capacity list (one cycle per line). Small hand-made files
with hand-computed values, then the real Zhang et al. 2020 files where ../shared is present."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_registry.errors import InputFormatError, StoreError, ValidationError
from data_registry.readers import detect, open_source
from data_registry.readers.eis_matrix import read_frequencies
from serving.cli import build_parser, main

PRODUCTION = Path(__file__).resolve().parents[1] / "models" / "production"
FREQ5 = [1000.0, 100.0, 10.0, 1.0, 0.1]
#: three spectra of 5 frequencies: Re(Z), then −Im(Z) (positive but at 1 kHz: inductive)
MINUS_IM_ROWS = [
    "0.10 0.11 0.12 0.13 0.14 -0.01 0.02 0.03 0.04 0.05",
    "0.20 0.21 0.22 0.23 0.24 -0.02 0.03 0.04 0.05 0.06",
    "0.30 0.31 0.32 0.33 0.34 -0.03 0.04 0.05 0.06 0.07",
]


def _codes(src) -> dict:
    return {w.code: w for w in src.warnings}


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _matrix(folder: Path, rows=MINUS_IM_ROWS, freqs=FREQ5, name="cell_eis.txt",
            freq_name="frequencies_hz.csv") -> Path:
    if freqs is not None:
        _write(folder / freq_name, ["index,frequency_hz"] +
               [f"{i},{f:g}" for i, f in enumerate(freqs)])
    return _write(folder / name, list(rows))


# --- EIS matrix ------------------------------------------------------------------------------

def test_matrix_values_and_sign_conversion(tmp_path):
    p = _matrix(tmp_path)
    assert detect(p) == "eis_matrix_txt"
    src = open_source(p)
    assert (src.format_name, src.kind) == ("eis_matrix_txt", "eis")
    df = src.read()
    assert len(df) == 15  # 3 spectra × 5 frequencies
    assert df["measurement_id"].drop_duplicates().tolist() == ["row 1", "row 2", "row 3"]
    assert df["source_row"].tolist() == [1] * 5 + [2] * 5 + [3] * 5
    assert df["frequency_hz"].tolist() == FREQ5 * 3
    row2 = df[df["measurement_id"] == "row 2"]
    assert row2["z_real_ohm"].tolist() == pytest.approx([0.20, 0.21, 0.22, 0.23, 0.24])
    # the file stores −Im(Z) (12 of 15 values positive): negated once, to Im(Z)
    assert row2["z_imag_ohm"].tolist() == pytest.approx([0.02, -0.03, -0.04, -0.05, -0.06])
    w = _codes(src)
    assert w["eis_imaginary_sign_flipped"].details["convention"] == "minus_im"
    assert w["eis_imaginary_sign_flipped"].details["positive_fraction"] == pytest.approx(0.8)
    assert w["eis_frequencies_found"].details["where"] == "beside the file"
    assert "cycle_count" not in df.columns and "eis_cycle_count_unknown" in w
    assert src.companions == [tmp_path / "frequencies_hz.csv"]


def test_matrix_storing_im_is_kept_and_said(tmp_path):
    rows = [" ".join(r.split()[:5] + [f"{-float(x):g}" for x in r.split()[5:]])
            for r in MINUS_IM_ROWS]
    src = open_source(_matrix(tmp_path, rows))
    df = src.read()
    assert df["z_imag_ohm"].iloc[:5].tolist() == pytest.approx([0.01, -0.02, -0.03, -0.04, -0.05])
    w = _codes(src)
    assert "eis_imaginary_sign_flipped" not in w
    assert w["eis_sign_inferred"].details == {"convention": "im", "positive_fraction": 0.2}


def test_stated_sign_overrides_the_data(tmp_path):
    df = open_source(_matrix(tmp_path), eis_sign="im").read()
    assert df["z_imag_ohm"].iloc[:5].tolist() == pytest.approx([-0.01, 0.02, 0.03, 0.04, 0.05])
    src = open_source(_matrix(tmp_path), eis_sign="minus_im")
    assert src.read()["z_imag_ohm"].iloc[1] == pytest.approx(-0.02)
    assert "eis_sign_inferred" not in _codes(src)


def test_every_k_cycles_maps_row_n_to_cycle_k_n(tmp_path):
    df = open_source(_matrix(tmp_path), eis_every_cycles=2).read()
    assert df.groupby("measurement_id", sort=False)["cycle_count"].first().tolist() == [2, 4, 6]
    assert df["cycle_count"].dtype == np.int64


def test_matlab_ascii_comma_and_semicolon_layouts(tmp_path):
    """``save -ascii`` (leading blanks, exponents), CSV, and ``;`` with decimal commas."""
    values = [r.split() for r in MINUS_IM_ROWS]
    matlab = ["".join(f"   {float(x): .7e}" for x in r) for r in values]
    comma = [",".join(r) for r in values]
    semi = [";".join(x.replace(".", ",") for x in r) for r in values]
    want = open_source(_matrix(tmp_path / "a")).read()
    for k, rows in enumerate((matlab, comma, semi)):
        got = open_source(_matrix(tmp_path / f"b{k}", rows)).read()
        assert got["z_real_ohm"].tolist() == pytest.approx(want["z_real_ohm"].tolist())
        assert got["z_imag_ohm"].tolist() == pytest.approx(want["z_imag_ohm"].tolist())


def test_chunks_and_gzip_give_the_same_rows(tmp_path):
    import gzip

    p = _matrix(tmp_path)
    whole = open_source(p).read()
    parts = list(open_source(p, chunk_rows=5).chunks())  # 5 points = one spectrum per chunk
    assert len(parts) == 3
    assert np.array_equal(np.concatenate([c["z_imag_ohm"] for c in parts]),
                          whole["z_imag_ohm"].to_numpy())
    gz = tmp_path / "cell_eis.txt.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert open_source(gz).read().equals(whole)


def test_frequency_count_mismatch_names_both_numbers(tmp_path):
    _write(tmp_path / "my_freqs.txt", ["1000", "100", "10", "1"])
    p = _matrix(tmp_path, freqs=None)
    with pytest.raises(InputFormatError, match="gives 4 frequencies.*10 values") as e:
        open_source(p, frequencies=tmp_path / "my_freqs.txt")
    assert e.value.code == "frequency_count_mismatch" and e.value.file == "cell_eis.txt"
    assert e.value.expected == "5 frequencies (half of 10 columns)"
    assert e.value.found == "4 in my_freqs.txt"
    # found by name beside the file: the same refusal, naming the file found
    with pytest.raises(InputFormatError, match="my_freqs.txt.*gives 4") as e:
        open_source(p)
    assert e.value.code == "frequency_count_mismatch"


def test_missing_frequencies_refused_with_the_flag(tmp_path):
    p = _matrix(tmp_path / "a" / "b", freqs=None)
    with pytest.raises(InputFormatError, match="needs its 5 frequencies.*--frequencies FILE") as e:
        open_source(p)
    assert e.value.code == "frequencies_missing" and e.value.file == "cell_eis.txt"
    assert "--frequencies FILE" in e.value.expected
    with pytest.raises(InputFormatError, match="frequency file not found") as e:
        open_source(p, frequencies=tmp_path / "nope.csv")
    assert e.value.code == "file_not_found"


def test_explicit_frequencies_win_and_parent_folder_is_searched(tmp_path):
    p = _matrix(tmp_path / "per_cell", freqs=None)
    _write(tmp_path / "frequencies_hz.csv", ["frequency_hz"] + [f"{f:g}" for f in FREQ5])
    src = open_source(p)
    assert src.read()["frequency_hz"].iloc[:5].tolist() == FREQ5
    assert _codes(src)["eis_frequencies_found"].details["where"] == "in the parent folder"
    _write(tmp_path / "other.txt", ["2000 200 20 2 0.2"])  # one line of 5 numbers
    src = open_source(p, frequencies=str(tmp_path / "other.txt"))
    assert src.read()["frequency_hz"].iloc[:5].tolist() == [2000.0, 200.0, 20.0, 2.0, 0.2]
    assert "eis_frequencies_found" not in _codes(src)
    assert src.metadata["eis_frequencies_source"] == "given"


def test_frequencies_in_reverse_order_are_warned(tmp_path):
    """Re(Z) rises 0.10 → 0.14 along the columns: it must fall as frequency rises, so the
    columns run high → low; a low → high list is suspect."""
    assert "eis_frequency_order_suspect" not in _codes(open_source(_matrix(tmp_path / "a")))
    src = open_source(_matrix(tmp_path / "b", freqs=FREQ5[::-1]))
    w = _codes(src)["eis_frequency_order_suspect"]
    assert w.details["correlation"] == pytest.approx(
        np.corrcoef(np.log(FREQ5[::-1]), [0.20, 0.21, 0.22, 0.23, 0.24])[0, 1])


def test_frequency_file_layouts(tmp_path):
    khz = _write(tmp_path / "a.csv", ["Frequency (kHz),Re"] + ["1,0.1", "0.1,0.2", "0.01,0.3"])
    assert read_frequencies(khz).tolist() == pytest.approx([1000.0, 100.0, 10.0])
    bare = _write(tmp_path / "b.txt", ["1000", "100", "10"])
    assert read_frequencies(bare).tolist() == [1000.0, 100.0, 10.0]
    indexed = _write(tmp_path / "c.txt", ["1 1000", "2 100", "3 10"])  # headerless index
    assert read_frequencies(indexed).tolist() == [1000.0, 100.0, 10.0]
    bad = _write(tmp_path / "d.txt", ["1000", "x", "10"])
    with pytest.raises(InputFormatError, match="not a number") as e:
        read_frequencies(bad)
    assert (e.value.code, e.value.file, e.value.row, e.value.found) == (
        "bad_frequencies", "d.txt", 2, "'x'")
    with pytest.raises(InputFormatError, match="positive"):
        read_frequencies(_write(tmp_path / "e.txt", ["1000", "0", "10"]))


def test_bad_lines_name_line_and_column(tmp_path):
    rows = list(MINUS_IM_ROWS) + ["0.4 0.41 0.42 0.43 0.44 -0.04 0.05 0.06 abc 0.08",
                                  "0.5 0.51"]
    p = _matrix(tmp_path, rows)
    with pytest.raises(InputFormatError, match="not a number") as e:
        open_source(p).read()
    assert (e.value.code, e.value.row, e.value.found) == ("not_numeric", 4, "'abc'")
    assert e.value.column == "column 9 (imaginary part at 1 Hz)"
    p2 = _matrix(tmp_path / "two", list(MINUS_IM_ROWS) + ["0.5 0.51"])
    with pytest.raises(InputFormatError, match="wrong number of values") as e:
        open_source(p2).read()
    assert (e.value.code, e.value.row) == ("field_count", 4)
    assert e.value.found == "2 values ['0.5', '0.51']"  # the count and what the line holds
    src = open_source(p, on_error="skip-row")
    df = src.read()
    assert df["measurement_id"].drop_duplicates().tolist() == ["row 1", "row 2", "row 3"]
    skipped = _codes(src)["row_skipped"]
    assert skipped.count == 2


def test_detection_leaves_other_layouts_alone(tmp_path):
    # eis_text (3–8 columns: f, Z′, −Z″) keeps its files
    f = np.logspace(3, -1, 9)
    eis3 = _write(tmp_path / "eis3.txt", [f"{x:g}\t{0.1 + 0.01 * i:g}\t{0.01 * i:g}"
                                          for i, x in enumerate(f)])
    assert detect(eis3) == "eis_text"
    # odd column count, a negative or constant real half: not spectra
    for name, row in (("odd.txt", "0.1 0.2 0.3 0.4 0.5 0.01 0.02 0.03 0.04 0.05 0.06"),
                      ("neg.txt", "-0.1 0.2 0.3 0.4 0.5 0.01 0.02 0.03 0.04 0.05"),
                      ("flat.txt", "3.6 3.6 3.6 3.6 3.6 4 4 4 4 4")):
        with pytest.raises(Exception, match="unknown file format"):
            detect(_write(tmp_path / name, [row] * 3))
    # a list of cycle lives (jumps of ~25 %) is not one cell's capacity trajectory
    with pytest.raises(Exception, match="unknown file format"):
        detect(_write(tmp_path / "lives.txt", ["2160", "1434", "1074", "870", "788"]))


def test_warburg_cli_one_fit_per_row(tmp_path, capsys):
    """Pure Warburg + series resistance, Z = 0.05 + A_w (1 − j)/√ω: A_w comes back per row."""
    f = np.logspace(3, -2, 26)
    w = 2 * np.pi * f
    rows = []
    for aw in (0.1, 0.2):
        z = 0.05 + aw * (1 - 1j) / np.sqrt(w)
        rows.append(" ".join(f"{v:.8g}" for v in np.concatenate([z.real, -z.imag])))
    p = _write(tmp_path / "m" / "spectra.txt", rows)
    _write(tmp_path / "freq.csv", [f"{x:.8g}" for x in f])
    code = main(["warburg", "--eis", str(p), "--frequencies", str(tmp_path / "freq.csv"),
                 "--eis-every-cycles", "5", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    items = json.loads(out)
    assert [i["measurement_id"] for i in items] == ["row 1", "row 2"]
    assert [i["cycle_count"] for i in items] == [5, 10]
    assert all(i["ok"] for i in items)
    assert [i["aw_ohm_per_sqrt_s"] for i in items] == pytest.approx([0.1, 0.2], rel=0.02)
    assert "eis_imaginary_sign_flipped" in err


def test_ingest_stores_spectra_with_the_frequency_file(tmp_path, _isolated_home):
    from data_registry.store import Registry

    p = _matrix(tmp_path / "data")
    with Registry() as reg:
        report = reg.ingest(p, "c1", reader_options={"eis_every_cycles": 3})
        eis = reg.load_eis("c1")
        files = reg.cell("c1")["files"]
    assert len(eis) == 15 and sorted(eis["cycle_count"].unique().tolist()) == [3, 6, 9]
    assert files[0]["companions"], files[0]
    assert {w.code for w in report.warnings} >= {"eis_imaginary_sign_flipped",
                                                  "eis_frequencies_found"}
    for bad in (0, 2.5, "x"):
        with Registry() as reg, pytest.raises(StoreError, match="is not valid"):
            reg.ingest(p, "c2", reader_options={"eis_every_cycles": bad})


def test_cli_flags_and_ingest_description():
    parser = build_parser()
    args = parser.parse_args(["ingest", "x.txt", "--cell-id", "c", "--frequencies", "f.csv",
                              "--eis-every-cycles", "2"])
    assert (args.frequencies, args.eis_every_cycles) == ("f.csv", 2)
    args = parser.parse_args(["warburg", "--eis", "x.txt", "--frequencies", "f.csv"])
    assert args.frequencies == "f.csv"
    ingest = parser._subparsers._group_actions[0].choices["ingest"]
    assert "ONE cell" not in ingest.description and "--cell-column" in ingest.description


# --- capacity list ---------------------------------------------------------------------------

def test_capacity_list_mah_inferred_and_warned(tmp_path):
    p = _write(tmp_path / "cap.txt", ["37.2", "36.2", "35.6"])
    assert detect(p) == "capacity_list_txt"
    src = open_source(p, protocol_hours_per_cycle=2)
    assert (src.format_name, src.kind) == ("capacity_list_txt", "cycles")
    df = src.read()
    assert df["cycle_index"].tolist() == [1, 2, 3]  # the 1-based line number
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([0.0372, 0.0362, 0.0356])
    assert df["test_time_second"].tolist() == [7200.0, 14400.0, 21600.0]
    assert df["test_time_estimated"].tolist() == [1, 1, 1]
    w = _codes(src)["capacity_unit_inferred"]
    assert w.details["unit"] == "mAh" and w.details["median"] == pytest.approx(36.2)


def test_capacity_list_ah_is_warned_too_and_stated_unit_is_not(tmp_path):
    p = _write(tmp_path / "cap.txt", ["1.10", "1.09", "1.08"])
    src = open_source(p, c_rate=0.5)  # 2 / 0.5 = 4 h per cycle
    df = src.read()
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([1.10, 1.09, 1.08])
    assert df["test_time_second"].tolist() == [14400.0, 28800.0, 43200.0]
    assert _codes(src)["capacity_unit_inferred"].details["unit"] == "Ah"
    src = open_source(p, protocol_hours_per_cycle=1, capacity_unit="mAh")
    assert src.read()["discharge_capacity_ah"].tolist() == pytest.approx([0.0011, 0.00109,
                                                                          0.00108])
    assert "capacity_unit_inferred" not in _codes(src)


def test_capacity_list_without_a_clock_is_refused(tmp_path):
    p = _write(tmp_path / "cap.txt", ["37.2", "36.2", "35.6"])
    with pytest.raises(ValidationError, match="--hours-per-cycle H or --c-rate C") as e:
        open_source(p)
    assert (e.value.code, e.value.file, e.value.column) == ("missing_column", "cap.txt",
                                                            "test_time_second")


def test_capacity_list_blank_line_keeps_cycle_numbers_and_two_columns(tmp_path):
    p = _write(tmp_path / "gap.txt", ["1.10", "", "1.08", "1.07"])
    assert open_source(p, protocol_hours_per_cycle=1).read()["cycle_index"].tolist() == [1, 3, 4]
    two = _write(tmp_path / "two.txt", ["1 1.10", "51 1.08", "101 1.06"])
    df = open_source(two, protocol_hours_per_cycle=1, capacity_unit="Ah").read()
    assert df["cycle_index"].tolist() == [1, 51, 101]
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([1.10, 1.08, 1.06])
    comma = _write(tmp_path / "comma.txt", ["37,2", "36,2", "35,6"])
    df = open_source(comma, protocol_hours_per_cycle=1, capacity_unit="mAh").read()
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([0.0372, 0.0362, 0.0356])


def test_capacity_list_under_one_capacity_header(tmp_path):
    p = _write(tmp_path / "q.txt", ["Capacity (mAh)", "37.2", "36.2", "35.6"])
    src = open_source(p, protocol_hours_per_cycle=1)
    df = src.read()
    assert df["cycle_index"].tolist() == [1, 2, 3] and df["source_row"].tolist() == [2, 3, 4]
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([0.0372, 0.0362, 0.0356])
    assert "capacity_unit_inferred" not in _codes(src)  # the header names mAh
    with pytest.raises(Exception, match="unknown file format"):  # not a capacity header
        detect(_write(tmp_path / "v.txt", ["voltage", "3.20", "3.21", "3.22"]))


def test_capacity_list_bad_line(tmp_path):
    p = _write(tmp_path / "cap.txt", ["37.2", "36.2", "35.6", "35.1 x"])
    with pytest.raises(InputFormatError, match="wrong number of values") as e:
        open_source(p, protocol_hours_per_cycle=1).read()
    assert (e.value.file, e.value.row, e.value.code) == ("cap.txt", 4, "field_count")


def test_capacity_list_nan_line_is_named_not_unrecognised(tmp_path):
    p = _write(tmp_path / "cap.txt", ["37.2", "36.9", "36.5", "nan", "36.1", "35.9"])
    with pytest.raises(InputFormatError, match="non-finite") as e:
        open_source(p, protocol_hours_per_cycle=1).read()
    assert (e.value.row, e.value.code) == (4, "not_finite")


# --- the real files (Zhang et al. 2020) ------------------------------------------------------

@pytest.fixture
def zhang(shared_data) -> Path:
    return shared_data / "zhang2020_eis"


def test_zhang_25c01_matrix_equals_the_source_loader(zhang):
    from ml.features.warburg import warburg_table
    from ml.sources.zhang2020 import read_frequencies as source_frequencies
    from ml.sources.zhang2020 import read_spectra

    p = zhang / "per_cell" / "EIS_data_25C01.txt"
    src = open_source(p, eis_every_cycles=2)
    df = src.read()
    assert len(df) == 261 * 60
    assert df["z_real_ohm"].iloc[0] == pytest.approx(0.3847)
    assert df["z_imag_ohm"].iloc[0] == pytest.approx(0.03513)  # file: −Im(Z) = −0.035130
    assert src.companions == [zhang / "frequencies_hz.csv"]
    ref = read_spectra(p, source_frequencies(zhang / "frequencies_hz.csv"), "25C01")
    assert df["z_imag_ohm"].to_numpy() == pytest.approx(ref["z_imag_ohm"].to_numpy())
    ours = warburg_table(df)
    theirs = warburg_table(ref)
    assert ours["aw_ohm_per_sqrt_s"].to_numpy() == pytest.approx(
        theirs["aw_ohm_per_sqrt_s"].to_numpy())
    aw = ours["aw_ohm_per_sqrt_s"].to_numpy()
    assert ours["ok"].all() and len(aw) == 261
    assert aw[0] == pytest.approx(0.0836, abs=5e-4)
    assert 0.08 < np.median(aw[:20]) < 0.10 and 0.13 < np.median(aw[-20:]) < 0.16
    assert ours["cycle_count"].iloc[[0, -1]].tolist() == [2, 522]


def test_zhang_25c01_capacity_list_forecasts(zhang, capsys):
    if not (PRODUCTION / "model.onnx").is_file():
        pytest.skip("models/production is absent from this checkout")
    p = zhang / "per_cell" / "Capacity_data_25C01.txt"
    df = open_source(p, protocol_hours_per_cycle=2, capacity_unit="mAh").read()
    assert len(df) == 350 and df["cycle_index"].iloc[-1] == 350
    assert df["discharge_capacity_ah"].iloc[0] == pytest.approx(0.03720271)
    code = main(["forecast", "--cycles", str(p), "--capacity-unit", "mAh", "--hours-per-cycle",
                 "2", "--horizon-cycles", "50", "--model", str(PRODUCTION), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert [r["cycle_index"] for r in doc["forecast"]] == list(range(351, 401))
