"""The one composer of the per-cycle table: samples → cycles → derived columns.

``build_cycle_table`` reduces raw samples to per-cycle sums (capacity, energy, timing, voltage
descriptors, optionally Q(V) curves and EIS trends) and then calls ``complete_cycle_table`` —
the same function that completes a per-cycle table a user brings — so every consumer
(training, experiments, the API) gets its derived columns from one path.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError
from ml.features import capacity, catalog, cycle_input, knee, polarization, timing
from ml.features.sample_cycles import sample_cycles
from ml.features.sample_frame import prepare_samples

#: Columns complete_cycle_table accepts as input (beyond these, columns are ignored + noted).
INPUT_COLUMNS: tuple[str, ...] = catalog.NAMES + catalog.INPUT_ONLY
#: Numeric inputs checked for parseability.
_NUMERIC = [c for c in INPUT_COLUMNS if c not in ("cell_id", "source_row")]


def complete_cycle_table(cycles: pd.DataFrame, cells: Any = None, *,
                         file: str | None = None) -> pd.DataFrame:
    """Validate a per-cycle table and add every derivable descriptor.

    Parameters
    ----------
    cycles : per-cycle rows (CONTRACTS.md "Per-cycle table"): required ``cycle_index``,
        ``discharge_capacity_ah`` (Ah) and ``test_time_second`` (s, end of cycle) — the last
        may be missing when a protocol is stated (``hours_per_cycle`` or ``c_rate`` column or
        cell metadata), then it is estimated and ``test_time_estimated`` = 1.
        ``cell_id`` is optional (one unnamed cell is called ``cell`` or the only key of
        ``cells``).
    cells : per-cell metadata (DataFrame or dict cell_id → {nominal_capacity_ah,
        active_mass_g, hours_per_cycle, c_rate, …}).
    file : name used in error messages.

    Returns
    -------
    DataFrame sorted by (cell_id, cycle_index) with the input's known columns and the derived
    ones (see docs/interfaces.md); NaN where not derivable. ``attrs["ignored_columns"]`` lists
    input columns that were not used.

    Raises
    ------
    ValidationError
        Missing required column, non-numeric or non-finite value, repeated cycle_index or time
        running backwards within a cell — naming file, row and column.
    """
    if not isinstance(cycles, pd.DataFrame):
        raise ValidationError("per-cycle table must be a DataFrame", code="bad_input",
                              expected="DataFrame", found=type(cycles).__name__)
    if len(cycles) == 0:
        raise ValidationError("per-cycle table is empty", code="empty_input", file=file,
                              expected="at least one row", found="0 rows")
    meta = cycle_input.cell_metadata_map(cells)
    df = cycles.reset_index(drop=True).copy()
    df["_position"] = np.arange(len(df))
    ignored = [c for c in df.columns if c not in INPUT_COLUMNS and c != "_position"]
    df = df.drop(columns=ignored)
    cycle_input.check_numeric(df, _NUMERIC, file)
    cycle_input.check_required(df, file, cycle_input.time_estimable(df, meta))
    if "cell_id" not in df.columns:
        df["cell_id"] = next(iter(meta)) if len(meta) == 1 else "cell"
    df["cell_id"] = df["cell_id"].astype(str)
    df = df.sort_values(["cell_id", "cycle_index"], kind="stable").reset_index(drop=True)

    parts = []
    for cell_id, part in df.groupby("cell_id", sort=True):
        parts.append(_complete_cell(part.reset_index(drop=True), meta.get(cell_id, {}), file))
    out = pd.concat(parts, ignore_index=True)
    cycle_input.check_order(out, file)
    out = out[list(catalog.NAMES)]
    out.attrs["ignored_columns"] = ignored
    return out


def _complete_cell(df: pd.DataFrame, meta: dict[str, Any], file: str | None) -> pd.DataFrame:
    t, est = cycle_input.estimate_time(df, meta)
    if not np.isfinite(t).all():
        i = int(np.argmax(~np.isfinite(t)))
        raise ValidationError(
            "test_time_second is missing and no protocol is stated to estimate it",
            code="missing_value", file=file, row=int(df["_position"].iloc[i]) + 2,
            column="test_time_second",
            expected="a number, or hours_per_cycle / c_rate to estimate it", found="nothing")
    given_est = cycle_input.numeric_column(df, "test_time_estimated")
    df["test_time_second"] = t
    df["test_time_estimated"] = np.where(np.isfinite(given_est) & (given_est > 0), 1,
                                         est).astype(np.int64)
    df = df.drop(columns=[c for c in cycle_input.PROTOCOL_COLUMNS if c in df.columns])
    df["cycle_index"] = cycle_input.numeric_column(df, "cycle_index").astype(np.int64)
    nominal = cycle_input.meta_float(meta, "nominal_capacity_ah")
    ref = capacity.reference_capacity(df["discharge_capacity_ah"].astype(float), nominal)
    new: dict[str, np.ndarray] = {}
    new.update(timing.timing_columns(df, ref, nominal))
    new.update(capacity.capacity_columns(df, ref, cycle_input.meta_float(meta, "active_mass_g"),
                                         duration_hour=new["cycle_duration_hour"]))
    new.update(polarization.polarization_columns(df))
    if "temperature_celsius" not in df.columns or df["temperature_celsius"].isna().all():
        temp = meta.get("temperature_celsius")
        try:
            new["temperature_celsius"] = np.full(len(df), float(temp))
        except (TypeError, ValueError):
            new["temperature_celsius"] = np.full(len(df), np.nan)
    new.update(knee.knee_columns(df["cycle_index"].to_numpy(float),
                                 cycle_input.numeric_column(df, "discharge_capacity_ah")))
    for c in catalog.NAMES:
        if c not in df.columns and c not in new:
            new[c] = np.full(len(df), np.nan)
    kept = df.drop(columns=[c for c in new if c in df.columns])
    return pd.concat([kept, pd.DataFrame(new, index=df.index)], axis=1)


def build_cycle_table(samples: pd.DataFrame, eis: pd.DataFrame | None = None,
                      cells: Any = None, voltage_curves: bool = True) -> pd.DataFrame:
    """Per-sample rows of one or many cells → one row per (``cell_id``, ``cycle_index``).

    Parameters
    ----------
    samples : canonical per-sample columns (data_registry.schema.SAMPLES; ``cell_id`` and
        ``source_row`` optional; current in A, positive = charge; time in s).
    eis : optional EIS spectra (schema EIS) of the same cells; adds A_w trend columns.
    cells : per-cell metadata (DataFrame or dict cell_id → {nominal_capacity_ah,
        active_mass_g, high_voltage_threshold_volt, …}).
    voltage_curves : compute the Q(V), ΔQ(V) and dQ/dV descriptors (the slower part).

    Returns
    -------
    The per-cycle table, completed by :func:`complete_cycle_table`.
    """
    meta = cycle_input.cell_metadata_map(cells)
    default_id = next(iter(meta)) if len(meta) == 1 else "cell"
    arr = prepare_samples(samples, default_cell_id=default_id)
    hv = None
    if any(cycle_input.meta_float(meta.get(c, {}), "high_voltage_threshold_volt")
           for c in arr.cell_ids):
        vmax = arr.cell_max_voltage_v
        hv = np.array([cycle_input.meta_float(meta.get(c, {}), "high_voltage_threshold_volt")
                       or timing.HIGH_VOLTAGE_FRACTION * vmax[k]
                       for k, c in enumerate(arr.cell_ids)])
    table = sample_cycles(arr, high_voltage_volt=hv, voltage_curves=voltage_curves)
    if eis is not None and len(eis):
        from ml.features.warburg_trend import align_warburg
        spike = {c: cycle_input.meta_float(meta.get(c, {}), "aw_spike_voltage_volt")
                 for c in arr.cell_ids}
        table = align_warburg(table, eis, spike_voltage_volt=spike)
    return complete_cycle_table(table, meta if meta else None)
