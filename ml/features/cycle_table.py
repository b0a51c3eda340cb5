"""The one composer of the per-cycle table: samples → cycles → derived columns.

``build_cycle_table`` reduces raw samples to per-cycle sums (capacity, energy, timing, voltage
descriptors, optionally Q(V) curves and EIS trends) and then calls ``complete_cycle_table`` —
the same function that completes a per-cycle table a user brings — so every consumer
(training, experiments, the API) gets its derived columns from one path.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError
from ml.features import capacity, catalog, cycle_input, descriptors
from ml.features.cycle_arrays import CycleColumns
from ml.features.sample_cycles import sample_cycles
from ml.features.sample_frame import prepare_samples

#: Columns complete_cycle_table accepts as input (beyond these, columns are ignored + noted).
INPUT_COLUMNS: tuple[str, ...] = catalog.NAMES + catalog.INPUT_ONLY
_INPUT_SET = frozenset(INPUT_COLUMNS)
#: Numeric inputs checked for parseability.
_NUMERIC = [c for c in INPUT_COLUMNS if c not in ("cell_id", "source_row")]


def complete_cycle_table(cycles: pd.DataFrame, cells: Any = None, *,
                         file: str | None = None,
                         columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Validate a per-cycle table and add the derived descriptors.

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
    columns : output columns wanted (``catalog.NAMES`` names, in the order given); default
        all of ``catalog.NAMES``. Only the descriptors behind them are computed
        (``descriptors.plan``); their values equal the full table's.

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
    KeyError
        ``columns`` names something that is not a per-cycle column.
    """
    if not isinstance(cycles, pd.DataFrame):
        raise ValidationError("per-cycle table must be a DataFrame", code="bad_input",
                              expected="DataFrame", found=type(cycles).__name__)
    data, ignored = complete_cycle_columns(cycles, cells, file=file, columns=columns)
    if "cell_id" in data:
        data["cell_id"] = pd.array(data["cell_id"], dtype="str")
    out = pd.DataFrame(data, copy=False)
    out.attrs["ignored_columns"] = ignored
    return out


def complete_cycle_columns(cycles: pd.DataFrame | Mapping[str, Any], cells: Any = None, *,
                           file: str | None = None, columns: Iterable[str] | None = None
                           ) -> tuple[dict[str, Any], list[str]]:
    """:func:`complete_cycle_table` without a DataFrame around its input or output.

    ``cycles`` is a DataFrame or a mapping of column name → 1-D array (all of one length);
    returns ``(columns, ignored)``: the output columns as arrays (``cell_id`` as an object
    array of str) with the same values as :func:`complete_cycle_table`'s, and the input
    columns that were not used. The per-request serving path uses it (a 200-cycle history
    spends more time in DataFrame construction than in the descriptors).
    """
    if isinstance(cycles, pd.DataFrame):
        n_rows = len(cycles)
        src_names = list(cycles.columns)
    elif isinstance(cycles, Mapping):
        lengths = {len(v) for v in cycles.values()}
        if len(lengths) > 1:
            raise ValidationError("per-cycle columns differ in length", code="bad_input",
                                  file=file, expected="columns of one length",
                                  found=str(sorted(lengths)))
        n_rows = lengths.pop() if lengths else 0
        src_names = list(cycles)
    else:
        raise ValidationError("per-cycle table must be a DataFrame", code="bad_input",
                              expected="DataFrame or a mapping of columns",
                              found=type(cycles).__name__)
    if n_rows == 0:
        raise ValidationError("per-cycle table is empty", code="empty_input", file=file,
                              expected="at least one row", found="0 rows")
    wanted = descriptors.output_columns(columns)
    steps = descriptors.plan(wanted)
    meta = cycle_input.cell_metadata_map(cells)
    ignored = [c for c in src_names if c not in _INPUT_SET]
    src = (CycleColumns.from_frame(cycles, keep=_INPUT_SET) if isinstance(cycles, pd.DataFrame)
           else CycleColumns({k: v for k, v in cycles.items() if k in _INPUT_SET}, n_rows))
    cycle_input.check_numeric(src, _NUMERIC, file)
    cycle_input.check_required(src, file, cycle_input.time_estimable(src, meta))
    ids, code = cycle_input.cell_codes(src, meta, file)
    order = np.lexsort((src.num("cycle_index"), code))
    if (order[1:] < order[:-1]).any():
        src, code = src.rows(order), code[order]
    bounds = np.concatenate(([0], np.flatnonzero(code[1:] != code[:-1]) + 1, [len(code)]))
    cells_done = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        part = src if a == 0 and b == len(code) else src.rows(slice(a, b))
        new = _complete_cell(part, meta.get(ids[code[a]], {}), file, steps)
        cells_done.append((part, new))
    settled = CycleColumns({c: _joined([new[c] for _, new in cells_done])
                            for c in ("cycle_index", "test_time_second")}, len(code),
                           src.position)
    if "source_row" in src:
        settled.set("source_row", src.raw("source_row"))
    cycle_input.check_order(settled, code, file)
    data: dict[str, Any] = {}
    for c in wanted:
        if c == "cell_id":
            data[c] = np.asarray(ids, dtype=object)[code]
        elif all(c not in new and c not in part for part, new in cells_done):
            data[c] = np.full(len(code), np.nan)  # underivable for every cell: one array
        else:
            data[c] = _joined([_column(c, part, new) for part, new in cells_done])
    return data, ignored


