"""Registry store: raw files verbatim, Parquet parts per cell, continuation, duplicates, datasets.

The fixture cell (tests/data/store, made by make_fixtures.py): 0.1 Ah at 1C, 3 cycles of
130 one-minute samples (60 charge + 5 rest + 60 discharge + 5 rest) = 390 rows, t = 60 … 23400 s.
"""
from __future__ import annotations

import hashlib
import os
import stat

import pandas as pd
import pyarrow.parquet as pq
import pytest

from data_registry.errors import InputFormatError, NotFoundError, StoreError, ValidationError
from data_registry.store import Registry


@pytest.fixture
def store_data(test_data):
    return test_data / "store"


@pytest.fixture
def reg(_isolated_home):
    r = Registry()
    yield r
    r.close()


def _files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _table_files(reg):
    return [p for p in _files_under(reg.home) if p.startswith(("tables/", "raw/"))]


def test_ingest_stores_rows_raw_file_and_lineage(reg, store_data):
    src = store_data / "cell_full.csv"
    report = reg.ingest(src, "cellA", meta={"active_mass_g": "0.0123", "chemistry": "LFP"})
    assert report.rows == 390 and not report.already_present
    assert report.files[0].kind == "samples" and report.files[0].format_name == "generic_csv"
    assert report.files[0].time_start_second == 60.0
    assert report.files[0].time_end_second == 23400.0

    df = reg.load_samples("cellA")
    assert len(df) == 390
    assert (df["cell_id"] == "cellA").all()
    assert df["test_time_second"].iloc[[0, -1]].tolist() == [60.0, 23400.0]
    assert df["source_row"].iloc[[0, -1]].tolist() == [2, 391]  # header is line 1
    raw = pd.read_csv(src)
    pd.testing.assert_series_equal(df["voltage_volt"], raw["voltage_volt"])
    assert df["discharging_capacity_ah"].max() == pytest.approx(0.1, abs=1e-8)
    # optional columns the file did not have are absent, not all-NaN
    assert "internal_resistance_ohm" not in df.columns

    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert report.files[0].sha256 == sha
    kept = reg.raw_path(sha)
    assert kept.read_bytes() == src.read_bytes()
    assert not os.stat(kept).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)

    info = reg.cell("cellA")
    assert info["metadata"] == {"active_mass_g": 0.0123, "chemistry": "LFP"}
    assert info["active_mass_g"] == 0.0123 and info["chemistry"] == "LFP"
    f = info["files"][0]
    assert (f["raw_sha256"], f["reader_version"], f["schema_version"]) == (sha, "1", "1")
    assert f["cycle_first"] == 1 and f["cycle_last"] == 3 and f["rows"] == 390
    assert reg.cells()[0]["sample_rows"] == 390
    assert [d["name"] for d in reg.datasets()] == ["cell:cellA"]
    assert report.dataset.version == reg.datasets()[0]["version"]


def test_reingest_same_file_is_a_noop(reg, store_data):
    first = reg.ingest(store_data / "cell_full.csv", "cellA")
    before = _table_files(reg)
    again = reg.ingest(store_data / "cell_full.csv", "cellA")
    assert again.already_present and again.rows == 0
    assert again.dataset.version == first.dataset.version
    assert "already ingested (sha256" in again.notes[0]
    assert _table_files(reg) == before
    assert len(reg.load_samples("cellA")) == 390
    assert len(reg.datasets()) == 1


def test_same_content_under_another_cell_is_refused(reg, store_data):
    reg.ingest(store_data / "cell_full.csv", "cellA")
    with pytest.raises(StoreError, match=r"already ingested as cell 'cellA'.*as cell 'cellB'") as e:
        reg.ingest(store_data / "cell_full.csv", "cellB")
    assert e.value.code == "duplicate_content"
    assert [c["cell_id"] for c in reg.cells()] == ["cellA"]


@pytest.mark.parametrize("one_call", [False, True])
def test_continuation_split_file_equals_whole_file(reg, store_data, one_call):
    parts = [store_data / "cell_part1.csv", store_data / "cell_part2.csv"]
    if one_call:
        reg.ingest(parts, "split")
    else:
        v1 = reg.ingest(parts[0], "split").dataset.version
        v2 = reg.ingest(parts[1], "split").dataset.version
        assert v1 != v2
    reg.ingest(store_data / "cell_full.csv", "whole")
    split = reg.load_samples("split").drop(columns=["cell_id", "source_row"])
    whole = reg.load_samples("whole").drop(columns=["cell_id", "source_row"])
    pd.testing.assert_frame_equal(split, whole)
    assert reg.cell("split")["time_end_second"] == 23400.0
    assert [f["rows"] for f in reg.cell("split")["files"]] == [195, 195]


