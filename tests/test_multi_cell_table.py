"""Tables of MANY cells in one file (a ``cell_name`` / ``cell_id`` / ``Channel`` column): never
merged into one cell; refused with the command that splits them, or split with
``--cell-column`` into one registered cell per value, all or nothing, the raw file kept once.

Every expectation below is counted by hand from the CSV text written in the test.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from data_registry.cell_ids import cell_id_from_label
from data_registry.errors import InputFormatError, StoreError, ValidationError
from data_registry.readers import open_source
from data_registry.store import Registry
from serving.cli import main

# three cells, sorted by cell; header = line 1, so A is on lines 2-4, B on 5-6, C on 7
THREE = """cell_id,cycle_index,test_time_second,discharge_capacity_ah
A,1,3600,1.00
A,2,7200,0.99
A,3,10800,0.98
B,1,3600,2.00
B,2,7200,1.95
C,1,1800,3.00
"""
# two cells interleaved (sorted by cycle across cells), a header with blanks and units
INTERLEAVED = """Cell Name,Cycle,Time (h),Capacity (mAh)
x1,1,1,1000
x2,1,1.5,2000
x1,2,2,990
x2,2,3,1980
x1,3,3,980
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _raw_files(home: Path) -> list[Path]:
    return [p for p in (home / "raw").rglob("*") if p.is_file() and p.parent.name != "tmp"]


def _parts(home: Path) -> list[Path]:
    return list((home / "tables").rglob("*.parquet")) if (home / "tables").exists() else []


# --- refusal: never merged --------------------------------------------------------------------

def test_refused_with_file_column_count_ids_and_command(tmp_path, capsys, _isolated_home):
    path = _write(tmp_path, "lot.csv", THREE)
    code, out, err = _run(capsys, "ingest", path, "--cell-id", "lot", "--no-progress")
    assert code == 2 and out == ""
    line = err.strip()
    assert line.startswith("fadecast ingest: error: lot.csv:5 column 'cell_id': ")  # first B row
    assert "the file holds 3 cells told apart by column 'cell_id' ('A', 'B', 'C')" in line
    assert f"fadecast ingest {path} --cell-column cell_id --cell-id PREFIX" in line
    assert "--cell-column cell_id --cell-value A --cell-id ID" in line
    assert "\n" not in line
    with Registry() as reg:
        assert reg.cells() == []
    assert _raw_files(_isolated_home) == [] and _parts(_isolated_home) == []


def test_refusal_past_the_head_is_found_while_reading(tmp_path):
    """450 rows of cell A (lines 2-451: more than the 400-line head), then B on line 452."""
    rows = [f"A,{k},{3600 * k},1.0" for k in range(1, 451)] + ["B,1,3600,2.0", "B,2,7200,1.9"]
    path = _write(tmp_path, "long.csv", "cell,cycle_index,test_time_second,"
                  "discharge_capacity_ah\n" + "\n".join(rows) + "\n")
    with Registry() as reg, pytest.raises(ValidationError) as exc:
        reg.ingest(path, "long")
    assert exc.value.code == "several_cells" and exc.value.row == 452
    assert "2 cells told apart by column 'cell' ('A', 'B')" in exc.value.message
    with Registry() as reg:
        assert reg.cells() == []


# --- splitting ----------------------------------------------------------------------------------

def test_split_three_cells_hand_counted(tmp_path, _isolated_home):
    path = _write(tmp_path, "lot.csv", THREE)
    with Registry() as reg:
        table = reg.ingest_table(path, "cell_id", "lot-")
        assert [r.cell_id for r in table.cells] == ["lot-A", "lot-B", "lot-C"]
        assert [r.rows for r in table.cells] == [3, 2, 1]
        assert table.values == {"lot-A": "A", "lot-B": "B", "lot-C": "C"}
        a, b, c = (reg.load_cycles(x) for x in ("lot-A", "lot-B", "lot-C"))
        assert a["cycle_index"].tolist() == [1, 2, 3]
        assert a["discharge_capacity_ah"].tolist() == [1.00, 0.99, 0.98]
        assert b["cycle_index"].tolist() == [1, 2]
        assert b["discharge_capacity_ah"].tolist() == [2.00, 1.95]
        assert b["test_time_second"].tolist() == [3600.0, 7200.0]
        assert c["cycle_index"].tolist() == [1] and c["discharge_capacity_ah"].tolist() == [3.0]
        lineage = {f["cell_id"]: f for f in reg.lineage("cell:lot-B")}
        info = reg.cell("lot-B")["files"][0]
        assert info["source_metadata"]["cell_column"] == "cell_id"
        assert info["source_metadata"]["cell_value"] == "B"
        assert info["source_metadata"]["cell_rows"] == 2
        assert info["source_metadata"]["other_cell_rows"] == 4
        assert lineage["lot-B"]["original_path"] == str(path)
        shas = {reg.cell(x)["files"][0]["raw_sha256"] for x in ("lot-A", "lot-B", "lot-C")}
    assert len(shas) == 1 and len(_raw_files(_isolated_home)) == 1  # the raw file, kept once
    raw = _raw_files(_isolated_home)[0]
    assert raw.read_text(encoding="utf-8") == THREE  # verbatim


