"""The service's view of registered cells: one Registry per app, appends, and per-cycle frames
served from each cell's STORED per-cycle table (never re-featurized from raw samples per call).

``append_and_extend`` is the one write path of the upload route and ``fadecast follow``:
``data_registry.append.append_file`` (idempotent on (time, step); parse outside any lock;
commit under the cell's lock), then the cell's stored per-cycle table is extended under the
same cell lock (``ml.features.cell_table``). ``CellFrames`` caches each cell's model-input
frame in memory, keyed by the cell's ingest ids and metadata, so a forecast of an unchanged
cell costs one catalog query and no Parquet read; ``ResponseCache`` keeps the rendered answer
of a stored-cell forecast/advice until the cell, the model or the request changes.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from data_registry.errors import NotFoundError

__all__ = ["CellFrames", "app_registry", "append_and_extend", "cell_frame", "extend_table"]

_LOCK = threading.Lock()


def app_registry(app: Any) -> Any:
    """The app's Registry (opened once, closed in the lifespan's shutdown)."""
    reg = app.state.registry
    if reg is None:
        with _LOCK:
            reg = app.state.registry
            if reg is None:
                from data_registry.store import Registry

                reg = Registry(home=app.state.settings.resolved_home())
                app.state.registry = reg
    return reg


def write_limiter(app: Any) -> Any:
    """The uploads' own thread limiter (``max_concurrent_writes`` threads)."""
    import anyio

    if app.state.write_limiter is None:
        app.state.write_limiter = anyio.CapacityLimiter(app.state.settings.max_concurrent_writes)
    return app.state.write_limiter


def extend_table(reg: Any, cell_id: str) -> Any:
    """Bring the cell's stored per-cycle table up to date (under the cell's lock)."""
    from data_registry.append import cell_lock
    from ml.features.cell_table import cell_cycle_table

    with cell_lock(reg.home, cell_id):
        return cell_cycle_table(reg, cell_id, reg.cell_metadata(cell_id))


def append_and_extend(reg: Any, path: Path, cell_id: str, *, source_name: str,
                      raw_path: Path | None = None, format_name: str | None = None,
                      meta: Mapping[str, Any] | None = None,
                      reader_options: Mapping[str, Any] | None = None,
                      source_metadata: Mapping[str, Any] | None = None,
                      trusted_rows: int | None = None) -> tuple[Any, Any]:
    """Append a file's new rows to a cell, then extend its stored per-cycle table.

    Returns (``AppendReport``, ``StoredCycleTable`` or None for per-cycle cells).
    """
    from data_registry.append import append_file
    from data_registry.errors import StoreError

    try:
        report = append_file(reg, path, cell_id, source_name=source_name, raw_path=raw_path,
                             format_name=format_name, meta=meta, reader_options=reader_options,
                             source_metadata=source_metadata, trusted_rows=trusted_rows)
    except StoreError as exc:
        if exc.code != "append_unsupported_kind":
            raise
        return _ingest_whole(reg, path, cell_id, source_name=source_name,
                             format_name=format_name, meta=meta,
                             reader_options=reader_options), None
    table = extend_table(reg, cell_id) if report.kind == "samples" else None
    return report, table


def _ingest_whole(reg: Any, path: Path, cell_id: str, *, source_name: str,
                  format_name: str | None, meta: Mapping[str, Any] | None,
                  reader_options: Mapping[str, Any] | None) -> Any:
    """EIS spectra (new measurement ids, not rows to deduplicate): the ingest transaction,
    reported in the append report's shape."""
    from data_registry.append import AppendReport

    rep = reg.ingest([path], cell_id, format_name=format_name, meta=meta,
                     reader_options=reader_options, source_names=[source_name])
    files = rep.files or []
    out = AppendReport(cell_id, source_name, kind=files[0].kind if files else None,
                       format_name=files[0].format_name if files else None,
                       rows_read=rep.rows, rows_new=rep.rows,
                       already_present=rep.already_present,
                       dataset_version=rep.version, warnings=list(rep.warnings),
                       elapsed_second=rep.elapsed_second)
    return out


def _state(reg: Any, cell_id: str) -> tuple[tuple[Any, ...], dict[str, Any], bool]:
    """(ingest-id key, metadata, has per-cycle rows) from ONE catalog read."""
    with reg.catalog.reading() as conn:
        row = reg.catalog.cell_row(conn, cell_id)
        if row is None:
            known = [r["cell_id"] for r in reg.catalog.all_cells(conn)]
            from data_registry.store import _not_found

            raise _not_found("cell", cell_id, known)
        ingests = reg.catalog.cell_ingests(conn, cell_id)
    meta = dict(row["metadata"])
    key = tuple((int(i["ingest_id"]), i["kind"]) for i in ingests)
    return key, meta, any(i["kind"] == "cycles" for i in ingests)


