"""Training cells -> model tables -> random-cut windows (numpy only; the loop makes tensors).

A window cuts a cell's history at a random point (a fraction ``cut_range`` of its cycles seen);
its queries are the last observed cycle (query 0, where the time share is defined) and up to
``n_queries`` later cycles of the SAME cell. Cycles after the cell's last recorded one are never
targets: a cell that stopped early is censored, not a label of "ended now".
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.features.timing import default_hours_per_cycle
from ml.scaling import FeatureScaler
from ml.sources import CellRecord
from ml.windows import FEATURES, FEATURE_NAMES, history_arrays, model_table, stack_histories

__all__ = ["PreparedCell", "prepare_cells", "fit_scaler", "sample_windows", "cut_windows",
           "planned_hours",
           "stack_windows",
           "dataset_hash", "cells_frame"]

#: optional signals dropped together in "capacity and clock only" augmentation
OPTIONAL = ("rest_hour", "c_rate", "coulombic_inefficiency_per_hour", "polarization_rise_volt",
            "aw_rise_fraction", "temperature_celsius")


@dataclass
class PreparedCell:
    """One cell ready for windowing: model table, truth (NaN where unknown), meta."""

    cell_id: str
    table: pd.DataFrame
    loss_time: np.ndarray
    loss_cycle: np.ndarray
    meta: dict

    @property
    def has_truth(self) -> bool:
        """True when the time/cycle split is known for this cell."""
        return bool(np.isfinite(self.loss_time).any())


def prepare_cells(cells: list[CellRecord]) -> list[PreparedCell]:
    """:func:`ml.windows.model_table` for each cell, truth aligned on ``cycle_index``.

    The reference capacity follows the default rule (max of the first 3 cycles), as at serving
    time without a nominal capacity; truth fractions (of the source's own basis: nominal or
    no-degradation capacity) are used as fractions of that reference.
    """
    out = []
    for rec in cells:
        table = model_table(rec.cycles)
        lt = np.full(len(table), np.nan)
        lc = np.full(len(table), np.nan)
        if rec.truth is not None and {"loss_time_frac", "loss_cycle_frac"} <= set(rec.truth):
            truth = rec.truth.set_index("cycle_index")
            idx = table["cycle_index"].astype("int64")
            lt = truth["loss_time_frac"].reindex(idx).to_numpy(dtype=float)
            lc = truth["loss_cycle_frac"].reindex(idx).to_numpy(dtype=float)
        out.append(PreparedCell(rec.cell_id, table, lt, lc, dict(rec.meta)))
    return out


def fit_scaler(cells: list[PreparedCell]) -> FeatureScaler:
    """Fit the feature scaler on every row of the training cells."""
    scaler = FeatureScaler(FEATURE_NAMES, {n: t for n, _, t in FEATURES})
    rows = np.concatenate([c.table[list(FEATURE_NAMES)].to_numpy(dtype=float) for c in cells])
    return scaler.fit(rows)


def planned_hours(hist: pd.DataFrame, query_cycle: np.ndarray) -> np.ndarray:
    """Elapsed hours at ``query_cycle`` as a user would plan them at the cut: the last observed
    hour + the median duration of the last 10 observed cycles per cycle ahead (the CONTRACTS
    default of ``fadecast forecast``). Never the future's true hours: a faded cell's shorter
    cycles would leak its capacity into the inputs."""
    hours = hist["elapsed_hour"].to_numpy(dtype=float)
    pace = default_hours_per_cycle(hours, hist["cycle_index"].to_numpy(dtype=float))
    if not math.isfinite(pace):
        pace = 1.0
    last_cycle = float(hist["cycle_index"].iloc[-1])
    q = np.asarray(query_cycle, dtype=float)
    return hours[-1] + pace * (q - last_cycle)


def _window(cell: PreparedCell, cut: int, n_queries: int, scaler: FeatureScaler,
            max_history: int, drop_optional: bool, planned: bool = False) -> dict:
    hist = cell.table.iloc[:cut]
    x, m = history_arrays(hist, scaler, max_history)
    if drop_optional:
        for name in OPTIONAL:
            j = scaler.features.index(name)
            x[:, j] = 0.0
            m[:, j] = 0.0
    n = len(cell.table)
    future = np.arange(cut, n)
    if len(future) > n_queries:
        future = np.unique(np.round(np.linspace(cut, n - 1, n_queries)).astype(int))
    q = np.concatenate([[cut - 1], future])
    t = cell.table
    query_hour = t["elapsed_hour"].to_numpy()[q]
    if planned:
        query_hour = planned_hours(hist, t["cycle_index"].to_numpy(dtype=float)[q])
    return {"x": x, "m": m, "query_cycle": t["cycle_index"].to_numpy()[q],
            "query_hour": query_hour,
            "hist_cycle": hist["cycle_index"].to_numpy(dtype=float),
            "hist_hour": hist["elapsed_hour"].to_numpy(dtype=float),
            "hist_retention": hist["retention"].to_numpy(dtype=float),
            "target_capacity": t["retention"].to_numpy()[q],
            "target_time": cell.loss_time[q], "target_cycle": cell.loss_cycle[q],
            "cell_id": cell.cell_id, "source": str(cell.meta.get("source", "?"))}


def _stack(windows: list[dict]) -> dict[str, np.ndarray]:
    x, m = stack_histories([(w["x"], w["m"]) for w in windows])
    h = max(len(w["query_cycle"]) for w in windows)
    out = {"history": x, "history_mask": m}
    for key in ("query_cycle", "query_hour", "target_capacity", "target_time", "target_cycle"):
        arr = np.full((len(windows), h), np.nan, dtype=np.float32)
        for b, w in enumerate(windows):
            arr[b, : len(w[key])] = w[key]
        out[key] = arr
    # padded query slots repeat the last real query (finite inputs); their targets stay NaN
    for key in ("query_cycle", "query_hour"):
        a = out[key]
        for b in range(len(a)):
            k = np.isfinite(a[b])
            a[b, ~k] = a[b, k][-1]
    return out


def sample_windows(cells: list[PreparedCell], rng: np.random.Generator, *, per_cell: int,
                   scaler: FeatureScaler, max_history: int, n_queries: int = 16,
                   cut_range: tuple[float, float] = (0.2, 0.8),
                   drop_optional_prob: float = 0.25) -> list[dict]:
    """``per_cell`` random-cut windows of every cell (unstacked; see :func:`stack_windows`)."""
    out = []
    for cell in cells:
        n = len(cell.table)
        for _ in range(per_cell):
            cut = int(round(rng.uniform(*cut_range) * n))
            cut = min(max(cut, 3), n - 1)
            out.append(_window(cell, cut, n_queries, scaler, max_history,
                               rng.random() < drop_optional_prob))
    return out


def cut_windows(cells: list[PreparedCell], *, fraction: float, scaler: FeatureScaler,
                max_history: int, n_queries: int = 1000, planned: bool = False) -> list[dict]:
    """One window per cell cut at ``fraction`` of its cycles, queries = ALL later cycles;
    with ``planned`` the query hours are the schedule known at the cut (:func:`planned_hours`)."""
    out = []
    for cell in cells:
        n = len(cell.table)
        cut = min(max(int(round(fraction * n)), 3), n - 1)
        out.append(_window(cell, cut, n_queries, scaler, max_history, False, planned))
    return out


def stack_windows(windows: list[dict]) -> dict[str, np.ndarray]:
    """Batch windows: left-padded histories, right-padded queries (padded targets are NaN)."""
    return _stack(windows)


def dataset_hash(cells: list[CellRecord]) -> str:
    """SHA-256 over every cell's id and per-cycle table (CSV bytes): names the training data."""
    h = hashlib.sha256()
    for rec in sorted(cells, key=lambda c: c.cell_id):
        h.update(rec.cell_id.encode())
        h.update(rec.cycles.to_csv(index=False).encode())
    return h.hexdigest()


def cells_frame(cells: list[CellRecord]) -> pd.DataFrame:
    """All cells' per-cycle tables stacked (for ``mlflow.data.from_pandas``); integer columns
    as float64 so the logged schema accepts missing values."""
    frame = pd.concat([c.cycles.assign(cell_id=c.cell_id) for c in cells], ignore_index=True)
    ints = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])]
    return frame.astype({c: "float64" for c in ints})