def _column(name: str, part: CycleColumns, new: dict[str, np.ndarray]) -> Any:
    """Output column ``name`` of one cell: computed, else as given (a copy), else NaN."""
    if name in new:
        return new[name]
    if name in part:
        return part.raw(name).copy()
    return np.full(len(part), np.nan)


def _joined(pieces: list[Any]) -> Any:
    """Per-cell pieces of one column, end to end (one piece is returned as is)."""
    if len(pieces) == 1:
        return pieces[0]
    if all(isinstance(p, np.ndarray) for p in pieces):
        return np.concatenate(pieces)
    return pd.concat([pd.Series(p) for p in pieces], ignore_index=True).array


def _complete_cell(cols: CycleColumns, meta: dict[str, Any], file: str | None,
                   steps: tuple[descriptors.Descriptor, ...]) -> dict[str, np.ndarray]:
    """Settle one cell's clock and cycle numbers, then run ``steps`` (``cols`` is updated in
    place with the settled columns); returns every computed column."""
    t, est = cycle_input.estimate_time(cols, meta)
    if not np.isfinite(t).all():
        i = int(np.argmax(~np.isfinite(t)))
        raise ValidationError(
            "test_time_second is missing and no protocol is stated to estimate it",
            code="missing_value", file=file, row=int(cols.position[i]) + 2,
            column="test_time_second",
            expected="a number, or hours_per_cycle / c_rate to estimate it", found="nothing")
    given_est = cols.num("test_time_estimated")
    new: dict[str, np.ndarray] = {
        "cycle_index": cols.num("cycle_index").astype(np.int64),
        "test_time_second": t,
        "test_time_estimated": np.where(np.isfinite(given_est) & (given_est > 0), 1,
                                        est).astype(np.int64)}
    for name, values in new.items():
        cols.set(name, values)
    for name in cycle_input.PROTOCOL_COLUMNS:
        cols.drop(name)
    nominal = cycle_input.meta_float(meta, "nominal_capacity_ah")
    ctx = descriptors.CellContext(
        reference_ah=capacity.reference_capacity(cols.num("discharge_capacity_ah"), nominal),
        nominal_ah=nominal, active_mass_g=cycle_input.meta_float(meta, "active_mass_g"),
        meta=meta)
    for step in steps:
        ctx.done.update(step.compute(cols, ctx))
    new.update(ctx.done)
    return new


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
    The per-cycle table, completed by :func:`complete_cycle_table`. The sample thresholds
    (rest current, high-voltage level) are causal — from the cell's samples up to the end of
    each cycle (:class:`ml.features.sample_frame.SampleArrays`) — so a cycle's row does not
    depend on later samples.
    """
    meta = cycle_input.cell_metadata_map(cells)
    default_id = next(iter(meta)) if len(meta) == 1 else "cell"
    arr = prepare_samples(samples, default_cell_id=default_id)
    hv = None  # metadata thresholds; NaN = the causal default (ml.features.timing)
    if any(cycle_input.meta_float(meta.get(c, {}), "high_voltage_threshold_volt")
           for c in arr.cell_ids):
        hv = np.array([cycle_input.meta_float(meta.get(c, {}), "high_voltage_threshold_volt")
                       or np.nan for c in arr.cell_ids])
    table = sample_cycles(arr, high_voltage_volt=hv, voltage_curves=voltage_curves)
    if eis is not None and len(eis):
        from ml.features.warburg_trend import align_warburg
        spike = {c: cycle_input.meta_float(meta.get(c, {}), "aw_spike_voltage_volt")
                 for c in arr.cell_ids}
        table = align_warburg(table, eis, spike_voltage_volt=spike)
    return complete_cycle_table(table, meta if meta else None)
