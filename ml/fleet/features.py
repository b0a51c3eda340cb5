"""Per-cycle tables of every cell of a registry, cell by cell on dask workers.

Each task runs the SAME per-cell code as ``fadecast features CELL_ID``
(:func:`ml.features.commands.cell_cycle_table`), except for cells with more sample rows than
the workers' memory budget allows, which go through :func:`ml.fleet.cell_stream.
stream_cycle_table` (cycle blocks; the same values). The table of a run is the cells' tables
end to end in cell-id order — what the one-process loop gives.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data_registry.errors import FadecastError

#: Bytes of worker memory one sample row of a cell costs on the in-memory path (the loaded
#: frame, its sorted arrays, per-row flows and kernel temporaries; measured ~180 B/row on the
#: featurize benchmark table, rounded up).
BYTES_PER_SAMPLE_ROW = 256
#: Share of a worker's memory limit one cell may use before it is processed in cycle blocks.
MEMORY_SHARE = 0.5
#: Resident memory of an idle worker process (Python, numpy/pandas/scipy/numba, distributed):
#: not available to cells (measured ~300 MiB).
WORKER_BASELINE_BYTES = 400 * 2 ** 20

_REGISTRIES: dict[tuple[str, str], Any] = {}


def worker_registry(spec: dict[str, Any]) -> Any:
    """The registry of ``spec`` (home, catalog URL), opened once per worker process."""
    from data_registry.store import Registry

    key = (spec["home"], spec["catalog_url"])
    reg = _REGISTRIES.get(key)
    if reg is None:
        reg = _REGISTRIES[key] = Registry(spec["home"], spec["catalog_url"],
                                          store_url=spec.get("store_url"),
                                          store_options=spec.get("store_options"))
    return reg


def registry_spec(registry: Any) -> dict[str, Any]:
    """What a worker needs to open ``registry``: home, catalog URL, store URL and options."""
    return {"home": str(registry.home), "catalog_url": registry.catalog.url,
            **registry.storage.spec()}


def cell_rows_budget(worker_memory_bytes: float) -> float:
    """Sample rows a cell may have to be processed whole by a worker with this memory limit
    (``MEMORY_SHARE`` of what the idle worker leaves, at ``BYTES_PER_SAMPLE_ROW``)."""
    free = max(worker_memory_bytes - WORKER_BASELINE_BYTES, 0.0)
    return MEMORY_SHARE * free / BYTES_PER_SAMPLE_ROW


def plan_cells(registry: Any, cell_ids: Sequence[str] | None = None,
               max_cell_rows: float = math.inf) -> list[dict[str, Any]]:
    """One job per cell (cell-id order): ``cell_id``, ``sample_rows``, the sample parts
    (paths relative to the registry home, catalog order) and ``streamed`` (more rows than
    ``max_cell_rows``)."""
    wanted = None if cell_ids is None else set(cell_ids)
    jobs = []
    with registry.catalog.reading() as conn:
        for row in registry.catalog.all_cells(conn):
            cid = row["cell_id"]
            if wanted is not None and cid not in wanted:
                continue
            parts = [i["part_path"] for i in registry.catalog.cell_ingests(conn, cid, "samples")
                     if i["part_path"]]
            rows = int(row["sample_rows"] or 0)
            jobs.append({"cell_id": cid, "sample_rows": rows, "parts": parts,
                         "streamed": bool(parts) and rows > max_cell_rows})
    if wanted is not None:
        missing = sorted(wanted - {j["cell_id"] for j in jobs})
        if missing:
            registry.cell(missing[0])  # raises NotFoundError with the nearest ids
    return jobs


def featurize_cell(job: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """One cell's per-cycle table (the worker side). Returns ``{"cell_id", "cycles"}`` plus
    ``table`` (no output folder) or ``path`` (written there), or ``error`` (the one-line
    message of a :class:`FadecastError`: a bad cell does not stop the fleet)."""
    from ml.features.commands import cell_cycle_table

    cid = job["cell_id"]
    reg = worker_registry(spec)
    try:
        if job["streamed"]:
            from ml.fleet.cell_stream import stream_cycle_table

            eis = reg.load_eis(cid)
            store = reg.storage
            table = stream_cycle_table([store.location(p) for p in job["parts"]], cid,
                                       reg.cell_metadata(cid), eis=eis if len(eis) else None,
                                       voltage_curves=spec["voltage_curves"],
                                       opener=store.open if store.remote else None)
        else:
            table = cell_cycle_table(reg, cid, voltage_curves=spec["voltage_curves"])
    except FadecastError as exc:
        return {"cell_id": cid, "error": str(exc)}
    out: dict[str, Any] = {"cell_id": cid, "cycles": len(table), "streamed": job["streamed"]}
    if spec.get("out_dir"):
        out["path"] = write_parquet(table, Path(spec["out_dir"]) / f"{cid}.parquet")
    else:
        out["table"] = table
    return out


def write_parquet(table: pd.DataFrame, path: Path) -> str:
    """``table`` to ``path`` through a temp file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        table.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)


