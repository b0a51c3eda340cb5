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
    "features": "ml.fleet.commands:features_command",
    "warburg": "ml.features.commands:warburg_command",
    "train": "ml.training.commands:train_command",
    "evaluate": "ml.evaluation.commands:evaluate_command",
    "forecast": "serving.commands:forecast_command",
    "backtest": "serving.commands:backtest_command",
    "attribute": "serving.cohort_commands:attribute_command",
    "cohort": "serving.cohort_commands:cohort_command",
    "advice": "serving.commands:advice_command",
    "serve": "serving.commands:serve_command",
    "follow": "serving.follow:follow_command",
    "ui": "serving.commands:ui_command",
}


def _meta_pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--meta expects key=value, got '{text}'")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _plan_pair(text: str) -> tuple[str, str]:
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise argparse.ArgumentTypeError(f"--plan expects NAME=FILE.csv, got '{text}'")
    name, path = text.split("=", 1)
    return name.strip(), path.strip()


def _cluster_options(s: argparse.ArgumentParser) -> None:
    """Options of the --all (fleet) runs: where the dask workers are."""
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="with --all: an existing dask scheduler (tcp://host:8786); default: "
                   "a local cluster of --workers processes")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="with --all: local worker processes (default: one per core; 0 = in "
                   "this process, without dask)")
    s.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="with --all: memory per local worker, e.g. 2GiB (default: machine "
                   "memory / workers)")
    s.add_argument("--no-progress", action="store_true", help="with --all: no progress bar")


