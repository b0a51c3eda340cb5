"""``fadecast serve`` as a real process: uvicorn (uvloop + httptools) on 127.0.0.1."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from test_serving_model import history_rows, serving_model_dir  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, data=None):
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_command_answers_forecasts(serving_model_dir):  # noqa: F811
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--port", str(port),
                             "--model", str(serving_model_dir)], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        status = None
        while time.time() < deadline:
            try:
                status, body = _get(base + "/readyz")
                if status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        assert status == 200, proc.stderr.read1().decode() if proc.poll() is not None else ""
        assert body["model"]["version"] == "quick-0"
        payload = json.dumps({"history": history_rows(30), "horizon_cycles": 3}).encode()
        status, doc = _get(base + "/v1/forecast", payload)
        assert status == 200 and [r["cycle_index"] for r in doc["forecast"]] == [31, 32, 33]
        status, err = _get(base + "/v1/forecast", b'{"history": []}')
        assert status == 422 and err["field"] in {"history", "horizon_cycles"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
