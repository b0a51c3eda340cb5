"""CLI handlers of the registry: ``fadecast ingest | cells | datasets | show``.

Each takes the argparse namespace built by ``serving/cli.py`` and returns an exit code. With
``--json`` stdout holds exactly one JSON document; warnings, notes and progress go to stderr.
A :class:`~data_registry.errors.FadecastError` propagates to the CLI, which prints one line and
exits 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from data_registry.errors import FadecastError
from data_registry.manifest import IngestReport
from data_registry.store import Registry


def _cli_reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reader options of ``fadecast ingest``'s flags (names of ``Registry.ingest``)."""
    opts = {"hours_per_cycle": getattr(args, "hours_per_cycle", None),
            "c_rate": getattr(args, "c_rate", None),
            "on_error": getattr(args, "on_error", None),
            "capacity_column": getattr(args, "capacity_column", None),
            "capacity_unit": getattr(args, "capacity_unit", None),
            "eis_sign": getattr(args, "eis_sign", None),
            "frequencies": getattr(args, "frequencies", None),
            "eis_every_cycles": getattr(args, "eis_every_cycles", None),
            "eis_cycle": getattr(args, "eis_cycle", None)}
    return {k: v for k, v in opts.items() if v is not None and v != "raise"}


def _cli_meta(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``--meta k=v`` pairs, plus ``--active-mass-g G`` as ``("active_mass_g", "G")``."""
    meta = list(getattr(args, "meta", None) or [])
    if getattr(args, "active_mass_g", None) is not None:
        meta.append(("active_mass_g", repr(float(args.active_mass_g))))
    return meta


def _usage_error(message: str, column: str, expected: str) -> FadecastError:
    return FadecastError(message, code="bad_option", column=column, expected=expected,
                         found="nothing")


def ingest_command(args: argparse.Namespace) -> int:
    """``fadecast ingest PATH... --cell-id ID [--format NAME] [--meta k=v ...] [--json]``;
    ``--list-formats`` / ``--list-columns`` print what is accepted and exit."""
    if getattr(args, "list_formats", False) or getattr(args, "list_columns", False):
        from data_registry.accepted import columns_text, formats_text

        parts = []
        if getattr(args, "list_formats", False):
            parts.append(formats_text())
        if getattr(args, "list_columns", False):
            parts.append(columns_text())
        print("\n\n".join(parts))
        return 0
    if not args.paths:
        raise _usage_error("no file given", "PATH", "one or more files to ingest")
    options = _cli_reader_options(args)
    if getattr(args, "all_columns", False) and getattr(args, "cell_column", None):
        raise _usage_error("--all-columns (one cell per column) and --cell-column (one cell "
                           "per value of a column) cannot be combined", "--cell-column",
                           "one of them")
    if getattr(args, "all_columns", False):
        return _ingest_all_columns(args, options)
    if getattr(args, "cell_column", None) and getattr(args, "cell_value", None) is None:
        return _ingest_table(args, options)
    if getattr(args, "cell_value", None) is not None:
        if not getattr(args, "cell_column", None):
            raise _usage_error("--cell-value needs --cell-column", "--cell-column",
                               "the column that names each row's cell, e.g. --cell-column "
                               "cell_name --cell-value cell_003")
        options.update(cell_column=args.cell_column, cell_value=args.cell_value)
    if not args.cell_id:
        raise _usage_error("--cell-id is required", "--cell-id", "the cell's id, e.g. "
                           "--cell-id cell07")
    with Registry() as reg:
        try:
            report = reg.ingest(list(args.paths), args.cell_id,
                                format_name=getattr(args, "format_name", None),
                                meta=_cli_meta(args),
                                progress=not getattr(args, "no_progress", False),
                                reader_options=options or None)
        except FadecastError as exc:
            _typed_path_in_hint(exc, [str(p) for p in args.paths])
            raise
    return _print_report(args, report)


def _typed_path_in_hint(exc: FadecastError, paths: list[str]) -> None:
    """A ``several_cells`` refusal's command names the file as the user typed it (the reader
    knows only its name)."""
    import shlex
    from pathlib import Path

    if exc.code != "several_cells":
        return
    for typed in paths:
        name = Path(typed).name
        if name == exc.file or typed == exc.file:
            exc.message = exc.message.replace(f"fadecast ingest {shlex.quote(name)} ",
                                              f"fadecast ingest {shlex.quote(typed)} ")
            return


def _ingest_all_columns(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """``--all-columns``: each capacity column of a wide table becomes its own cell."""
    from data_registry.readers.generic_csv import capacity_table
    from data_registry.readers.sniff import read_head

    if len(args.paths) != 1:
        raise _usage_error("--all-columns takes one capacity table", "--all-columns",
                           "exactly one file")
    info = capacity_table(read_head(args.paths[0]))
    if info is None:
        raise FadecastError("not a capacity table with one column per cell",
                            code="not_capacity_table", file=str(args.paths[0]),
                            column="--all-columns",
                            expected="a cycle column and one capacity column per cell",
                            found="another layout")
    code = 0
    for column in info["candidates"]:
        cell = f"{args.cell_id or ''}{column}"
        with Registry() as reg:
            report = reg.ingest(list(args.paths), cell, format_name="capacity_table_csv",
                                meta=_cli_meta(args),
                                progress=not getattr(args, "no_progress", False),
                                reader_options={**options, "capacity_column": column})
        code = max(code, _print_report(args, report))
    return code


def _ingest_table(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """``--cell-column NAME``: a table of many cells, each stored as ``--cell-id`` prefix +
    its value, all in one transaction; one summary line per cell, then a total."""
    if len(args.paths) != 1:
        raise _usage_error("--cell-column takes one table", "--cell-column",
                           "exactly one file holding many cells")
    with Registry() as reg:
        table = reg.ingest_table(args.paths[0], args.cell_column, args.cell_id or "",
                                 format_name=getattr(args, "format_name", None),
                                 meta=_cli_meta(args),
                                 progress=not getattr(args, "no_progress", False),
                                 reader_options=options or None)
    out = sys.stderr if args.json else sys.stdout
    for report in table.cells:
        for w in report.warnings:
            print(w.line(), file=sys.stderr)
        print(ingest_summary(report), file=out)
    new = [r for r in table.cells if not r.already_present]
    print(f"{table.file}: {len(table.cells)} cells in column '{table.cell_column}', "
          f"{len(new)} stored, {len(table.cells) - len(new)} already present, "
          f"{sum(r.rows for r in table.cells):,} rows in {table.elapsed_second:.1f} s",
          file=out)
    if args.json:
        _print_json(table.to_dict())
    return 0


def _print_report(args: argparse.Namespace, report: IngestReport) -> int:
    for w in report.warnings:
        print(w.line(), file=sys.stderr)
    for note in report.notes:
        if not report.already_present:
            print(f"note: {note}", file=sys.stderr)
    if args.json:
        if report.already_present:
            print(ingest_summary(report), file=sys.stderr)
        _print_json(report.to_dict())
    else:
        print(ingest_summary(report))
    return 0


def ingest_summary(report: IngestReport) -> str:
    """The one-line summary ``fadecast ingest`` prints."""
    if report.already_present:
        shas = ", ".join(f.sha256[:12] + "…" for f in report.files)
        return (f"{report.cell_id}: already ingested (sha256 {shas}), nothing to do")
    new = [f for f in report.files if not f.already_present]
    per_kind: dict[str, int] = {}
    for f in new:
        per_kind[f.kind or "?"] = per_kind.get(f.kind or "?", 0) + f.rows
    rows = " + ".join(f"{n:,} {kind}" for kind, n in sorted(per_kind.items()))
    span = ""
    starts = [f.time_start_second for f in new if f.time_start_second is not None]
    ends = [f.time_end_second for f in new if f.time_end_second is not None]
    if starts and ends:
        span = f", t = {min(starts):g}–{max(ends):g} s"
    version = f", dataset {report.dataset}" if report.dataset else ""
    return (f"{report.cell_id}: ingested {len(new)} file(s), {rows} rows{span}, "
            f"{len(report.warnings)} warning(s){version} "
            f"in {report.elapsed_second:.1f} s")


def cells_command(args: argparse.Namespace) -> int:
    """``fadecast cells [--json]``: one line (or object) per registered cell."""
    with Registry() as reg:
        cells = reg.cells()
    if args.json:
        _print_json(cells)
        return 0
    if not cells:
        print("no cells in the registry (add one with: fadecast ingest FILE --cell-id ID)",
              file=sys.stderr)
        return 0
    rows = [[c["cell_id"], c["chemistry"] or "", _num(c["nominal_capacity_ah"]),
             _num(c["active_mass_g"]), str(c["files"]), f"{c['sample_rows']:,}",
             f"{c.get('cycles', c['cycle_rows']):,}", f"{c['eis_rows']:,}", _hours(c),
             c.get("cohort") or ""]
            for c in cells]
    # "cycles" = per-cycle rows, or for raw-sample cells the span of the cycle counter
    print(_table(["cell_id", "chemistry", "nominal_ah", "mass_g", "files", "samples", "cycles",
                  "eis", "hours", "cohort"], rows))
    return 0


def datasets_command(args: argparse.Namespace) -> int:
    """``fadecast datasets [--json]``: every dataset version, newest of each name marked."""
    with Registry() as reg:
        sets = reg.datasets()
    if args.json:
        _print_json(sets)
        return 0
    if not sets:
        print("no datasets yet (every ingest creates one per cell)", file=sys.stderr)
        return 0
    rows = [[d["name"], d["version"][:12], "*" if d["latest"] else "", str(len(d["cell_ids"])),
             d["created_at"] or ""] for d in sets]
    print(_table(["name", "version", "latest", "cells", "created_at"], rows))
    return 0


def show_command(args: argparse.Namespace) -> int:
    """``fadecast show CELL_ID [--json]``: metadata, files with lineage, warnings, datasets."""
    with Registry() as reg:
        info = reg.cell(args.cell_id)
    if args.json:
        _print_json(info)
        return 0
    print(f"cell {info['cell_id']}  (version {info['version'][:12]})")
    for key, value in sorted(info["metadata"].items()):
        print(f"  {key}: {value}")
    print(f"  rows: {info['sample_rows']:,} samples, {info['cycle_rows']:,} cycles, "
          f"{info['eis_rows']:,} eis")
    print("files:")
    for f in info["files"]:
        span = ""
        if f["time_start_second"] is not None:
            span = f", t = {f['time_start_second']:g}–{f['time_end_second']:g} s"
        print(f"  [{f['ingest_id']}] {f['original_path']}")
        print(f"      {f['kind']} via {f['format_name']} {f['reader_version']} (schema "
              f"{f['schema_version']}), {f['rows']:,} rows{span}, sha256 {f['raw_sha256'][:12]}…")
        for c in f.get("companions", []):
            print(f"      companion: {c['original_path']} (sha256 {c['raw_sha256'][:12]}…)")
        for w in f["warnings"]:
            print(f"      warning: {w['code']}: {w['message']}")
    print("datasets: " + (", ".join(f"{d['name']}@{d['version'][:12]}" for d in info["datasets"])
                          or "none"))
    return 0


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, allow_nan=False) + "\n")


def _num(value: Any) -> str:
    return "" if value is None else f"{value:g}"


def _hours(cell: dict[str, Any]) -> str:
    if cell["time_start_second"] is None or cell["time_end_second"] is None:
        return ""
    return f"{(cell['time_end_second'] - cell['time_start_second']) / 3600:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
