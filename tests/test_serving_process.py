"""``fadecast serve`` as a real process: uvicorn (uvloop + httptools) on 127.0.0.1."""
from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

from conftest import start_server
from test_serving_model import history_rows, serving_model_dir  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def _get(url, data=None):
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_command_answers_forecasts(serving_model_dir, tmp_path):  # noqa: F811
    proc, port = start_server(lambda port: [sys.executable, "-m", "serving.cli", "serve",
                                            "--port", str(port), "--model",
                                            str(serving_model_dir)],
                              tmp_path / "serve.log", cwd=ROOT,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        status, body = _get(base + "/readyz")
        assert status == 200
        assert body["model"]["version"] == "quick-0"
        payload = json.dumps({"history": history_rows(30), "horizon_cycles": 3}).encode()
        status, doc = _get(base + "/v1/forecast", payload)
        assert status == 200 and [r["cycle_index"] for r in doc["forecast"]] == [31, 32, 33]
        status, err = _get(base + "/v1/forecast", b'{"history": []}')
        assert status == 422 and err["field"] in {"history", "horizon_cycles"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
