"""Real cycler exports from ../shared/data, ingested in place (skipped where the folder is absent)."""
from __future__ import annotations

import hashlib

import pytest

from data_registry.store import Registry


def test_arbin_export_with_metadata_sidecar(shared_data):
    src = shared_data / "parsers" / "arbin_csv_beep" / "FastCharge_000025_CH8.csv"
    reg = Registry()
    report = reg.ingest(src, "FastCharge_000025_CH8")
    f = report.files[0]
    assert (f.format_name, f.kind, report.rows) == ("arbin_csv", "samples", 248)
    assert (f.time_start_second, f.time_end_second) == (10.0024, 1800.0104)
    assert f.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    info = reg.cell("FastCharge_000025_CH8")
    # lineage keeps what the reader found in the sidecar _Metadata.csv
    assert info["files"][0]["source_metadata"]["arbin_test_id"] == "153"
    df = reg.load_samples("FastCharge_000025_CH8")
    assert df["voltage_volt"].iloc[0] == pytest.approx(3.3011441)
    assert df["unix_time_second"].iloc[0] == pytest.approx(1494645243.4715)
    assert reg.ingest(src, "FastCharge_000025_CH8").already_present
    reg.close()


def test_maccor_export(shared_data):
    src = shared_data / "parsers" / "maccor_beep" / "PreDiag_000229_000229_truncated.034"
    reg = Registry()
    report = reg.ingest(src, "PreDiag_000229")
    assert report.files[0].format_name.startswith("maccor")
    assert report.rows == len(reg.load_samples("PreDiag_000229")) > 1000
    assert reg.cells()[0]["time_end_second"] == report.files[0].time_end_second
    reg.close()
