"""SIGKILL of the service while it appends uploads: the cell stays readable and consistent, and
a restarted service continues it (no row lost, none twice)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from conftest import start_server
from data_registry import catalog as cat
from data_registry.store import Registry
from test_serving_model import serving_model_dir  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "examples" / "pto_c10_raw.csv"


def _serve(home: Path, model_dir: Path) -> tuple[subprocess.Popen, int]:
    """The service on a free port, once /readyz answers 200 (its output in ``serve.log``
    beside ``home``)."""
    env = {**os.environ, "FADECAST_HOME": str(home), "FADECAST_SERVE_WRITE_TOKEN": "w",
           "FADECAST_SERVE_MODEL_URI": str(model_dir), "OMP_NUM_THREADS": "1"}
    return start_server(lambda port: [sys.executable, "-m", "uvicorn", "serving.app:create_app",
                                      "--factory", "--host", "127.0.0.1", "--port", str(port),
                                      "--log-level", "warning"],
                        home.parent / "serve.log", cwd=ROOT, env=env)


def _post(port: int, data: bytes, name: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/cells/K/samples?filename={name}",
                                 data=data, method="POST",
                                 headers={"Authorization": "Bearer w"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _long_file(tmp_path: Path, repeats: int = 12) -> Path:
    one = pd.read_csv(RAW)
    span = float(one["test_time_second"].iloc[-1]) + 600.0
    cycles = int(one["cycle_count"].max())
    blocks = []
    for k in range(repeats):
        b = one.copy()
        b["test_time_second"] += k * span
        b["cycle_count"] += k * cycles
        blocks.append(b)
    path = tmp_path / "long.csv"
    pd.concat(blocks, ignore_index=True).to_csv(path, index=False)
    return path


def _check_consistent(home: Path) -> int:
    reg = Registry(home=home)
    try:
        with reg.catalog.reading() as conn:
            rows = {r[0]: r[1] for r in conn.execute(sa.select(cat.ingests.c.part_path,
                                                               cat.ingests.c.rows))}
        for part, n in rows.items():
            if part:
                assert pq.ParquetFile(home / part).metadata.num_rows == n
        if not rows:
            return 0
        samples = reg.load_samples("K")
        t = samples["test_time_second"].to_numpy()
        assert (np.diff(t) >= 0).all()  # in order
        assert not samples.duplicated(["test_time_second", "step_count"]).any()  # none twice
        return len(t)
    finally:
        reg.close()


@pytest.mark.slow
def test_sigkill_mid_append_then_restart_continues(serving_model_dir, tmp_path,  # noqa: F811
                                                   _isolated_home):
    path = _long_file(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    total = len(lines) - 1
    proc, port = _serve(_isolated_home, serving_model_dir)
    sent = {"n": 0}
    stop = threading.Event()

    def feed():  # growing snapshots, as a scheduler re-posting an export would
        k = 1
        while not stop.is_set() and k < 12:
            n = min(len(lines), 1 + k * total // 11)
            try:
                _post(port, b"".join(lines[:n]), f"snap{k}.csv")
            except OSError:
                return
            sent["n"] = k
            k += 1

    worker = threading.Thread(target=feed)
    worker.start()
    try:
        while sent["n"] < 2 and worker.is_alive():
            time.sleep(0.02)
        time.sleep(0.15)  # the next append is parsing or committing now
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
        stop.set()
        worker.join(timeout=60)
    stored = _check_consistent(_isolated_home)
    assert 0 < stored < total
    proc, port = _serve(_isolated_home, serving_model_dir)
    try:
        assert _post(port, b"".join(lines), "full.csv") == 201
        assert _post(port, b"".join(lines), "again.csv") == 201  # idempotent
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert _check_consistent(_isolated_home) == total
    staging = _isolated_home / "tmp"
    assert not staging.exists() or list(staging.iterdir()) == []  # the dead process' files