class OrderedParquet:
    """Writes per-cell tables to ONE Parquet file in cell order as they arrive in any order:
    a table that arrives early waits in a spill file beside the output (not in memory), so
    the client's memory stays bounded; the file appears by rename when closed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp",
                                        dir=self.path.parent)
        os.close(fd)
        self.spill = Path(tempfile.mkdtemp(prefix=self.path.name + ".", suffix=".spill",
                                           dir=self.path.parent))
        self.pending: dict[int, Path | None] = {}
        self.next = 0
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None
        self.rows = 0

    def add(self, index: int, table: pd.DataFrame | None) -> None:
        """Table number ``index`` (None: that cell produced nothing)."""
        if index != self.next:
            if table is not None:
                spilled = self.spill / f"{index}.parquet"
                table.to_parquet(spilled, index=False)
                self.pending[index] = spilled
            else:
                self.pending[index] = None
            return
        if table is not None:
            self._write(table)
        self.next += 1
        while self.next in self.pending:
            entry = self.pending.pop(self.next)
            self.next += 1
            if entry is not None:
                self._write(pd.read_parquet(entry))
                entry.unlink()

    def _write(self, t: pd.DataFrame) -> None:
        if self.schema is None:
            arrow = pa.Table.from_pandas(t, preserve_index=False)
            self.schema = arrow.schema
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        else:
            arrow = pa.Table.from_pandas(t, schema=self.schema, preserve_index=False)
        assert self.writer is not None
        self.writer.write_table(arrow)
        self.rows += len(t)

    def close(self, empty: pd.DataFrame | None = None) -> None:
        if self.writer is None:
            (empty if empty is not None else pd.DataFrame()).to_parquet(self.tmp, index=False)
        else:
            self.writer.close()
        os.replace(self.tmp, self.path)
        shutil.rmtree(self.spill, ignore_errors=True)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        Path(self.tmp).unlink(missing_ok=True)
        shutil.rmtree(self.spill, ignore_errors=True)


def featurize_fleet(registry: Any, output: str | os.PathLike[str], *, client: Any = None,
                    cell_ids: Sequence[str] | None = None, voltage_curves: bool = True,
                    max_cell_rows: float | None = None, progress: bool = True,
                    on_result: Callable[[int, Any], None] | None = None) -> dict[str, Any]:
    """Per-cycle tables of the registry's cells into ``output``: a ``.parquet`` file (all
    cells, cell-id order) or a folder (``<cell_id>.parquet`` per cell, written by the
    workers). ``client`` None runs the cells one by one in this process (the one-process
    path); otherwise on the dask cluster of ``client``.

    ``max_cell_rows``: cells with more sample rows are processed in cycle blocks (default:
    :func:`cell_rows_budget` of the smallest worker memory limit).

    Returns a summary: ``cells``, ``cycles``, ``streamed`` (cells done in blocks),
    ``failed`` ({cell_id: message}), ``output``.
    """
    from ml.fleet.cluster import ordered_map, worker_memory_bytes

    out = Path(output)
    single = out.suffix.lower() == ".parquet"
    if max_cell_rows is None:
        budget = worker_memory_bytes(client) if client is not None else math.inf
        max_cell_rows = cell_rows_budget(budget)
    jobs = plan_cells(registry, cell_ids, max_cell_rows)
    spec = {**registry_spec(registry), "voltage_curves": voltage_curves,
            "out_dir": None if single else str(out)}
    if client is None:
        _REGISTRIES[(spec["home"], spec["catalog_url"])] = registry
        results: Any = ((k, featurize_cell(job, spec)) for k, job in enumerate(jobs))
        if progress:
            from tqdm import tqdm
            results = tqdm(results, total=len(jobs), unit="cell")
    else:
        # the largest cells first: they bound the run's wall time
        results = ordered_map(client, featurize_cell, jobs, spec, progress=progress,
                              on_result=on_result,
                              priorities=[j["sample_rows"] for j in jobs])
    writer = OrderedParquet(out) if single else None
    summary: dict[str, Any] = {"cells": 0, "cycles": 0, "streamed": 0, "failed": {},
                               "output": str(out)}
    try:
        for k, res in results:
            if "error" in res:
                summary["failed"][res["cell_id"]] = res["error"]
            else:
                summary["cells"] += 1
                summary["cycles"] += res["cycles"]
                summary["streamed"] += int(res["streamed"])
            if writer is not None:
                writer.add(k, res.get("table"))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if client is None:
            _REGISTRIES.pop((spec["home"], spec["catalog_url"]), None)
    if writer is not None:
        writer.close()
    return summary
