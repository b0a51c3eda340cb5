"""``fadecast forecast``: CSV or registered cell in, the API's exact JSON out on stdout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from data_registry.store import Registry
from serving.app import create_app
from serving.cli import main
from serving.settings import Settings
from test_serving_model import forecaster, history_rows, serving_model_dir  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("cycle_index", "test_time_second", "discharge_capacity_ah", "charge_capacity_ah",
           "c_rate")


def _write_csv(path, rows, extra=True):
    head = list(COLUMNS) + (["operator"] if extra else [])
    lines = [",".join(head)]
    for r in rows:
        lines.append(",".join([str(r[c]) for c in COLUMNS] + (["bob"] if extra else [])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_json_equals_api(tmp_path, capsys, forecaster, serving_model_dir):  # noqa: F811
    rows = history_rows(40)
    csv = _write_csv(tmp_path / "cell.csv", rows)
    code = main(["forecast", "--cycles", str(csv), "--horizon-cycles", "12",
                 "--hours-per-cycle", "3", "--model", str(serving_model_dir), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    cli_doc = json.loads(out)
    assert "ignored columns not used by the model: operator" in err
    body = {"history": [{c: r[c] for c in COLUMNS} for r in rows], "horizon_cycles": 12,
            "future_hours_per_cycle": 3, "cell": {"cell_id": "cell"}}  # the CLI: file stem
    with TestClient(create_app(Settings(), forecaster=forecaster)) as client:
        api_doc = client.post("/v1/forecast", json=body).json()
    assert cli_doc == api_doc
    assert len(cli_doc["forecast"]) == 12


def test_cli_human_output(tmp_path, capsys, serving_model_dir):  # noqa: F811
    csv = _write_csv(tmp_path / "cell.csv", history_rows(40), extra=False)
    assert main(["forecast", "--cycles", str(csv), "--horizon-cycles", "5",
                 "--model", str(serving_model_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model fadecast-forecaster vquick-0") and "capacity at cycle 45" in out


def test_cli_registered_cell_uses_its_metadata(tmp_path, capsys, serving_model_dir):  # noqa: F811
    rows = history_rows(40)
    csv = _write_csv(tmp_path / "cell.csv", rows, extra=False)
    reg = Registry()
    try:
        reg.ingest([csv], "R1", meta={"nominal_capacity_ah": 5.0})
    finally:
        reg.close()
    assert main(["forecast", "--cell", "R1", "--horizon-cycles", "5", "--model",
                 str(serving_model_dir), "--json"]) == 0
    by_cell = json.loads(capsys.readouterr().out)
    assert by_cell["cell_id"] == "R1"
    assert main(["forecast", "--cycles", str(csv), "--horizon-cycles", "5",
                 "--nominal-capacity-ah", "5.0", "--model", str(serving_model_dir),
                 "--json"]) == 0
    by_file = json.loads(capsys.readouterr().out)
    assert by_file["forecast"] == by_cell["forecast"]
    # `--cell-id`, the name `ingest` uses, is the same option
    assert main(["forecast", "--cell-id", "R1", "--horizon-cycles", "5", "--model",
                 str(serving_model_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["forecast"] == by_cell["forecast"]
    # the advice's text answer: its reason once, opening with the decision
    assert main(["advice", "--cell-id", "R1", "--planned-cycles", "400", "--tolerance-cycles",
                 "50", "--model", str(serving_model_dir)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(("continue: ", "stop now: ")), line
    assert not line.startswith(("continue: continue", "stop: stop")), line


def test_cli_bad_input_one_line(tmp_path, capsys, serving_model_dir):  # noqa: F811
    rows = history_rows(10)
    rows[5]["discharge_capacity_ah"] = "n/a"
    csv = _write_csv(tmp_path / "bad.csv", rows, extra=False)
    code = main(["forecast", "--cycles", str(csv), "--horizon-cycles", "5",
                 "--model", str(serving_model_dir), "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip() == ("fadecast forecast: error: bad.csv:7 column 'discharge_capacity_ah': "
                           "value is not a finite number (expected a finite float, found 'n/a')")
    code = main(["forecast", "--cycles", str(csv), "--horizon-cycles", "5", "--eol", "1.5",
                 "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "--eol" in err and "found 1.5" in err
    code = main(["forecast", "--cell", "ghost", "--horizon-cycles", "5", "--json"])
    assert code == 2 and "ghost" in capsys.readouterr().err


def test_cli_subprocess_stdout_is_one_json_and_no_torch(tmp_path, serving_model_dir):  # noqa: F811
    csv = _write_csv(tmp_path / "cell.csv", history_rows(30))
    code = ("import sys; from serving.cli import main; "
            f"rc = main(['forecast', '--cycles', {str(csv)!r}, '--horizon-cycles', '4', "
            f"'--model', {str(serving_model_dir)!r}, '--json']); "
            "print('torch-loaded' if 'torch' in sys.modules else 'torch-free', file=sys.stderr); "
            "sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)  # the whole stdout is one JSON document
    assert len(doc["forecast"]) == 4
    assert out.stderr.strip().endswith("torch-free")


def test_cli_cell_stored_as_raw_samples(test_data, capsys, serving_model_dir):  # noqa: F811
    """A cell ingested as a raw time series goes through ml.features.build_cycle_table."""
    reg = Registry()
    try:
        reg.ingest([test_data / "store" / "cell_full.csv"], "RAW1")
    finally:
        reg.close()
    assert main(["forecast", "--cell", "RAW1", "--horizon-cycles", "2", "--model",
                 str(serving_model_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cell_id"] == "RAW1"
    # the fixture holds 3 cycles of 130 min each (charge 60, rest 5, discharge 60, rest 5)
    assert [r["cycle_index"] for r in doc["forecast"]] == [4, 5]
    assert doc["forecast"][1]["test_time_second"] - doc["forecast"][0]["test_time_second"] == \
        pytest.approx(130 * 60)


def test_cli_text_says_when_the_interval_was_calibrated_or_is_open_above():
    import math

    from serving.commands import _human_forecast

    eol = {"threshold_fraction": 0.8, "cycle_index": {"p05": 120, "p50": 150, "p95": 300},
           "test_time_second": {"p05": 120 * 3600.0, "p50": 150 * 3600.0, "p95": 300 * 3600.0},
           "censored": {"p05": False, "p50": False, "p95": True},
           "calibrated_widening": {"p05": math.log(1.25), "p95": 0.0}}
    doc = {"model": {"name": "m", "version": "1"}, "cell_id": "c", "forecast": [],
           "end_of_life": eol, "attribution": {}}
    text = _human_forecast(doc)
    assert "end of life (80 %): cycle 150 [120, 300], 150 [120, 300] h" in text
    assert "p95 beyond the horizon (a lower bound)" in text
    assert "remaining cycles to p05 x0.80, to p95 x1.00" in text
    plain = _human_forecast({**doc, "end_of_life": {**eol, "censored": None,
                                                    "calibrated_widening": None}})
    assert "lower bound" not in plain and "calibration" not in plain
