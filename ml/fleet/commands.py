"""CLI handler of ``fadecast features`` (one cell, or ``--all`` cells on dask) and the
cluster options ``forecast --all`` shares (``--scheduler``, ``--workers``,
``--memory-limit``)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from data_registry.errors import InputFormatError


@contextmanager
def client_for(args: argparse.Namespace) -> Iterator[Any]:
    """The dask client the options ask for: ``--scheduler ADDRESS`` (an existing cluster),
    else a LocalCluster of ``--workers N`` processes (default one per core) with
    ``--memory-limit`` each; ``--workers 0`` → None (this process, no dask)."""
    scheduler = getattr(args, "scheduler", None)
    workers = getattr(args, "workers", None)
    if not scheduler and workers == 0:
        with nullcontext() as none:
            yield none
        return
    from ml.fleet.cluster import fleet_client

    with fleet_client(scheduler, workers=workers,
                      memory_limit=getattr(args, "memory_limit", None) or "auto") as client:
        yield client


def report(summary: dict[str, Any], what: str) -> int:
    """One line on stderr (and the failed cells); exit code 0, or 2 if any cell failed."""
    failed = summary.get("failed") or {}
    print(f"{what} -> {summary['output']}" + (f"; {len(failed)} cell(s) failed" if failed
                                              else ""), file=sys.stderr)
    for cid, message in failed.items():
        print(f"  {cid}: {message}", file=sys.stderr)
    return 2 if failed else 0


def features_command(args: argparse.Namespace) -> int:
    """``fadecast features CELL_ID [-o FILE]`` or ``fadecast features --all -o DIR|FILE.parquet
    [--scheduler ADDRESS] [--workers N] [--memory-limit SIZE] [--max-cell-rows N]``."""
    if not getattr(args, "all", False):
        if not getattr(args, "cell_id", None):
            raise InputFormatError("features needs a cell id or --all", code="missing_cell",
                                   column="cell_id", expected="CELL_ID or --all",
                                   found="neither")
        from ml.features.commands import features_command as one_cell

        return one_cell(args)
    if getattr(args, "cell_id", None):
        raise InputFormatError("give a cell id or --all, not both", code="bad_option",
                               column="--all", expected="CELL_ID or --all",
                               found=f"{args.cell_id} and --all")
    output = getattr(args, "output", None)
    if not output:
        raise InputFormatError("features --all needs an output", code="missing_output",
                               column="-o", expected="-o DIR (a file per cell) or "
                               "-o FILE.parquet (one table)", found="none")
    suffix = Path(output).suffix.lower()
    if suffix and suffix != ".parquet":
        raise InputFormatError("features --all writes Parquet", code="bad_output_format",
                               file=str(output), expected="a folder or FILE.parquet",
                               found=suffix)
    from data_registry.store import Registry
    from ml.fleet.features import featurize_fleet

    reg = Registry()
    try:
        with client_for(args) as client:
            summary = featurize_fleet(
                reg, output, client=client,
                voltage_curves=not getattr(args, "no_voltage_curves", False),
                max_cell_rows=getattr(args, "max_cell_rows", None),
                progress=not getattr(args, "no_progress", False))
    finally:
        reg.close()
    return report(summary, f"{summary['cells']} cells, {summary['cycles']} cycles "
                  f"({summary['streamed']} in cycle blocks)")

