"""CLI handlers ``fadecast features`` and ``fadecast warburg`` (the I/O edge of ml.features).

Both take the argparse namespace built by ``serving/cli.py`` and return an exit code; a
:class:`~data_registry.errors.FadecastError` propagates to the CLI, which prints one line.
With ``--json`` stdout holds exactly one JSON document; notes go to stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from data_registry.errors import InputFormatError, ValidationError
from ml.features.cycle_table import build_cycle_table, complete_cycle_table
from ml.features.warburg import KEYS, warburg_table

OUTPUT_SUFFIXES = (".csv", ".parquet")


def cell_cycle_table(registry: Any, cell_id: str, voltage_curves: bool = True) -> pd.DataFrame:
    """The per-cycle table of a registered cell: built from its samples when it has any,
    else completed from its stored per-cycle summary; EIS spectra add the A_w columns."""
    meta = {cell_id: registry.cell_metadata(cell_id)}
    samples = registry.load_samples(cell_id)
    eis = registry.load_eis(cell_id)
    if len(samples):
        return build_cycle_table(samples, eis=eis if len(eis) else None, cells=meta,
                                 voltage_curves=voltage_curves)
    cycles = registry.load_cycles(cell_id)
    if not len(cycles):
        raise ValidationError(f"cell '{cell_id}' has neither samples nor a per-cycle summary",
                              code="no_cycle_data", column="cell_id",
                              expected="ingested samples or cycles", found="EIS only" if len(eis)
                              else "no data")
    from ml.features.warburg_trend import align_cell_spectra

    return align_cell_spectra(complete_cycle_table(cycles, cells=meta), eis, meta[cell_id])


def write_table(table: pd.DataFrame, output: str | None) -> None:
    """CSV to stdout (``output`` None) or to ``.csv`` / ``.parquet`` via a temp file + rename."""
    if output is None:
        table.to_csv(sys.stdout, index=False)
        return
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InputFormatError("unsupported output file type", code="bad_output_format",
                               file=str(path), expected=" or ".join(OUTPUT_SUFFIXES),
                               found=suffix or "no suffix")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def features_command(args: argparse.Namespace) -> int:
    """``fadecast features CELL_ID [-o FILE.csv|FILE.parquet] [--no-voltage-curves]``."""
    from data_registry.store import Registry

    output = getattr(args, "output", None)
    if output is not None and Path(output).suffix.lower() not in OUTPUT_SUFFIXES:
        write_table(pd.DataFrame(), output)  # raises the bad-suffix error before any work
    reg = Registry()
    try:
        table = cell_cycle_table(reg, args.cell_id,
                                 voltage_curves=not getattr(args, "no_voltage_curves", False))
    finally:
        reg.close()
    write_table(table, output)
    if output is not None:
        print(f"{args.cell_id}: {len(table)} cycles x {table.shape[1]} columns -> {output}",
              file=sys.stderr)
    return 0


def _json_value(v: Any) -> Any:
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_eis_file(path: str, format_name: str | None = None,
                  eis_sign: str | None = None, frequencies: str | None = None,
                  eis_every_cycles: int | None = None,
                  eis_cycle: int | None = None) -> pd.DataFrame:
    """EIS rows of a file through ``data_registry.readers.open_source`` (kind ``eis``):
    format detected by content unless ``format_name``; a stored −Z″ is detected and negated
    unless ``eis_sign`` (``"im"`` | ``"minus_im"``) says what the file holds. An EIS matrix
    (one spectrum per line) takes its ``frequencies`` file and ``eis_every_cycles`` K; a
    one-spectrum file its ``eis_cycle``."""
    from data_registry.readers import open_source
    from data_registry.readers.formats import EIS_PART, get_format
    from data_registry.readers.sniff import read_head

    options = dict(eis_sign=eis_sign, frequencies=frequencies,
                   eis_every_cycles=eis_every_cycles, eis_cycle=eis_cycle)
    source = open_source(path, format_name=format_name, **options)
    if source.kind != "eis" and format_name is None and source.format_name in EIS_PART:
        # a cycler file that also holds impedance records (a BioLogic .mpr chaining PEIS
        # with cycling): its spectra, when it has any
        twin = get_format(EIS_PART[source.format_name])
        if twin.accepts(read_head(path)):
            source = open_source(path, format_name=twin.name, **options)
    if source.kind != "eis":
        raise InputFormatError("file holds no EIS spectra", code="wrong_kind", file=str(path),
                               expected="an EIS file (frequency_hz, z_real_ohm, z_imag_ohm)",
                               found=f"{source.format_name} ({source.kind})")
    table = source.read()  # the validator's warnings (e.g. the sign) exist once it is read
    for w in source.warnings:
        print(w.line(), file=sys.stderr)
    return table


def warburg_command(args: argparse.Namespace) -> int:
    """``fadecast warburg (--eis FILE | --cell ID) [--json]``: one A_w fit per spectrum."""
    if getattr(args, "eis", None):
        eis = read_eis_file(args.eis, getattr(args, "format_name", None),
                            getattr(args, "eis_sign", None), getattr(args, "frequencies", None),
                            getattr(args, "eis_every_cycles", None),
                            getattr(args, "eis_cycle", None))
    else:
        from data_registry.store import Registry

        reg = Registry()
        try:
            eis = reg.load_eis(args.cell)
        finally:
            reg.close()
        if not len(eis):
            raise ValidationError(f"cell '{args.cell}' has no EIS spectra", code="no_eis",
                                  column="cell", expected="ingested EIS spectra",
                                  found="none")
    table = warburg_table(eis)
    if getattr(args, "json", False):
        items = [{k: _json_value(row[k]) for k in KEYS} for row in table.to_dict("records")]
        for item in items:
            item["ok"] = bool(item["ok"])
            item["reason"] = item["reason"] or ""
        json.dump(items, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    print(format_warburg_table(table))
    bad = int((~table["ok"].astype(bool)).sum())
    if bad:
        print(f"note: {bad} of {len(table)} spectra not ok (see the reason column)",
              file=sys.stderr)
    return 0


def format_warburg_table(table: pd.DataFrame) -> str:
    """A fixed-width text table of Warburg fits, one line per spectrum."""
    head = (f"{'measurement_id':<16} {'cycle':>6} {'voltage_V':>9} {'A_w_ohm_s^-1/2':>15} "
            f"{'stderr':>9} {'window_Hz':>19} {'R2':>6}  ok  reason")
    lines = [head]

    def num(v: Any, fmt: str) -> str:
        v = _json_value(v)
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    for r in table.to_dict("records"):
        window = (f"{num(r['fmin_hz'], '.3g')}-{num(r['fmax_hz'], '.3g')}"
                  if _json_value(r["fmin_hz"]) is not None else "-")
        lines.append(
            f"{str(r['measurement_id'] or '-'):<16.16} {num(r['cycle_count'], '.0f'):>6} "
            f"{num(r['voltage_volt'], '.3f'):>9} {num(r['aw_ohm_per_sqrt_s'], '.5g'):>15} "
            f"{num(r['aw_stderr'], '.2g'):>9} {window:>19} {num(r['r2'], '.3f'):>6}  "
            f"{'yes' if r['ok'] else 'no ':<3} {r['reason'] or ''}")
    return "\n".join(lines)


__all__ = ["features_command", "warburg_command", "cell_cycle_table", "write_table"]
