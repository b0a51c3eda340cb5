"""What the registry says about its content: reports, dataset references, versions, metadata.

Versions are content hashes, so the same content always gets the same version:

- a **cell version** hashes the ordered list of (raw sha256, kind, reader, reader version,
  schema version) of the cell's ingests — a new continuation file gives a new cell version;
- a **dataset version** hashes the schema version and the sorted (cell_id, cell version) pairs.

Dataset rule: every ingest that stores rows for a cell creates a new version of the per-cell
dataset named ``cell:<cell_id>``; :meth:`Registry.create_dataset` freezes named sets of cells.
Creating a dataset whose content did not change returns the existing version (idempotent).

Continuation rule (:class:`Tail`): a file added to a cell that already holds rows of its kind
must start after them — later ``test_time_second`` and no smaller cycle number (samples,
cycles), or only new ``measurement_id``s (EIS).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_registry.errors import IngestWarning, StoreError
from data_registry.schema import CELL_METADATA_KEYS, SCHEMA_VERSION

#: Cell metadata keys stored as floats, with the range a value must lie in.
NUMERIC_METADATA: dict[str, tuple[float, float]] = {
    "active_mass_g": (0.0, 1e6),
    "nominal_capacity_ah": (0.0, 1e6),
    "temperature_celsius": (-80.0, 200.0),
    "protocol_hours_per_cycle": (0.0, 1e5),
    "charge_policy_c_rate": (0.0, 1e3),
}
#: other spellings accepted in ``--meta`` → the stored key
METADATA_ALIASES: dict[str, str] = {"hours_per_cycle": "protocol_hours_per_cycle"}

CELL_DATASET_PREFIX = "cell:"


@dataclass(frozen=True)
class DatasetRef:
    """One immutable dataset version.

    ``version`` is the full sha256 content hash; ``short`` its first 12 hex digits.
    """

    name: str
    version: str
    cell_ids: tuple[str, ...]
    schema_version: str = SCHEMA_VERSION

    @property
    def short(self) -> str:
        return self.version[:12]

    def __str__(self) -> str:
        return f"{self.name}@{self.short}"


@dataclass
class FileReport:
    """What happened to one input file of an ingest."""

    path: str
    sha256: str
    size_bytes: int
    already_present: bool
    kind: str | None = None
    format_name: str | None = None
    reader_version: str | None = None
    rows: int = 0
    time_start_second: float | None = None
    time_end_second: float | None = None
    #: sidecar files read with this one and kept verbatim (paths as given)
    companions: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    """The result of :meth:`Registry.ingest`.

    ``already_present`` is True when every file had already been ingested for this cell (the
    call changed nothing). ``rows`` counts rows stored by THIS call. ``dataset`` is the per-cell
    dataset version after the call.
    """

    cell_id: str
    files: list[FileReport]
    rows: int
    warnings: list[IngestWarning]
    dataset: DatasetRef | None
    already_present: bool
    elapsed_second: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def version(self) -> str | None:
        return None if self.dataset is None else self.dataset.version

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's ``ingest --json`` output)."""
        return {
            "cell_id": self.cell_id,
            "already_present": self.already_present,
            "rows": self.rows,
            "elapsed_second": round(self.elapsed_second, 3),
            "dataset": None if self.dataset is None else {
                "name": self.dataset.name, "version": self.dataset.version,
                "cell_ids": list(self.dataset.cell_ids)},
            "files": [asdict(f) for f in self.files],
            "warnings": [{"code": w.code, "message": w.message, "file": w.file, "row": w.row,
                          "column": w.column, "count": w.count} for w in self.warnings],
            "notes": list(self.notes),
        }


#: Column that orders rows within a cell, and the counter that may not go back, per kind.
ORDER_COLUMNS = {"samples": ("test_time_second", "cycle_count"),
                 "cycles": ("test_time_second", "cycle_index"),
                 "eis": ("test_time_second", "cycle_count")}


