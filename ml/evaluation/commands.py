"""``fadecast evaluate [--model URI] [--suite NAME ...] [--json] [--tracking-uri URI]``.

Runs the suites (default: every suite whose data exist) on the model (default: the registry's
champion; when there is none and no ``--model`` was given, the baselines alone, with a note)
and on the baselines. Tables go to stdout; with ``--json`` stdout holds exactly one JSON
document and notes go to stderr.
"""
from __future__ import annotations

import argparse
import json
import math
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
    if args.json:
        model_info = None if model is None else {"name": model.card.name,
                                                 "version": model.card.version}
        print(json.dumps(plain({"model": model_info, "suites": results}), allow_nan=False))
    return 0
