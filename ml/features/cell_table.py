"""The stored per-cycle table of a registered cell, EXTENDED as samples arrive (never rebuilt).

``FADECAST_HOME/cycle_tables/cell=<id>.parquet`` holds the per-sample reductions of
:func:`ml.features.sample_cycles.sample_cycles` (one row per cycle, before completion) and,
in its schema metadata, which sample ingests it covers and the running maxima (largest |I|,
highest voltage) of the cell's samples BEFORE its last stored cycle. When new sample ingests
appear, only the cycles that changed are recomputed: the last stored cycle (possibly
incomplete when it was stored) and the new ones, read from the Parquet parts that hold them,
with one earlier row as context so time differences across the boundary equal the whole
table's, and with the stored running maxima carried in so the thresholds equal the whole
table's. The completion step (``complete_cycle_table``: reference capacity, hours, C-rates …)
is O(cycles) and runs on the whole table each time, through the ONE feature path.

The thresholds the reductions use (rest current, high-voltage level) are causal — from the
cell's samples up to the end of each cycle (:class:`ml.features.sample_frame.SampleArrays`) —
so appending samples never changes an earlier cycle, and the result EQUALS
``build_cycle_table(samples, voltage_curves=False)`` of all the cell's samples, every column
including ``high_voltage_second`` (a test checks it with ``check_exact``). A full rebuild
happens only when the stored table cannot be extended exactly: the first call, samples
removed or reordered, a new optional column, a stored table of an older ``TABLE_VERSION``.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml.features import cycle_input
from ml.features.sample_cycles import sample_cycles
from ml.features.sample_frame import OPTIONAL_FLOAT, SampleArrays, prepare_samples

__all__ = ["StoredCycleTable", "cell_cycle_table", "table_path"]

#: Bump when the stored reductions change meaning (forces one rebuild of every stored table).
#: 2: causal thresholds (running maxima before the last cycle stored instead of whole-cell ones).
TABLE_VERSION = 2
_META_KEY = b"fadecast.cycle_table"


@dataclass
class StoredCycleTable:
    """A cell's raw per-cycle table and what it covers."""

    table: pd.DataFrame
    ingest_ids: list[int]
    #: largest |I| (A) and highest voltage (V) of the samples of cycles before the last
    #: stored cycle (NaN: the table has one cycle) — carried into the next extension.
    prior_abs_current_a: float
    prior_voltage_v: float
    columns: list[str]
    extended: bool = False  #: True when this call extended the stored table
    rebuilt: bool = False  #: True when this call rebuilt it from all samples
    recomputed_cycles: list[int] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        return {"version": TABLE_VERSION, "ingest_ids": self.ingest_ids,
                "prior_abs_current_a": _json_float(self.prior_abs_current_a),
                "prior_voltage_v": _json_float(self.prior_voltage_v), "columns": self.columns}


def _json_float(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _float(x: Any) -> float:
    return float("nan") if x is None else float(x)


def table_path(home: Path, cell_id: str) -> Path:
    """Where a cell's per-cycle table is stored."""
    return home / "cycle_tables" / f"cell={cell_id}.parquet"


def _read(path: Path) -> StoredCycleTable | None:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid):
        return None
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        return None
    state = json.loads(raw)
    if state.get("version") != TABLE_VERSION:
        return None
    return StoredCycleTable(table.to_pandas(), [int(i) for i in state["ingest_ids"]],
                            _float(state["prior_abs_current_a"]),
                            _float(state["prior_voltage_v"]), list(state["columns"]))


def _write(path: Path, stored: StoredCycleTable) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(stored.table, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           _META_KEY: json.dumps(stored.state()).encode()})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cycles-", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _present_columns(reg: Any, parts: list[str]) -> list[str]:
    """Optional sample columns with at least one value in these parts (Parquet statistics)."""
    present: set[str] = set()
    storage = getattr(reg, "storage", None)
    for p in parts:
        src = storage.open(p) if storage is not None else reg.home / p
        meta = pq.ParquetFile(src).metadata
        for j in range(meta.num_columns):
            name = meta.schema.column(j).name
            if name in present or name not in OPTIONAL_FLOAT + ("step_count", "source_row"):
                continue
            nulls = 0
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(j).statistics
                nulls += stats.null_count if stats is not None and stats.has_null_count else 0
            if nulls < meta.num_rows:
                present.add(name)
    return sorted(present)


def _prior(arr: SampleArrays) -> tuple[float, float] | None:
    """Running maxima (|I| A, V) through the second-to-last segment of ``arr`` (one cell),
    i.e. before its last cycle; None when ``arr`` has fewer than 2 segments."""
    if arr.n_segments < 2:
        return None
    return (float(arr.seg_abs_current_max_a[-2]), float(arr.seg_voltage_max_v[-2]))


