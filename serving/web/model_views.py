"""The Model page's data: the loaded model's card and the MLflow run it came from.

The run id comes from the card (``model.mlflow_run_id``, written by ``fadecast train``), else
from the export folder ``FADECAST_HOME/models/runs/<run_id>/``, else from the version suffix
``+<run_id[:8]>``. The run's experiment, status and registered versions are read from the local
MLflow store (SQLite inside FADECAST_HOME) with a read-only query, so the page never waits for
MLflow to import (seconds); a model whose run is not in this home's store (e.g. the shipped
production model) or that names none (``train_quick_model``) says so.
"""
from __future__ import annotations

import math
import re
import sqlite3
from pathlib import Path
from typing import Any

from serving.predict import clean_json
from serving.runtime import OnnxForecaster

__all__ = ["model_view", "mlflow_run"]

_CALIBRATION = re.compile(r"_model_(coverage_90_pct|interval_width_90_pct_of_reference|"
                          r"time_share_coverage_90_pct|time_share_interval_width_90)$")


def _card(model: OnnxForecaster, key: str, default: Any = None) -> Any:
    card = model.card
    return card.get(key, default) if isinstance(card, dict) else getattr(card, key, default)


def _run_prefix(version: str) -> str | None:
    m = re.search(r"\+([0-9a-f]{6,32})$", version)
    return m.group(1) if m else None


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri[len("sqlite:///"):])
    return path if path.is_file() else None


def _lookup(db: Path, prefix: str) -> dict[str, Any] | None:
    """The run whose id starts with ``prefix`` in MLflow's SQLite store (read-only)."""
    con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=2)
    try:
        row = con.execute("SELECT run_uuid, name, status, start_time, experiment_id FROM runs "
                          "WHERE run_uuid LIKE ? ORDER BY start_time DESC LIMIT 1",
                          (prefix + "%",)).fetchone()
        if row is None:
            return None
        run_id, name, status, start, exp_id = row
        exp = con.execute("SELECT name FROM experiments WHERE experiment_id = ?",
                          (exp_id,)).fetchone()
        versions = con.execute("SELECT name, version FROM model_versions WHERE run_id = ?",
                               (run_id,)).fetchall()
        registered = []
        for vname, version in versions:
            aliases = [a for (a,) in con.execute(
                "SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ?",
                (vname, version))]
            registered.append({"name": vname, "version": str(version), "aliases": aliases})
        return {"run_id": run_id, "run_name": name, "status": status,
                "start_time_unix": start / 1000.0 if start else None,
                "experiment": exp[0] if exp else None, "registered": registered}
    finally:
        con.close()


def mlflow_run(model: OnnxForecaster) -> dict[str, Any]:
    """``{"run_id", "experiment", "run_name", "status", "start_time_unix", "registered",
    "tracking_uri", "open_with"}`` of the run that trained ``model``, or ``run_id`` (possibly
    None) with a ``note`` saying why no more is known."""
    from data_registry.home import mlflow_tracking_uri

    arch = _card(model, "model", {}) or {}
    path = Path(model.path)
    run_id = arch.get("mlflow_run_id") or (path.name if path.parent.name == "runs" else None)
    prefix = run_id or _run_prefix(model.version)
    if prefix is None:
        return {"run_id": None, "note": f"model version '{model.version}' names no MLflow run "
                                        "(trained outside `fadecast train`, e.g. a quick test "
                                        "model)"}
    uri = mlflow_tracking_uri()
    out: dict[str, Any] = {"run_id": run_id, "run_id_prefix": prefix,
                           "tracking_uri": _redact(uri)}
    db = _sqlite_path(uri)
    if db is None:
        return {**out, "note": "the tracking store is not this home's SQLite file: open it "
                               "with `fadecast ui` or the MLflow UI"}
    try:
        found = _lookup(db, prefix)
    except sqlite3.Error as exc:
        return {**out, "note": f"the local MLflow store is not readable ({type(exc).__name__})"}
    if found is None:
        return {**out, "note": "this run is not in this home's MLflow store (a model trained "
                               "elsewhere, e.g. the shipped production model)"}
    return {**out, **found, "open_with": "fadecast ui (the MLflow UI on this FADECAST_HOME)"}


def _redact(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", uri)


def model_view(model: OnnxForecaster) -> dict[str, Any]:
    """The card's training sources and domain, calibration (conformal constants and measured
    coverage), features, window, architecture, and the MLflow run."""
    metrics = dict(_card(model, "metrics", {}) or {})
    calibration = {k: v for k, v in sorted(metrics.items())
                   if _CALIBRATION.search(k) and isinstance(v, (int, float))
                   and math.isfinite(float(v))}
    return clean_json({
        "name": model.name, "version": model.version,
        "created_utc": _card(model, "created_utc"),
        "dataset_hash": _card(model, "dataset_hash"),
        "training_domain": _card(model, "training_domain", {}),
        "training_data": _card(model, "training_data", []),
        "conformal": _card(model, "conformal", {}),
        "advice_interval_scale": model.interval_scale,
        "calibration_metrics": calibration,
        "metrics": {k: v for k, v in sorted(metrics.items()) if k not in calibration},
        "features": _card(model, "features", []),
        "window": _card(model, "window", {}),
        "quantile_levels": _card(model, "quantile_levels", []),
        "architecture": _card(model, "model", {}),
        "reference_capacity": _card(model, "reference_capacity", {}),
        "mlflow": mlflow_run(model),
    })
