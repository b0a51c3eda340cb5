"""The ingest transaction: raw files in, canonical Parquet parts and catalog rows out — or nothing.

Steps, under the registry's write lock:

1. remove temp files an earlier killed ingest may have left (``*.tmp``, ``raw/tmp``);
2. per file: copy it verbatim into ``raw/tmp`` and hash the copy (in a thread, beside
   parsing, unless a raw file of the same size exists — then hash first, to skip duplicates
   without parsing); stream the reader's chunks into a temp Parquet file (bounded memory);
   copy the sidecar files the reader read (``Source.companions``) into ``raw/tmp`` too;
3. move the raw files (main and companions) and parts into place with ``os.replace``;
4. ONE catalog transaction: cell (metadata merged), raw files, ingests, their companions,
   warnings, and a new version of the per-cell dataset ``cell:<cell_id>``.

Any failure before step 4 commits removes this call's files, so the registry is unchanged; a
process killed at any point leaves only files the catalog does not reference: invisible to
loads; temp files are removed by the next writer, a complete but uncommitted part (killed
between step 3 and 4) only by ``Registry.remove_debris(orphan_parts=True)``, since another
catalog may share the folder.

Rules
-----
- The same content for the same cell again: nothing to do (``already_present``).
- The same content under ANOTHER cell id: an error (``duplicate_content``) — one file holds one
  cell's data, so this is nearly always a mistyped ``--cell-id``.
- A file for a cell that already has rows of that kind is a continuation: it must start after
  the stored data ends (later ``test_time_second``, no smaller cycle number; for EIS, new
  ``measurement_id``s). Otherwise ``continuation_overlap`` / ``continuation_cycle_backwards``.
- Metadata that changes a stored value is an error naming both values; identical is fine.
"""
from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from data_registry import catalog as cat
from data_registry.catalog import record_dataset
from data_registry.errors import IngestWarning, StoreError, require_file
from data_registry.manifest import (ORDER_COLUMNS, FileReport, IngestReport, Tail, cell_columns,
                                    cell_dataset_name, json_safe, merge_metadata,
                                    normalize_metadata)
from data_registry.progress import Progress
from data_registry.reader_options import READER_OPTIONS, reader_options_for  # noqa: F401
from data_registry.schema import CELL_METADATA_KEYS, SCHEMA_VERSION, TABLES
from data_registry.parts import (PartWriter, RawCopy, arrow_schema, copy_and_hash, fsync_dir,
                                 fsync_file, to_arrow)
from data_registry.store import Registry

Opener = Callable[..., Any]


@dataclass
class _Companion:
    """A sidecar file copied into ``raw/tmp`` beside its main file."""

    path: Path
    raw_tmp: Path | None
    sha256: str = ""
    size: int = 0


@dataclass
class _Staged:
    """One input file, parsed into temp files, not yet visible."""

    report: FileReport
    raw_tmp: Path | None = None
    part_tmp: Path | None = None
    part_final: Path | None = None
    published: list[Path] = field(default_factory=list)
    warnings: list[IngestWarning] = field(default_factory=list)
    source_metadata: dict[str, Any] = field(default_factory=dict)
    cycle_first: int | None = None
    cycle_last: int | None = None
    measurement_ids: set[str] = field(default_factory=set)
    companion_paths: list[Path] = field(default_factory=list)
    companions: list[_Companion] = field(default_factory=list)


