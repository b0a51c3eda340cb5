"""MLflow round trip against a REAL tracking server: train the tiny study, register, champion."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ml.inference import forecast, load_model_dir
from ml.model_store import CHAMPION_ALIAS, REGISTERED_NAME, resolve_model
from ml.synthetic import make_cell

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group, by its PID
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_tiny_study_registers_a_champion_on_a_server(mlflow_server, monkeypatch):
    import mlflow

    from ml.training.config import load_config
    from ml.training.pipeline import run_study

    cfg = load_config(ROOT / "experiments" / "tiny" / "config.toml")
    result = run_study(cfg, tracking_uri=mlflow_server, progress=False)
    assert result.version == "1" and result.promoted
    client = mlflow.MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    mv = client.get_model_version_by_alias(REGISTERED_NAME, CHAMPION_ALIAS)
    assert mv.version == "1"
    run = client.get_run(result.run_id)
    assert run.data.params["model.d_model"] == "16"
    assert run.data.params["data.synthetic_cells"] == "16"
    assert "final_loss" in run.data.metrics and "val_model_capacity_error_pct_of_reference" in \
        run.data.metrics
    assert len(client.get_metric_history(result.run_id, "loss")) == cfg.train.epochs
    inputs = run.inputs.dataset_inputs
    assert {d.tags[0].value for d in inputs} >= {"training", "validation"}
    arts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"plots/forecast_vs_actual.png", "plots/decomposition.png",
            "plots/reliability.png"} <= arts
    # the champion downloads into FADECAST_HOME and forecasts through onnxruntime
    folder = resolve_model("champion", tracking_uri=mlflow_server)
    card, runner = load_model_dir(folder)
    assert card.version.startswith("tiny+")
    out = forecast(make_cell("z", n_cycles=40).cycles.iloc[:20], card=card, run=runner,
                   horizon_cycles=3)
    assert len(out["forecast"]) == 3
    # a later model replaces the champion only when it scores better on the same cells
    from ml.training.tracking import register_and_promote

    version, promoted = register_and_promote(result.model_uri, 2.0, tracking_uri=mlflow_server,
                                             champion_score=lambda: 1.5)
    assert (version, promoted) == ("2", False)
    assert client.get_model_version_by_alias(REGISTERED_NAME, CHAMPION_ALIAS).version == "1"
    version, promoted = register_and_promote(result.model_uri, 1.0, tracking_uri=mlflow_server,
                                             champion_score=lambda: 1.5)
    assert (version, promoted) == ("3", True)
    assert client.get_model_version_by_alias(REGISTERED_NAME, CHAMPION_ALIAS).version == "3"
    assert client.get_model_version(REGISTERED_NAME, "2").tags["champion_val_score"] == "1.5"