def test_continuation_going_back_in_time_is_an_error(reg, store_data):
    reg.ingest(store_data / "cell_part2.csv", "cellA")
    before = _table_files(reg)
    with pytest.raises(StoreError, match=r"goes back in time.*end at test_time_second=23400") as e:
        reg.ingest(store_data / "cell_part1.csv", "cellA")
    err = e.value
    assert (err.code, err.column, err.row) == ("continuation_overlap", "test_time_second", 2)
    assert err.file.endswith("cell_part1.csv")
    assert "(expected > 23400, found 60)" in str(err)
    assert _table_files(reg) == before
    assert len(reg.load_samples("cellA")) == 195


def test_overlapping_continuation_is_an_error(reg, store_data, tmp_path):
    reg.ingest(store_data / "cell_part1.csv", "cellA")
    full = pd.read_csv(store_data / "cell_full.csv")
    overlap = tmp_path / "overlap.csv"
    full.iloc[190:].to_csv(overlap, index=False)  # starts 5 rows before part 1 ends
    with pytest.raises(StoreError, match="goes back in time") as e:
        reg.ingest(overlap, "cellA")
    assert e.value.found == f"{full['test_time_second'].iloc[190]:g}"
    assert len(reg.load_samples("cellA")) == 195


def test_conflicting_metadata_names_both_values(reg, store_data):
    reg.ingest(store_data / "cell_part1.csv", "cellA", meta={"active_mass_g": "0.5"})
    with pytest.raises(StoreError, match=r"active_mass_g=0.5.*to 0.6") as e:
        reg.ingest(store_data / "cell_part2.csv", "cellA", meta=[("active_mass_g", "0.6")])
    assert e.value.code == "conflicting_metadata" and e.value.column == "active_mass_g"
    assert len(reg.load_samples("cellA")) == 195  # nothing of part 2 stored
    # identical metadata (written differently) is fine, a new key is added
    reg.ingest(store_data / "cell_part2.csv", "cellA",
               meta={"active_mass_g": "0.50", "protocol": "1C"})
    assert reg.cell_metadata("cellA") == {"active_mass_g": 0.5, "protocol": "1C"}


def test_bad_metadata_value_is_refused(reg, store_data):
    with pytest.raises(StoreError, match=r"expected a float in \(0, 1e\+06\), found 'heavy'"):
        reg.ingest(store_data / "cell_full.csv", "cellA", meta={"active_mass_g": "heavy"})
    assert reg.cells() == []


def test_failed_ingest_leaves_registry_unchanged(reg, store_data, tmp_path):
    reg.ingest(store_data / "cell_full.csv", "cellA")
    before = _table_files(reg)
    bad = tmp_path / "bad.csv"
    lines = (store_data / "cell_part2.csv").read_text().splitlines()
    lines[150] = lines[150].replace(lines[150].split(",")[1], "n/a", 1)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises((ValidationError, InputFormatError)) as e:
        # one call, two files: the good first file must not be stored either
        reg.ingest([store_data / "cell_part1.csv", bad], "cellB", chunk_rows=50)
    assert e.value.file.endswith("bad.csv")
    assert _table_files(reg) == before
    assert [c["cell_id"] for c in reg.cells()] == ["cellA"]
    assert not list((reg.home / "raw" / "tmp").iterdir())


def test_missing_file_is_a_clear_error(reg, tmp_path):
    with pytest.raises(InputFormatError, match=r"nope.csv: no such file") as e:
        reg.ingest(tmp_path / "nope.csv", "cellA")
    assert e.value.code == "file_not_found"


def test_chunked_writing_gives_the_same_table(reg, store_data):
    reg.ingest(store_data / "cell_full.csv", "small_chunks", chunk_rows=50)
    reg2 = Registry(reg.home / "other")
    reg2.ingest(store_data / "cell_full.csv", "big_chunks", chunk_rows=10_000)
    a = reg.load_samples("small_chunks").drop(columns="cell_id")
    b = reg2.load_samples("big_chunks").drop(columns="cell_id")
    pd.testing.assert_frame_equal(a, b)
    parts = list((reg.home / "tables" / "samples" / "cell=small_chunks").glob("*.parquet"))
    assert len(parts) == 1
    meta = pq.ParquetFile(parts[0]).metadata
    assert meta.num_rows == 390 and meta.num_row_groups >= 390 // 50  # written chunk by chunk
    reg2.close()


