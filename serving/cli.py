"""The ``fadecast`` command: the top floor, so every import arrow runs down.

Argument parsing lives here; each sub-command's work lives in the package that owns it and is
imported lazily, so ``fadecast cells`` never loads torch and ``fadecast serve`` never loads the
training code.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Pin math threads before numpy/torch/onnxruntime load (see README: 20–70x slowdowns otherwise).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

#: sub-command -> "module:function"; the function takes the parsed namespace, returns exit code.
HANDLERS: dict[str, str] = {
    "ingest": "data_registry.commands:ingest_command",
    "cells": "data_registry.commands:cells_command",
    "datasets": "data_registry.commands:datasets_command",
    "show": "data_registry.commands:show_command",
    "features": "ml.features.commands:features_command",
    "warburg": "ml.features.commands:warburg_command",
    "train": "ml.training.commands:train_command",
    "evaluate": "ml.evaluation.commands:evaluate_command",
    "forecast": "serving.commands:forecast_command",
    "backtest": "serving.commands:backtest_command",
    "serve": "serving.commands:serve_command",
}


def _meta_pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--meta expects key=value, got '{text}'")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    """The full argument grammar of ``fadecast`` (see CONTRACTS.md)."""
    p = argparse.ArgumentParser(prog="fadecast", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("--home", help="registry folder (default: $FADECAST_HOME or ./fadecast-data)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("ingest", help="ingest cycler exports or EIS spectra into the registry",
                       description="Store raw cycler exports, per-cycle capacity tables or EIS "
                       "spectra of ONE cell (format detected by content; see --list-formats). "
                       "The raw file is kept verbatim; every warning is printed on stderr.")
    s.add_argument("paths", nargs="*", metavar="PATH",
                   help="files of the cell, in time order (later files continue earlier ones)")
    s.add_argument("--cell-id", default=None,
                   help="the cell's id (letters, digits, . _ -); required unless listing")
    s.add_argument("--format", "--eis-format", dest="format_name", default=None,
                   metavar="NAME", help="reader name (default: detect by content; "
                   "see --list-formats)")
    s.add_argument("--meta", action="append", type=_meta_pair, default=[], metavar="KEY=VALUE",
                   help="cell metadata, repeatable: chemistry=…, nominal_capacity_ah=…, "
                   "active_mass_g=…, temperature_celsius=…, protocol=…")
    s.add_argument("--hours-per-cycle", type=float, default=None, metavar="H",
                   help="per-cycle table without a clock: cycle n ends at n × H hours "
                   "(stored as estimated)")
    s.add_argument("--c-rate", type=float, default=None, metavar="C",
                   help="per-cycle table without a clock: estimate 2/C hours per cycle "
                   "(charge + discharge at C, no rests; stored as estimated)")
    s.add_argument("--on-error", choices=("raise", "skip-row"), default="raise",
                   help="raise (default): refuse the file at its first bad row; skip-row: "
                   "drop bad rows and store each one's line and reason with the ingest")
    s.add_argument("--capacity-column", default=None, metavar="NAME",
                   help="capacity table with one column per cell: the column to read "
                   "(default: the only one, or the one named like --cell-id)")
    s.add_argument("--all-columns", action="store_true",
                   help="capacity table with one column per cell: ingest every column as its "
                   "own cell (cell id = --cell-id prefix + column name)")
    s.add_argument("--eis-sign", choices=("auto", "im", "minus_im"), default=None,
                   help="EIS files: auto (default) detects a stored -Im(Z) and negates it; "
                   "im / minus_im state what the file holds")
    s.add_argument("--list-formats", action="store_true",
                   help="print every readable format (name, kind, needs) and exit")
    s.add_argument("--list-columns", action="store_true",
                   help="print the accepted column names (canonical and aliases) and exit")
    s.add_argument("--json", action="store_true", help="print the ingest report as JSON")
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    for name in ("cells", "datasets"):
        s = sub.add_parser(name, help=f"list registered {name}")
        s.add_argument("--json", action="store_true")
    s = sub.add_parser("show", help="show one cell: metadata, files, lineage, warnings")
    s.add_argument("cell_id")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("features", help="per-cycle descriptor table of a registered cell")
    s.add_argument("cell_id")
    s.add_argument("-o", "--output", default=None, help="FILE.csv or FILE.parquet (default stdout)")
    s.add_argument("--no-voltage-curves", action="store_true")

    s = sub.add_parser("warburg", help="Warburg coefficient A_w per EIS spectrum")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--eis", default=None, metavar="FILE")
    g.add_argument("--cell", default=None, metavar="ID")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("train", help="train a forecaster from a study config (tracked in MLflow)")
    s.add_argument("--config", required=True)
    s.add_argument("--tracking-uri", default=None)
    s.add_argument("--no-progress", action="store_true")

    s = sub.add_parser("evaluate", help="print the quality figures of a model")
    s.add_argument("--model", default=None, help="model URI (default: the champion)")
    s.add_argument("--tracking-uri", default=None)
    s.add_argument("--suite", action="append", default=None,
                   help="pybamm-dev | severson | synthetic | geslin2024 | nasa-pcoe (default: all available)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("forecast", help="forecast one cell's capacity trajectory")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--cycles", default=None, metavar="FILE.csv")
    g.add_argument("--cell", default=None, metavar="ID")
    s.add_argument("--horizon-cycles", type=int, required=True)
    s.add_argument("--hours-per-cycle", type=float, default=None)
    s.add_argument("--eol", type=float, default=0.8)
    s.add_argument("--nominal-capacity-ah", type=float, default=None)
    s.add_argument("--model", default=None, help="model URI or local .onnx (default: champion)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("backtest", help="replay finished cells through the early-stopping policy")
    s.add_argument("--model", default=None)
    s.add_argument("--suite", action="append", default=None)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("serve", help="run the prediction API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--model", default=None)
    s.add_argument("--workers", type=int, default=1)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fadecast`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.home:
        os.environ["FADECAST_HOME"] = args.home
    module_name, func_name = HANDLERS[args.command].split(":")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
        code = handler(args)
    except KeyboardInterrupt:
        print("fadecast: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's one catch-all: one line, no traceback
        from data_registry.errors import FadecastError

        if args.debug:
            raise
        if isinstance(exc, FadecastError):
            print(f"fadecast {args.command}: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            print(f"fadecast {args.command}: error: {exc}", file=sys.stderr)
            return 2
        print(f"fadecast {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