def _eis_matrix_options(s: argparse.ArgumentParser) -> None:
    """Options of an EIS matrix file (one spectrum per line: Re(Z), then Im(Z) or -Im(Z))."""
    s.add_argument("--frequencies", default=None, metavar="FILE",
                   help="EIS matrix (one spectrum per line): the file of its F frequencies in "
                   "Hz, in column order (default: a frequencies*.csv / *freq* file beside it "
                   "or in its parent folder)")
    s.add_argument("--eis-every-cycles", type=int, default=None, metavar="K",
                   help="EIS matrix: a spectrum every K cycles, line n = cycle K*n (default: "
                   "cycle unknown)")
    s.add_argument("--eis-cycle", type=int, default=None, metavar="N",
                   help="an EIS file of ONE spectrum without a cycle column (Gamry .DTA, "
                   "ZView .z, Maccor …): the cycle it was measured at (default: unknown)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument grammar of ``fadecast`` (see CONTRACTS.md)."""
    p = argparse.ArgumentParser(prog="fadecast", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("--home", help="registry folder (default: $FADECAST_HOME or ./fadecast-data)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("ingest", help="ingest cycler exports or EIS spectra into the registry",
                       description="Store raw cycler exports, per-cycle capacity tables or EIS "
                       "spectra as one cell (--cell-id), or a table of many cells as one cell "
                       "per value of its cell column (--cell-column NAME). The format is "
                       "detected by content (see --list-formats); the raw file is kept "
                       "verbatim; every warning is printed on stderr.")
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
    s.add_argument("--capacity-unit", choices=("Ah", "mAh"), default=None,
                   help="unit of a capacity column whose header names none (default: "
                   "inferred from its values, median > 20 -> mAh, and warned)")
    s.add_argument("--active-mass-g", type=float, default=None, metavar="G",
                   help="grams of active material: reads a capacity per mass (mAh/g) in Ah")
    s.add_argument("--all-columns", action="store_true",
                   help="capacity table with one column per cell: ingest every column as its "
                   "own cell (cell id = --cell-id prefix + column name)")
    s.add_argument("--cell-column", default=None, metavar="NAME",
                   help="a table of MANY cells (one long file, column NAME naming each row's "
                   "cell, e.g. cell_name or Channel): store each cell as its own, cell id = "
                   "--cell-id prefix + value, all or nothing (without it such a table is "
                   "refused, never merged)")
    s.add_argument("--cell-value", default=None, metavar="VALUE",
                   help="with --cell-column: store only the rows of this cell, as --cell-id")
    s.add_argument("--eis-sign", choices=("auto", "im", "minus_im"), default=None,
                   help="EIS files: auto (default) detects a stored -Im(Z) and negates it; "
                   "im / minus_im state what the file holds")
    _eis_matrix_options(s)
    s.add_argument("--list-formats", action="store_true",
                   help="print every readable format (name, kind, needs) and exit")
    s.add_argument("--list-columns", action="store_true",
                   help="print the accepted column names (canonical and aliases) and exit")
    s.add_argument("--json", action="store_true", help="print the ingest report as JSON")
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    for name in ("cells", "datasets"):
        s = sub.add_parser(name, help=f"list registered {name}")
        s.add_argument("--json", action="store_true", help="print a JSON list on stdout")
    s = sub.add_parser("show", help="show one cell: metadata, files, lineage, warnings")
    s.add_argument("cell_id", help="a registered cell (see `fadecast cells`)")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    s = sub.add_parser("features", help="per-cycle descriptor table of a registered cell "
                       "(or of every cell with --all, on dask)")
    s.add_argument("cell_id", nargs="?", help="a registered cell (see `fadecast cells`)")
    s.add_argument("-o", "--output", default=None, help="FILE.csv or FILE.parquet (default "
                   "stdout); with --all: a folder (a file per cell) or FILE.parquet")
    s.add_argument("--all", action="store_true",
                   help="every registered cell, mapped over dask workers")
    s.add_argument("--max-cell-rows", type=float, default=None, metavar="N",
                   help="with --all: cells with more sample rows are processed in cycle "
                   "blocks (default: from the workers' memory limit)")
    _cluster_options(s)
    s.add_argument("--no-voltage-curves", action="store_true",
                   help="skip the Q(V), dQ(V) and dQ/dV descriptors (faster)")

    s = sub.add_parser("warburg", help="Warburg coefficient A_w per EIS spectrum")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--eis", default=None, metavar="FILE",
                   help="an EIS file (any format `fadecast ingest --list-formats` marks eis)")
    g.add_argument("--cell", "--cell-id", dest="cell", default=None, metavar="ID",
                   help="a registered cell's stored spectra")
    s.add_argument("--eis-format", "--format", dest="format_name", default=None,
                   metavar="NAME", help="EIS reader name (default: detect by content), e.g. "
                   "eis_text, generic_eis_csv, biologic_peis_txt, maccor_eis")
    s.add_argument("--eis-sign", choices=("auto", "im", "minus_im"), default=None,
                   help="auto (default): a file storing -Z'' is detected and negated; im / "
                   "minus_im: state what the file holds")
    _eis_matrix_options(s)
    s.add_argument("--json", action="store_true",
                   help="print a JSON list, one item per spectrum")

    s = sub.add_parser("train", help="train a forecaster from a study config (tracked in MLflow)")
    s.add_argument("--config", required=True, metavar="FILE.toml",
                   help="study config, e.g. experiments/default/config.toml")
    s.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: the SQLite store in FADECAST_HOME)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    s = sub.add_parser("evaluate", help="print the quality figures of a model")
    s.add_argument("--model", default=None, help="model URI (default: the champion)")
    s.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: the SQLite store in FADECAST_HOME)")
    s.add_argument("--suite", action="append", default=None,
                   help="pybamm-dev | severson | severson-test2 (where the data carry it) | "
                        "synthetic | geslin2024 | nasa-pcoe | pybamm-cohorts | "
                        "pybamm-cohorts-cells (default: all available)")
    s.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    s = sub.add_parser("forecast", help="forecast one cell's capacity trajectory",
                       description="Forecast a cell's capacity for the next N cycles with "
                       "p05/p50/p95 bands, its end of life and the time-driven share of its "
                       "fade so far.")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--cycles", default=None, metavar="FILE.csv",
                   help="per-cycle table: cycle_index, test_time_second, discharge_capacity_ah"
                   " (or any table `fadecast ingest` reads as per-cycle, e.g. Cycle,Capacity)")
    g.add_argument("--cell", "--cell-id", dest="cell", default=None, metavar="ID",
                   help="a registered cell (the id given to `ingest --cell-id`)")
    g.add_argument("--all", action="store_true",
                   help="every registered cell, on dask workers, into -o FILE.parquet")
    s.add_argument("-o", "--output", default=None, metavar="FILE.parquet",
                   help="with --all: the forecasts, one row per cell and forecast cycle")
    _cluster_options(s)
    s.add_argument("--horizon-cycles", type=int, required=True, metavar="N",
                   help="how many cycles ahead to forecast")
    s.add_argument("--hours-per-cycle", type=float, default=None, metavar="H",
                   help="hours per future cycle (default: median of the last 10 observed); "
                   "also estimates the clock of a history that has none")
    s.add_argument("--c-rate", type=float, default=None, metavar="C",
                   help="instead of --hours-per-cycle: 2/C hours per cycle (charge + "
                   "discharge at C, no rests)")
    s.add_argument("--capacity-column", default=None, metavar="NAME",
                   help="capacity table with one column per cell: the column to forecast")
    s.add_argument("--capacity-unit", choices=("Ah", "mAh"), default=None,
                   help="unit of a capacity column whose header names none (default: "
                   "inferred from its values, median > 20 -> mAh, and warned)")
    s.add_argument("--active-mass-g", type=float, default=None, metavar="G",
                   help="grams of active material: reads a capacity per mass (mAh/g) in Ah")
    s.add_argument("--eol", type=float, default=0.8, metavar="FRACTION",
                   help="end-of-life threshold as a fraction of the reference capacity "
                   "(default 0.8)")
    s.add_argument("--nominal-capacity-ah", type=float, default=None, metavar="Q",
                   help="reference capacity in Ah (default: max discharge capacity of the "
                   "first 3 cycles)")
    s.add_argument("--model", default=None, help="model URI or local .onnx (default: champion)")
    s.add_argument("--json", action="store_true",
                   help="print exactly one JSON document on stdout (notes go to stderr)")

    s = sub.add_parser("advice", help="stop or continue a running test (POST /v1/advice)",
                       description="Early-stopping advice for one cell: stop when its end of "
                       "life is known within the tolerance, else continue.")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--cycles", default=None, metavar="FILE.csv",
                   help="per-cycle table of the cell (as for `fadecast forecast`)")
    g.add_argument("--cell", "--cell-id", dest="cell", default=None, metavar="ID",
                   help="a registered cell (the id given to `ingest --cell-id`)")
    s.add_argument("--planned-cycles", type=int, required=True, metavar="N",
                   help="cycles the test plan runs to")
    s.add_argument("--tolerance-cycles", type=float, required=True, metavar="T",
                   help="end of life counts as known when p95 - p05 <= 2 T cycles")
    s.add_argument("--min-cycles-to-eol", type=float, default=None, metavar="N",
                   help="pass/fail spec: the cell passes if it reaches N cycles before EOL")
    s.add_argument("--eol", type=float, default=0.8, metavar="FRACTION",
                   help="end-of-life threshold as a fraction of the reference (default 0.8)")
    s.add_argument("--hours-per-cycle", type=float, default=None, metavar="H",
                   help="hours per future cycle; also estimates a missing clock")
    s.add_argument("--c-rate", type=float, default=None, metavar="C",
                   help="instead of --hours-per-cycle: 2/C hours per cycle")
    s.add_argument("--capacity-column", default=None, metavar="NAME",
                   help="capacity table with one column per cell: the column to use")
    s.add_argument("--capacity-unit", choices=("Ah", "mAh"), default=None,
                   help="unit of a capacity column whose header names none (default: "
                   "inferred from its values, median > 20 -> mAh, and warned)")
    s.add_argument("--active-mass-g", type=float, default=None, metavar="G",
                   help="grams of active material: reads a capacity per mass (mAh/g) in Ah")
    s.add_argument("--nominal-capacity-ah", type=float, default=None, metavar="Q",
                   help="reference capacity in Ah (default: max of the first 3 cycles)")
    s.add_argument("--model", default=None, help="model URI or local .onnx (default: champion)")
    s.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    s = sub.add_parser("backtest", help="replay finished cells through the early-stopping policy")
    s.add_argument("--model", default=None, help="model URI or folder (default: the champion)")
    s.add_argument("--suite", action="append", default=None,
                   help="synthetic | pybamm-dev | severson-test1 | nasa-pcoe | geslin2024 "
                   "(repeatable; default: all available)")
    s.add_argument("--json", action="store_true", help="print one JSON document on stdout")

    s = sub.add_parser("attribute", help="split a cohort's fade into time and cycle parts",
                       description="Fit one shared time/cycle degradation law jointly to "
                       "sibling cells (same design, different protocols): time share per cell "
                       "with 90 % intervals, which sibling to run next, what-if plans. One "
                       "cell is answered too, with a wide interval and the advice to run a "
                       "sibling. Every run is recorded in MLflow.")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--cycles", nargs="+", default=None, metavar="FILE.csv",
                   help="per-cycle tables (one cell each, or several told apart by cell_id)")
    g.add_argument("--cohort", default=None, metavar="NAME",
                   help="a registry cohort (cells ingested with --meta cohort=NAME)")
    g.add_argument("--cells", nargs="+", default=None, metavar="ID", help="registered cells")
    s.add_argument("--plan", action="append", type=_plan_pair, default=[],
                   metavar="NAME=FILE.csv", help="a planned sibling: cycle_index, "
                   "test_time_second (planned clock), optional c_rate, rest_second, "
                   "temperature_celsius (repeatable)")
    s.add_argument("--plan-clock", choices=("given", "follows-capacity"), default="given",
                   help="plans' clocks as given, or each planned cycle shortened by the "
                   "constant-current time its predicted fade saves (needs c_rate)")
    s.add_argument("--horizon-cycles", type=int, default=None, metavar="N",
                   help="also forecast each cell N cycles ahead at its recent pace")
    s.add_argument("--nominal-capacity-ah", type=float, default=None, metavar="Q",
                   help="reference capacity in Ah (required when cells differ in nominal "
                   "capacity)")
    s.add_argument("--model", default=None, metavar="URI",
                   help="population prior JSON (default: the one shipped in ml/cohort)")
    s.add_argument("--name", dest="cohort_name", default=None,
                   help="cohort name to report for --cycles/--cells")
    s.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: the SQLite store in FADECAST_HOME)")
    s.add_argument("--no-track", action="store_true", help="do not record an MLflow run")
    s.add_argument("--json", action="store_true",
                   help="print exactly one JSON document on stdout (notes go to stderr)")

    s = sub.add_parser("cohort", help="list a cohort's cells, or add cells to it")
    s.add_argument("name", help="cohort name (letters, digits, _ . -)")
    s.add_argument("--add", nargs="+", default=None, metavar="CELL",
                   help="registered cells to put into the cohort")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    s = sub.add_parser("serve", help="run the prediction API")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    s.add_argument("--model", default=None,
                   help="model URI, folder or .onnx file (default: the champion)")
    s.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    s = sub.add_parser(
        "follow", help="follow a running test: append new rows, advise at each cycle",
        description="Tail a cycler export still being written (or a folder where new files "
        "appear): append only new rows (idempotent: re-reading or a restart adds nothing "
        "twice), extend the cell's per-cycle table, forecast and advise at each completed "
        "cycle, and POST a signed webhook when the advice flips. The webhook secret comes "
        "from FADECAST_SERVE_WEBHOOK_SECRET (never the command line).")
    s.add_argument("path", metavar="PATH", help="the export file, or a folder of exports")
    s.add_argument("--cell-id", required=True, help="the cell's id")
    s.add_argument("--planned-cycles", type=int, required=True, metavar="N",
                   help="cycle the test is planned to end at")
    s.add_argument("--tolerance-cycles", type=float, default=None, metavar="T",
                   help="end of life known to +/- T cycles is enough (default 5%% of N)")
    s.add_argument("--eol", type=float, default=0.8, help="end-of-life fraction (default 0.8)")
    s.add_argument("--spec-min-cycles", type=float, default=None, metavar="N",
                   help="acceptance spec: the cell passes when its EOL is at or after N")
    s.add_argument("--format", dest="format_name", default=None, metavar="NAME",
                   help="reader name (default: detect by content)")
    s.add_argument("--meta", action="append", type=_meta_pair, default=[], metavar="KEY=VALUE",
                   help="cell metadata, repeatable (as for ingest)")
    s.add_argument("--hours-per-cycle", type=float, default=None, metavar="H",
                   help="as for ingest: clock of per-cycle exports without time")
    s.add_argument("--c-rate", type=float, default=None, metavar="C", help="as for ingest")
    s.add_argument("--on-error", choices=("raise", "skip-row"), default=None,
                   help="as for ingest (default raise)")
    s.add_argument("--model", default=None, help="model URI (default: the champion)")
    s.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between polls (default 1)")
    s.add_argument("--webhook-url", default=None, metavar="URL",
                   help="POST here when the advice flips (default FADECAST_SERVE_WEBHOOK_URL)")
    s.add_argument("--once", action="store_true", help="one poll, deliver webhooks, exit")
    s.add_argument("--exit-on-stop", action="store_true",
                   help="exit once the advice is stop")
    s.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                   help="exit after this long without new rows")
    s.add_argument("--json", action="store_true", help="one JSON event per line on stdout")

    s = sub.add_parser("ui", help="open the MLflow UI on this home's runs and models")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=5000, help="TCP port (default 5000)")
    s.add_argument("--print-only", action="store_true",
                   help="print the mlflow command and URL instead of starting it")
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
