"""What the web pages show about stored cells, computed once per cell version and cached.

Every number comes from the API's own paths: the per-cycle frame ``POST /v1/cells/{id}/forecast``
reads (passed in by :mod:`serving.web.views`), forecasts
from :func:`serving.predict.forecast_document`, advice from :func:`serving.predict.advice_document`,
trends from :func:`ml.features.commands.cell_cycle_table` (the table ``fadecast features`` prints).
The only addition is the band of each loss part: the model's own samples, captured from the same
onnxruntime call that produced the forecast document (raw quantiles, not conformal-widened).

A cell's cache key is its catalog state (last update, files, row counts, time range, metadata)
plus the loaded model, so an upload, an append or a model reload invalidates it.
"""
from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from serving.history import loss_so_far_fraction, recent_hours_per_cycle, \
    reference_capacity_ah
from serving.predict import advice_document, clean_json, forecast_document
from serving.runtime import OnnxForecaster

__all__ = ["CellCache", "advice_plan", "cell_overview", "cell_row", "catalog_states",
           "forecast_view", "cohort_name", "horizon_for"]

EOL_FRACTION = 0.8


class CellCache:
    """A small thread-safe LRU: (kind, cell_id, extra) → (state key, value)."""

    def __init__(self, size: int = 1024) -> None:
        self._items: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def peek(self, name: Hashable, state: Hashable) -> Any:
        """The cached value for ``name`` at ``state``, or None."""
        with self._lock:
            hit = self._items.get(name)
            return hit[1] if hit is not None and hit[0] == state else None

    def get_or_compute(self, name: Hashable, state: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._items.get(name)
            if hit is not None and hit[0] == state:
                self._items.move_to_end(name)
                return hit[1]
        value = compute()  # outside the lock: two threads may compute the same value once each
        with self._lock:
            self._items[name] = (state, value)
            self._items.move_to_end(name)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return None if value is None else str(value)


def catalog_states(registry: Any) -> dict[str, dict[str, Any]]:
    """Every cell's catalog row (one query): ``metadata``, ``updated_at`` (ISO), ``state`` (the
    cache key: changes with any ingest, append or metadata edit)."""
    with registry.catalog.reading() as conn:
        rows = registry.catalog.all_cells(conn)
    out = {}
    for r in rows:
        meta = dict(r.get("metadata") or {})
        for key in ("chemistry", "nominal_capacity_ah", "active_mass_g"):
            if meta.get(key) is None and r.get(key) is not None:
                meta[key] = r[key]
        state = (_iso(r.get("updated_at")), r.get("files"), r.get("sample_rows"),
                 r.get("cycle_rows"), r.get("eis_rows"), r.get("time_end_second"),
                 json.dumps(meta, sort_keys=True, default=str))
        out[str(r["cell_id"])] = {"metadata": meta, "updated_at": _iso(r.get("updated_at")),
                                  "state": state, "files": int(r.get("files") or 0)}
    return out


def cohort_name(meta: dict[str, Any]) -> str | None:
    """The cohort a cell belongs to (cell metadata ``cohort``, CONTRACTS Cohorts), or None."""
    value = meta.get("cohort")
    return str(value) if value not in (None, "") else None


def horizon_for(last_cycle: int, max_horizon: int) -> int:
    """Forecast length the pages draw: as many cycles as observed (at least 50, at most 2,000
    and the service limit), enough to show an end of life for a cell part-way through."""
    return int(max(1, min(max(50, last_cycle), 2000, max_horizon)))


def advice_plan(meta: dict[str, Any], last_cycle: int, planned: int | None = None,
                tolerance: float | None = None) -> tuple[int, float, str]:
    """(planned_cycles, tolerance_cycles, where they came from): the request's values, else the
    cell metadata's ``planned_cycles`` / ``tolerance_cycles``, else twice the cycles run so far
    (at least 100) and 5 % of that plan (at least 5 cycles)."""
    source = "request"
    if planned is None:
        planned = _meta_number(meta, "planned_cycles")
        source = "cell metadata" if planned else "default"
    if planned is None:
        planned = max(100, 2 * int(last_cycle))
    if tolerance is None:
        tolerance = _meta_number(meta, "tolerance_cycles")
        if tolerance is None:
            tolerance = max(5.0, round(0.05 * planned))
            source = source if source != "request" else "request + default tolerance"
    return int(planned), float(tolerance), source


def _meta_number(meta: dict[str, Any], key: str) -> Any:
    try:
        value = float(meta[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


class _Capture:
    """Duck-typed forecaster: the loaded model with its ``run`` wrapped so the raw outputs of
    the call that made the forecast document are kept (the loss-part bands come from the very
    same samples). Everything else is the model's own."""

    def __init__(self, model: OnnxForecaster) -> None:
        self.model = model
        self.card = model.card
        self.outputs: dict[str, np.ndarray] = {}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.outputs = self.model.run(inputs)
        return self.outputs

    def forecast(self, table: pd.DataFrame, **kwargs: Any) -> dict[str, Any]:
        from ml.inference import forecast

        return forecast(table, card=self.card, run=self.run, **kwargs)

    def __getattr__(self, name: str) -> Any:  # name, version, domain, interval_scale …
        return getattr(self.model, name)


def _quantile_columns(samples: np.ndarray) -> dict[str, list[float]]:
    from ml.inference import band

    q = band(samples, None, lo=0.0)
    return {"p05": q[:, 0].tolist(), "p50": q[:, 1].tolist(), "p95": q[:, 2].tolist()}


def forecast_view(model: OnnxForecaster, frame: pd.DataFrame, *, horizon_cycles: int,
                  nominal_capacity_ah: float | None, cell_id: str,
                  hours_per_cycle: float | None = None,
                  eol_fraction: float = EOL_FRACTION) -> dict[str, Any]:
    """The forecast document as column arrays for plotting, plus each loss part's band.

    ``loss`` arrays start at the last observed cycle (query 0 of the model call) and run over
    the horizon; fractions of the reference capacity.
    """
    cap = _Capture(model)
    doc = forecast_document(cap, frame, horizon_cycles=horizon_cycles,
                            hours_per_cycle=hours_per_cycle, eol_fraction=eol_fraction,
                            nominal_capacity_ah=nominal_capacity_ah, cell_id=cell_id)
    rows = doc["forecast"]
    last = frame.iloc[-1]
    # the forecast's own pace (its trend rows), else the same rule on the frame
    pace = ((doc.get("domain") or {}).get("pace") or {}).get("hours_per_cycle") or \
        recent_hours_per_cycle(frame["test_time_second"].to_numpy(float), hours_per_cycle,
                               frame["cycle_index"].to_numpy(float))
    view: dict[str, Any] = {
        "model": doc["model"], "end_of_life": doc["end_of_life"],
        "attribution": doc["attribution"], "hours_per_cycle": pace,
        "cycle_index": [r["cycle_index"] for r in rows],
        "test_time_hour": [r["test_time_second"] / 3600.0 for r in rows],
        "capacity_ah": {k: [r["capacity_ah"][k] for r in rows] for k in ("p05", "p50", "p95")},
    }
    lt = np.asarray(cap.outputs.get("loss_time_fraction"), dtype=float)
    lc = np.asarray(cap.outputs.get("loss_cycle_fraction"), dtype=float)
    if lt.ndim == 3 and lc.ndim == 3:
        # the call's queries: backcast rows of the history weighting (if any), the last
        # observed cycle, the horizon — the parts are shown from the last observed cycle on
        lt, lc = lt[:, -(len(rows) + 1):], lc[:, -(len(rows) + 1):]
        view["loss"] = {
            "cycle_index": [int(last["cycle_index"])] + view["cycle_index"],
            "time_driven": _quantile_columns(lt[0]),
            "cycle_driven": _quantile_columns(lc[0]),
            "band": "raw model quantiles (5-95 %) of each part, not conformal-widened",
        }
    return clean_json(view)


def cell_row(model: OnnxForecaster, frame: pd.DataFrame, meta: dict[str, Any], *,
             cell_id: str, max_horizon: int, advice_kwargs: dict[str, Any]) -> dict[str, Any]:
    """One row of the cells table: last cycle, retention, predicted EOL (p50 and band), advice."""
    q = frame["discharge_capacity_ah"].to_numpy(float)
    cycles = frame["cycle_index"].to_numpy(np.int64)
    nominal = _meta_number(meta, "nominal_capacity_ah")
    ref = reference_capacity_ah(q, nominal)
    last = int(cycles[-1])
    planned, tolerance, source = advice_plan(meta, last)
    row: dict[str, Any] = {"cell_id": cell_id, "cohort": cohort_name(meta),
                           "chemistry": meta.get("chemistry"), "cycles": int(len(frame)),
                           "last_cycle_index": last,
                           "elapsed_hour": float(frame["test_time_second"].iloc[-1]) / 3600.0,
                           "retention": 1.0 - loss_so_far_fraction(q, ref),
                           "reference_capacity_ah": ref,
                           "plan": {"planned_cycles": planned, "tolerance_cycles": tolerance,
                                    "source": source}}
    view = forecast_view(model, frame, horizon_cycles=horizon_for(last, max_horizon),
                         nominal_capacity_ah=nominal, cell_id=cell_id)
    row["end_of_life"] = view["end_of_life"]
    row["time_share"] = view["attribution"].get("time_share")
    adv = advice_document(model, frame, planned_cycles=planned, tolerance_cycles=tolerance,
                          eol_fraction=EOL_FRACTION, nominal_capacity_ah=nominal,
                          cell_id=cell_id, meta=meta, **advice_kwargs)
    row["advice"] = {"decision": adv["decision"], "reason": adv["reason"]}
    return clean_json(row)


TREND_COLUMNS = ("cell_id", "cycle_index", "test_time_second", "polarization_volt",
                 "coulombic_efficiency", "c_rate", "rest_hour", "temperature_celsius")


def trend_table(registry: Any, cell_id: str, meta: dict[str, Any]) -> pd.DataFrame | None:
    """The per-cycle columns the trend plots need, from the cell's stored per-cycle table
    (``serving.cell_store.extend_table``, the forecast routes' source) or its per-cycle upload,
    completed by ``ml.features.complete_cycle_table`` (only these columns). ``attrs["aw"]``
    holds one A_w point per fitted EIS spectrum (:func:`aw_points`). None without cycles."""
    from ml.features import complete_cycle_table

    cycles = registry.load_cycles(cell_id)
    if not len(cycles):
        from serving.cell_store import extend_table

        stored = extend_table(registry, cell_id)
        cycles = stored.table if stored is not None else None
    if cycles is None or not len(cycles):
        return None
    table = complete_cycle_table(cycles, {cell_id: meta}, columns=list(TREND_COLUMNS))
    eis = registry.load_eis(cell_id)
    if len(eis):
        spike = meta.get("aw_spike_voltage_volt")
        table.attrs["aw"] = aw_points(table, eis, float(spike) if spike else None)
    return table


def aw_points(table: pd.DataFrame, eis: pd.DataFrame, spike_voltage_volt: float | None
              ) -> dict[str, dict[str, list[Any]]]:
    """One A_w point per spectrum whose fit is ok (``ml.features.warburg.warburg_table``), at
    its cycle (``cycle_count``, else the first cycle ending at or after its time), split into
    baseline and top of charge by ``ml.features.warburg_trend.top_of_charge`` — the rule the
    per-cycle A_w columns use."""
    from ml.features.warburg import warburg_table
    from ml.features.warburg_trend import top_of_charge

    fits = warburg_table(eis)
    fits = fits[fits["ok"].astype(bool)].reset_index(drop=True)
    ci = table["cycle_index"].to_numpy(float)
    end = table["test_time_second"].to_numpy(float)
    cyc = pd.to_numeric(fits.get("cycle_count"), errors="coerce").to_numpy(float) \
        if "cycle_count" in fits else np.full(len(fits), np.nan)
    t = pd.to_numeric(fits.get("test_time_second"), errors="coerce").to_numpy(float) \
        if "test_time_second" in fits else np.full(len(fits), np.nan)
    k = np.clip(np.searchsorted(end, np.nan_to_num(t, nan=np.inf)), 0, max(len(ci) - 1, 0))
    pos = np.where(np.isfinite(cyc), cyc, np.where(np.isfinite(t), ci[k], np.nan))
    fits = fits.assign(cycle_pos=pos)[np.isfinite(pos)]
    if fits.empty:
        return {"baseline": {"cycle_index": [], "value": []},
                "top_of_charge": {"cycle_index": [], "value": []}}
    top = top_of_charge(fits, spike_voltage_volt)
    aw = fits["aw_ohm_per_sqrt_s"].to_numpy(float)
    cpos = fits["cycle_pos"].to_numpy(float)
    return {name: {"cycle_index": cpos[mask].tolist(), "value": aw[mask].tolist()}
            for name, mask in (("baseline", ~top), ("top_of_charge", top))}


def _trend_points(table: pd.DataFrame, column: str) -> dict[str, list[Any]]:
    """(cycle, value) of every row where ``column`` is finite."""
    if column not in table:
        return {"cycle_index": [], "value": []}
    v = pd.to_numeric(table[column], errors="coerce").to_numpy(float)
    keep = np.isfinite(v)
    return {"cycle_index": table["cycle_index"].to_numpy(np.int64)[keep].tolist(),
            "value": v[keep].tolist()}


def cell_trends(table: pd.DataFrame) -> dict[str, Any]:
    """A_w (baseline and top-of-charge apart, one point per new spectrum), polarization (V) and
    coulombic inefficiency (1 − CE, fraction) per cycle, from the ``fadecast features`` table."""
    ce = pd.to_numeric(table.get("coulombic_efficiency"), errors="coerce") \
        if "coulombic_efficiency" in table else None
    aw = table.attrs.get("aw") or {}
    empty = {"cycle_index": [], "value": []}
    out = {
        "aw_baseline": aw.get("baseline", empty),
        "aw_top_of_charge": aw.get("top_of_charge", empty),
        "polarization_volt": _trend_points(table, "polarization_volt"),
    }
    if ce is not None:
        inef = table[["cycle_index"]].assign(coulombic_inefficiency=1.0 - ce.to_numpy(float))
        out["coulombic_inefficiency"] = _trend_points(inef, "coulombic_inefficiency")
    else:
        out["coulombic_inefficiency"] = {"cycle_index": [], "value": []}

    def med(name: str) -> float | None:
        if name not in table:
            return None
        v = pd.to_numeric(table[name], errors="coerce").to_numpy(float)[-10:]
        v = v[np.isfinite(v)]
        return float(np.median(v)) if v.size else None

    out["protocol"] = {"c_rate": med("c_rate"), "rest_hour": med("rest_hour"),
                       "temperature_celsius": med("temperature_celsius")}
    return clean_json(out)


def cell_overview(model: OnnxForecaster, frame: pd.DataFrame, meta: dict[str, Any],
                  table: pd.DataFrame | None, *, cell_id: str, max_horizon: int,
                  planned_cycles: int | None, tolerance_cycles: float | None,
                  advice_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Everything the cell page draws: history, forecast with bands and loss parts, advice with
    its checks, trends, the plan the advice assumed."""
    q = frame["discharge_capacity_ah"].to_numpy(float)
    nominal = _meta_number(meta, "nominal_capacity_ah")
    ref = reference_capacity_ah(q, nominal)
    last = int(frame["cycle_index"].iloc[-1])
    planned, tolerance, source = advice_plan(meta, last, planned_cycles, tolerance_cycles)
    horizon = horizon_for(last, max_horizon)
    view = forecast_view(model, frame, horizon_cycles=horizon, nominal_capacity_ah=nominal,
                         cell_id=cell_id)
    adv = advice_document(model, frame, planned_cycles=planned, tolerance_cycles=tolerance,
                          eol_fraction=EOL_FRACTION, nominal_capacity_ah=nominal,
                          cell_id=cell_id, meta=meta, **advice_kwargs)
    trends = cell_trends(table) if table is not None else None
    return clean_json({
        "cell_id": cell_id, "cohort": cohort_name(meta), "metadata": meta,
        "reference_capacity_ah": ref, "eol_fraction": EOL_FRACTION,
        "horizon_cycles": horizon,
        "history": {"cycle_index": frame["cycle_index"].astype(int).tolist(),
                    "test_time_hour": (frame["test_time_second"].to_numpy(float)
                                       / 3600.0).tolist(),
                    "discharge_capacity_ah": q.tolist()},
        "retention": 1.0 - loss_so_far_fraction(q, ref),
        "forecast": view,
        "advice": adv,
        "plan": {"planned_cycles": planned, "tolerance_cycles": tolerance, "source": source},
        "trends": trends,
    })