def test_split_again_changes_nothing_and_another_prefix_is_refused(tmp_path, _isolated_home):
    path = _write(tmp_path, "lot.csv", THREE)
    with Registry() as reg:
        reg.ingest_table(path, "cell_id", "lot-")
        again = reg.ingest_table(path, "cell_id", "lot-")
        assert again.already_present and [r.rows for r in again.cells] == [0, 0, 0]
        with pytest.raises(StoreError) as exc:
            reg.ingest_table(path, "cell_id", "other-")
        assert exc.value.code == "duplicate_content"
        assert "cell 'other-A' (cell_id = 'A')" in exc.value.message
        assert sorted(c["cell_id"] for c in reg.cells()) == ["lot-A", "lot-B", "lot-C"]
    assert len(_raw_files(_isolated_home)) == 1


def test_interleaved_rows_small_chunks(tmp_path):
    """Rows sorted by cycle across cells; chunks of 2 rows so every chunk mixes both cells."""
    path = _write(tmp_path, "mixed.csv", INTERLEAVED)
    with Registry(chunk_rows=2) as reg:
        table = reg.ingest_table(path, None, "")  # the column found by its header: 'Cell Name'
        assert table.cell_column == "Cell Name"
        assert [(r.cell_id, r.rows) for r in table.cells] == [("x1", 3), ("x2", 2)]
        x1, x2 = reg.load_cycles("x1"), reg.load_cycles("x2")
    assert x1["cycle_index"].tolist() == [1, 2, 3]
    assert x1["discharge_capacity_ah"].tolist() == pytest.approx([1.0, 0.99, 0.98])  # mAh → Ah
    assert x1["test_time_second"].tolist() == [3600.0, 7200.0, 10800.0]  # h → s
    assert x2["cycle_index"].tolist() == [1, 2]
    assert x2["discharge_capacity_ah"].tolist() == pytest.approx([2.0, 1.98])
    assert x2["test_time_second"].tolist() == [5400.0, 10800.0]