def run_ingest(reg: Registry, paths: Sequence[Path], cell_id: str, *,
               format_name: str | None = None,
               meta: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
               progress: bool = False, chunk_rows: int | None = None,
               on_chunk: Callable[[int], None] | None = None,
               opener: Opener | None = None,
               source_names: Sequence[str] | None = None,
               reader_options: Mapping[str, Any] | None = None) -> IngestReport:
    """Ingest ``paths`` for ``cell_id`` atomically (see the module docstring for the rules).

    Parameters
    ----------
    reg:
        The registry to write to.
    paths:
        Input files in time order.
    cell_id:
        A validated cell id.
    format_name, meta, progress:
        As :meth:`Registry.ingest`.
    chunk_rows:
        Rows per chunk (default ``reg.chunk_rows``); memory is bounded by it.
    on_chunk:
        Called after each chunk is written with the rows written so far (a hook for tests that
        interrupt an ingest half way).
    opener:
        Function with the signature of ``data_registry.readers.open_source`` (default).
    source_names:
        What to record as each file's original path (e.g. the client's file name of an HTTP
        upload staged in a temp file); default the paths themselves.
    reader_options:
        Keyword options of the reader (see :data:`READER_OPTIONS`); a
        ``protocol_hours_per_cycle`` in ``meta`` is forwarded unless given here.
    """
    started = time.perf_counter()
    if opener is None:
        from data_registry.readers import open_source as opener
    user_meta = normalize_metadata(meta)
    read_opts = reader_options_for(reader_options, user_meta)
    for path in paths:
        require_file(path)
    if source_names is not None and len(source_names) != len(paths):
        raise StoreError("one source name per path is needed", code="invalid_source_names",
                         expected=f"{len(paths)} names", found=f"{len(source_names)}")
    rows_per_chunk = int(chunk_rows or reg.chunk_rows)
    staged: list[_Staged] = []
    with reg.write_lock(), Progress(progress, f"ingest {cell_id}") as bar:
        reg.remove_debris()
        try:
            with reg.catalog.reading() as conn:
                cell_row = reg.catalog.cell_row(conn, cell_id)
                stored = reg.catalog.cell_ingests(conn, cell_id)
            stored_meta = dict(cell_row["metadata"]) if cell_row else {}
            merge_metadata(cell_id, stored_meta, user_meta)  # fail fast, before any parsing
            tails = {kind: _tail(reg, kind, [r for r in stored if r["kind"] == kind])
                     for kind in TABLES}
            seen: dict[str, str] = {}
            for n, path in enumerate(paths):
                bar.describe(f"{cell_id}: {path.name}")
                _stage_file(reg, path, cell_id, format_name, rows_per_chunk, tails, seen,
                            seq=len(stored) + n, opener=opener, bar=bar, on_chunk=on_chunk,
                            staged=staged, read_opts=read_opts,
                            name=str(source_names[n]) if source_names else str(path))
            report = _commit(reg, cell_id, staged, user_meta)
        except BaseException:
            _discard(reg, staged)
            raise
    report.elapsed_second = time.perf_counter() - started
    return report


def _stage_file(reg: Registry, path: Path, cell_id: str, format_name: str | None,
                chunk_rows: int, tails: dict[str, Tail], seen: dict[str, str], *, seq: int,
                opener: Opener, bar: Progress, on_chunk: Callable[[int], None] | None,
                staged: list[_Staged], name: str,
                read_opts: Mapping[str, Any] | None = None) -> _Staged:
    size = path.stat().st_size
    tmp_dir = reg.home / "raw" / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    item = _Staged(FileReport(name, "", size, already_present=False),
                   raw_tmp=tmp_dir / f"{uuid.uuid4().hex}.tmp")
    staged.append(item)  # from now on a failure discards its files
    hasher = RawCopy(path, item.raw_tmp)
    hash_first = _raw_size_known(reg, size) or size in {s.report.size_bytes for s in staged[:-1]}
    check_after = not hash_first
    if hash_first:
        hasher.run()  # maybe a duplicate: know before parsing
        hasher.join()
        if _owned_by_other_cells(reg, hasher.sha256, cell_id):
            check_after = True  # validate the format first: an unreadable file says so
        elif _is_duplicate(reg, item, hasher.sha256, cell_id, seen):
            return item
    else:
        hasher.start()  # no stored file has this size, so the content is new: hash beside
    try:
        _parse_into_part(reg, path, cell_id, format_name, chunk_rows, tails, item, seq=seq,
                         opener=opener, bar=bar, on_chunk=on_chunk, read_opts=read_opts,
                         display=Path(name).name if name != str(path) else None)
    finally:
        hasher.join(quiet=True)
    hasher.join()
    if check_after and _is_duplicate(reg, item, hasher.sha256, cell_id, seen):
        return item
    if item.part_tmp is not None:
        fsync_file(item.part_tmp)
    _stage_companions(item, tmp_dir)
    assert item.report.kind is not None
    tails[item.report.kind].extend(item.report.time_end_second, item.cycle_last,
                                   item.measurement_ids, Path(item.report.path).name)
    return item


def _stage_companions(item: _Staged, tmp_dir: Path) -> None:
    """Copy the sidecar files the reader read into ``raw/tmp`` (durable, hashed)."""
    seen: set[str] = set()
    for side in item.companion_paths:
        c = _Companion(side, tmp_dir / f"{uuid.uuid4().hex}.tmp")
        item.companions.append(c)  # from now on a failure discards its copy
        try:
            c.sha256, c.size = copy_and_hash(side, c.raw_tmp)
        except OSError as exc:
            raise StoreError(f"cannot copy the companion file: {exc}",
                             code="companion_unreadable", file=str(side),
                             expected=f"a readable file beside {Path(item.report.path).name}",
                             found=type(exc).__name__) from exc
        if c.sha256 in seen:  # the same sidecar content twice: keep one
            c.raw_tmp.unlink(missing_ok=True)
            item.companions.pop()
        seen.add(c.sha256)
    item.report.companions = [str(c.path) for c in item.companions]


