"""The Model page's data: the loaded model's card and the MLflow run it came from.

The run is found without guessing: a model exported by ``fadecast train`` lives in
``FADECAST_HOME/models/runs/<run_id>/`` and its card version ends in ``+<run_id[:8]>``; a
registry model is matched to the registered version whose run id has that prefix. MLflow is
imported only here, lazily, when a card names a run (the champion was loaded through MLflow
already); a model without a run (e.g. ``train_quick_model``) says so.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from serving.predict import clean_json
from serving.runtime import OnnxForecaster

__all__ = ["model_view", "mlflow_run"]

_CALIBRATION = re.compile(r"coverage|width|crps|pinball|calib", re.IGNORECASE)


def _card(model: OnnxForecaster, key: str, default: Any = None) -> Any:
    card = model.card
    return card.get(key, default) if isinstance(card, dict) else getattr(card, key, default)


def _run_prefix(version: str) -> str | None:
    m = re.search(r"\+([0-9a-f]{6,32})$", version)
    return m.group(1) if m else None


def mlflow_run(model: OnnxForecaster) -> dict[str, Any]:
    """``{"run_id", "experiment", "run_name", "status", "start_time_unix", "registered",
    "tracking_uri"}`` of the run that trained ``model``, or ``{"run_id": None, "note"}``."""
    path = Path(model.path)
    run_id = path.name if path.parent.name == "runs" else None
    prefix = run_id or _run_prefix(model.version)
    if prefix is None:
        return {"run_id": None, "note": f"model version '{model.version}' names no MLflow run "
                                        "(trained outside `fadecast train`, e.g. a quick test "
                                        "model)"}
    try:
        import mlflow

        from data_registry.home import mlflow_tracking_uri
        from ml.model_store import REGISTERED_NAME

        uri = mlflow_tracking_uri()
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        registered = []
        for mv in client.search_model_versions(f"name='{REGISTERED_NAME}'"):
            if mv.run_id and mv.run_id.startswith(prefix):
                run_id = mv.run_id
                registered.append({"name": mv.name, "version": str(mv.version),
                                   "aliases": list(getattr(mv, "aliases", []) or [])})
        if run_id is None:
            return {"run_id": None, "run_id_prefix": prefix, "tracking_uri": _redact(uri),
                    "note": "no run with this id prefix in the local MLflow store"}
        run = client.get_run(run_id)
        exp = client.get_experiment(run.info.experiment_id)
        return {"run_id": run_id, "experiment": exp.name if exp else None,
                "run_name": run.info.run_name, "status": run.info.status,
                "start_time_unix": run.info.start_time / 1000.0 if run.info.start_time else None,
                "registered": registered, "tracking_uri": _redact(uri),
                "open_with": "fadecast ui (the MLflow UI on this FADECAST_HOME), then this run "
                             "in its experiment"}
    except Exception as exc:  # noqa: BLE001 - the card still shows without its run
        return {"run_id": run_id, "run_id_prefix": prefix,
                "note": f"MLflow run not readable: {type(exc).__name__}"}


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