def test_one_bad_cell_stores_nothing(tmp_path, _isolated_home):
    """Cell B's cycle goes back from 2 to 1 (line 6): A and C are fine, but nothing is kept."""
    bad = THREE.replace("B,2,7200,1.95", "B,2,7200,1.95\nB,1,9000,1.90")
    path = _write(tmp_path, "bad.csv", bad)
    with Registry() as reg, pytest.raises(ValidationError) as exc:
        reg.ingest_table(path, "cell_id", "lot-")
    assert "cell 'lot-B' (cell_id = 'B')" in exc.value.message and exc.value.row == 7
    with Registry() as reg:
        assert reg.cells() == [] and reg.datasets() == []
    assert _raw_files(_isolated_home) == [] and _parts(_isolated_home) == []
    tmp = _isolated_home / "raw" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_cli_split_json_is_one_document(tmp_path, capsys):
    path = _write(tmp_path, "lot.csv", THREE)
    code, out, err = _run(capsys, "ingest", path, "--cell-column", "cell_id", "--cell-id",
                          "lot-", "--no-progress", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["cell_count"] == 3 and doc["rows"] == 6 and doc["cell_column"] == "cell_id"
    assert [(c["cell_id"], c["cell_value"], c["rows"]) for c in doc["cells"]] == [
        ("lot-A", "A", 3), ("lot-B", "B", 2), ("lot-C", "C", 1)]
    assert "lot.csv: 3 cells in column 'cell_id', 3 stored, 0 already present, 6 rows" in err


def test_cli_cell_value_stores_one_cell(tmp_path, capsys):
    path = _write(tmp_path, "lot.csv", THREE)
    code, _, err = _run(capsys, "ingest", path, "--cell-column", "cell_id", "--cell-value", "B",
                        "--cell-id", "only-b", "--no-progress")
    assert code == 0, err
    with Registry() as reg:
        assert [c["cell_id"] for c in reg.cells()] == ["only-b"]
        assert reg.load_cycles("only-b")["discharge_capacity_ah"].tolist() == [2.00, 1.95]
    code, _, err = _run(capsys, "ingest", path, "--cell-column", "cell_id", "--cell-value", "Z",
                        "--cell-id", "z", "--no-progress")
    assert code == 2
    assert "no row has cell_id = 'Z' (expected one of its 3 values: 'A', 'B', 'C'" in err


def test_samples_table_split_by_channel(tmp_path):
    """Per-sample rows of two channels, interleaved sample by sample."""
    text = ("Channel,test_time_second,voltage_volt,current_ampere,cycle_count\n"
            "1,0,3.0,0.5,1\n2,0,3.1,0.2,1\n1,10,3.2,0.5,1\n2,10,3.3,0.2,1\n1,20,3.4,0.5,1\n")
    path = _write(tmp_path, "two_channels.csv", text)
    with Registry() as reg:
        table = reg.ingest_table(path, "channel", "ch")  # header matched case-insensitively
        assert [(r.cell_id, r.rows) for r in table.cells] == [("ch1", 3), ("ch2", 2)]
        ch1, ch2 = reg.load_samples("ch1"), reg.load_samples("ch2")
    assert ch1["voltage_volt"].tolist() == [3.0, 3.2, 3.4]
    assert ch1["source_row"].tolist() == [2, 4, 6]  # lines of the raw file
    assert ch2["current_ampere"].tolist() == [0.2, 0.2]
    assert ch2["source_row"].tolist() == [3, 5]


def test_eis_table_split_keeps_spectrum_ids_aligned(tmp_path):
    """Two cells' spectra interleaved row by row: each cell keeps its own three points."""
    text = ("cell_id,measurement_id,frequency_hz,z_real_ohm,z_imag_ohm\n"
            "c1,m1,1000,0.010,-0.001\nc2,m9,1000,0.020,-0.002\n"
            "c1,m1,100,0.012,-0.003\nc2,m9,100,0.022,-0.004\n"
            "c1,m1,10,0.015,-0.005\nc2,m9,10,0.025,-0.006\n")
    path = _write(tmp_path, "spectra.csv", text)
    with Registry() as reg:
        table = reg.ingest_table(path, "cell_id", "e-")
        assert [(r.cell_id, r.rows) for r in table.cells] == [("e-c1", 3), ("e-c2", 3)]
        c2 = reg.load_eis("e-c2")
    assert c2["measurement_id"].tolist() == ["m9", "m9", "m9"]
    assert c2["frequency_hz"].tolist() == [1000.0, 100.0, 10.0]
    assert c2["z_real_ohm"].tolist() == [0.020, 0.022, 0.025]


def test_numeric_channel_is_not_a_capacity_column(tmp_path):
    """A capacity table ``Channel,Cycle,Q1`` (any header): the channel is the cell, not a
    second capacity column."""
    text = "Channel,Cycle,Q1\n7,1,1.10\n7,2,1.08\n8,1,1.20\n8,2,1.17\n"
    path = _write(tmp_path, "channels.csv", text)
    with pytest.raises(ValidationError) as exc:
        open_source(path, protocol_hours_per_cycle=2.0)
    assert exc.value.code == "several_cells" and "('7', '8')" in exc.value.message
    src = open_source(path, protocol_hours_per_cycle=2.0, cell_column="Channel", cell_value="8")
    df = src.read()
    assert src.format_name == "capacity_table_csv"
    assert src.metadata["capacity_column"] == "Q1"
    assert src.metadata["capacity_columns"] == ["Q1"]
    assert df["discharge_capacity_ah"].tolist() == [1.20, 1.17]
    assert df["test_time_second"].tolist() == [7200.0, 14400.0]  # cycle × 2 h


def test_foreign_header_zelle(tmp_path):
    text = "Zelle;Zyklus;Zeit;Entladekapazität\nZ1;1;3600;2,5\nZ1;2;7200;2,4\nZ2;1;3600;2,6\n"
    path = _write(tmp_path, "zellen.csv", text)
    with pytest.raises(ValidationError) as exc:
        open_source(path)
    assert exc.value.code == "several_cells" and exc.value.column == "Zelle"
    with Registry() as reg:
        table = reg.ingest_table(path, None, "de-")
        assert [(r.cell_id, r.rows) for r in table.cells] == [("de-Z1", 2), ("de-Z2", 1)]
        assert reg.load_cycles("de-Z1")["discharge_capacity_ah"].tolist() == [2.5, 2.4]


# --- one cell: just ignored -----------------------------------------------------------------

def test_single_valued_cell_column_is_one_cell(tmp_path):
    text = THREE.replace("B,", "A,").replace("C,", "A,").splitlines()
    # cycles 1,2,3,1,2,1 would go back: keep the first three rows, all of cell A
    path = _write(tmp_path, "one.csv", "\n".join(text[:4]) + "\n")
    with Registry() as reg:
        report = reg.ingest(path, "my-cell")
        assert report.rows == 3
        assert "unknown_columns" not in [w.code for w in report.warnings]  # cell_id is known
        meta = reg.cell("my-cell")["files"][0]["source_metadata"]
        assert meta["cell_value"] == "A" and meta["other_cell_rows"] == 0
        # the same file under another id is still one file of one cell: refused as before
        with pytest.raises(StoreError) as exc:
            reg.ingest(path, "other")
        assert exc.value.code == "duplicate_content"


def test_row_counter_named_sample_is_not_a_cell(tmp_path):
    """``Sample`` holding 1 … 30 (every row distinct) is a row label, not 30 cells."""
    rows = [f"{k},{k},{3600 * k},{1.0 - 0.001 * k:.3f}" for k in range(1, 31)]
    path = _write(tmp_path, "counter.csv", "Sample,cycle_index,test_time_second,"
                  "discharge_capacity_ah\n" + "\n".join(rows) + "\n")
    with Registry() as reg:
        assert reg.ingest(path, "counted").rows == 30


# --- refusals of the split itself -----------------------------------------------------------

def test_blank_cell_and_colliding_ids_refused(tmp_path):
    blank = _write(tmp_path, "blank.csv", THREE.replace("B,2,", ",2,"))
    with Registry() as reg, pytest.raises(ValidationError) as exc:
        reg.ingest_table(blank, "cell_id", "lot-")
    assert exc.value.code == "blank_cell" and exc.value.row == 6
    clash = _write(tmp_path, "clash.csv", "cell,cycle_index,test_time_second,"
                   "discharge_capacity_ah\na b,1,3600,1.0\na_b,1,3600,1.0\n")
    with Registry() as reg, pytest.raises(ValidationError) as exc:
        reg.ingest_table(clash, "cell", "")
    assert exc.value.code == "cell_id_collision" and "'a b' and 'a_b'" in exc.value.message
    with Registry() as reg:
        assert reg.cells() == []


def test_cell_id_from_label():
    assert cell_id_from_label("lot-", "Cell 3/A") == "lot-Cell_3_A"
    assert cell_id_from_label("", "#5") == "5"
    assert cell_id_from_label("geslin-", "cell_003") == "geslin-cell_003"
    with pytest.raises(StoreError):
        cell_id_from_label("", "x" * 200)


def test_vendor_file_cannot_be_split(test_data, tmp_path):
    """--cell-column is for generic tables; a vendor export is one cell per file."""
    arbin = next((test_data / "tolerance").glob("arbin_gitt_glitch.csv"))
    with Registry() as reg, pytest.raises(InputFormatError) as exc:
        reg.ingest_table(arbin, "Channel", "x")
    assert exc.value.code == "not_cell_table" and "arbin" in exc.value.message


# --- the real file: Geslin et al. 2024, 77 cells in one diagnostics table --------------------

def test_geslin_diagnostics_split(shared_data, _isolated_home):
    path = shared_data / "geslin2024" / "diagnostics.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected: dict[str, list[dict]] = {}
    for r in rows:
        expected.setdefault(r["cell_name"], []).append(r)
    with Registry() as reg, pytest.raises(ValidationError) as exc:
        reg.ingest(path, "geslin")
    assert exc.value.code == "several_cells"
    assert f"the file holds {len(expected)} cells told apart by column 'cell_name'" \
        in exc.value.message
    with Registry() as reg:
        table = reg.ingest_table(path, "cell_name", "geslin-",
                                 reader_options={"capacity_column": "capacity_normalized",
                                                 "c_rate": 0.5})
        assert len(table.cells) == len(expected) == 77
        assert sum(r.rows for r in table.cells) == len(rows) == 1590
        assert {r.cell_id: r.rows for r in table.cells} == {
            f"geslin-{k}": len(v) for k, v in expected.items()}
        first = reg.load_cycles("geslin-cell_003")
    want = expected["cell_003"]
    assert first["cycle_index"].tolist() == [int(float(r["cycle_index"])) for r in want]
    assert first["discharge_capacity_ah"].tolist() == pytest.approx(
        [float(r["capacity_normalized"]) for r in want])
    assert len(_raw_files(_isolated_home)) == 1


# --- hundreds of cells interleaved row by row (the head's values all look distinct) ----------

def _interleaved_300(tmp_path: Path) -> Path:
    """Cells c001 … c300, rows sorted by cycle then cell: cycle 1 and 2 for every cell, cycle 3
    for c001 … c100 only (700 rows). The 400-line head holds 399 rows: 300 + 99 distinct
    values, so the head alone cannot tell cells from row labels."""
    rows = [f"c{k:03d},{cyc},{3600 * cyc},{1.0 - 0.01 * cyc:.2f}"
            for cyc in (1, 2, 3) for k in range(1, 301) if cyc < 3 or k <= 100]
    return _write(tmp_path, "many.csv", "cell_name,cycle_index,test_time_second,"
                  "discharge_capacity_ah\n" + "\n".join(rows) + "\n")


def test_300_interleaved_cells_refused_as_several_cells(tmp_path, capsys):
    path = _interleaved_300(tmp_path)
    code, out, err = _run(capsys, "ingest", path, "--cell-id", "lot", "--no-progress")
    assert code == 2 and out == ""
    assert "many.csv:3 column 'cell_name'" in err  # c002 on line 3
    assert "the file holds 300 cells told apart by column 'cell_name' ('c001', 'c002', " \
        "'c003', 'c004', 'c005', … (295 more))" in err
    assert "cycle_index must increase" not in err
    with Registry() as reg:
        assert reg.cells() == []


def test_300_interleaved_cells_split(tmp_path, capsys):
    path = _interleaved_300(tmp_path)
    code, out, err = _run(capsys, "ingest", path, "--cell-column", "cell_name", "--cell-id",
                          "m-", "--no-progress", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["cell_count"] == 300 and doc["rows"] == 700
    rows = {c["cell_id"]: c["rows"] for c in doc["cells"]}
    assert rows == {f"m-c{k:03d}": 3 if k <= 100 else 2 for k in range(1, 301)}
    with Registry() as reg:
        c100, c101 = reg.load_cycles("m-c100"), reg.load_cycles("m-c101")
    assert c100["cycle_index"].tolist() == [1, 2, 3]
    assert c100["test_time_second"].tolist() == [3600.0, 7200.0, 10800.0]
    assert c100["discharge_capacity_ah"].tolist() == pytest.approx([0.99, 0.98, 0.97])
    assert c101["cycle_index"].tolist() == [1, 2]
    assert c101["discharge_capacity_ah"].tolist() == pytest.approx([0.99, 0.98])


def test_long_sample_counter_is_not_a_cell_column(tmp_path):
    """``Sample`` 1 … 1000 (every value distinct, past the 400-line head): a row label."""
    from data_registry.readers.cell_column import detect_cell_column
    from data_registry.readers.source import layout_from_head
    from data_registry.readers.sniff import read_head

    rows = [f"{k},{k},{3600 * k},{1.0 - 0.0001 * k:.4f}" for k in range(1, 1001)]
    path = _write(tmp_path, "counter.csv", "Sample,cycle_index,test_time_second,"
                  "discharge_capacity_ah\n" + "\n".join(rows) + "\n")
    head = read_head(path)
    layout, _ = layout_from_head(head, 0)
    assert detect_cell_column(head, layout) is None
    with Registry() as reg:
        assert reg.ingest(path, "counted").rows == 1000


def test_table_is_parsed_once_for_all_cells(tmp_path, monkeypatch):
    """Three cells, chunks of 2 rows: one parse of the file feeds every cell (not one per
    cell), and each cell still gets exactly its own rows and counts."""
    import data_registry.multi_cell as multi_cell
    import data_registry.readers.source as source

    opened = []
    original = source.stream_records

    def counting(path, layout, **kw):
        opened.append(Path(path).name)
        return original(path, layout, **kw)

    # every way a reader can open the file: the table's one parse and a cell's own stream
    monkeypatch.setattr(multi_cell, "stream_records", counting)
    monkeypatch.setattr(source, "stream_records", counting)
    path = _write(tmp_path, "lot.csv", THREE)
    with Registry(chunk_rows=2) as reg:
        table = reg.ingest_table(path, "cell_id", "p-")
        assert [r.rows for r in table.cells] == [3, 2, 1]
        meta = reg.cell("p-C")["files"][0]["source_metadata"]
        assert reg.load_cycles("p-C")["discharge_capacity_ah"].tolist() == [3.0]
    assert opened == ["lot.csv"]
    assert meta["cell_rows"] == 1 and meta["other_cell_rows"] == 5
