"""``fadecast features`` and ``fadecast warburg`` end to end through a registry."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from data_registry.store import Registry
from serving.cli import main


def _eis_csv(path, sigmas=((1, 0.10), (3, 0.12))):
    f = np.logspace(4, -2, 61)
    w = 2 * np.pi * f
    parts = []
    for k, (cycle, sigma) in enumerate(sigmas):
        z = 0.05 + 1 / (1j * w * 1e-3 + 1 / (0.2 + sigma * (1 - 1j) / np.sqrt(w)))
        parts.append(pd.DataFrame({"measurement_id": f"m{k}", "cycle_count": cycle,
                                   "frequency_hz": f, "z_real_ohm": z.real,
                                   "z_imag_ohm": z.imag}))
    pd.concat(parts).to_csv(path, index=False)
    return path


@pytest.fixture
def registry_cell(test_data, tmp_path):
    reg = Registry()
    try:
        reg.ingest([test_data / "features" / "three_cycles.csv"], "hand",
                   meta=[("nominal_capacity_ah", "1.0")])
        reg.ingest([_eis_csv(tmp_path / "eis.csv")], "hand")
    finally:
        reg.close()
    return "hand"


def test_features_to_stdout_and_files(registry_cell, tmp_path, capsys):
    assert main(["features", registry_cell, "--no-voltage-curves"]) == 0
    out = capsys.readouterr().out
    from io import StringIO
    t = pd.read_csv(StringIO(out))
    assert list(t["cycle_index"]) == [1, 2, 3]
    np.testing.assert_allclose(t["discharge_capacity_ah"], [0.9, 0.9, 0.95])
    np.testing.assert_allclose(t["c_rate"], [1.0, 2.0, 0.5])  # nominal 1.0 Ah from --meta
    np.testing.assert_allclose(t["aw_ohm_per_sqrt_s"], [0.10, 0.10, 0.12], rtol=0.02)
    assert t["delta_q_v_mean_ah"].isna().all()

    target = tmp_path / "out" / "hand.parquet"
    assert main(["features", registry_cell, "-o", str(target)]) == 0
    p = pd.read_parquet(target)
    assert len(p) == 3 and "dqdv_peak_voltage_volt" in p.columns
    assert not list(target.parent.glob("*.tmp"))
    assert main(["features", registry_cell, "-o", str(tmp_path / "hand.csv")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "hand.csv"), p, check_dtype=False)


def test_features_errors_are_one_line(registry_cell, tmp_path, capsys):
    assert main(["features", registry_cell, "-o", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err
    assert "unsupported output file type (expected .csv or .parquet, found .txt)" in err
    assert main(["features", "nobody"]) == 2
    assert "nobody" in capsys.readouterr().err


def test_features_of_a_cell_stored_as_cycle_summary(tmp_path, capsys):
    path = tmp_path / "summary.csv"
    pd.DataFrame({"cycle_index": [1, 2, 3], "test_time_second": [3600.0, 7200.0, 10800.0],
                  "discharge_capacity_ah": [1.0, 0.99, 0.97],
                  "charge_capacity_ah": [1.01, 1.0, 0.98]}).to_csv(path, index=False)
    reg = Registry()
    try:
        reg.ingest([path], "summ")
    finally:
        reg.close()
    assert main(["features", "summ", "-o", str(tmp_path / "f.csv")]) == 0
    t = pd.read_csv(tmp_path / "f.csv")
    np.testing.assert_allclose(t["coulombic_efficiency"], [1 / 1.01, 0.99, 0.97 / 0.98])
    np.testing.assert_allclose(t["elapsed_hour"], [1.0, 2.0, 3.0])


def test_warburg_json_and_table(registry_cell, tmp_path, capsys):
    path = _eis_csv(tmp_path / "direct.csv", sigmas=((2, 0.3),))
    assert main(["warburg", "--eis", str(path), "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == 1
    item = items[0]
    assert set(item) == {"measurement_id", "cycle_count", "test_time_second", "voltage_volt",
                         "aw_ohm_per_sqrt_s", "aw_stderr", "fmin_hz", "fmax_hz", "r2", "ok",
                         "reason"}
    assert item["ok"] is True and item["voltage_volt"] is None and item["cycle_count"] == 2
    assert item["aw_ohm_per_sqrt_s"] == pytest.approx(0.3, rel=0.02)

    assert main(["warburg", "--cell", registry_cell]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("measurement_id") and len(lines) == 3
    assert lines[1].split()[0] == "m0" and float(lines[1].split()[3]) == pytest.approx(0.1,
                                                                                        rel=0.02)


def test_warburg_rejects_a_samples_file(test_data, capsys):
    assert main(["warburg", "--eis", str(test_data / "features" / "three_cycles.csv")]) == 2
    assert "file holds no EIS spectra" in capsys.readouterr().err
