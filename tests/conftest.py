"""Shared fixtures: one thread everywhere, an isolated FADECAST_HOME per test, shared data."""
from __future__ import annotations

import os
import shutil

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

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
