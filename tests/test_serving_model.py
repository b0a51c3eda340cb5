"""One small REAL model for every serving test (trained once per session), and the runtime."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from ml.synthetic import make_cell


@functools.lru_cache(maxsize=1)
def quick_model_dir() -> Path:
    """Train ``ml.training.quick.train_quick_model`` once per process (~15 s on one core)."""
    from ml.training.quick import train_quick_model

    root = Path(tempfile.mkdtemp(prefix="fadecast-serving-model-"))
    atexit.register(shutil.rmtree, root, True)
    return Path(train_quick_model(root / "model", seed=0))


@pytest.fixture(scope="session")
def serving_model_dir() -> Path:
    return quick_model_dir()


@pytest.fixture(scope="session")
def forecaster(serving_model_dir):
    from serving.runtime import load_forecaster

    return load_forecaster(str(serving_model_dir))


def history_rows(n: int = 60, seed: int = 3, **overrides) -> list[dict]:
    """The first ``n`` cycles of a synthetic cell as API history rows (no NaN keys)."""
    cycles = make_cell("api_cell", seed=seed, **overrides).cycles.iloc[:n]
    rows = []
    for rec in cycles.drop(columns=["cell_id"]).to_dict("records"):
        rows.append({k: (int(v) if k == "cycle_index" else float(v)) for k, v in rec.items()
                     if v is not None and np.isfinite(v)})
    return rows


def test_runtime_pins_threads_and_names_io(forecaster):
    assert forecaster.name == "fadecast-forecaster" and forecaster.version == "quick-0"
    assert forecaster._inputs == ["history", "history_mask", "query_cycle", "query_hour"] or \
        sorted(forecaster._inputs) == sorted(["history", "history_mask", "query_cycle",
                                             "query_hour"])
    opts = forecaster.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert forecaster.domain["c_rate"] == [0.1, 1.0]


def test_runtime_forecast_matches_ml_inference_path(forecaster, serving_model_dir):
    """The service's session gives the same JSON as ml.inference's own loader."""
    import pandas as pd

    from ml.inference import forecast, load_model_dir

    frame = pd.DataFrame(history_rows(40))
    ours = forecaster.forecast(frame, horizon_cycles=25)
    card, run = load_model_dir(serving_model_dir)
    theirs = forecast(frame, card=card, run=run, horizon_cycles=25)
    assert ours == theirs
    assert [r["cycle_index"] for r in ours["forecast"]] == list(range(41, 66))


def test_interval_scale_comes_from_the_cards_measured_coverage(forecaster):
    import dataclasses

    assert "val_model_coverage_90_pct" not in forecaster.card.metrics
    assert forecaster.interval_scale == 1.0
    card = dataclasses.replace(forecaster.card, metrics={"val_model_coverage_90_pct": 68.27})
    other = type(forecaster)(path=forecaster.path, card=card, session=forecaster.session,
                             loaded_at=0.0)
    assert other.interval_scale == pytest.approx(1.6449, abs=2e-3)
    assert other.describe()["advice_interval_scale"] == other.interval_scale


def test_slot_swap_keeps_old_reference(forecaster):
    from serving.runtime import ModelSlot

    slot = ModelSlot()
    with pytest.raises(Exception, match="no model is loaded"):
        slot.require()
    slot.swap(forecaster)
    held = slot.require()
    other = type(forecaster)(path=forecaster.path, card=forecaster.card,
                             session=forecaster.session, loaded_at=0.0)
    assert slot.swap(other) is forecaster
    assert held is forecaster and slot.current is other
