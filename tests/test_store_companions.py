"""Sidecar (companion) files: read by the reader, kept verbatim by the store, named in lineage.

The Arbin fixture is written by the test: a 1 A charge of 12 ten-second samples, so the charge
capacity grows by 1 A * 10 s / 3600 = 0.0027778 Ah per row (consistent with ∫I dt).
"""
from __future__ import annotations

import hashlib
import stat

import pytest

from data_registry.errors import InputFormatError
from data_registry.readers import open_source
from data_registry.store import Registry

HEADER = ("Data_Point,Test_Time(s),Step_Index,Cycle_Index,Current(A),Voltage(V),"
          "Charge_Capacity(Ah),Discharge_Capacity(Ah)")
SIDECAR = (",test_id,device_id,schedule_file_name\n"
           "0,153,60369369,2017-05-12_TESTS\\4_4C-80PER_4_4C.SDU\n")


def _arbin(folder, stem="cellA", sidecar=True, rows=12):
    lines = [HEADER]
    for i in range(rows):
        lines.append(f"{i + 1},{10.0 * (i + 1)},1,1,1.0,{3.5 + 0.01 * i:.2f},"
                     f"{(i + 1) * 10 / 3600:.7f},0")
    main = folder / f"{stem}.csv"
    main.write_text("\n".join(lines) + "\n")
    side = folder / f"{stem}_Metadata.csv"
    if sidecar:
        side.write_text(SIDECAR)
    return main, side


@pytest.fixture
def reg(_isolated_home):
    r = Registry()
    yield r
    r.close()


def test_arbin_reader_names_its_sidecar(tmp_path):
    main, side = _arbin(tmp_path)
    src = open_source(main)
    assert src.format_name == "arbin_csv"
    assert src.companions == [side]
    assert src.metadata["arbin_test_id"] == "153"
    assert len(src.read()) == 12
    bare, _ = _arbin(tmp_path, stem="cellB", sidecar=False)
    assert open_source(bare).companions == []


def test_companion_kept_verbatim_and_in_lineage(reg, tmp_path):
    main, side = _arbin(tmp_path)
    report = reg.ingest(main, "A1")
    assert report.rows == 12
    assert report.files[0].companions == [str(side)]
    sha = hashlib.sha256(side.read_bytes()).hexdigest()
    (entry,) = reg.cell("A1")["files"]
    assert entry["companions"] == [{"raw_sha256": sha, "original_path": str(side),
                                    "raw_path": str(reg.raw_path(sha))}]
    kept = reg.raw_path(sha)
    assert kept.read_bytes() == side.read_bytes()
    assert not kept.stat().st_mode & stat.S_IWUSR  # read-only like the main raw file
    (row,) = reg.lineage("cell:A1")
    assert row["raw_sha256"] == hashlib.sha256(main.read_bytes()).hexdigest()
    assert row["companions"] == [{"raw_sha256": sha, "original_path": str(side)}]
    assert not list((reg.home / "raw" / "tmp").iterdir())


def test_shared_sidecar_content_stored_once(reg, tmp_path):
    """Two cells whose sidecars have the same bytes: one raw file, two companion rows."""
    a, side_a = _arbin(tmp_path, stem="cellA")
    b, side_b = _arbin(tmp_path, stem="cellB", rows=13)  # different main content
    reg.ingest(a, "A")
    reg.ingest(b, "B")
    sha = hashlib.sha256(side_a.read_bytes()).hexdigest()
    assert [f["companions"][0]["raw_sha256"] for f in
            reg.cell("A")["files"] + reg.cell("B")["files"]] == [sha, sha]
    assert reg.cell("B")["files"][0]["companions"][0]["original_path"] == str(side_b)
    raws = [p for p in (reg.home / "raw").rglob("*") if p.is_file()]
    assert len(raws) == 3  # two main files + one sidecar


def test_failed_ingest_leaves_no_companion_copy(reg, tmp_path):
    main, _ = _arbin(tmp_path)
    bad = tmp_path / "broken.csv"
    bad.write_text("test_time_second,voltage_volt,current_ampere,cycle_count\n0,3.5,0\n")
    with pytest.raises(InputFormatError):
        reg.ingest([main, bad], "A1")
    assert reg.cells() == []
    assert not [p for p in (reg.home / "raw").rglob("*") if p.is_file()]


def test_reingest_is_a_noop_for_companions(reg, tmp_path):
    main, _ = _arbin(tmp_path)
    reg.ingest(main, "A1")
    again = reg.ingest(main, "A1")
    assert again.already_present and again.files[0].companions == []
    assert len(reg.cell("A1")["files"][0]["companions"]) == 1


@pytest.mark.parametrize("rel, side_name, key", [
    ("biologic_beep/test_loopsnewoutput_MB_CE1_short10k.csv",
     "test_loopsnewoutput_MB_CE1_short10k.mpl", "biologic_log_file"),
    ("novonix_beep/test_Nova_Form-CH01-01_short.csv",
     "test_Nova_Form-CH01-01_short_metadata.csv", "novonix_summary_file"),
    ("arbin_csv_beep/FastCharge_000025_CH8.csv", "FastCharge_000025_CH8_Metadata.csv",
     "arbin_test_id"),
])
def test_real_sidecars_are_companions(shared_data, rel, side_name, key):
    path = shared_data / "parsers" / rel
    src = open_source(path, chunk_rows=100_000)
    assert [p.name for p in src.companions] == [side_name]
    assert key in src.metadata