def test_eis_spectra_append_and_refuse_a_repeated_measurement(reg, store_data, tmp_path):
    reg.ingest(store_data / "eis_m1.csv", "cellE")
    reg.ingest(store_data / "eis_m2.csv", "cellE")
    eis = reg.load_eis("cellE")
    assert eis["measurement_id"].tolist() == ["m1"] * 8 + ["m2"] * 8
    assert eis["frequency_hz"].iloc[0] == 1000.0 and (eis["z_imag_ohm"] < 0).all()
    assert reg.cells()[0]["eis_rows"] == 16 and reg.cells()[0]["sample_rows"] == 0
    assert len(reg.load_samples("cellE")) == 0
    again = tmp_path / "m1_again.csv"
    again.write_text((store_data / "eis_m1.csv").read_text().replace("0.069815239", "0.0698"))
    with pytest.raises(StoreError, match="spectrum 'm1' is already stored") as e:
        reg.ingest(again, "cellE")
    assert e.value.column == "measurement_id"


def test_isolated_backward_row_warning_is_stored(reg, store_data, tmp_path):
    lines = (store_data / "cell_full.csv").read_text().splitlines()
    lines[100], lines[101] = lines[101], lines[100]  # one row out of order
    src = tmp_path / "swapped.csv"
    src.write_text("\n".join(lines) + "\n")
    report = reg.ingest(src, "cellW")
    assert report.rows == 389
    assert [w.code for w in report.warnings] == ["time_backwards_row"]
    stored = reg.cell("cellW")["files"][0]["warnings"]
    assert [w["code"] for w in stored] == ["time_backwards_row"]
    assert stored[0]["message"] == report.warnings[0].message


def test_datasets_are_immutable_content_versions(reg, store_data):
    reg.ingest(store_data / "cell_part1.csv", "cellA")
    reg.ingest(store_data / "eis_m1.csv", "cellE")
    ref = reg.create_dataset("study", ["cellE", "cellA"])
    assert ref.cell_ids == ("cellA", "cellE") and len(ref.version) == 64
    assert reg.create_dataset("study", ["cellA", "cellE"]) == ref  # nothing changed
    reg.ingest(store_data / "cell_part2.csv", "cellA")
    ref2 = reg.create_dataset("study", ["cellA", "cellE"])
    assert ref2.version != ref.version
    # the first version still loads exactly what it froze
    assert len(reg.load_dataset("study", version=ref.short)) == 195
    assert len(reg.load_dataset("study")) == 390
    assert len(reg.load_dataset("study", kind="eis")) == 8
    lineage = reg.lineage("study", ref.version)
    assert [(x["cell_id"], x["kind"], x["format_name"], x["rows"]) for x in lineage] == [
        ("cellA", "samples", "generic_csv", 195), ("cellE", "eis", "generic_eis_csv", 8)]
    assert lineage[0]["raw_sha256"] == hashlib.sha256(
        (store_data / "cell_part1.csv").read_bytes()).hexdigest()
    assert len(reg.lineage("study")) == 3  # the latest version includes part 2
    study = [d for d in reg.datasets() if d["name"] == "study"]
    assert [d["latest"] for d in study] == [False, True]
    # the same content under the same name in another registry gets the same version
    other = Registry(reg.home / "other")
    other.ingest(store_data / "cell_part1.csv", "cellA")
    other.ingest(store_data / "eis_m1.csv", "cellE")
    assert other.create_dataset("study", ["cellA", "cellE"]).version == ref.version
    other.close()


def test_unknown_cell_suggests_close_names(reg, store_data):
    reg.ingest(store_data / "cell_full.csv", "cellA")
    with pytest.raises(NotFoundError, match=r"no cell 'cela' in the registry; did you mean "
                                            r"'cellA'\?"):
        reg.load_samples("cela")
    with pytest.raises(NotFoundError, match="no dataset 'nope'"):
        reg.dataset("nope")
    with pytest.raises(StoreError, match="needs at least one cell"):
        reg.create_dataset("x", [])


@pytest.mark.parametrize("bad", ["", "../up", "a b", "-x", "a/b"])
def test_invalid_cell_ids_are_refused(reg, store_data, bad):
    with pytest.raises(StoreError, match="invalid cell id") as e:
        reg.ingest(store_data / "cell_full.csv", bad)
    assert e.value.code == "invalid_cell_id"


