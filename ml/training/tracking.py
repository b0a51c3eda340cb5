"""Everything MLflow, in ONE module: run, params, datasets, metrics, figures, model, registry.

The tracking URI is always explicit (default ``data_registry.home.mlflow_tracking_uri()``, SQLite
inside FADECAST_HOME, with artifacts under ``mlflow_artifact_root()``). The model is logged as an
ONNX flavour with an explicit signature, an input example, explicit ``pip_requirements`` and the
model card as an extra file; registration is an explicit last step, and the alias ``champion``
moves only to a model that beats the current champion on the same validation cells.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from data_registry.home import mlflow_artifact_root, mlflow_tracking_uri
from ml.inference import CARD_FILE, INPUTS, MODEL_FILE, OUTPUTS
from ml.model_store import CHAMPION_ALIAS, REGISTERED_NAME

__all__ = ["resolve_tracking_uri", "training_run", "log_datasets", "log_metrics", "log_figure",
           "log_onnx_model", "register_and_promote"]

PIP_REQUIREMENTS = ["onnxruntime", "numpy", "onnx"]


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri`` or the FADECAST_HOME default."""
    return uri or mlflow_tracking_uri()


def _is_local(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri


@contextmanager
def training_run(experiment: str, params: dict[str, str], *, tracking_uri: str,
                 run_name: str | None = None) -> Iterator[str]:
    """Start an MLflow run in ``experiment`` (created if needed) and log ``params``; yields the
    run id. Local stores keep artifacts in ``mlflow_artifact_root()``."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        location = mlflow_artifact_root().as_uri() if _is_local(tracking_uri) else None
        exp_id = client.create_experiment(experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
        mlflow.log_params(params)
        yield run.info.run_id


def log_datasets(frames: dict[str, pd.DataFrame], digest: str) -> None:
    """Each split's per-cycle table as a run input (context = split name), hashed."""
    import mlflow

    for split, frame in frames.items():
        if frame is None or frame.empty:
            continue
        with warnings.catch_warnings():
            # MLflow's schema-inference hint about integer columns concerns model signatures,
            # not logged inputs; it would reach every CLI user's terminal.
            warnings.filterwarnings("ignore", message=".*Inferred schema contains integer",
                                    category=UserWarning)
            ds = mlflow.data.from_pandas(frame, name=f"cycles-{split}", digest=digest[:32])
            mlflow.log_input(ds, context=split)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Finite metrics only (MLflow rejects NaN in some stores)."""
    import mlflow

    clean = {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
    if clean:
        mlflow.log_metrics(clean, step=step)


def log_figure(figure, name: str) -> None:
    """A matplotlib figure as a PNG artifact under ``plots/``."""
    import mlflow

    mlflow.log_figure(figure, f"plots/{name}.png")


def _signature(n_features: int, n_samples: int):
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    f32 = np.dtype("float32")
    inputs = Schema([TensorSpec(f32, (-1, -1, n_features), INPUTS[0]),
                     TensorSpec(f32, (-1, -1, n_features), INPUTS[1]),
                     TensorSpec(f32, (-1, -1), INPUTS[2]), TensorSpec(f32, (-1, -1), INPUTS[3])])
    outputs = Schema([TensorSpec(f32, (-1, -1, n_samples), o) for o in OUTPUTS])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_onnx_model(model_dir: Path, input_example: dict[str, np.ndarray],
                   n_samples: int) -> str:
    """Log ``model_dir``'s ONNX graph (+ card) to the active run; returns the model URI."""
    import mlflow
    import onnx

    proto = onnx.load(str(model_dir / MODEL_FILE))
    info = mlflow.onnx.log_model(
        proto, name="model", signature=_signature(input_example["history"].shape[-1], n_samples),
        input_example=input_example, pip_requirements=PIP_REQUIREMENTS,
        extra_files=[str(model_dir / CARD_FILE)], save_as_external_data=False)
    mlflow.log_artifact(str(model_dir / CARD_FILE))
    return info.model_uri


def register_and_promote(model_uri: str, score: float, *, tracking_uri: str,
                         champion_score: Callable[[], float | None]) -> tuple[str, bool]:
    """Register ``model_uri`` as ``fadecast-forecaster``; give it alias ``champion`` when the
    registry has none, or when ``score`` (lower = better) beats ``champion_score()`` — the
    current champion scored on the SAME validation cells. Returns (version, promoted)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    mv = mlflow.register_model(model_uri, REGISTERED_NAME)
    client.set_model_version_tag(REGISTERED_NAME, mv.version, "val_score", f"{score:.6g}")
    try:
        client.get_model_version_by_alias(REGISTERED_NAME, CHAMPION_ALIAS)
        has_champion = True
    except MlflowException:
        has_champion = False
    promote = not has_champion
    if has_champion:
        current = champion_score()
        # a model without a finite score never displaces a champion
        promote = bool(np.isfinite(score)) and (current is None or not np.isfinite(current)
                                                 or score < current)
        if current is not None:
            client.set_model_version_tag(REGISTERED_NAME, mv.version, "champion_val_score",
                                         f"{current:.6g}")
    if promote:
        client.set_registered_model_alias(REGISTERED_NAME, CHAMPION_ALIAS, mv.version)
    return str(mv.version), promote
