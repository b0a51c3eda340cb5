"""CLI handler of ``fadecast train --config experiments/<study>/config.toml [--tracking-uri URI]``."""
from __future__ import annotations

import argparse
import json
import sys

from ml.training.config import load_config

__all__ = ["train_command"]


def train_command(args: argparse.Namespace) -> int:
    """Run the study; prints a JSON summary on stdout, progress and notes on stderr.

    Errors (bad config, missing data) propagate as ``FadecastError`` for the CLI to print.
    """
    from ml.training.pipeline import run_study

    cfg = load_config(args.config)
    result = run_study(cfg, tracking_uri=getattr(args, "tracking_uri", None),
                       progress=not getattr(args, "no_progress", False))
    keys = [k for k in sorted(result.metrics)
            if k.startswith(("val_", "test_")) and "cells_scored" not in k]
    summary = {"run_id": result.run_id, "model_dir": str(result.model_dir),
               "registered_version": result.version, "champion": result.promoted,
               "metrics": {k: result.metrics[k] for k in keys}}
    print(json.dumps(summary, indent=2))
    print(f"trained {cfg.name}: run {result.run_id}, version {result.version}"
          f"{' (champion)' if result.promoted else ''}", file=sys.stderr)
    return 0
