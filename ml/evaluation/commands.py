"""``fadecast evaluate [--model URI] [--suite NAME ...] [--json] [--tracking-uri URI]``.

Runs the suites (default: every suite whose data exist) on the model (default: the registry's
champion, else the shipped production model; when there is neither and no ``--model`` was
given, the baselines alone, with a note) and on the baselines, then prints the per-source table
(``ml.evaluation.by_source``: model next to the √t + N fit, "in training" read from the card).
Tables go to stdout; with ``--json`` stdout holds exactly one JSON
document and notes go to stderr. With ``--tracking-uri`` the figures are also logged as their
own MLflow run (experiment ``fadecast-evaluation``) through ``ml.training.tracking``.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import FadecastError, NotFoundError
from ml.evaluation.forecasters import ModelForecaster
from ml.evaluation.suites import SUITES, available_suites, format_table, run_suite


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def plain(value: Any) -> Any:
    """JSON-safe copy: NaN/inf → None, numpy scalars → Python, DataFrames → records."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return plain(value.to_dict(orient="records"))
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def flat_metrics(results: list[dict]) -> dict[str, float]:
    """``{"<suite>/<figure>/<method>": value}`` for every finite figure (MLflow-safe keys)."""
    out = {}
    for result in results:
        for row in result["figures"]:
            for method, value in row["values"].items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    key = f"{result['suite']}/{row['figure']}/{method}"
                    out[re.sub(r"[^\w\-./ ]", "_", key)] = float(value)
    return out


def log_evaluation(results: list[dict], model_info: dict | None, tracking_uri: str) -> str:
    """Log the figures as one MLflow run; returns the run id."""
    from ml.training.tracking import log_metrics, training_run

    params = {"model": "baselines only" if model_info is None
              else f"{model_info['name']}:{model_info['version']}",
              "suites": ",".join(r["suite"] for r in results)}
    with training_run("fadecast-evaluation", params, tracking_uri=tracking_uri,
                      run_name="evaluate") as run_id:
        log_metrics(flat_metrics(results))
    return run_id


def _model(args: argparse.Namespace) -> ModelForecaster | None:
    uri = getattr(args, "model", None)
    try:
        return ModelForecaster.from_uri(uri, tracking_uri=getattr(args, "tracking_uri", None))
    except NotFoundError as exc:
        if uri is not None:
            raise
        _note(f"no champion model found ({exc.message}); evaluating the baselines only")
        return None


def evaluate_command(args: argparse.Namespace) -> int:
    """Handler of ``fadecast evaluate``; returns the exit code (0 on success)."""
    suites = list(args.suite) if getattr(args, "suite", None) else available_suites()
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise FadecastError(f"unknown suite {unknown[0]!r}", code="unknown_suite",
                            column="suite", expected=f"one of {list(SUITES)}",
                            found=repr(unknown[0]))
    model = _model(args)
    if model is not None:
        _note(f"model {model.card.name} version {model.card.version}")
    results = []
    for name in suites:
        _note(f"running suite {name} ...")
        start = time.perf_counter()
        result = run_suite(name, model=model)
        result["seconds"] = round(time.perf_counter() - start, 2)
        results.append(result)
        if not args.json:
            print(format_table(result))
            print()
    from ml.evaluation.by_source import format_source_table, source_rows

    by_source = source_rows(results, None if model is None else model.card)
    if not args.json:
        print(format_source_table(by_source))
    model_info = None if model is None else {"name": model.card.name,
                                             "version": model.card.version}
    run_id = None
    if getattr(args, "tracking_uri", None):
        run_id = log_evaluation(results, model_info, args.tracking_uri)
        _note(f"logged to MLflow run {run_id} at {args.tracking_uri}")
    if args.json:
        doc = {"model": model_info, "mlflow_run_id": run_id, "suites": results,
               "by_source": by_source}
        print(json.dumps(plain(doc), allow_nan=False))
    return 0
