"""``fadecast ingest | cells | datasets | show`` end to end (in process and as a subprocess)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serving.cli import main

FADECAST = Path(sys.executable).with_name("fadecast")


@pytest.fixture
def store_data(test_data):
    return test_data / "store"


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ingest_then_list_and_show_as_json(capsys, store_data):
    code, out, err = _run(capsys, "ingest", str(store_data / "cell_part1.csv"), "--cell-id",
                          "c1", "--meta", "chemistry=LFP", "--meta", "active_mass_g=0.25",
                          "--json", "--no-progress")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["rows"] == 195 and doc["cell_id"] == "c1" and not doc["already_present"]
    assert doc["dataset"]["name"] == "cell:c1" and len(doc["dataset"]["version"]) == 64
    assert doc["files"][0]["format_name"] == "generic_csv"

    code, out, _ = _run(capsys, "cells", "--json")
    cells = json.loads(out)
    assert code == 0 and [c["cell_id"] for c in cells] == ["c1"]
    assert cells[0]["sample_rows"] == 195 and cells[0]["active_mass_g"] == 0.25

    code, out, _ = _run(capsys, "show", "c1", "--json")
    info = json.loads(out)
    assert info["metadata"] == {"chemistry": "LFP", "active_mass_g": 0.25}
    assert info["files"][0]["original_path"].endswith("cell_part1.csv")

    code, out, _ = _run(capsys, "datasets", "--json")
    assert [d["name"] for d in json.loads(out)] == ["cell:c1"]


def test_text_output_and_duplicate_message(capsys, store_data):
    src = str(store_data / "cell_full.csv")
    code, out, _ = _run(capsys, "ingest", src, "--cell-id", "c1", "--no-progress")
    assert code == 0
    assert out.startswith("c1: ingested 1 file(s), 390 samples rows, t = 60–23400 s, "
                          "0 warning(s), dataset cell:c1@")
    code, out, _ = _run(capsys, "ingest", src, "--cell-id", "c1", "--no-progress")
    assert code == 0 and "already ingested (sha256 " in out and out.rstrip().endswith(
        "nothing to do")
    code, out, err = _run(capsys, "ingest", src, "--cell-id", "c1", "--no-progress", "--json")
    assert json.loads(out)["already_present"] is True and "nothing to do" in err
    code, out, _ = _run(capsys, "cells")
    header, row = out.splitlines()
    assert header.split()[:2] == ["cell_id", "chemistry"] and row.split()[0] == "c1"
    assert row.split()[-1] == "6.5"  # (23400 - 60) s = 6.48 h
    code, out, _ = _run(capsys, "show", "c1")
    assert "390 rows" in out and "generic_csv" in out
    code, out, _ = _run(capsys, "datasets")
    assert out.splitlines()[1].startswith("cell:c1")


def test_stored_warnings_go_to_stderr(capsys, store_data, tmp_path):
    lines = (store_data / "cell_full.csv").read_text().splitlines()
    lines[100], lines[101] = lines[101], lines[100]
    src = tmp_path / "swapped.csv"
    src.write_text("\n".join(lines) + "\n")
    code, out, err = _run(capsys, "ingest", str(src), "--cell-id", "w", "--json",
                          "--no-progress")
    assert code == 0
    warn_lines = [ln for ln in err.splitlines() if ln.startswith("warning: ")]
    assert len(warn_lines) == 1 and warn_lines[0].startswith("warning: time_backwards_row: ")
    assert json.loads(out)["warnings"][0]["code"] == "time_backwards_row"


def test_errors_exit_2_with_one_line(capsys, store_data):
    _run(capsys, "ingest", str(store_data / "cell_part1.csv"), "--cell-id", "c1",
         "--meta", "active_mass_g=1", "--no-progress")
    code, out, err = _run(capsys, "ingest", str(store_data / "cell_part2.csv"), "--cell-id",
                          "c1", "--meta", "active_mass_g=2", "--no-progress")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("fadecast ingest: error: column 'active_mass_g': cell 'c1' already "
                          "has active_mass_g=1.0; refusing to change it to 2.0")
    code, _, err = _run(capsys, "show", "c2")
    assert code == 2 and "no cell 'c2' in the registry; did you mean 'c1'?" in err


def test_empty_registry_lists_nothing(capsys):
    code, out, _ = _run(capsys, "cells", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, err = _run(capsys, "datasets")
    assert code == 0 and out == "" and "no datasets yet" in err


@pytest.mark.skipif(not FADECAST.exists() and not shutil.which("fadecast"),
                    reason="the fadecast console script is not installed (pip install -e .)")
def test_console_script_subprocess(store_data, _isolated_home):
    exe = str(FADECAST) if FADECAST.exists() else shutil.which("fadecast")
    env = {**os.environ, "FADECAST_HOME": str(_isolated_home)}
    run = [exe, "ingest", str(store_data / "eis_m1.csv"), str(store_data / "eis_m2.csv"),
           "--cell-id", "e1", "--json"]
    p = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["rows"] == 16
    p = subprocess.run([exe, "cells", "--json"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert json.loads(p.stdout)[0] == {**json.loads(p.stdout)[0], "cell_id": "e1",
                                       "eis_rows": 16}
    p = subprocess.run([exe, "ingest", str(store_data / "eis_m1.csv"), "--cell-id", "e2"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and "already ingested as cell 'e1'" in p.stderr
    assert "Traceback" not in p.stderr


def test_per_cycle_file_without_time_ingested_with_stated_hours_per_cycle(capsys, test_data):
    """``--meta hours_per_cycle=2.5``: cycle n ends at n × 2.5 h = n × 9000 s (estimated)."""
    src = str(test_data / "readers" / "generic_cycles_no_time.csv")
    code, out, err = _run(capsys, "ingest", src, "--cell-id", "nt", "--no-progress")
    assert code == 2 and "--hours-per-cycle" in err  # refused without the protocol, naming the flag
    code, out, err = _run(capsys, "ingest", src, "--cell-id", "nt", "--meta",
                          "hours_per_cycle=2.5", "--json", "--no-progress")
    assert code == 0, err
    assert "warning: test_time_estimated" in err
    doc = json.loads(out)
    assert doc["files"][0]["kind"] == "cycles" and doc["rows"] == 3
    assert (doc["files"][0]["time_start_second"], doc["files"][0]["time_end_second"]) == (
        9000.0, 27000.0)
    from data_registry.store import Registry

    with Registry() as reg:
        cycles = reg.load_cycles("nt")
        assert cycles["test_time_second"].tolist() == [9000.0, 18000.0, 27000.0]
        assert cycles["test_time_estimated"].tolist() == [1, 1, 1]
        assert cycles["discharge_capacity_ah"].tolist() == [1.1, 1.09, 1.08]
        assert reg.cell_metadata("nt") == {"protocol_hours_per_cycle": 2.5}


@pytest.mark.parametrize("value", ["0", "-1", "two", "nan"])
def test_invalid_hours_per_cycle_is_refused(capsys, test_data, value):
    src = str(test_data / "readers" / "generic_cycles_no_time.csv")
    code, _, err = _run(capsys, "ingest", src, "--cell-id", "nt", "--meta",
                        f"hours_per_cycle={value}", "--no-progress")
    assert code == 2 and "protocol_hours_per_cycle" in err and "(0, 100000)" in err


def test_show_lists_companion_files(capsys, tmp_path):
    """An Arbin export with its _Metadata.csv sidecar: ``show`` names the kept sidecar."""
    import hashlib

    main_csv = tmp_path / "cellA.csv"
    main_csv.write_text("Data_Point,Test_Time(s),Step_Index,Cycle_Index,Current(A),Voltage(V)\n"
                        + "".join(f"{i},{10 * i},1,1,0,{3.5 + i / 100:.2f}\n"
                                  for i in range(1, 6)))
    side = tmp_path / "cellA_Metadata.csv"
    side.write_text(",test_id,schedule_file_name\n0,7,x.sdu\n")
    code, _, err = _run(capsys, "ingest", str(main_csv), "--cell-id", "a", "--no-progress")
    assert code == 0, err
    code, out, _ = _run(capsys, "show", "a")
    sha = hashlib.sha256(side.read_bytes()).hexdigest()
    assert f"      companion: {side} (sha256 {sha[:12]}…)" in out.splitlines()
