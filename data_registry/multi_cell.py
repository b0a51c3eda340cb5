"""Ingest a table of MANY cells — one long CSV whose column (``cell_name``, ``cell_id``,
``Channel`` …) names the cell of each row — as one registered cell per value, all or nothing.

``fadecast ingest FILE --cell-column NAME [--cell-id PREFIX]`` and
:meth:`Registry.ingest_table` end here. Steps, under the registry's write lock:

1. one pass over the cell column: every value and its row count; a row naming no cell, two
   values giving the same cell id, or an id breaking the rule refuse the file before anything
   is parsed (cell id = PREFIX + the value, made safe by
   :func:`data_registry.cell_ids.cell_id_from_label`);
2. the raw file is copied into ``raw/tmp`` and hashed ONCE (it is kept once, whatever the
   number of cells);
3. ONE pass over the file (:class:`_TableFeed`): each parsed chunk's rows are routed to
   per-cell buffers; per cell, its rows only (rows of cells may be interleaved) go through
   the reader and are validated ON THEIR OWN (cycle numbers, clock, continuation of what the
   cell already holds) into a temp Parquet part (``source_row`` stays the raw file's line). A
   cell's buffer is read as soon as the cell's last row has been routed, so a table sorted by
   cell holds about one cell in memory; an interleaved table is held once, parsed;
4. raw file and parts moved into place with ``os.replace``; ONE catalog transaction records
   every cell (metadata, ingest with ``source_metadata`` ``cell_column`` / ``cell_value`` /
   ``cell_rows``, warnings, a new version of each ``cell:<id>`` dataset).

A failure of any cell (its message names the cell and its value) removes every file of the
call: the registry is unchanged. Running the same command again changes nothing (each cell's
part of the file is already present).
"""
from __future__ import annotations

import functools
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from data_registry.cell_ids import cell_id_from_label
from data_registry.errors import (FadecastError, InputFormatError, StoreError, ValidationError,
                                   require_file)
from data_registry.ingest import (_current_cell_dataset, _discard, _is_duplicate,
                                  _parse_into_part, _publish, _publish_raw, _record_cell,
                                  _Staged, _tail)
from data_registry.manifest import FileReport, IngestReport, merge_metadata, normalize_metadata
from data_registry.parts import copy_and_hash, fsync_file
from data_registry.progress import Progress
from data_registry.reader_options import reader_options_for
from data_registry.readers.cell_column import CellLabels
from data_registry.readers.csv_stream import Columns, CsvLayout, stream_records
from data_registry.readers.source import RECORD_FEED
from data_registry.schema import TABLES
from data_registry.store import Registry


@dataclass
class TablePlan:
    """What a many-cell table holds: its format, the cell column, each value's rows and the
    cell id it is stored as (in order of first appearance)."""

    file: str
    format_name: str
    column: str
    labels: CellLabels
    cell_ids: dict[str, str] = field(default_factory=dict)  # value → cell id