def test_load_subset_of_columns_and_several_cells(reg, store_data):
    reg.ingest(store_data / "cell_part1.csv", "cellA")
    reg.ingest(store_data / "cell_part2.csv", "cellB")
    df = reg.load_samples(["cellA", "cellB"], columns=["cell_id", "test_time_second"])
    assert list(df.columns) == ["cell_id", "test_time_second"]
    assert df.groupby("cell_id").size().to_dict() == {"cellA": 195, "cellB": 195}
    with pytest.raises(StoreError, match="unknown samples column") as e:
        reg.load_samples("cellA", columns=["volts"])
    assert e.value.column == "volts"


@pytest.mark.parametrize("kernel", [True, False])
def test_copy_and_hash_is_exact_across_block_boundaries(tmp_path, monkeypatch, kernel):
    from data_registry import parts

    if not kernel:  # the portable read/write loop used where copy_file_range is unavailable
        monkeypatch.setattr(parts, "_kernel_copy", lambda fd_in, fd_out: False)
    data = os.urandom(5 * parts.COPY_BLOCK_BYTES + 12345)
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    src.write_bytes(data)
    dst.write_bytes(b"stale content longer than nothing")
    sha, size = parts.copy_and_hash(src, dst)
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert dst.read_bytes() == data


def test_source_names_record_the_clients_file_name(reg, store_data, tmp_path):
    staged = tmp_path / "upload-1234.tmp"
    staged.write_bytes((store_data / "cell_part1.csv").read_bytes())
    report = reg.ingest(staged, "up", source_names=["lab42/cellA_part1.csv"])
    assert report.files[0].path == "lab42/cellA_part1.csv"
    assert reg.cell("up")["files"][0]["original_path"] == "lab42/cellA_part1.csv"
    with pytest.raises(StoreError, match="one source name per path"):
        reg.ingest(staged, "up", source_names=["a", "b"])


def test_parts_from_an_older_schema_still_load(reg, store_data):
    """A part written before a column was added to the schema is read with that column null."""
    reg.ingest(store_data / "cell_part1.csv", "cellA")
    part = next(reg.part_dir("samples", "cellA").glob("*.parquet"))
    old = pq.read_table(part).drop_columns(["internal_resistance_ohm", "unix_time_second"])
    pq.write_table(old, part)
    reg.ingest(store_data / "cell_part2.csv", "cellA")
    df = reg.load_samples("cellA")
    assert len(df) == 390 and "internal_resistance_ohm" not in df.columns
    assert df["test_time_second"].is_monotonic_increasing


def test_parts_encode_floats_byte_stream_split_lz4(reg, store_data):
    reg.ingest(store_data / "cell_full.csv", "cellA")
    (part,) = [p for p in (reg.home / "tables" / "samples").rglob("*.parquet")]
    meta = pq.ParquetFile(part).metadata
    names = meta.schema.to_arrow_schema().names
    col = {names[i]: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert "BYTE_STREAM_SPLIT" in col["voltage_volt"].encodings
    assert col["voltage_volt"].compression.startswith("LZ4")
    assert "BYTE_STREAM_SPLIT" not in col["cycle_count"].encodings  # integers: default
    whole = pd.read_csv(store_data / "cell_full.csv")
    assert reg.load_samples("cellA")["voltage_volt"].tolist() == whole["voltage_volt"].tolist()


def test_per_cycle_table_keeps_aw_and_delta_q_columns(reg, tmp_path):
    """A_w and the ΔQ(V) summaries are contract columns of a per-cycle table: ingesting one
    stores them (they used to be dropped as unknown columns), NaN where a row leaves them out."""
    path = tmp_path / "cycles.csv"
    path.write_text("cycle_index,test_time_second,discharge_capacity_ah,aw_ohm_per_sqrt_s,"
                    "delta_q_v_variance_ah2,delta_q_v_minimum_ah,delta_q_v_mean_ah,"
                    "delta_q_v_skewness\n"
                    "1,3600,1.000,0.10,,,,\n"
                    "2,7200,0.990,0.11,,,,\n"
                    "3,10800,0.985,0.12,1e-6,-0.002,-0.001,-0.5\n", encoding="utf-8")
    report = reg.ingest([path], cell_id="aw1")
    assert "unknown_columns" not in [w.code for w in report.warnings]
    got = reg.load_cycles("aw1")
    assert got["aw_ohm_per_sqrt_s"].tolist() == [0.10, 0.11, 0.12]
    assert got["delta_q_v_minimum_ah"].isna().tolist() == [True, True, False]
    last = got.iloc[2]
    assert (last["delta_q_v_variance_ah2"], last["delta_q_v_minimum_ah"],
            last["delta_q_v_mean_ah"], last["delta_q_v_skewness"]) == (1e-6, -0.002, -0.001, -0.5)