def _parse_into_part(reg: Registry, path: Path, cell_id: str, format_name: str | None,
                     chunk_rows: int, tails: dict[str, Tail], item: _Staged, *, seq: int,
                     opener: Opener, bar: Progress,
                     on_chunk: Callable[[int], None] | None,
                     read_opts: Mapping[str, Any] | None = None,
                     display: str | None = None) -> None:
    """Stream the reader's chunks into a temp Parquet part (memory bounded by a chunk)."""
    extra: dict[str, Any] = {"cell_id": cell_id}
    if display:
        extra["display_name"] = display
    source = opener(path, format_name=format_name, chunk_rows=chunk_rows, **(read_opts or {}),
                    **extra)
    item.source_metadata = json_safe(dict(source.metadata or {}))
    kind = source.kind
    if kind not in TABLES:
        raise StoreError(f"reader '{source.format_name}' returned unknown kind '{kind}'",
                         code="unknown_kind", file=str(path), expected=str(list(TABLES)),
                         found=repr(kind))
    item.report.kind, item.report.format_name = kind, source.format_name
    item.report.reader_version = str(source.reader_version)
    schema = arrow_schema(kind)
    part_dir = reg.part_dir(kind, cell_id)
    part_dir.mkdir(parents=True, exist_ok=True)
    item.part_tmp = part_dir / f".{uuid.uuid4().hex}.tmp"
    tail = tails[kind]
    writer = PartWriter(item.part_tmp, schema)
    try:
        for chunk in source.chunks():
            if chunk.empty:
                continue
            table = to_arrow(chunk, schema, cell_id, path)
            tail.check(table, path, first=item.report.rows == 0)
            writer.write(table)
            _update_stats(kind, item, table)
            bar.advance(table.num_rows)
            if on_chunk is not None:
                on_chunk(item.report.rows)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    item.warnings = list(source.warnings)
    item.source_metadata = json_safe(dict(source.metadata or {}))
    if getattr(source, "on_error", "raise") != "raise":
        item.source_metadata["on_error"] = source.on_error
        skipped = [r for w in item.warnings if w.code == "row_skipped"
                   for r in (w.details or {}).get("rows", [])]
        item.source_metadata["skipped_rows"] = json_safe(skipped)
    item.companion_paths = [Path(p) for p in getattr(source, "companions", None) or []]
    if writer.rows == 0:
        item.part_tmp.unlink(missing_ok=True)
        item.part_tmp = None
    else:
        item.part_final = part_dir / f"{seq:06d}-{uuid.uuid4().hex[:16]}.parquet"


def _raw_size_known(reg: Registry, size: int) -> bool:
    with reg.catalog.reading() as conn:
        q = sa.select(sa.func.count()).where(cat.raw_files.c.size_bytes == size)
        return bool(conn.execute(q).scalar())


def _owned_by_other_cells(reg: Registry, sha256: str, cell_id: str) -> bool:
    with reg.catalog.reading() as conn:
        owners = reg.catalog.ingests_of_raw(conn, sha256)
    return any(o["cell_id"] != cell_id for o in owners)


def _is_duplicate(reg: Registry, item: _Staged, sha256: str, cell_id: str,
                  seen: dict[str, str]) -> bool:
    """True if this content is already stored for this cell; error if for another cell
    (unless each cell reads another part of it: a wide table, one capacity column per cell,
    or a long table, the rows of one value of its cell column)."""
    item.report.sha256 = sha256
    with reg.catalog.reading() as conn:
        owners = reg.catalog.ingests_of_raw(conn, sha256)
    part = _part_of_file(item.source_metadata)
    if any(v is not None for v in part):
        owners = [o for o in owners if _part_of_file(o.get("source_metadata")) == part]
    others = sorted({o["cell_id"] for o in owners if o["cell_id"] != cell_id})
    if others:
        raise StoreError(
            f"this file's content (sha256 {sha256[:12]}…) is already ingested as cell "
            f"'{others[0]}'; refusing to store it again as cell '{cell_id}'",
            code="duplicate_content", file=item.report.path, expected=f"cell '{others[0]}'",
            found=f"cell '{cell_id}'")
    if owners or sha256 in seen:
        item.report.already_present = True
        if item.raw_tmp is not None:
            item.raw_tmp.unlink(missing_ok=True)
            item.raw_tmp = None
        if item.part_tmp is not None:
            item.part_tmp.unlink(missing_ok=True)
            item.part_tmp = None
        item.companion_paths = []
        item.report.rows = 0
        item.warnings = []
        return True
    seen[sha256] = item.report.path
    return False


