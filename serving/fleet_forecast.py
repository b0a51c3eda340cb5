"""``fadecast forecast --all -o FILE.parquet``: every registered cell's forecast on dask.

Each task runs the per-cell code of ``fadecast forecast --cell ID``
(:func:`serving.commands.forecast_doc`) with the model loaded once per worker process; the
documents are flattened to rows (one per forecast cycle, the document's per-cell fields
repeated) and written in cell-id order. ``--workers 0`` runs the same loop in this process.
No torch anywhere: the model runs in onnxruntime.
"""
from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

import pandas as pd

from data_registry.errors import FadecastError, InputFormatError

#: Options of ``fadecast forecast`` a worker needs (the rest are CLI plumbing).
_OPTIONS = ("horizon_cycles", "hours_per_cycle", "c_rate", "eol", "nominal_capacity_ah",
            "capacity_column", "model")
_MODELS: dict[str | None, Any] = {}


def _model(uri: str | None) -> Any:
    """The forecaster at ``uri``, loaded once per process."""
    from serving.runtime import load_forecaster

    if uri not in _MODELS:
        _MODELS[uri] = load_forecaster(uri)
    return _MODELS[uri]


def forecast_cell(cell_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One cell's forecast document (worker side): ``{"cell_id", "doc"}`` or ``{"cell_id",
    "error"}`` — a cell that cannot be forecast does not stop the fleet."""
    from ml.fleet.features import worker_registry
    from serving.commands import forecast_doc

    args = Namespace(**spec["options"], cell=cell_id, cycles=None)
    try:
        doc = forecast_doc(args, lambda: _model(spec["options"]["model"]),
                           worker_registry(spec))
    except FadecastError as exc:
        return {"cell_id": cell_id, "error": str(exc)}
    return {"cell_id": cell_id, "doc": doc}


def forecast_rows(doc: dict[str, Any]) -> pd.DataFrame:
    """A forecast document as rows: one per forecast cycle (quantiles as ``name_p05`` …),
    then the document's per-cell fields (``end_of_life_…``, ``attribution_…``, ``model_…``)
    repeated; nested lists are kept as JSON text."""
    rows = pd.json_normalize(doc.get("forecast") or [], sep="_")
    head = pd.json_normalize({k: v for k, v in doc.items() if k != "forecast"}, sep="_")
    rows.insert(0, "cell_id", doc.get("cell_id"))
    for col in head.columns:
        if col in rows.columns:
            continue
        value = head.at[0, col]
        if isinstance(value, (list, dict)):
            value = json.dumps(value, allow_nan=False)
        rows[col] = [value] * len(rows)
    return rows


def forecast_fleet(registry: Any, args: Namespace, output: str, *, client: Any = None,
                   progress: bool = True, on_result: Any = None) -> dict[str, Any]:
    """Forecasts of every cell of ``registry`` (cell-id order) into ``output`` (.parquet).
    ``client`` None runs them in this process. Returns ``cells``, ``rows``, ``failed``."""
    from ml.fleet.cluster import ordered_map
    from ml.fleet.features import _REGISTRIES, registry_spec, write_parquet

    out = Path(output)
    if out.suffix.lower() != ".parquet":
        raise InputFormatError("forecast --all writes one Parquet file",
                               code="bad_output_format", file=str(out),
                               expected="FILE.parquet", found=out.suffix or "no suffix")
    cells = [c["cell_id"] for c in registry.cells()]
    spec = {**registry_spec(registry), "options": {k: getattr(args, k, None) for k in _OPTIONS}}
    if client is None:
        _REGISTRIES[(spec["home"], spec["catalog_url"])] = registry
        results: Any = ((k, forecast_cell(c, spec)) for k, c in enumerate(cells))
        if progress:
            from tqdm import tqdm
            results = tqdm(results, total=len(cells), unit="cell", file=sys.stderr)
    else:
        results = ordered_map(client, forecast_cell, cells, spec, progress=progress,
                              on_result=on_result)
    frames: dict[int, pd.DataFrame] = {}
    failed: dict[str, str] = {}
    try:
        for k, res in results:
            if "error" in res:
                failed[res["cell_id"]] = res["error"]
            else:
                frames[k] = forecast_rows(res["doc"])
    finally:
        if client is None:
            _REGISTRIES.pop((spec["home"], spec["catalog_url"]), None)
    table = (pd.concat([frames[k] for k in sorted(frames)], ignore_index=True) if frames
             else pd.DataFrame({"cell_id": pd.Series([], dtype=object)}))
    write_parquet(table, out)
    return {"cells": len(frames), "rows": len(table), "failed": failed, "output": str(out)}


def forecast_all_command(args: Namespace) -> int:
    """``fadecast forecast --all -o FILE.parquet --horizon-cycles N [--scheduler ADDRESS]
    [--workers N] [--memory-limit SIZE]``."""
    from data_registry.store import Registry
    from ml.fleet.commands import client_for, report
    from serving.commands import _check_options

    if not getattr(args, "output", None):
        raise InputFormatError("forecast --all needs an output file", code="missing_output",
                               column="-o", expected="-o FILE.parquet", found="none")
    _check_options(args)
    if Path(args.output).suffix.lower() != ".parquet":
        raise InputFormatError("forecast --all writes one Parquet file",
                               code="bad_output_format", file=str(args.output),
                               expected="FILE.parquet", found=Path(args.output).suffix or
                               "no suffix")
    _model(args.model)  # fail early (here, once) when there is no model
    reg = Registry()
    try:
        with client_for(args) as client:
            summary = forecast_fleet(reg, args, args.output, client=client,
                                     progress=not getattr(args, "no_progress", False))
    finally:
        reg.close()
    return report(summary, f"{summary['cells']} cells, {summary['rows']} forecast rows")
