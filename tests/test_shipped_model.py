"""The production model shipped in models/production: a fresh clone (empty FADECAST_HOME, no
../shared, no champion) forecasts a real-format cycler export with it; its card records every
training source with its licence; a user's own champion would take precedence (test_model_store).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.model_store import SHIPPED_MODEL_DIR, shipped_model_dir

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shipped_model_dir() is None,
                                reason=f"no shipped model at {SHIPPED_MODEL_DIR} "
                                       "(run `make train` on a machine with ../shared/data)")


def _card() -> dict:
    return json.loads((SHIPPED_MODEL_DIR / "model_card.json").read_text(encoding="utf-8"))


def test_shipped_card_records_sources_licences_and_domain():
    card = _card()
    data = card["training_data"]
    assert data and all(d["licence"] and d["shippable"] for d in data)
    assert "geslin2024" not in {d["source"] for d in data}  # no open licence stated
    dom = card["training_domain"]
    for key in ("hours_per_cycle", "c_rate", "temperature_celsius", "reference_capacity_ah",
                "history_cycles", "cycle_index"):
        assert dom[key][0] <= dom[key][1], key
    assert card["conformal"]["capacity"]["method"] == "quadrature"
    # the history weighting's τ: the calibration search's best, never on a head's source
    hw = card["history_weighting"]
    errors = dict(zip(hw["grid"], hw["capacity_error_pct"]))
    assert hw["tempering"] == min(errors, key=lambda t: (errors[t], t))
    assert "severson-train" in hw["unweighted_sources"]
    assert card["model"]["mlflow_run_id"]  # traceable to the MLflow run that made it
    size = sum(p.stat().st_size for p in SHIPPED_MODEL_DIR.iterdir())
    assert size < 5_000_000


def test_fresh_clone_forecasts_a_cycler_export_with_the_shipped_model(tmp_path):
    env = {**os.environ, "FADECAST_HOME": str(tmp_path / "home"),
           "FADECAST_SHARED_DATA": str(tmp_path / "no-shared-data"), "OMP_NUM_THREADS": "1"}
    env.pop("FADECAST_SHIPPED_MODEL", None)
    exe = [sys.executable, "-m", "serving.cli"]
    ingest = subprocess.run(exe + ["ingest", str(REPO / "examples" / "pto_c10_raw.csv"),
                                   "--cell-id", "c10", "--no-progress"],
                            env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    out = subprocess.run(exe + ["forecast", "--cell", "c10", "--horizon-cycles", "40", "--json"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["model"]["version"] == _card()["version"]  # the shipped one: no champion here
    assert len(doc["forecast"]) == 40
    assert doc["uncertainty"]["history_weighting"]["tempering"] == \
        _card()["history_weighting"]["tempering"]
    for row in doc["forecast"]:
        q = row["capacity_ah"]
        assert q["p05"] < q["p50"] < q["p95"]  # never a zero-width band
    # a 0.4 mAh cell: no trained cell is that small, and the forecast says so
    assert doc["domain"]["in_domain"] is False
    assert any("reference capacity" in r for r in doc["domain"]["reasons"])
