"""A researcher's own files (issue 11): vendor exports with real frictions, capacity tables from
anywhere, EIS from anywhere, and the CLI that tells a newcomer what it accepts.

Fixtures in tests/data/tolerance/ are hand-written in each vendor's layout and reproduce the
frictions seen on real held-out exports (values made up, layouts real).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_registry.readers import FORMATS, open_source
from data_registry.store import Registry
from serving.cli import build_parser, main

TOL = Path(__file__).resolve().parent / "data" / "tolerance"


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# --- tolerant, loud ingest ------------------------------------------------------------------

def test_arbin_gitt_glitch_row_and_energy_noise(capsys):
    """Line 12 has time −84.8 s between 600 s and 720 s; line 14 has −9.7e−06 Wh."""
    code, out, err = _run(capsys, "ingest", str(TOL / "arbin_gitt_glitch.csv"), "--cell-id",
                          "gitt", "--no-progress", "--json")
    assert code == 0, err
    assert ("warning: time_backwards_row: arbin_gitt_glitch.csv:12: isolated out-of-order time "
            "row at line 12 dropped (test_time_second -84.8 s between 600 s and 720 s)") in err
    assert "warning: counter_noise_clamped: arbin_gitt_glitch.csv:14: discharging_energy_wh" in err
    assert json.loads(out)["rows"] == 23  # 24 data lines − the glitch row
    with Registry() as reg:
        df = reg.load_samples("gitt")
        assert 12 not in df["source_row"].tolist() and (df["test_time_second"].diff()[1:] > 0).all()
        assert df.loc[df["source_row"] == 14, "discharging_energy_wh"].item() == 0.0
        raw = Path(reg.cell("gitt")["files"][0]["raw_path"])
        assert "-84.8," in raw.read_text() and ",-0.00000970" in raw.read_text()  # kept verbatim


def test_maccor_minutes_clock():
    src = open_source(TOL / "maccor_minutes.txt")
    df = src.read()
    assert src.format_name == "maccor_txt"
    # 'Test (Min)' 0.5, 1.0 … 10.0 → 30 s … 600 s
    assert df["test_time_second"].tolist() == [30.0 * k for k in range(1, 21)]


def test_day_hour_clock_and_skip_row_kept_in_lineage(capsys):
    path = str(TOL / "dayhour_clock_err.csv")
    code, _, err = _run(capsys, "ingest", path, "--cell-id", "dh", "--no-progress")
    assert code == 2 and "dayhour_clock_err.csv:8 column 'voltage': non-numeric value" in err
    code, out, err = _run(capsys, "ingest", path, "--cell-id", "dh", "--no-progress",
                          "--on-error", "skip-row")
    assert code == 0, err
    assert "warning: row_skipped: dayhour_clock_err.csv:8:" in err
    with Registry() as reg:
        df = reg.load_samples("dh")
        # '1d 02:03:34' = 86400 + 7200 + 180 + 34 s
        assert df["test_time_second"].iloc[0] == 93814.0 and len(df) == 11
        (entry,) = reg.lineage("cell:dh")
        assert entry["on_error"] == "skip-row"
        assert entry["skipped_rows"] == [{"line": 8, "column": "voltage", "code": "not_numeric",
                                          "reason": "non-numeric value", "found": "ERR"}]


def test_duplicate_content_check_comes_after_the_format(capsys, tmp_path):
    """An unreadable file re-uploaded under another id is refused for its format first."""
    bad = tmp_path / "bad.csv"
    bad.write_text("test_time_second,voltage_volt,current_ampere,cycle_count\n0,3.5,0,1\n"
                   "10,99,0,1\n")
    assert _run(capsys, "ingest", str(bad), "--cell-id", "a", "--no-progress",
                "--on-error", "skip-row")[0] == 0
    code, _, err = _run(capsys, "ingest", str(bad), "--cell-id", "b", "--no-progress")
    assert code == 2 and "out_of_range" not in err and "value outside" in err, err
    code, _, err = _run(capsys, "ingest", str(bad), "--cell-id", "b", "--no-progress",
                        "--on-error", "skip-row")
    assert code == 2 and "already ingested as cell 'a'" in err


def test_errors_name_the_users_file_not_the_staged_temp(tmp_path):
    staged = tmp_path / "upload-1f3a9c.tmp"
    staged.write_text("test_time_second,voltage_volt,current_ampere,cycle_count\n0,3.5,0,1\n"
                      "10,ERR,0,1\n")
    with Registry() as reg, pytest.raises(Exception) as e:
        reg.ingest(staged, "u1", source_names=["my cell 7.csv"])
    assert e.value.file == "my cell 7.csv" and "upload-1f3a9c" not in str(e.value)
    with Registry() as reg:
        rep = reg.ingest(staged, "u1", source_names=["my cell 7.csv"],
                         reader_options={"on_error": "skip-row"})
    assert [w.file for w in rep.warnings] == ["my cell 7.csv"]


# --- per-cycle tables from anywhere ---------------------------------------------------------

def test_cycle_cell24_table_needs_a_clock_and_names_the_flag(capsys):
    path = str(TOL / "capacity_cell24.csv")
    code, _, err = _run(capsys, "ingest", path, "--cell-id", "c24", "--no-progress")
    assert code == 2 and "--hours-per-cycle H or --c-rate C" in err
    assert "protocol_hours_per_cycle" not in err.split("(expected")[0]
    code, _, err = _run(capsys, "ingest", path, "--cell-id", "c24", "--no-progress",
                        "--hours-per-cycle", "3")
    assert code == 0, err and "warning: test_time_estimated" in err
    with Registry() as reg:
        c = reg.load_cycles("c24")
    assert c["cycle_index"].tolist()[:3] == [1, 2, 3]
    assert c["test_time_second"].tolist()[:2] == [10800.0, 21600.0]
    assert (c["test_time_estimated"] == 1).all() and c["discharge_capacity_ah"].iloc[0] == 1.1


def test_wide_table_one_column_chosen(capsys):
    path = str(TOL / "capacity_wide_mAh.csv")
    code, _, err = _run(capsys, "ingest", path, "--cell-id", "x", "--c-rate", "0.5",
                        "--no-progress")
    assert code == 2 and "3 capacity columns" in err and "--capacity-column" in err
    code, _, err = _run(capsys, "ingest", path, "--cell-id", "A2", "--c-rate", "0.5",
                        "--no-progress")  # the cell id names the column
    assert code == 0, err
    assert "warning: capacity_unit_inferred" in err and "read as mAh" in err
    code, _, err = _run(capsys, "ingest", path, "--cell-id", "other", "--capacity-column",
                        "A2", "--c-rate", "0.5", "--no-progress")  # the same column again
    assert code == 2 and "already ingested as cell 'A2'" in err


def test_wide_table_every_column_a_cell(capsys):
    path = str(TOL / "capacity_wide_mAh.csv")
    code, _, err = _run(capsys, "ingest", path, "--all-columns", "--cell-id", "lot7-",
                        "--c-rate", "0.5", "--no-progress")
    assert code == 0, err
    with Registry() as reg:
        assert {c["cell_id"] for c in reg.cells()} == {"lot7-A1", "lot7-A2", "lot7-B7"}
        b7 = reg.load_cycles("lot7-B7")
        # 149.5 − 0.12 × 1 mAh at cycle 1, 4 h per cycle at C/2
        assert b7["discharge_capacity_ah"].iloc[0] == pytest.approx(0.14938)
        assert b7["test_time_second"].iloc[0] == 4 * 3600.0


@pytest.mark.slow
def test_forecast_on_a_clockless_capacity_table(capsys, serving_model_dir):
    path = str(TOL / "capacity_cell24.csv")
    code, out, err = _run(capsys, "forecast", "--cycles", path, "--hours-per-cycle", "3",
                          "--horizon-cycles", "5", "--model", str(serving_model_dir), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["test_time_estimated"] is True and doc["cell_id"] == "capacity_cell24"
    assert [r["cycle_index"] for r in doc["forecast"]] == [31, 32, 33, 34, 35]
    assert doc["forecast"][0]["test_time_second"] == pytest.approx(31 * 3 * 3600.0)
    assert "note: test_time_estimated" in err
    code, _, err = _run(capsys, "forecast", "--cycles", path, "--horizon-cycles", "5",
                        "--model", str(serving_model_dir), "--json")
    assert code == 2 and "--hours-per-cycle H or --c-rate C" in err


@pytest.fixture(scope="module")
def serving_model_dir():
    from test_your_own_cell_doc import cached_model_dir

    return cached_model_dir()


# --- EIS from anywhere ----------------------------------------------------------------------

def test_headerless_eis_columns_by_content_sign_and_sweeps(capsys):
    path = str(TOL / "eis_headerless.txt")
    src = open_source(path)
    df = src.read()
    assert src.format_name == "eis_text"
    assert df["measurement_id"].unique().tolist() == ["eis_headerless#1", "eis_headerless#2"]
    assert (df["z_imag_ohm"] < 0).all() and df["frequency_hz"].iloc[0] == 1e4
    assert [w.code for w in src.warnings] == ["eis_imaginary_sign_flipped"]
    code, out, err = _run(capsys, "warburg", "--eis", path, "--eis-format", "eis_text",
                          "--json")
    assert code == 0, err and "eis_imaginary_sign_flipped" in err
    fits = json.loads(out)
    # the file was made with A_w = 0.02 and 0.03 Ω s^-1/2
    assert [round(f["aw_ohm_per_sqrt_s"], 4) for f in fits] == [0.02, 0.03]
    code, out, _ = _run(capsys, "warburg", "--eis", path, "--eis-sign", "im", "--json")
    assert code == 0
    assert all(not f["ok"] and "look like -Z''" in f["reason"] for f in json.loads(out))


# --- help that answers the newcomer ---------------------------------------------------------

def test_list_formats_and_columns_come_from_the_tables(capsys):
    code, out, _ = _run(capsys, "ingest", "--list-formats")
    assert code == 0
    for f in FORMATS:
        assert f"  {f.name} " in out
    code, out, _ = _run(capsys, "ingest", "--list-columns")
    assert code == 0
    from data_registry.schema import TABLES

    for table in TABLES.values():
        for col in table.names:
            if col not in ("cell_id", "source_row"):
                assert col in out
    assert "Test (Min)" in out or "minutes" in out


def _actions(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((f"{name} {a}", h) for a, h in _actions(sub))
        elif not isinstance(action, argparse._HelpAction):
            yield "/".join(action.option_strings) or action.dest, action.help


def test_every_option_has_help():
    """Every option and argument of every sub-command says what it is for."""
    missing = [name for name, text in _actions(build_parser()) if not text]
    assert not missing, f"options without help text: {missing}"


def test_cells_counts_cycles_of_raw_sample_cells(capsys):
    assert _run(capsys, "ingest", str(TOL / "maccor_minutes.txt"), "--cell-id", "m1",
                "--no-progress")[0] == 0
    code, out, _ = _run(capsys, "cells", "--json")
    (cell,) = json.loads(out)
    assert cell["cycles"] == 1 and cell["cycle_rows"] == 0
    code, out, _ = _run(capsys, "cells")
    header, row = out.splitlines()[:2]
    at = header.index("cycles")
    assert row[at:at + 6].strip() == "1"



# --- operations -----------------------------------------------------------------------------

def test_champion_resolution_is_cached_until_the_registry_changes(tmp_path):
    from data_registry.home import fadecast_home
    from ml import model_store

    home = fadecast_home()
    db = home / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"registry v1")
    folder = home / "models" / "fadecast-forecaster" / "v3"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx")
    (folder / "model_card.json").write_text("{}")
    tracking = f"sqlite:///{db}"
    uri = "models:/fadecast-forecaster@champion"
    model_store._remember_resolution(uri, tracking, folder)
    assert model_store._cached_resolution(uri, tracking) == folder
    # the pointer is relative to the home: a moved or copied home keeps it
    assert json.loads((home / "models" / "resolved.json").read_text())[uri]["folder"] == \
        "models/fadecast-forecaster/v3"
    db.write_bytes(b"registry v2, alias moved")  # any registry write invalidates it
    assert model_store._cached_resolution(uri, tracking) is None


def test_artifacts_of_a_moved_home_are_found_in_this_home(tmp_path):
    from data_registry.home import mlflow_artifact_root
    from ml.model_store import _local_artifacts

    here = mlflow_artifact_root() / "1" / "models" / "m-abc" / "artifacts"
    here.mkdir(parents=True)
    old = "file:///old/place/fadecast-data/mlflow/artifacts/1/models/m-abc/artifacts"
    assert _local_artifacts(old) == here.as_uri()
    assert _local_artifacts("s3://bucket/x") == "s3://bucket/x"


def test_ui_prints_the_mlflow_command_on_this_homes_store(capsys):
    from data_registry.home import mlflow_artifact_root, mlflow_tracking_uri

    code, out, err = _run(capsys, "ui", "--port", "5055", "--print-only")
    assert code == 0 and out.strip() == "http://127.0.0.1:5055"
    assert "-m mlflow ui --backend-store-uri " + mlflow_tracking_uri() in err
    assert "--default-artifact-root " + mlflow_artifact_root().as_uri() in err


@pytest.mark.slow
def test_serve_logs_address_model_and_one_line_per_request(serving_model_dir, tmp_path):
    import os
    import subprocess
    import sys
    import urllib.request

    from conftest import start_server

    root = Path(__file__).resolve().parent.parent
    log = tmp_path / "serve.log"  # the child's stderr
    proc, port = start_server(lambda port: [sys.executable, "-m", "serving.cli", "serve",
                                            "--port", str(port), "--model",
                                            str(serving_model_dir)],
                              log, path="/healthz", cwd=root, stdout=subprocess.DEVNULL,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                      timeout=30).status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    err = log.read_text(errors="replace")
    assert f"fadecast serve: listening on http://127.0.0.1:{port}" in err
    assert "fadecast serve: model fadecast-forecaster vquick-0" in err
    assert 'access: 127.0.0.1:' in err and '"GET /healthz HTTP/1.1" 200' in err


def test_registry_ingest_takes_the_upload_routes_options():
    """The keyword options the upload API forwards (stable names, None = not given)."""
    from data_registry.errors import StoreError

    opts = {"hours_per_cycle": 2.0, "c_rate": None, "on_error": "raise",
            "capacity_column": None, "eis_sign": None}
    with Registry() as reg:
        rep = reg.ingest(TOL / "capacity_cell24.csv", "up1", reader_options=opts,
                         source_names=["Cell24 capacities.csv"])
        assert rep.rows == 30 and rep.files[0].format_name == "capacity_table_csv"
        assert reg.load_cycles("up1")["test_time_second"].iloc[0] == 7200.0
        with pytest.raises(StoreError) as e:
            reg.ingest(TOL / "capacity_cell24.csv", "up2",
                       reader_options={"on_error": "ignore"})
        assert (e.value.code, e.value.column) == ("invalid_reader_option", "on_error")


def test_a_missing_champion_is_remembered_until_the_registry_changes():
    from data_registry.errors import NotFoundError
    from data_registry.home import fadecast_home
    from ml import model_store

    db = fadecast_home() / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"empty registry")
    tracking, uri = f"sqlite:///{db}", "models:/fadecast-forecaster@champion"
    model_store._remember_resolution(uri, tracking, None, NotFoundError(
        "no registered model", code="model_not_found", column="model", found=uri))
    with pytest.raises(NotFoundError, match="no registered model") as e:
        model_store._cached_resolution(uri, tracking)
    assert e.value.code == "model_not_found"
    db.write_bytes(b"a model was registered")
    assert model_store._cached_resolution(uri, tracking) is None