def _part_of_file(meta: Mapping[str, Any] | None) -> tuple[Any, Any, Any]:
    """Which part of a raw file an ingest read: its capacity column (wide table of many
    cells) and its cell column's value when the file holds other cells' rows too (long
    table of many cells; a file of one cell is read whole, as before cell columns were
    recognised)."""
    meta = meta or {}
    if not meta.get("other_cell_rows"):
        return (meta.get("capacity_column"), None, None)
    return (meta.get("capacity_column"), meta.get("cell_column"), meta.get("cell_value"))


def _update_stats(kind: str, item: _Staged, table: pa.Table) -> None:
    import pyarrow.compute as pc

    time_col, count_col = ORDER_COLUMNS[kind]
    rep = item.report
    rep.rows += table.num_rows
    if time_col in table.column_names:
        lo, hi = pc.min_max(table.column(time_col)).values()
        if lo.is_valid:
            rep.time_start_second = _min(rep.time_start_second, lo.as_py())
            rep.time_end_second = _max(rep.time_end_second, hi.as_py())
    lo, hi = pc.min_max(table.column(count_col)).values()
    if lo.is_valid:
        item.cycle_first = _min(item.cycle_first, lo.as_py())
        item.cycle_last = _max(item.cycle_last, hi.as_py())
    if kind == "eis":
        item.measurement_ids.update(
            table.column("measurement_id").drop_null().unique().to_pylist())


def _tail(reg: Registry, kind: str, rows: list[dict[str, Any]]) -> Tail:
    ids: set[str] = set()
    if kind == "eis":
        for r in rows:
            if r["part_path"]:
                col = pq.read_table(reg.home / r["part_path"], columns=["measurement_id"])
                ids.update(col.column(0).drop_null().unique().to_pylist())
    return Tail.from_ingests(kind, rows, ids)


def _commit(reg: Registry, cell_id: str, staged: list[_Staged],
            user_meta: dict[str, Any]) -> IngestReport:
    """Publish files with os.replace, then write the catalog in one transaction."""
    new = [s for s in staged if not s.report.already_present]
    files = [s.report for s in staged]
    if not new:
        return IngestReport(cell_id, files, 0, [], _current_cell_dataset(reg, cell_id),
                            already_present=True,
                            notes=[f"already ingested (sha256 {f.sha256[:12]}…): {f.path}"
                                   for f in files])
    _publish(reg, new)
    with reg.catalog.transaction() as conn:
        warnings, ref = _record_cell(conn, reg, cell_id, new, user_meta)
    notes = [f"already ingested (sha256 {s.report.sha256[:12]}…): {s.report.path}"
             for s in staged if s.report.already_present]
    return IngestReport(cell_id, files, sum(s.report.rows for s in new), warnings, ref,
                        already_present=False, notes=notes)


def _publish(reg: Registry, new: list[_Staged]) -> None:
    """Move staged raw files, companions and parts into place (before the catalog commit).
    An item whose raw file was published already (one raw file of many cells) has none."""
    for s in new:
        if s.raw_tmp is not None:
            _publish_raw(reg, s.report.sha256, s.raw_tmp)
            s.raw_tmp = None
        for c in s.companions:
            assert c.raw_tmp is not None
            _publish_raw(reg, c.sha256, c.raw_tmp)
            c.raw_tmp = None
        if s.part_tmp is not None and s.part_final is not None:
            os.replace(s.part_tmp, s.part_final)
            s.published.append(s.part_final)
            s.part_tmp = None
            fsync_dir(s.part_final.parent)
            reg.storage.publish(s.part_final)  # object storage, if any: before the catalog


