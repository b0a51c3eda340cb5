"""The registry store: raw files verbatim, canonical Parquet tables per cell, one catalog.

Layout under ``FADECAST_HOME``::

    raw/<sha256[:2]>/<sha256>                 every ingested file and its companion (sidecar)
                                              files, verbatim and read-only
    tables/<kind>/cell=<cell_id>/<n>-<random>.parquet
                                              canonical rows of one ingested file (kind =
                                              samples | cycles | eis); a cell's table is its
                                              parts in catalog order
    catalog.sqlite                            the default catalog (see :mod:`catalog`)
    registry.lock                             held while an operation writes

Files are written to a ``*.tmp`` path, fsync'ed and moved into place with ``os.replace``; the
catalog commit comes last. With a store URL (:mod:`data_registry.storage`) raw files and parts
are also PUT to object storage before that commit, and parts are read from there. Only parts
the catalog references are ever read, so an ingest that
died half way is invisible; its temp files are removed by the next writer.

Every ingest adds a version of the per-cell dataset ``cell:<cell_id>``; named datasets are
frozen with :meth:`Registry.create_dataset` (rules in :mod:`data_registry.manifest`).
"""
from __future__ import annotations

import difflib
import fcntl
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from data_registry.catalog import Catalog, iso_utc, record_dataset
from data_registry.errors import NotFoundError, StoreError
from data_registry.home import catalog_url as default_catalog_url
from data_registry.home import fadecast_home
from data_registry.manifest import DatasetRef, IngestReport, cell_version
# re-exported: callers from before the split import the writers from here
from data_registry.parts import (PARQUET_OPTIONS, PartWriter, RawCopy,  # noqa: F401
                                 arrow_schema, copy_and_hash, fsync_dir, fsync_file, to_arrow)
from data_registry.schema import TABLES
from data_registry.storage import Storage

KINDS = ("samples", "cycles", "eis")
# the one cell-id rule (re-exported here for callers from before it moved)
from data_registry.cell_ids import CELL_ID_PATTERN, check_cell_id  # noqa: E402,F401