def cell_frame(reg: Any, cell_id: str, key: tuple[Any, ...], meta: dict[str, Any],
               has_cycles: bool) -> pd.DataFrame:
    """The cell's model-input frame (CONTRACTS per-cycle columns); the cell's metadata
    ``charge_policy_c_rate`` fills that column where its cycles do not state it."""
    from serving.history import LABEL_COLUMN, OPTIONAL_COLUMNS, REQUIRED_COLUMNS

    if has_cycles:
        cycles = reg.load_cycles(cell_id)
    else:
        stored = extend_table(reg, cell_id) if key else None
        if stored is None or not len(stored.table):
            raise NotFoundError(f"cell '{cell_id}' has no cycles or samples yet",
                                code="cell_empty", column="cell_id")
        from ml.features import complete_cycle_table

        cycles = complete_cycle_table(stored.table, {cell_id: meta})
    if any(kind == "eis" for _, kind in key) and "cell_id" in cycles.columns:
        # the cell's spectra: one Warburg fit each, aligned to its cycles (the A_w trend the
        # model reads), as `fadecast features` does
        from ml.features.warburg_trend import align_cell_spectra

        cycles = align_cell_spectra(cycles.sort_values("cycle_index").reset_index(drop=True),
                                    reg.load_eis(cell_id), meta)
    from ml.models.cycle_life_head import POLICY_COLUMN

    policy = meta.get(POLICY_COLUMN)
    if policy is not None and (POLICY_COLUMN not in cycles.columns
                               or cycles[POLICY_COLUMN].isna().all()):
        # the cell's stated charge policy (metadata, validated at ingest) for every cycle
        cycles = cycles.assign(**{POLICY_COLUMN: float(policy)})
    keep = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, LABEL_COLUMN)
            if c in cycles.columns and (c != LABEL_COLUMN or cycles[c].notna().any())]
    return cycles[keep].sort_values("cycle_index").reset_index(drop=True)


class CellFrames:
    """An LRU of stored cells' frames, valid while the cell's ingests and metadata are."""

    def __init__(self, max_cells: int = 256) -> None:
        self.max_cells = max_cells
        self._items: OrderedDict[str, tuple[Any, pd.DataFrame, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, reg: Any, cell_id: str) -> tuple[pd.DataFrame, dict[str, Any], Any]:
        """(frame, metadata, version stamp) of a registered cell (``NotFoundError`` for an
        unknown one); the stamp changes whenever the cell's data or metadata does."""
        key, meta, has_cycles = _state(reg, cell_id)
        stamp = (key, repr(sorted(meta.items())))
        with self._lock:
            item = self._items.get(cell_id)
            if item is not None and item[0] == stamp:
                self._items.move_to_end(cell_id)
                self.hits += 1
                return item[1], dict(item[2]), stamp
        frame = cell_frame(reg, cell_id, key, meta, has_cycles)
        with self._lock:
            self.misses += 1
            self._items[cell_id] = (stamp, frame, meta)
            self._items.move_to_end(cell_id)
            while len(self._items) > self.max_cells:
                self._items.popitem(last=False)
        return frame, dict(meta), stamp


class ResponseCache:
    """Rendered answers of stored-cell routes, keyed by (route, cell, cell version stamp,
    model identity, request body): a stored cell that did not change since the last identical
    request is answered without recomputing (the forecast is a pure function of those)."""

    def __init__(self, max_items: int = 2048) -> None:
        self.max_items = max_items
        self._items: OrderedDict[Any, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is not None:
                self._items.move_to_end(key)
            return body

    def put(self, key: Any, body: bytes) -> None:
        with self._lock:
            self._items[key] = body
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)


def _app_cache(app: Any, attribute: str, factory: Any) -> Any:
    """``app.state.<attribute>``, created by ``factory()`` on first use (double-checked)."""
    cache = getattr(app.state, attribute, None)
    if cache is None:
        with _LOCK:
            cache = getattr(app.state, attribute, None)
            if cache is None:
                cache = factory()
                setattr(app.state, attribute, cache)
    return cache


def app_responses(app: Any) -> ResponseCache:
    """The app's stored-cell response cache (created on first use)."""
    return _app_cache(app, "cell_responses", ResponseCache)


def app_frames(app: Any) -> CellFrames:
    """The app's frame cache (created on first use)."""
    return _app_cache(app, "cell_frames", CellFrames)