def _record_cell(conn: Any, reg: Registry, cell_id: str, new: list[_Staged],
                 user_meta: dict[str, Any]) -> tuple[list[IngestWarning], Any]:
    """Inside the caller's catalog transaction: the cell (metadata merged), its new raw files,
    ingests, companions and warnings, and a new version of its dataset ``cell:<cell_id>``."""
    warnings: list[IngestWarning] = []
    cell_row = reg.catalog.cell_row(conn, cell_id)
    stored_meta = dict(cell_row["metadata"]) if cell_row else {}
    merged = merge_metadata(cell_id, stored_meta, user_meta)
    for s in new:  # cell keys a reader found fill gaps only; the user's --meta wins
        for key, value in s.source_metadata.items():
            if key in CELL_METADATA_KEYS and key not in merged:
                try:
                    merged.update(normalize_metadata({key: value}, origin=s.report.path))
                except StoreError as exc:
                    s.warnings.append(IngestWarning(
                        "source_metadata_ignored", f"cell metadata from the file not "
                        f"used: {exc}", s.report.path, column=key))
    now = cat.now_utc()
    if cell_row is None:
        conn.execute(cat.cells.insert().values(cell_id=cell_id, metadata=merged,
                                               created_at=now, updated_at=now,
                                               **cell_columns(merged)))
    elif merged != stored_meta:
        conn.execute(cat.cells.update().where(cat.cells.c.cell_id == cell_id).values(
            metadata=merged, updated_at=now, **cell_columns(merged)))
    for s in new:
        rep = s.report
        _insert_raw(conn, reg, rep.sha256, rep.size_bytes, Path(rep.path).name, now)
        ingest_id = conn.execute(cat.ingests.insert().values(
            cell_id=cell_id, raw_sha256=rep.sha256, original_path=str(rep.path),
            kind=rep.kind, format_name=rep.format_name, reader_version=rep.reader_version,
            schema_version=SCHEMA_VERSION, rows=rep.rows,
            time_start_second=rep.time_start_second, time_end_second=rep.time_end_second,
            cycle_first=s.cycle_first, cycle_last=s.cycle_last,
            part_path=(s.part_final.relative_to(reg.home).as_posix()
                       if s.part_final else None),
            source_metadata=s.source_metadata, created_at=now)).inserted_primary_key[0]
        for c in s.companions:
            _insert_raw(conn, reg, c.sha256, c.size, c.path.name, now)
        if s.companions:
            conn.execute(cat.companions.insert(), [
                {"ingest_id": ingest_id, "raw_sha256": c.sha256,
                 "original_path": str(c.path)} for c in s.companions])
        if s.warnings:
            conn.execute(cat.warnings.insert(), [_warning_row(ingest_id, w)
                                                 for w in s.warnings])
        warnings += s.warnings
    members = {cell_id: reg.catalog.cell_ingests(conn, cell_id)}
    ref = record_dataset(reg.catalog, conn, cell_dataset_name(cell_id), members)
    return warnings, ref


def _publish_raw(reg: Registry, sha256: str, raw_tmp: Path) -> None:
    """Move a staged raw copy to its content address (dropped if that content is stored)."""
    final = reg.raw_path(sha256)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        raw_tmp.unlink(missing_ok=True)
    else:
        os.chmod(raw_tmp, 0o444)  # never rewritten
        os.replace(raw_tmp, final)
        fsync_dir(final.parent)
    reg.storage.publish(final)  # object storage, if any: before the catalog commit


def _insert_raw(conn: Any, reg: Registry, sha256: str, size: int, name: str, now: Any) -> None:
    """A ``raw_files`` row for this content unless one exists."""
    exists = conn.execute(sa.select(cat.raw_files.c.sha256)
                          .where(cat.raw_files.c.sha256 == sha256)).first()
    if exists is None:
        conn.execute(cat.raw_files.insert().values(
            sha256=sha256, size_bytes=size, original_name=name,
            stored_path=reg.raw_path(sha256).relative_to(reg.home).as_posix(), created_at=now))


def _current_cell_dataset(reg: Registry, cell_id: str) -> Any:
    from data_registry.errors import NotFoundError

    try:
        return reg.dataset(cell_dataset_name(cell_id))
    except NotFoundError:
        return None


def _warning_row(ingest_id: int, w: IngestWarning) -> dict[str, Any]:
    return {"ingest_id": ingest_id, "code": str(w.code), "message": str(w.message),
            "file": w.file, "row": None if w.row is None else int(w.row), "column": w.column,
            "count": int(w.count or 1), "details": json_safe(dict(w.details or {}))}


def _discard(reg: Registry, staged: list[_Staged]) -> None:
    """Remove the files of a call that failed; never a part the catalog references (a failure
    right after the commit must not delete committed data)."""
    published = [p for s in staged for p in s.published]
    if published:
        try:
            with reg.catalog.reading() as conn:
                referenced = reg.catalog.referenced_parts(conn)
            published = [p for p in published
                         if p.relative_to(reg.home).as_posix() not in referenced]
        except Exception:  # noqa: BLE001 - catalog unreachable: keep them, they stay unread
            published = []
    for p in [*(s.raw_tmp for s in staged), *(s.part_tmp for s in staged),
              *(c.raw_tmp for s in staged for c in s.companions), *published]:
        if p is not None:
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass  # a temp file: the next writer's sweep removes it


def _min(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)
