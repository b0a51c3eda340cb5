"""Idempotent appends to one cell: the path ``fadecast follow`` and the upload route share.

A file (or a snapshot of a file still being written) is parsed OUTSIDE any lock into a temp
Parquet part under ``FADECAST_HOME/tmp``; rows the cell already holds are dropped by their key
(samples: ``(test_time_second, step_count)``; per-cycle summaries: ``cycle_index``), so
re-reading a growing file, re-sending an upload or restarting after a crash adds nothing twice.
Only the commit runs under the cell's lock (``locks/cell=<id>.lock``) and, for the few
milliseconds of the catalog transaction, the registry's write lock — so a large upload to one
cell never blocks appends to another while it parses.

Rules (the continuation rules of :mod:`data_registry.ingest`, made idempotent):

- a row whose key is stored for this cell is skipped (``rows_already_stored``);
- a row at or before the stored end whose key is NOT stored is a conflict
  (``continuation_overlap``: another file's rows, or a mistyped ``cell_id``);
- new rows must continue the stored ones (later time, no smaller cycle number);
- the raw bytes given as ``raw_path`` are kept verbatim (content-addressed) with the rows they
  added; the same content under another cell id is refused (``duplicate_content``);
- a call that adds no row changes nothing (``already_present``).

A process killed at any point leaves only temp files (removed by the next append) or a
complete commit.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_registry.cell_ids import check_cell_id
from data_registry.errors import IngestWarning, StoreError, require_file
from data_registry.manifest import (ORDER_COLUMNS, FileReport, Tail, json_safe, merge_metadata,
                                    normalize_metadata)
from data_registry.parts import PartWriter, arrow_schema, copy_and_hash, fsync_file, to_arrow
from data_registry.reader_options import reader_options_for
from data_registry.schema import TABLES

__all__ = ["KEY_COLUMNS", "AppendReport", "append_file", "cell_lock", "read_part",
           "sweep_staging"]

#: The columns that identify a stored row of each kind (idempotency keys).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {"samples": ("test_time_second", "step_count"),
                                           "cycles": ("cycle_index",)}
STAGING = "tmp"
_PREFIX = "append-"
#: staging folders named ``<prefix><pid>-…`` (appends; the upload route's raw bodies)
STAGING_PREFIXES = (_PREFIX, "upload-", "follow-")


@dataclass
class AppendReport:
    """What one :func:`append_file` call did (``rows_new`` rows stored)."""

    cell_id: str
    source: str
    kind: str | None = None
    format_name: str | None = None
    rows_read: int = 0
    rows_new: int = 0
    rows_already_stored: int = 0
    already_present: bool = True
    time_end_second: float | None = None
    cycle_last: int | None = None
    dataset_version: str | None = None
    warnings: list[IngestWarning] = field(default_factory=list)
    elapsed_second: float = 0.0
    lock_wait_second: float = 0.0
    lock_held_second: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the upload route's ``report``)."""
        return {"cell_id": self.cell_id, "source": self.source, "kind": self.kind,
                "format_name": self.format_name, "rows_read": self.rows_read,
                "rows": self.rows_new, "rows_already_stored": self.rows_already_stored,
                "already_present": self.already_present,
                "time_end_second": self.time_end_second, "cycle_last": self.cycle_last,
                "dataset_version": self.dataset_version,
                "warnings": [{"code": w.code, "message": w.message, "file": w.file,
                              "row": w.row, "column": w.column, "count": w.count}
                             for w in self.warnings],
                "elapsed_second": round(self.elapsed_second, 4),
                "lock_held_second": round(self.lock_held_second, 4)}