@dataclass
class Tail:
    """Where a cell's stored rows of one kind end: a continuation must start after it.

    Samples and cycles: later ``test_time_second`` and no smaller cycle number; EIS: only new
    ``measurement_id``s.
    """

    kind: str
    time_second: float | None = None
    cycle: int | None = None
    source: str | None = None
    measurement_ids: set[str] = field(default_factory=set)

    @classmethod
    def from_ingests(cls, kind: str, rows: Sequence[Mapping[str, Any]],
                     measurement_ids: set[str] | None = None) -> "Tail":
        """The tail after a cell's stored ingests of ``kind`` (catalog rows, in order)."""
        if not rows:
            return cls(kind)
        times = [r["time_end_second"] for r in rows if r["time_end_second"] is not None]
        cycles = [r["cycle_last"] for r in rows if r["cycle_last"] is not None]
        return cls(kind, max(times) if times else None, max(cycles) if cycles else None,
                   Path(rows[-1]["original_path"]).name, set(measurement_ids or ()))

    def check(self, table: pa.Table, path: Path, *, first: bool) -> None:
        """Refuse a chunk that does not continue the stored rows (``StoreError``)."""
        time_col, count_col = ORDER_COLUMNS[self.kind]
        if self.kind == "eis":
            ids = set(table.column("measurement_id").drop_null().unique().to_pylist())
            clash = sorted(ids & (self.measurement_ids or set()))
            if clash:
                raise StoreError(f"spectrum '{clash[0]}' is already stored for this cell (from "
                                 f"{self.source})", code="continuation_overlap", file=str(path),
                                 column="measurement_id", expected="new measurement ids",
                                 found=repr(clash[0]))
            return
        if not first:
            return  # within one file the reader guarantees order
        t0 = table.column(time_col)[0].as_py()
        c0 = table.column(count_col)[0].as_py()
        row = table.column("source_row")[0].as_py() if "source_row" in table.column_names else None
        if self.time_second is not None and t0 is not None and t0 <= self.time_second:
            raise StoreError(
                f"continuation goes back in time: this cell's stored {self.kind} end at "
                f"{time_col}={self.time_second:g} (from {self.source}); a continuation file must "
                "start later", code="continuation_overlap", file=str(path), row=row,
                column=time_col,
                expected=f"> {self.time_second:g}", found=f"{t0:g}")
        if self.cycle is not None and c0 is not None and c0 < self.cycle:
            raise StoreError(
                f"continuation goes back in cycles: this cell's stored {self.kind} end at "
                f"{count_col}={self.cycle} (from {self.source})",
                code="continuation_cycle_backwards", file=str(path), row=row, column=count_col,
                expected=f">= {self.cycle}", found=str(c0))

    def extend(self, time_end_second: float | None, cycle_last: int | None,
               measurement_ids: set[str], source: str) -> None:
        """Move the tail past a file just staged (the next file of the call continues it)."""
        if self.kind == "eis":
            self.measurement_ids |= measurement_ids
        else:
            if time_end_second is not None:
                self.time_second = max(self.time_second or time_end_second, time_end_second)
            if cycle_last is not None:
                self.cycle = max(self.cycle if self.cycle is not None else cycle_last,
                                 cycle_last)
        self.source = source


def cell_version(ingest_rows: Iterable[Mapping[str, Any]]) -> str:
    """Content hash of a cell's stored state from its ingest rows (in ingest order)."""
    parts = [[r["raw_sha256"], r["kind"], r["format_name"], r["reader_version"],
              r["schema_version"]] for r in ingest_rows]
    return _sha256_json(parts)


def dataset_version(members: Mapping[str, str], schema_version: str = SCHEMA_VERSION) -> str:
    """Content hash of a dataset: schema version + sorted ``{cell_id: cell_version}``."""
    return _sha256_json({"schema_version": schema_version,
                         "cells": sorted(members.items())})


def cell_dataset_name(cell_id: str) -> str:
    """Name of the per-cell dataset that every ingest of ``cell_id`` versions."""
    return CELL_DATASET_PREFIX + cell_id


def normalize_metadata(meta: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
                       *, origin: str = "--meta") -> dict[str, Any]:
    """Cell metadata with known numeric keys as floats; other values as str/int/float/bool.

    Parameters
    ----------
    meta:
        Mapping or (key, value) pairs, e.g. from ``--meta active_mass_g=0.0123``.
    origin:
        Where the values came from, for error messages.

    Raises
    ------
    StoreError
        ``invalid_metadata`` for a non-numeric or out-of-range known numeric key, or an empty key.
    """
    if meta is None:
        return {}
    items = meta.items() if isinstance(meta, Mapping) else meta
    out: dict[str, Any] = {}
    for key, value in items:
        key = str(key).strip()
        key = METADATA_ALIASES.get(key, key)
        if not key:
            raise StoreError("metadata key is empty", code="invalid_metadata", column=origin,
                             expected="key=value", found=repr(value))
        if value is None:
            continue
        if key in NUMERIC_METADATA:
            lo, hi = NUMERIC_METADATA[key]
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not (math.isfinite(number) and lo < number < hi):
                raise StoreError(f"metadata '{key}' is not a valid number", code="invalid_metadata",
                                 column=key, expected=f"a float in ({lo:g}, {hi:g})",
                                 found=repr(value))
            out[key] = number
        elif isinstance(value, (bool, int, float)):
            out[key] = value
        else:
            out[key] = str(value).strip()
    return out


def merge_metadata(cell_id: str, stored: Mapping[str, Any],
                   new: Mapping[str, Any]) -> dict[str, Any]:
    """Stored cell metadata updated with ``new``; a changed value is an error.

    Raises
    ------
    StoreError
        ``conflicting_metadata`` naming the key and both values.
    """
    merged = dict(stored)
    for key, value in new.items():
        if key in stored and not _same_value(stored[key], value):
            raise StoreError(
                f"cell '{cell_id}' already has {key}={stored[key]!r}; refusing to change it to "
                f"{value!r} (a different cell? use another --cell-id)",
                code="conflicting_metadata", column=key, expected=repr(stored[key]),
                found=repr(value))
        merged[key] = value
    return merged


def cell_columns(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata keys the ``cells`` table keeps in their own columns."""
    return {"chemistry": meta.get("chemistry"), "active_mass_g": meta.get("active_mass_g"),
            "nominal_capacity_ah": meta.get("nominal_capacity_ah")}


def known_metadata_keys() -> list[str]:
    """Documented cell metadata keys (free-form keys are allowed too)."""
    return list(CELL_METADATA_KEYS)


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return str(a) == str(b)


def _sha256_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def json_safe(value: Any) -> Any:
    """A JSON-storable copy of reader metadata (numpy scalars → Python, NaN → None)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