@dataclass
class TableIngestReport:
    """The result of :meth:`Registry.ingest_table`: one :class:`IngestReport` per cell."""

    file: str
    cell_column: str
    format_name: str
    cells: list[IngestReport]
    values: dict[str, str]  # cell id → the value of the cell column
    elapsed_second: float = 0.0

    @property
    def already_present(self) -> bool:
        return all(r.already_present for r in self.cells)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``fadecast ingest --cell-column … --json``)."""
        return {"file": self.file, "cell_column": self.cell_column,
                "format_name": self.format_name, "cell_count": len(self.cells),
                "rows": sum(r.rows for r in self.cells),
                "already_present": self.already_present,
                "elapsed_second": round(self.elapsed_second, 3),
                "cells": [{**r.to_dict(), "cell_value": self.values.get(r.cell_id)}
                          for r in self.cells]}


def plan_table(path: str | Path, cell_column: str | None = None, prefix: str = "", *,
               format_name: str | None = None, name: str | None = None) -> TablePlan:
    """The cells of a many-cell table and their ids, from one pass over its cell column.

    ``cell_column`` None = the column the header names as one (``cell_name``, ``Channel`` …).
    Raises ``not_cell_table`` (not a generic CSV table), ``unknown_column``, ``no_cell_column``,
    ``blank_cell`` (a row naming no cell), ``cell_id_collision`` or ``invalid_cell_id``.
    """
    from data_registry.readers.cell_column import (CELL_TABLE_FORMATS, detect_cell_column,
                                                   resolve_cell_column, scan_labels)
    from data_registry.readers.formats import detect_head, get_format
    from data_registry.readers.generic_csv import head_units
    from data_registry.readers.sniff import read_head
    from data_registry.readers.source import brief_fields, layout_from_head

    head = read_head(path)
    shown = Path(name).name if name else head.name
    fmt = get_format(format_name) if format_name else detect_head(head)
    if fmt.name not in CELL_TABLE_FORMATS:
        raise InputFormatError(
            f"--cell-column splits generic CSV tables; this file is read as {fmt.name} "
            f"({fmt.description}), one cell per file", code="not_cell_table", file=shown,
            column="--cell-column", expected=f"a table of format {', '.join(CELL_TABLE_FORMATS)}",
            found=fmt.name)
    layout, _ = layout_from_head(head, 0, skip_after_header=1 if head_units(head) else 0)
    column = (resolve_cell_column(head, layout, cell_column) if cell_column
              else detect_cell_column(head, layout))
    if column is None:
        raise ValidationError("no column names the cell of each row", code="no_cell_column",
                              file=shown, row=1, column="--cell-column",
                              expected="--cell-column NAME, one of the header's columns",
                              found=f"header {brief_fields(layout.names)}")
    labels = scan_labels(head, layout, column)
    if labels.blank_rows:
        raise ValidationError(
            f"{labels.blank_rows} row(s) name no cell in column '{column}': they cannot be "
            "given to a cell; fill them in or remove them", code="blank_cell", file=shown,
            row=labels.first_blank_line, column=column, expected="a cell id on every row",
            found="an empty field")
    if not labels.values:
        raise InputFormatError("no data rows (header only?)", code="no_data", file=shown,
                               expected="at least one data row", found="none")
    plan = TablePlan(shown, fmt.name, column, labels)
    by_id: dict[str, str] = {}
    for value in labels.values:
        try:
            cid = cell_id_from_label(prefix, value)
        except StoreError as exc:
            exc.message = f"cell {value!r} of column '{column}' gives an invalid cell id"
            exc.file, exc.row, exc.column = shown, labels.first_line[value], column
            raise
        if cid in by_id:
            raise ValidationError(
                f"cells {by_id[cid]!r} and {value!r} of column '{column}' both become cell id "
                f"'{cid}' (characters outside A-Z a-z 0-9 . _ + = @ - are replaced by '_')",
                code="cell_id_collision", file=shown, row=labels.first_line[value],
                column=column, expected="values that stay distinct as cell ids",
                found=f"{by_id[cid]!r} and {value!r}")
        by_id[cid] = value
        plan.cell_ids[value] = cid
    return plan


def run_table_ingest(reg: Registry, path: Path, cell_column: str | None = None,
                     prefix: str = "", *, format_name: str | None = None,
                     meta: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
                     progress: bool = False, chunk_rows: int | None = None,
                     reader_options: Mapping[str, Any] | None = None,
                     source_name: str | None = None) -> TableIngestReport:
    """Ingest every cell of a many-cell table atomically (see the module docstring).

    ``meta`` applies to every cell; ``reader_options`` as :meth:`Registry.ingest` (not
    ``cell_column`` / ``cell_value``: the table's cells are chosen here).
    """
    started = time.perf_counter()
    path = Path(path)
    require_file(path)
    options = dict(reader_options or {})
    for key in ("cell_column", "cell_value"):
        if options.get(key) is not None:
            raise StoreError(f"reader option '{key}' is set by the table ingest itself",
                             code="invalid_reader_option", column=key,
                             expected="cell_column as the table ingest's argument",
                             found=repr(options[key]))
        options.pop(key, None)
    user_meta = normalize_metadata(meta)
    read_opts = reader_options_for(options, user_meta)
    name = str(source_name) if source_name else str(path)
    plan = plan_table(path, cell_column, prefix, format_name=format_name, name=name)
    from data_registry.readers import open_source as opener

    rows_per_chunk = int(chunk_rows or reg.chunk_rows)
    feed = _TableFeed(path, plan)
    staged: dict[str, _Staged] = {}
    raw_tmp: Path | None = None
    reports: list[IngestReport] = []
    with reg.write_lock(), Progress(progress, f"ingest {path.name}") as bar:
        reg.remove_debris()
        try:
            tmp_dir = reg.home / "raw" / "tmp"
            tmp_dir.mkdir(parents=True, exist_ok=True)
            raw_tmp = tmp_dir / f"{uuid.uuid4().hex}.tmp"
            sha256, size = copy_and_hash(path, raw_tmp)  # the raw file, copied ONCE
            for value, cid in plan.cell_ids.items():
                bar.describe(f"{cid} ({plan.labels.rows[value]:,} rows)")
                item = staged[cid] = _Staged(FileReport(name, "", size, already_present=False))
                _stage_cell(reg, path, item, cid, value, plan, user_meta, read_opts,
                            rows_per_chunk, sha256, opener, bar, feed)
            feed.drain()  # the rest of the file parsed too: a bad line is refused as before
            new = {cid: s for cid, s in staged.items() if not s.report.already_present}
            if new:
                _publish_raw(reg, sha256, raw_tmp)
                raw_tmp = None
                _publish(reg, list(new.values()))
                with reg.catalog.transaction() as conn:
                    done = {cid: _record_cell(conn, reg, cid, [s], user_meta)
                            for cid, s in new.items()}
            else:
                done = {}
            for cid, s in staged.items():
                if cid in done:
                    warnings, ref = done[cid]
                    reports.append(IngestReport(cid, [s.report], s.report.rows, warnings, ref,
                                                already_present=False))
                else:
                    reports.append(IngestReport(
                        cid, [s.report], 0, [], _current_cell_dataset(reg, cid),
                        already_present=True, notes=[f"already ingested (sha256 "
                                                     f"{sha256[:12]}…): {name}"]))
        except BaseException:
            _discard(reg, list(staged.values()))
            if raw_tmp is not None:
                raw_tmp.unlink(missing_ok=True)
            raise
        finally:
            feed.close()
    return TableIngestReport(plan.file, plan.column, plan.format_name, reports,
                             {cid: v for v, cid in plan.cell_ids.items()},
                             time.perf_counter() - started)


def _stage_cell(reg: Registry, path: Path, item: _Staged, cell_id: str, value: str,
                plan: TablePlan, user_meta: dict[str, Any], read_opts: dict[str, Any],
                chunk_rows: int, sha256: str, opener: Any, bar: Progress,
                feed: "_TableFeed") -> None:
    """One cell's rows (from ``feed``: the file is read once for all cells), read and
    validated on their own into a temp part (not yet visible; the caller discards it on
    failure); an error names the cell and its value."""
    name = item.report.path
    try:
        with reg.catalog.reading() as conn:
            cell_row = reg.catalog.cell_row(conn, cell_id)
            stored = reg.catalog.cell_ingests(conn, cell_id)
            owners = reg.catalog.ingests_of_raw(conn, sha256)
        if _already_stored(owners, cell_id, plan, value):
            item.report.sha256, item.report.already_present = sha256, True
            feed.skip(value)
            return  # this cell's rows of this file are stored: nothing to parse
        merge_metadata(cell_id, dict(cell_row["metadata"]) if cell_row else {}, user_meta)
        tails = {kind: _tail(reg, kind, [r for r in stored if r["kind"] == kind])
                 for kind in TABLES}
        token = RECORD_FEED.set(functools.partial(feed.records, value))
        try:
            _parse_into_part(reg, path, cell_id, plan.format_name, chunk_rows, tails, item,
                             seq=len(stored), opener=opener, bar=bar, on_chunk=None,
                             read_opts={**read_opts, "cell_column": plan.column,
                                        "cell_value": value},
                             display=Path(name).name if name != str(path) else None)
        finally:
            RECORD_FEED.reset(token)
        if feed.routed(value) and "cell_rows" in item.source_metadata:
            # the reader saw only this cell's rows: the others are the rest of the file
            item.source_metadata["other_cell_rows"] = (
                feed.total_rows - int(item.source_metadata["cell_rows"]))
        if not _is_duplicate(reg, item, sha256, cell_id, {}) and item.part_tmp is not None:
            fsync_file(item.part_tmp)
    except FadecastError as exc:
        exc.message = f"cell '{cell_id}' ({plan.column} = {value!r}): {exc.message}"
        raise


def _already_stored(owners: list[dict[str, Any]], cell_id: str, plan: TablePlan,
                    value: str) -> bool:
    """True when ``cell_id`` already holds this cell's rows of this raw file (the same
    command run again), so they are neither parsed nor checked as a continuation."""
    several = len(plan.labels.values) > 1
    for o in owners:
        meta = o.get("source_metadata") or {}
        if o["cell_id"] == cell_id and (not several or (
                meta.get("cell_column") == plan.column and meta.get("cell_value") == value)):
            return True
    return False


# --- one pass over the table, routed to per-cell buffers -------------------------------------


class _TableFeed:
    """The file parsed ONCE for all cells: each chunk's rows go to the buffer of their cell
    (kept in file order, ``source_row`` = the raw line); a cell's reader takes its buffered
    chunks, parsing further only while the cell has rows not yet routed."""

    def __init__(self, path: Path, plan: TablePlan) -> None:
        self.path, self.column = Path(path), plan.column
        self.want = dict(plan.labels.rows)  # value → rows in the file
        self.total_rows = sum(self.want.values()) + plan.labels.blank_rows
        self.buffers: dict[str, deque] = {v: deque() for v in self.want}
        self.seen = dict.fromkeys(self.want, 0)  # value → rows routed so far
        self.used: set[str] = set()
        self.skipped: set[str] = set()  # cells not read (already stored): nothing buffered
        self.key: tuple | None = None
        self.stream: Iterator[tuple[Columns, np.ndarray]] | None = None
        self.done = False

    def skip(self, value: str) -> None:
        """Cell ``value`` is not read: drop its rows (those buffered and those to come)."""
        self.skipped.add(value)
        if value in self.buffers:
            self.buffers[value].clear()

    def routed(self, value: str) -> bool:
        """True when ``value``'s rows were read from this feed."""
        return value in self.used

    def records(self, value: str, path: Path, layout: CsvLayout, chunk_rows: int,
                max_line_bytes: int) -> Iterator[tuple[Columns, np.ndarray]] | None:
        """The chunks of cell ``value`` (None when this stream is not the feed's: another
        file, or a layout other than the first cell's)."""
        key = (str(Path(path)), layout, int(chunk_rows), int(max_line_bytes))
        if Path(path) != self.path or value not in self.buffers or value in self.used:
            return None
        if self.key is None:
            self.key = key
            self.stream = stream_records(path, layout, chunk_rows=chunk_rows,
                                         max_line_bytes=max_line_bytes)
        elif key != self.key:
            return None
        self.used.add(value)
        return self._cell(value)

    def _cell(self, value: str) -> Iterator[tuple[Columns, np.ndarray]]:
        buf = self.buffers[value]
        while True:
            while buf:
                yield buf.popleft()
            if self.done or self.seen[value] >= self.want[value]:
                return
            self._advance()

    def _advance(self) -> None:
        """Parse one more chunk and route its rows to the buffers of the cells still to read."""
        assert self.stream is not None
        try:
            raw, lines = next(self.stream)
        except StopIteration:
            self.done = True
            return
        vals = pc.utf8_trim_whitespace(raw.table.column(self.column)).fill_null("")
        codes, uniques = pd.factorize(np.asarray(vals.to_numpy(zero_copy_only=False),
                                                 dtype=object))
        order = np.argsort(codes, kind="stable")  # rows grouped by cell, file order kept
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        table = raw.table.take(order)
        lines = lines[order]
        for k, u in enumerate(uniques):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            if u in self.seen:
                self.seen[u] += hi - lo
                if u not in self.skipped and u in self.buffers:
                    self.buffers[u].append((Columns(table.slice(lo, hi - lo)), lines[lo:hi]))

    def drain(self) -> None:
        """Parse what no cell needed (the file's last lines): every line is checked."""
        while self.stream is not None and not self.done:
            self._advance()
        self.buffers.clear()

    def close(self) -> None:
        """Stop the parse (its prefetch thread) and drop the buffers."""
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()
        self.buffers.clear()