def _high_voltage(meta: dict[str, Any]) -> np.ndarray | None:
    hv = cycle_input.meta_float(meta, "high_voltage_threshold_volt")
    return None if not hv else np.array([hv])


def _rebuild(reg: Any, cell_id: str, meta: dict[str, Any], ingests: list[dict[str, Any]]
             ) -> StoredCycleTable:
    samples = reg.load_samples(cell_id)
    arr = prepare_samples(samples, default_cell_id=cell_id)
    raw = sample_cycles(arr, high_voltage_volt=_high_voltage(meta), voltage_curves=False)
    prior = _prior(arr) or (float("nan"), float("nan"))
    cols = [c for c in samples.columns if c in OPTIONAL_FLOAT + ("step_count", "source_row")]
    return StoredCycleTable(raw, [int(i["ingest_id"]) for i in ingests], *prior,
                            sorted(cols), rebuilt=True,
                            recomputed_cycles=[int(c) for c in raw["cycle_index"]])


def _extend(reg: Any, cell_id: str, meta: dict[str, Any], stored: StoredCycleTable,
            ingests: list[dict[str, Any]]) -> StoredCycleTable | None:
    """Recompute the last stored cycle and the new ones; None when only a rebuild is exact."""
    ids = [int(i["ingest_id"]) for i in ingests]
    if ids[:len(stored.ingest_ids)] != stored.ingest_ids or not len(stored.table):
        return None
    new = ingests[len(stored.ingest_ids):]
    new_parts = [i["part_path"] for i in new if i["part_path"]]
    if set(_present_columns(reg, new_parts)) - set(stored.columns):
        return None
    last = int(stored.table["cycle_index"].iloc[-1])
    old = ingests[:len(stored.ingest_ids)]
    # parts holding cycle `last`, from the last one that also holds an earlier row (context)
    first = 0
    for k, ing in enumerate(old):
        if ing["part_path"] and ing["cycle_first"] is not None and ing["cycle_first"] < last:
            first = k
    parts = [i["part_path"] for i in old[first:] + new if i["part_path"]]
    wanted = ["test_time_second", "voltage_volt", "current_ampere", "cycle_count",
              *stored.columns]
    from data_registry.append import read_part

    frames = [read_part(reg, p, wanted).to_pandas() for p in parts]
    samples = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    cyc = samples["cycle_count"].to_numpy()
    keep = np.flatnonzero(cyc >= last)
    if not keep.size:
        return None
    lead = 1 if keep[0] > 0 else 0
    sub = samples.iloc[keep[0] - lead:].reset_index(drop=True)
    if not np.isfinite(stored.prior_abs_current_a):
        return None  # one stored cycle: nothing to carry, a rebuild is as cheap
    arr = prepare_samples(sub, default_cell_id=cell_id)
    # The samples before cycle `last` reached these maxima; the thresholds of cycle `last`
    # and later ones continue from them, as in a build from all samples.
    arr.with_prior(np.array([stored.prior_abs_current_a]), np.array([stored.prior_voltage_v]))
    if lead:
        if arr.n_segments < 2 or arr.starts[1] != 1:
            return None
        arr = arr._view(0, arr.n_rows, 1, arr.n_segments)
    fresh = sample_cycles(arr, high_voltage_volt=_high_voltage(meta), voltage_curves=False)
    kept = stored.table[stored.table["cycle_index"] < last]
    table = pd.concat([kept, fresh[list(kept.columns)]], ignore_index=True) \
        if set(fresh.columns) == set(kept.columns) else None
    if table is None:
        return None
    prior = _prior(arr) or (stored.prior_abs_current_a, stored.prior_voltage_v)
    return StoredCycleTable(table, ids, *prior, stored.columns, extended=True,
                            recomputed_cycles=[int(c) for c in fresh["cycle_index"]])


def cell_cycle_table(reg: Any, cell_id: str, meta: dict[str, Any] | None = None, *,
                     write: bool = True) -> StoredCycleTable | None:
    """The cell's raw per-cycle table, brought up to date with its stored samples.

    Extends (or, when it must, rebuilds) the stored table and saves it atomically when
    ``write``. Returns None when the cell has no samples. Call under the cell's lock
    (:func:`data_registry.append.cell_lock`) when several writers may run.
    """
    with reg.catalog.reading() as conn:
        ingests = reg.catalog.cell_ingests(conn, cell_id, "samples")
    if not ingests:
        return None
    meta = dict(meta or {})
    path = table_path(reg.home, cell_id)
    stored = _read(path)
    ids = [int(i["ingest_id"]) for i in ingests]
    if stored is not None and stored.ingest_ids == ids:
        return stored
    result = _extend(reg, cell_id, meta, stored, ingests) \
        if stored is not None and len(stored.table) >= 2 else None
    if result is None:
        result = _rebuild(reg, cell_id, meta, ingests)
    if write:
        _write(path, result)
    return result
