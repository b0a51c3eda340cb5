"""The seed study's path through the library: files → registry → per-cycle table → model → API.

Nothing here re-implements library code: ingest is ``data_registry.store.Registry.ingest``,
features are ``ml.features.build_cycle_table`` (A_w included), the model is resolved by
``ml.model_store`` (or trained by ``ml.training.pipeline.run_study`` when FADECAST_HOME has no
champion), and every forecast / advice goes through the FastAPI app (``serving.app.create_app``)
with an in-process ``TestClient``.
"""
from __future__ import annotations

import hashlib
import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from data_registry.errors import NotFoundError
from data_registry.store import Registry
from ml.features import build_cycle_table
from serving.history import OPTIONAL_COLUMNS, REQUIRED_COLUMNS


def registry_id(registry: Registry, cell_id: str, paths: list[str]) -> str:
    """``cell_id`` when the registry lacks it or holds exactly these files; otherwise
    ``<cell_id>-<8 hex of their SHA-256s>``, so a changed simulator makes a NEW registry cell
    instead of appending a second, restarting time series to the old one."""
    shas = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths]
    try:
        stored = sorted(f["raw_sha256"] for f in registry.cell(cell_id)["files"])
    except NotFoundError:
        return cell_id
    if stored == sorted(shas):
        return cell_id
    return f"{cell_id}-{hashlib.sha256(''.join(shas).encode()).hexdigest()[:8]}"


def ingest_and_featurize(made: dict[str, dict], registry: Registry) -> dict[str, pd.DataFrame]:
    """Ingest every cell's raw + EIS files, reload them from the store, build the cycle table.

    Returns ``{cell_id: per-cycle table}`` (the table's ``cell_id`` is the registry id)."""
    tables = {}
    for cell_id, info in made.items():
        rid = registry_id(registry, cell_id, [info["raw"], info["eis"]])
        report = registry.ingest([info["raw"], info["eis"]], rid, meta=info["meta"])
        for w in report.warnings:
            print(f"warning: {w.code}: {w.message}", file=sys.stderr)
        samples = registry.load_samples(rid)
        eis = registry.load_eis(rid)
        tables[cell_id] = build_cycle_table(samples, eis, cells={rid: info["meta"]})
    return tables


def history_rows(table: pd.DataFrame, upto_cycle: int | None = None) -> list[dict[str, Any]]:
    """API history rows (CONTRACTS per-cycle columns; NaN → omitted) up to ``upto_cycle``."""
    part = table if upto_cycle is None else table[table["cycle_index"] <= upto_cycle]
    cols = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in part.columns]
    rows = []
    for rec in part[cols].to_dict(orient="records"):
        row = {k: (int(v) if k == "cycle_index" else float(v)) for k, v in rec.items()
               if v is not None and not (isinstance(v, float) and math.isnan(v))}
        rows.append(row)
    return rows


def resolve_study_model(uri: str, train_config: Path, tracking_uri: str) -> tuple[Path, dict]:
    """The model folder to serve and how it was obtained.

    ``uri`` "champion" falls back to training ``train_config`` (not registered) when the
    registry has no champion yet; any other URI must resolve.
    """
    from ml.model_store import resolve_model

    try:
        folder = resolve_model(uri, tracking_uri=tracking_uri)
        return folder, {"model_source": uri, "model_train_run_id": ""}
    except NotFoundError:
        if uri != "champion":
            raise
    from ml.training.config import load_config
    from ml.training.pipeline import run_study

    print(f"note: no champion in the registry; training {train_config}", file=sys.stderr)
    result = run_study(load_config(train_config), tracking_uri=tracking_uri, progress=False)
    return Path(result.model_dir), {"model_source": f"trained:{train_config.name}",
                                    "model_train_run_id": result.run_id}


@contextmanager
def service(model_dir: Path) -> Iterator[Any]:
    """An in-process fadecast API (``TestClient``) serving ``model_dir``."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.runtime import load_forecaster
    from serving.settings import Settings

    forecaster = load_forecaster(str(model_dir))
    app = create_app(Settings(model_uri=str(model_dir)), forecaster=forecaster)
    with TestClient(app) as client:
        yield client


def post(client: Any, path: str, body: dict) -> dict:
    """POST and return the JSON body; raise with the service's error body on non-200."""
    resp = client.post(path, json=body)
    if resp.status_code != 200:
        raise RuntimeError(f"{path} answered {resp.status_code}: {resp.text[:500]}")
    return resp.json()