class Registry:
    """The data registry: ingest cycler exports, list and load cells, freeze datasets.

    Parameters
    ----------
    home:
        Registry folder (default ``$FADECAST_HOME`` or ``./fadecast-data``).
    catalog_url:
        SQLAlchemy URL of the catalog (default SQLite inside ``home``).
    chunk_rows:
        Rows per chunk when streaming a file in (bounds memory at ingest).
    """

    def __init__(self, home: str | os.PathLike[str] | None = None,
                 catalog_url: str | None = None, *, chunk_rows: int = 100_000,
                 store_url: str | None = None,
                 store_options: Mapping[str, Any] | None = None) -> None:
        self.home = fadecast_home(home)
        self.catalog = Catalog(catalog_url or default_catalog_url(self.home))
        self.chunk_rows = int(chunk_rows)
        # raw files and parts: under home, or also in an fsspec store (data_registry.storage)
        self.storage = Storage(self.home, store_url,
                               dict(store_options) if store_options is not None else None)

    def __repr__(self) -> str:
        return f"Registry(home={str(self.home)!r})"

    def close(self) -> None:
        """Release database connections."""
        self.catalog.dispose()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------

    def ingest(self, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
               cell_id: str, *, format_name: str | None = None,
               meta: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
               progress: bool = False, reader_options: Mapping[str, Any] | None = None,
               **options: Any) -> IngestReport:
        """Ingest one or more files of one cell in ONE atomic transaction.

        Parameters
        ----------
        paths:
            Cycler exports or EIS spectra of the cell, in time order (later files continue
            earlier ones).
        cell_id:
            The cell the files belong to.
        format_name:
            Reader name (default: detected per file).
        meta:
            Cell metadata (``chemistry``, ``active_mass_g``, ``nominal_capacity_ah`` …).
        progress:
            Show a progress bar on stderr.
        reader_options:
            Passed to the reader (:func:`data_registry.readers.open_source`); the CLI flags of
            ``fadecast ingest`` and the upload API use the same names:
            ``hours_per_cycle`` (= ``protocol_hours_per_cycle``) or ``c_rate`` (2/C h per
            cycle): per-cycle files without elapsed time get an estimated clock, flagged
            ``test_time_estimated = 1``; ``on_error`` ``"raise"`` (default) | ``"skip-row"``
            (bad rows dropped, each one's line and reason kept in the lineage:
            ``lineage()[i]["skipped_rows"]``); ``capacity_column`` (a capacity table with one
            column per cell; default the only one or the one named like ``cell_id``);
            ``eis_sign`` ``"auto"`` | ``"im"`` | ``"minus_im"``; ``max_line_bytes``;
            ``cell_column`` + ``cell_value`` (a generic table of many cells: only the rows
            of that cell; such a table is refused without them — :meth:`ingest_table`
            stores every cell of it). A
            ``protocol_hours_per_cycle`` (alias ``hours_per_cycle``) given in ``meta`` is
            forwarded too, and kept as cell metadata. Errors and warnings name the file as
            ``source_names`` gives it (an upload's client file name, never a temp path).
        **options:
            ``chunk_rows``, ``source_names``, ``on_chunk`` (see
            :func:`data_registry.ingest.run_ingest`).

        Returns
        -------
        IngestReport
            Rows stored, warnings, the new per-cell dataset version, ``already_present``.
        """
        from data_registry.ingest import run_ingest

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        return run_ingest(self, [Path(p) for p in paths], check_cell_id(cell_id),
                          format_name=format_name, meta=meta, progress=progress,
                          reader_options=reader_options, **options)

    def ingest_table(self, path: str | os.PathLike[str], cell_column: str | None = None,
                     cell_id_prefix: str = "", *, format_name: str | None = None,
                     meta: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
                     progress: bool = False, reader_options: Mapping[str, Any] | None = None,
                     **options: Any) -> Any:
        """Ingest a table of MANY cells (one CSV, a column naming each row's cell) as one cell
        per value of ``cell_column``, ALL in one transaction (one failing cell stores nothing).

        Parameters
        ----------
        path:
            A generic CSV table (samples, per-cycle, capacity table or EIS).
        cell_column:
            The column naming each row's cell (default: the one whose header says so:
            ``cell_name``, ``cell_id``, ``Channel`` …).
        cell_id_prefix:
            Each cell is stored as ``cell_id_prefix`` + its value (characters a cell id may not
            hold replaced by ``_``; :func:`data_registry.cell_ids.cell_id_from_label`).
        format_name, meta, progress, reader_options:
            As :meth:`ingest`; ``meta`` applies to every cell.
        **options:
            ``chunk_rows``, ``source_name`` (see
            :func:`data_registry.multi_cell.run_table_ingest`).

        Returns
        -------
        TableIngestReport
            One :class:`IngestReport` per cell (``cells``), the column, each cell's value.
        """
        from data_registry.multi_cell import run_table_ingest

        return run_table_ingest(self, Path(path), cell_column, cell_id_prefix,
                                format_name=format_name, meta=meta, progress=progress,
                                reader_options=reader_options, **options)

    def create_dataset(self, name: str, cell_ids: Sequence[str]) -> DatasetRef:
        """Freeze the current state of ``cell_ids`` as a new version of dataset ``name``.

        Returns the existing version when nothing changed since the last one.
        """
        name = str(name).strip()
        if not name or name.startswith("cell:"):
            raise StoreError("invalid dataset name", code="invalid_dataset_name",
                             expected="a non-empty name not starting with 'cell:' (reserved for "
                                      "per-cell datasets)", found=repr(name))
        if not cell_ids:
            raise StoreError("a dataset needs at least one cell", code="empty_dataset",
                             expected="one or more cell ids", found="none")
        with self.write_lock(), self.catalog.transaction() as conn:
            members = {}
            for cid in sorted(set(cell_ids)):
                self._require_cell(conn, cid)
                members[cid] = self.catalog.cell_ingests(conn, cid)
            return record_dataset(self.catalog, conn, name, members)

    # -- reading ----------------------------------------------------------------------------

    def cells(self) -> list[dict[str, Any]]:
        """Every cell: ``cell_id``, chemistry, masses, row counts per kind, time range."""
        with self.catalog.reading() as conn:
            rows = self.catalog.all_cells(conn)
        return [_cell_summary(r) for r in rows]

    def cell(self, cell_id: str) -> dict[str, Any]:
        """One cell in full: metadata, ingested files with lineage, warnings, datasets."""
        with self.catalog.reading() as conn:
            row = self._require_cell(conn, cell_id)
            ingests = self.catalog.cell_ingests(conn, cell_id)
            warns = self.catalog.ingest_warnings(conn, [i["ingest_id"] for i in ingests])
            sides = self.catalog.ingest_companions(conn, [i["ingest_id"] for i in ingests])
            sets = [d for d in self.catalog.all_datasets(conn)
                    if any(m["cell_id"] == cell_id for m in d["cells"])]
        summary = next(c for c in self.cells() if c["cell_id"] == cell_id)
        by_ingest: dict[int, list[dict[str, Any]]] = {}
        for w in warns:
            by_ingest.setdefault(w["ingest_id"], []).append(
                {k: w[k] for k in ("code", "message", "file", "row", "column", "count")})
        files = []
        for i in ingests:
            files.append({
                "ingest_id": i["ingest_id"], "raw_sha256": i["raw_sha256"],
                "raw_path": str(self.raw_path(i["raw_sha256"])),
                "original_path": i["original_path"], "kind": i["kind"],
                "format_name": i["format_name"], "reader_version": i["reader_version"],
                "schema_version": i["schema_version"], "rows": i["rows"],
                "time_start_second": i["time_start_second"],
                "time_end_second": i["time_end_second"],
                "cycle_first": i["cycle_first"], "cycle_last": i["cycle_last"],
                "ingested_at": iso_utc(i["created_at"]),
                "source_metadata": i["source_metadata"],
                "companions": [{**c, "raw_path": str(self.raw_path(c["raw_sha256"]))}
                               for c in sides.get(i["ingest_id"], [])],
                "warnings": by_ingest.get(i["ingest_id"], []),
            })
        return {**summary, "metadata": dict(row["metadata"]), "version": cell_version(ingests),
                "files": files,
                "datasets": [{"name": d["name"], "version": d["version"]} for d in sets]}

    def cell_metadata(self, cell_id: str) -> dict[str, Any]:
        """The stored metadata of one cell (``chemistry``, ``nominal_capacity_ah`` …)."""
        with self.catalog.reading() as conn:
            return dict(self._require_cell(conn, cell_id)["metadata"])

    def datasets(self) -> list[dict[str, Any]]:
        """Every dataset version: ``name``, ``version``, ``cell_ids``, ``created_at``,
        ``latest`` (the newest version of its name)."""
        with self.catalog.reading() as conn:
            rows = self.catalog.all_datasets(conn)
        newest = {r["name"]: r["dataset_id"] for r in rows}
        return [{"name": r["name"], "version": r["version"],
                 "cell_ids": [m["cell_id"] for m in r["cells"]],
                 "schema_version": r["schema_version"],
                 "created_at": iso_utc(r["created_at"]),
                 "latest": newest[r["name"]] == r["dataset_id"]} for r in rows]

    def dataset(self, name: str, version: str | None = None) -> DatasetRef:
        """One dataset version (the latest when ``version`` is None; a prefix is enough)."""
        with self.catalog.reading() as conn:
            row = self.catalog.find_dataset(conn, name, version)
            if row is None:
                known = sorted({d["name"] for d in self.catalog.all_datasets(conn)})
                raise _not_found("dataset", f"{name}@{version}" if version else name, known)
        return DatasetRef(row["name"], row["version"],
                          tuple(m["cell_id"] for m in row["cells"]), row["schema_version"])

    def lineage(self, name: str, version: str | None = None) -> list[dict[str, Any]]:
        """Where a dataset version's rows came from: per ingest, the cell, the raw file's
        sha256 and original path, the reader and its version, the schema version, rows, and
        the companion (sidecar) files kept with it (``raw_sha256``, ``original_path``)."""
        ref = self.dataset(name, version)
        with self.catalog.reading() as conn:
            row = self.catalog.find_dataset(conn, ref.name, ref.version)
            assert row is not None
            out = []
            sides = self.catalog.ingest_companions(
                conn, [i for m in row["cells"] for i in m["ingest_ids"]])
            for m in row["cells"]:
                wanted = set(m["ingest_ids"])
                out += [{"cell_id": m["cell_id"], "cell_version": m["cell_version"],
                         "raw_sha256": i["raw_sha256"], "original_path": i["original_path"],
                         "kind": i["kind"], "format_name": i["format_name"],
                         "reader_version": i["reader_version"],
                         "schema_version": i["schema_version"], "rows": i["rows"],
                         "companions": sides.get(i["ingest_id"], []),
                         "on_error": (i.get("source_metadata") or {}).get("on_error", "raise"),
                         "skipped_rows": (i.get("source_metadata") or {}).get(
                             "skipped_rows", [])}
                        for i in self.catalog.cell_ingests(conn, m["cell_id"])
                        if i["ingest_id"] in wanted]
        return out

    def load_samples(self, cell_id: str | Sequence[str],
                     columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Canonical per-sample rows of one or several cells, in stored order."""
        return self._load("samples", cell_id, columns)

    def load_cycles(self, cell_id: str | Sequence[str],
                    columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Per-cycle rows ingested as per-cycle summaries (kind ``cycles``)."""
        return self._load("cycles", cell_id, columns)

    def load_eis(self, cell_id: str | Sequence[str],
                 columns: Sequence[str] | None = None) -> pd.DataFrame:
        """EIS spectra rows (kind ``eis``)."""
        return self._load("eis", cell_id, columns)

    def load_dataset(self, name: str, kind: str = "samples", version: str | None = None,
                     columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Rows of a dataset version exactly as frozen (later continuations excluded)."""
        ref = self.dataset(name, version)
        with self.catalog.reading() as conn:
            row = self.catalog.find_dataset(conn, ref.name, ref.version)
            assert row is not None
            wanted = {i for m in row["cells"] for i in m["ingest_ids"]}
            parts = []
            for m in row["cells"]:
                rows = self.catalog.cell_ingests(conn, m["cell_id"], kind)
                parts += [i["part_path"] for i in rows
                          if i["ingest_id"] in wanted and i["part_path"]]
        return self._read_parts(kind, parts, columns)

    # -- paths and plumbing (used by data_registry.ingest) ------------------------------------

    def raw_path(self, sha256: str) -> Path:
        """Where the raw file with this content hash is kept."""
        return self.home / "raw" / sha256[:2] / sha256

    def part_dir(self, kind: str, cell_id: str) -> Path:
        """Folder of one cell's Parquet parts of one kind."""
        return self.home / "tables" / kind / f"cell={cell_id}"

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Exclusive lock on the registry folder for one writing operation.

        The kernel drops the lock when the process dies, even on SIGKILL.
        """
        with open(self.home / "registry.lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def remove_debris(self, orphan_parts: bool = False) -> list[Path]:
        """Delete what a process killed mid-ingest left behind (call under :meth:`write_lock`).

        Always: ``*.tmp`` files under ``tables/`` and ``raw/tmp/`` (partial writes). With
        ``orphan_parts``: also complete Parquet parts the catalog does not reference (a process
        killed between moving its part into place and its commit) — only safe when this folder
        is used by ONE catalog, so ingest never does it. Raw files are never removed.
        """
        removed: list[Path] = []
        referenced: set[str] = set()
        if orphan_parts:
            with self.catalog.reading() as conn:
                referenced = self.catalog.referenced_parts(conn)
        tables = self.home / "tables"
        for path in list(tables.rglob("*")) if tables.is_dir() else []:
            rel = path.relative_to(self.home).as_posix()
            if path.is_file() and (path.name.endswith(".tmp")
                                   or (orphan_parts and rel not in referenced)):
                path.unlink(missing_ok=True)
                removed.append(path)
        tmp = self.home / "raw" / "tmp"
        for path in list(tmp.iterdir()) if tmp.is_dir() else []:
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def _require_cell(self, conn: Any, cell_id: str) -> dict[str, Any]:
        row = self.catalog.cell_row(conn, cell_id)
        if row is None:
            known = [r["cell_id"] for r in self.catalog.all_cells(conn)]
            raise _not_found("cell", cell_id, known)
        return row

    def _load(self, kind: str, cell_id: str | Sequence[str],
              columns: Sequence[str] | None) -> pd.DataFrame:
        ids = [cell_id] if isinstance(cell_id, str) else list(cell_id)
        parts: list[str] = []
        with self.catalog.reading() as conn:
            for cid in ids:
                self._require_cell(conn, cid)
                parts += [i["part_path"] for i in self.catalog.cell_ingests(conn, cid, kind)
                          if i["part_path"]]
        return self._read_parts(kind, parts, columns)

    def _read_parts(self, kind: str, parts: Sequence[str],
                    columns: Sequence[str] | None) -> pd.DataFrame:
        schema = arrow_schema(kind)
        if columns is not None:
            unknown = [c for c in columns if c not in schema.names]
            if unknown:
                raise StoreError(f"unknown {kind} column", code="unknown_column",
                                 column=unknown[0], expected=f"one of {schema.names}",
                                 found=repr(unknown[0]))
        tables = [self.storage.read_parquet(p, columns) for p in parts]
        if not tables:
            table = schema.empty_table()
            if columns:
                table = table.select(list(columns))
        else:
            # parts written under an older schema version lack newer columns: null-filled
            table = pa.concat_tables(tables, promote_options="default")
        if not columns:
            # Optional columns no source of this cell provided stay absent, not all-NaN.
            required = set(TABLES[kind].required)
            keep = [n for n in table.column_names
                    if n in required or table.column(n).null_count < table.num_rows]
            table = table.select(keep)
        return table.to_pandas()


def _cell_summary(r: Mapping[str, Any]) -> dict[str, Any]:
    return {"cell_id": r["cell_id"], "chemistry": r["chemistry"],
            "active_mass_g": r["active_mass_g"], "nominal_capacity_ah": r["nominal_capacity_ah"],
            "files": int(r["files"] or 0), "sample_rows": int(r["sample_rows"] or 0),
            "cycle_rows": int(r["cycle_rows"] or 0), "eis_rows": int(r["eis_rows"] or 0),
            "time_start_second": r["time_start_second"],
            "time_end_second": r["time_end_second"], "cycles": _cycles(r),
            "cohort": (r.get("metadata") or {}).get("cohort")}


def _cycles(r: Mapping[str, Any]) -> int:
    """Cycles of a cell: its per-cycle rows, else the span of its samples' cycle counter."""
    if r.get("cycle_rows"):
        return int(r["cycle_rows"])
    first, last = r.get("sample_cycle_first"), r.get("sample_cycle_last")
    if first is None or last is None:
        return 0
    return int(last) - int(first) + 1


def _not_found(what: str, name: str, known: Sequence[str]) -> NotFoundError:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return NotFoundError(f"no {what} '{name}' in the registry{hint}", code=f"unknown_{what}",
                         expected=f"one of {len(known)} registered {what}s", found=repr(name))
