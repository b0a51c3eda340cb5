"""Shared fixtures: one thread everywhere, an isolated FADECAST_HOME per test, shared data."""
from __future__ import annotations

import http.client
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

try:
    from hypothesis import settings as _hypothesis_settings  # noqa: E402
except ImportError:  # pragma: no cover - a test dependency; its tests then fail to import
    _hypothesis_settings = None

if _hypothesis_settings is not None:
    # On CI (a clean clone, no example database) every run replays the same examples, so a
    # property test cannot pass on one run and fail on the next. Recent Hypothesis loads its
    # own "ci" profile where CI is set (this one starts from it); older ones do not. Loaded
    # before any test module is imported: a test's own @settings(...) (deadline=None,
    # max_examples, ...) starts from this profile and keeps its own values.
    _hypothesis_settings.register_profile("fadecast-ci", derandomize=True, database=None)
    if "CI" in os.environ:
        _hypothesis_settings.load_profile("fadecast-ci")

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = Path(__file__).resolve().parent / "data"


def _shared_data() -> Path | None:
    env = os.environ.get("FADECAST_SHARED_DATA")
    p = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return p if p.is_dir() else None


SHARED_DATA = _shared_data()

#: system tools some readers call, and what to install (tests marked ``needs_tool(NAME)`` skip
#: with this reason where the tool is missing — a fresh machine without them still passes)
SYSTEM_TOOLS = {"mdb-export": "mdbtools (apt-get install mdbtools) reads Arbin .res files"}


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_tool(name): needs a system tool on PATH "
                            "(skipped with the reason where it is missing)")


def pytest_runtest_setup(item):
    for mark in item.iter_markers(name="needs_tool"):
        for tool in mark.args:
            if shutil.which(tool) is None:
                pytest.skip(f"system tool {tool} is not installed: "
                            f"{SYSTEM_TOOLS.get(tool, 'install it to run this test')}")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own empty registry folder; no test touches ./fadecast-data."""
    home = tmp_path / "fadecast-home"
    monkeypatch.setenv("FADECAST_HOME", str(home))
    monkeypatch.delenv("FADECAST_CATALOG_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield home


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (read in place, never copied); skips the test where it is absent."""
    if SHARED_DATA is None:
        pytest.skip("../shared/data is absent (real public data is not shipped with the repo)")
    return SHARED_DATA


@pytest.fixture
def test_data() -> Path:
    """Small hand-written fixtures in each vendor's layout, shipped in tests/data."""
    return TEST_DATA


@pytest.fixture(scope="session")
def severson_test1_served():
    """``(model, cells)``: the shipped model as served (``serving.runtime``) and the Severson
    test1 cells (never trained on); skips without ../shared or the shipped model."""
    import warnings

    from ml.model_store import shipped_model_dir
    from ml.sources import available_sources, load_source
    from serving.runtime import load_forecaster

    if "severson-test1" not in available_sources():
        pytest.skip("../shared/data/severson2019 absent (a fresh clone without the public data)")
    model_dir = shipped_model_dir()
    if model_dir is None:
        pytest.skip("no shipped production model in models/production")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cells = load_source("severson-test1")
    return load_forecaster(str(model_dir)), cells


@pytest.fixture(scope="session")
def shipped_model():
    """``(card, run)`` of the shipped model (``models/production``) with its cycle-life heads
    off, so a hand-made history meets the network, the band and the calibration alone; skips
    where the folder is absent."""
    import dataclasses

    from ml.inference import load_model_dir

    folder = REPO_ROOT / "models" / "production"
    if not (folder / "model_card.json").is_file():
        pytest.skip("models/production (the shipped model card) is absent")
    card, run = load_model_dir(folder)
    return dataclasses.replace(card, cycle_life={}), run


def free_port() -> int:
    """A 127.0.0.1 port free right now (another process may take it before a child binds it:
    :func:`start_server` retries once on a new one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(argv: Callable[[int], list[str]], log: Path, *, path: str = "/readyz",
                 timeout_s: float = 60.0, **popen) -> tuple[subprocess.Popen, int]:
    """Start ``argv(port)`` on a free port; return ``(process, port)`` once ``GET path``
    answers 200.

    The child's stderr (and its stdout, unless ``stdout`` is given) is appended to ``log``. A
    child that exits because another process took its port between :func:`free_port` and its
    bind is started once more on a new port; a child that exits otherwise, or is not ready
    within ``timeout_s``, fails the test at once with its output.
    """
    for attempt in (1, 2):
        port = free_port()
        start = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv(port), stderr=out, **{"stdout": out, **popen})
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    if r.status == 200:
                        return proc, port
            except (OSError, http.client.HTTPException):  # refused, 503 (not ready), timeout
                pass
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
            why = f"gave no 200 on {path} within {timeout_s:.0f} s (killed)"
        else:
            why = f"exited with code {proc.returncode} before answering 200 on {path}"
        output = log.read_bytes()[start:].decode(errors="replace")
        if attempt == 1 and "address already in use" in output.lower():
            continue
        pytest.fail(f"{' '.join(argv(port))} {why}:\n{output[-3000:]}")
    raise AssertionError("unreachable")


def read_lines(stream, n: int, timeout_s: float = 120.0) -> list[str]:
    """The first ``n`` lines of a child's text ``stream``, stripped; fewer when it ends or
    ``timeout_s`` passed first (a stuck child then fails the test's assertion instead of
    hanging the run)."""
    got: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in iter(stream.readline, ""):
            got.put(line)
        got.put("")  # end of the stream

    threading.Thread(target=pump, daemon=True).start()
    out: list[str] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n:
        try:
            line = got.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if not line:
            break
        out.append(line.strip())
    return out