@contextmanager
def cell_lock(home: Path, cell_id: str) -> Iterator[float]:
    """Exclusive lock on ONE cell (a flock the kernel drops if the process dies); yields the
    seconds spent waiting for it."""
    folder = home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(folder / f"cell={check_cell_id(cell_id)}.lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - t0
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def sweep_staging(home: Path) -> list[Path]:
    """Remove staging folders (appends, upload bodies) whose process is gone (killed)."""
    removed = []
    root = home / STAGING
    for entry in list(root.iterdir()) if root.is_dir() else []:
        prefix = next((p for p in STAGING_PREFIXES if entry.name.startswith(p)), None)
        if prefix is None:
            continue
        try:
            pid = int(entry.name[len(prefix):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def append_file(reg: Any, path: str | os.PathLike[str], cell_id: str, *,
                source_name: str | None = None, raw_path: str | os.PathLike[str] | None = None,
                format_name: str | None = None,
                meta: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
                reader_options: Mapping[str, Any] | None = None,
                source_metadata: Mapping[str, Any] | None = None,
                chunk_rows: int | None = None, opener: Callable[..., Any] | None = None,
                before_commit: Callable[[], None] | None = None,
                trusted_rows: int | None = None) -> AppendReport:
    """Append the rows of ``path`` that ``cell_id`` does not hold yet (see the module doc).

    Parameters
    ----------
    reg:
        The :class:`data_registry.store.Registry` to write to.
    path:
        The file to parse (any format the registry reads; a snapshot of a growing export).
    cell_id:
        The cell (checked against the one cell-id rule).
    source_name:
        What to record and report as the file's name (e.g. the client's upload name or
        ``export.csv#bytes=0-1234``); default ``path``. Errors name it, never a temp path.
    raw_path:
        The bytes to keep verbatim in the raw store (default ``path``); ``fadecast follow``
        passes only the bytes a poll added.
    format_name, meta, reader_options:
        As :meth:`Registry.ingest`.
    source_metadata:
        Extra JSON stored with the ingest row (``fadecast follow`` records its byte range).
    before_commit:
        Called under the cell lock just before the commit (a hook for crash tests).
    trusted_rows:
        Rows whose ``source_row`` is at most this are known to be stored already (``fadecast
        follow``: the lines of the unchanged prefix it committed before) and are skipped
        without reading the stored keys back — a poll then costs O(its new rows) in store
        reads, not O(the cell's parts).

    Raises
    ------
    FadecastError
        Unreadable file, bad values (naming ``source_name``, row and column), a conflicting
        row, conflicting metadata, or the same content stored as another cell.
    """
    started = time.perf_counter()
    check_cell_id(cell_id)
    path = Path(path)
    name = str(source_name or path)
    require_file(path, name)
    if opener is None:
        from data_registry.readers import open_source as opener
    user_meta = normalize_metadata(meta)
    read_opts = reader_options_for(reader_options, user_meta)
    with reg.catalog.reading() as conn:
        cell_row = reg.catalog.cell_row(conn, cell_id)
    merge_metadata(cell_id, dict(cell_row["metadata"]) if cell_row else {}, user_meta)
    sweep_staging(reg.home)
    stage = reg.home / STAGING / f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    stage.mkdir(parents=True)
    report = AppendReport(cell_id, name)
    try:
        parsed = _parse(reg, path, cell_id, name, format_name, read_opts, opener, stage,
                        chunk_rows or reg.chunk_rows, report, trusted_rows)
        if parsed is None:
            return _done(report, started)
        raw_tmp = stage / "raw.tmp"
        sha256, size = copy_and_hash(Path(raw_path) if raw_path else path, raw_tmp)
        with cell_lock(reg.home, cell_id) as waited:
            held = time.perf_counter()
            report.lock_wait_second = waited
            if not _refilter(reg, cell_id, name, parsed, report):
                return _done(report, started)
            _check_raw_owner(reg, sha256, cell_id, name)
            if before_commit is not None:
                before_commit()
            _commit(reg, cell_id, parsed, report, user_meta, sha256=sha256, size=size,
                    raw_tmp=raw_tmp, extra_meta=source_metadata)
            report.lock_held_second = time.perf_counter() - held
        return _done(report, started)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _done(report: AppendReport, started: float) -> AppendReport:
    report.elapsed_second = time.perf_counter() - started
    return report


@dataclass
class _Parsed:
    kind: str
    reader_version: str
    part_tmp: Path
    tail: Tail
    old_keys: np.ndarray  # keys of rows at/before the stored end (must all be stored)
    old_rows: np.ndarray  # their source rows (for error messages)
    source_metadata: dict[str, Any]
    warnings: list[IngestWarning]
    new_rows: int = 0
    first_new_source_row: int | None = None


def _parse(reg: Any, path: Path, cell_id: str, name: str, format_name: str | None,
           read_opts: Mapping[str, Any], opener: Callable[..., Any], stage: Path,
           chunk_rows: int, report: AppendReport,
           trusted_rows: int | None = None) -> _Parsed | None:
    """Stream the file's chunks: rows after the stored end into a temp part, keys of the
    others kept to check they are stored. No lock is held."""
    try:
        source = opener(path, format_name=format_name, chunk_rows=chunk_rows, **read_opts)
    except Exception as exc:
        _rename(exc, path, name)
        raise
    kind = source.kind
    report.kind, report.format_name = kind, source.format_name
    if kind not in KEY_COLUMNS:
        raise StoreError(f"appending {kind} data is not supported; use `fadecast ingest`",
                         code="append_unsupported_kind", file=name,
                         expected=" or ".join(KEY_COLUMNS), found=kind)
    tail = _stored_tail(reg, cell_id, kind)
    schema = arrow_schema(kind)
    time_col, _ = ORDER_COLUMNS[kind]
    writer = PartWriter(stage / "part.tmp", schema)
    old_keys: list[np.ndarray] = []
    old_rows: list[np.ndarray] = []
    parsed = _Parsed(kind, str(source.reader_version), stage / "part.tmp", tail,
                     np.empty(0, np.complex128), np.empty(0, np.int64), {}, [])
    try:
        for chunk in source.chunks():
            if chunk.empty:
                continue
            table = to_arrow(chunk, schema, cell_id, Path(name))
            report.rows_read += table.num_rows
            if tail.time_second is not None and kind == "samples":
                t = table.column(time_col).to_numpy(zero_copy_only=False)
                old = t <= tail.time_second
            elif tail.cycle is not None and kind == "cycles":
                c = table.column("cycle_index").to_numpy(zero_copy_only=False)
                old = c <= tail.cycle
            else:
                old = np.zeros(table.num_rows, dtype=bool)
            if old.any():
                k = int(old.sum())
                if not old[:k].all():
                    raise StoreError("rows go back in time within the file", code="time_backwards",
                                     file=name, column=time_col,
                                     expected="rows in time order", found="a later row earlier")
                head = table.slice(0, k)
                old_keys.append(row_keys(head, kind))
                old_rows.append(_source_rows(head))
                table = table.slice(k)
            if table.num_rows:
                if parsed.new_rows == 0:
                    tail.check(table, Path(name), first=True)
                    parsed.first_new_source_row = int(_source_rows(table.slice(0, 1))[0])
                writer.write(table)
                parsed.new_rows += table.num_rows
                _track_end(report, table, kind)
    except BaseException as exc:
        writer.abort()
        _rename(exc, path, name)
        raise
    writer.close()
    parsed.old_keys = np.concatenate(old_keys) if old_keys else parsed.old_keys
    parsed.old_rows = np.concatenate(old_rows) if old_rows else parsed.old_rows
    parsed.source_metadata = json_safe(dict(source.metadata or {}))
    first = parsed.first_new_source_row
    parsed.warnings = [_named(w, name) for w in source.warnings
                       if first is not None and (w.row is None or w.row >= first)]
    report.rows_already_stored = int(parsed.old_keys.size)
    if trusted_rows is not None and parsed.old_rows.size:
        unsure = parsed.old_rows > trusted_rows
        parsed.old_keys, parsed.old_rows = parsed.old_keys[unsure], parsed.old_rows[unsure]
    _check_old_rows_stored(reg, cell_id, kind, parsed.old_keys, parsed.old_rows, name)
    if parsed.new_rows == 0:
        return None
    fsync_file(parsed.part_tmp)
    return parsed


def _rename(exc: BaseException, path: Path, name: str) -> None:
    """Errors name the user's file, never the temp path it was staged at."""
    if hasattr(exc, "file") and getattr(exc, "file", None) is not None:
        if str(path) in str(exc.file) or Path(str(exc.file)).name == path.name:
            exc.file = name  # type: ignore[attr-defined]
    if hasattr(exc, "message") and isinstance(exc.message, str) and str(path) in exc.message:
        exc.message = exc.message.replace(str(path), name)  # type: ignore[attr-defined]
    if hasattr(exc, "message"):
        exc.args = (str(exc),)


def _named(w: IngestWarning, name: str) -> IngestWarning:
    from dataclasses import replace

    return replace(w, file=name) if w.file is not None else w


def row_keys(table: pa.Table, kind: str) -> np.ndarray:
    """The idempotency key of each row as one complex number (time + 1j * step; exact)."""
    if kind == "cycles":
        return table.column("cycle_index").to_numpy(zero_copy_only=False).astype(np.complex128)
    t = table.column("test_time_second").to_numpy(zero_copy_only=False).astype(np.float64)
    step = pc.fill_null(table.column("step_count"), -1).to_numpy(zero_copy_only=False)
    return t + 1j * step.astype(np.float64)


def _source_rows(table: pa.Table) -> np.ndarray:
    if "source_row" not in table.column_names:
        return np.zeros(table.num_rows, dtype=np.int64)
    return pc.fill_null(table.column("source_row"), 0).to_numpy(zero_copy_only=False)


def _track_end(report: AppendReport, table: pa.Table, kind: str) -> None:
    time_col, count_col = ORDER_COLUMNS[kind]
    hi = pc.max(table.column(time_col)).as_py()
    if hi is not None:
        report.time_end_second = max(report.time_end_second or hi, hi)
    c = pc.max(table.column(count_col)).as_py()
    if c is not None:
        report.cycle_last = max(report.cycle_last if report.cycle_last is not None else c, c)


def _ingests(reg: Any, cell_id: str, kind: str) -> list[dict[str, Any]]:
    with reg.catalog.reading() as conn:
        return reg.catalog.cell_ingests(conn, cell_id, kind)


def _stored_tail(reg: Any, cell_id: str, kind: str) -> Tail:
    return Tail.from_ingests(kind, _ingests(reg, cell_id, kind))


def stored_keys(reg: Any, cell_id: str, kind: str, since_time: float | None = None
                ) -> np.ndarray:
    """Keys of the cell's stored rows of ``kind`` (those at or after ``since_time``)."""
    time_col, _ = ORDER_COLUMNS[kind]
    keys = []
    for ing in _ingests(reg, cell_id, kind):
        if not ing["part_path"]:
            continue
        if since_time is not None and ing["time_end_second"] is not None and \
                ing["time_end_second"] < since_time:
            continue
        cols = list(dict.fromkeys((*KEY_COLUMNS[kind], time_col)))
        table = read_part(reg, ing["part_path"], cols)
        keys.append(row_keys(table, kind))
    return np.concatenate(keys) if keys else np.empty(0, np.complex128)


def read_part(reg: Any, rel: str, columns: Sequence[str] | None = None) -> pa.Table:
    """A stored part (from the registry's object store when it has one)."""
    storage = getattr(reg, "storage", None)
    if storage is not None:
        return storage.read_parquet(rel, columns)
    return pq.read_table(reg.home / rel, columns=list(columns) if columns else None)


def _check_old_rows_stored(reg: Any, cell_id: str, kind: str, keys: np.ndarray,
                           rows: np.ndarray, name: str) -> None:
    """Rows at or before the stored end must be rows the cell already holds."""
    if not keys.size:
        return
    since = float(keys.real.min()) if kind == "samples" else None
    stored = stored_keys(reg, cell_id, kind, since)
    missing = ~np.isin(keys, stored)
    if missing.any():
        i = int(np.argmax(missing))
        what = (f"test_time_second={keys[i].real:g}, step_count={int(keys[i].imag)}"
                if kind == "samples" else f"cycle_index={int(keys[i].real)}")
        raise StoreError(
            "this row lies within the cell's stored data but is not one of its rows (another "
            "file's data, or the wrong cell id?)", code="continuation_overlap", file=name,
            row=int(rows[i]) or None, column=ORDER_COLUMNS[kind][0],
            expected="rows already stored for this cell, or rows after its end",
            found=what)


def _refilter(reg: Any, cell_id: str, name: str, parsed: _Parsed,
              report: AppendReport) -> bool:
    """Under the cell lock: if another append committed since the parse, drop the staged rows
    it stored (and refuse conflicting ones). False when nothing is left to add."""
    tail = _stored_tail(reg, cell_id, parsed.kind)
    if tail.time_second == parsed.tail.time_second and tail.cycle == parsed.tail.cycle:
        return True
    table = pq.read_table(parsed.part_tmp)
    keys = row_keys(table, parsed.kind)
    if parsed.kind == "samples" and tail.time_second is not None:
        old = table.column("test_time_second").to_numpy(zero_copy_only=False) <= tail.time_second
    elif tail.cycle is not None:
        old = table.column("cycle_index").to_numpy(zero_copy_only=False) <= tail.cycle
    else:
        old = np.zeros(table.num_rows, dtype=bool)
    k = int(old.sum())
    _check_old_rows_stored(reg, cell_id, parsed.kind, keys[:k], _source_rows(table)[:k], name)
    report.rows_already_stored += k
    rest = table.slice(k)
    if rest.num_rows == 0:
        parsed.new_rows = 0
        return False
    tail.check(rest, Path(name), first=True)
    parsed.new_rows = rest.num_rows
    writer = PartWriter(parsed.part_tmp.with_suffix(".re.tmp"), arrow_schema(parsed.kind))
    writer.write(rest)
    writer.close()
    os.replace(parsed.part_tmp.with_suffix(".re.tmp"), parsed.part_tmp)
    fsync_file(parsed.part_tmp)
    report.time_end_second = report.cycle_last = None
    _track_end(report, rest, parsed.kind)
    return True


def _check_raw_owner(reg: Any, sha256: str, cell_id: str, name: str) -> None:
    with reg.catalog.reading() as conn:
        owners = reg.catalog.ingests_of_raw(conn, sha256)
    others = sorted({o["cell_id"] for o in owners if o["cell_id"] != cell_id})
    if others:
        raise StoreError(
            f"this file's content (sha256 {sha256[:12]}…) is already ingested as cell "
            f"'{others[0]}'; refusing to store it again as cell '{cell_id}'",
            code="duplicate_content", file=name, expected=f"cell '{others[0]}'",
            found=f"cell '{cell_id}'")


def _commit(reg: Any, cell_id: str, parsed: _Parsed, report: AppendReport,
            user_meta: dict[str, Any], *, sha256: str, size: int, raw_tmp: Path,
            extra_meta: Mapping[str, Any] | None) -> None:
    """Publish the part and the raw copy, then ONE catalog transaction (the ingest path's)."""
    from data_registry.ingest import _commit as commit_staged, _discard, _Staged

    table = pq.read_table(parsed.part_tmp, columns=list(ORDER_COLUMNS[parsed.kind]))
    time_col, count_col = ORDER_COLUMNS[parsed.kind]
    times = table.column(time_col)
    counts = table.column(count_col)
    file_report = FileReport(report.source, sha256, size, already_present=False,
                             kind=parsed.kind, format_name=report.format_name,
                             reader_version=parsed.reader_version, rows=parsed.new_rows,
                             time_start_second=pc.min(times).as_py(),
                             time_end_second=pc.max(times).as_py())
    with reg.catalog.reading() as conn:
        seq = len(reg.catalog.cell_ingests(conn, cell_id))
    part_dir = reg.part_dir(parsed.kind, cell_id)
    part_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(parsed.source_metadata)
    if extra_meta:
        meta.update(json_safe(dict(extra_meta)))
    staged = _Staged(file_report, raw_tmp=raw_tmp, part_tmp=parsed.part_tmp,
                     part_final=part_dir / f"{seq:06d}-{uuid.uuid4().hex[:16]}.parquet",
                     warnings=list(parsed.warnings), source_metadata=meta,
                     cycle_first=pc.min(counts).as_py(), cycle_last=pc.max(counts).as_py())
    try:
        with reg.write_lock():
            result = commit_staged(reg, cell_id, [staged], user_meta)
    except BaseException:
        _discard(reg, [staged])
        raise
    report.rows_new = parsed.new_rows
    report.already_present = False
    report.warnings = list(parsed.warnings)
    report.dataset_version = result.version
    assert parsed.kind in TABLES
