"""The dependency table of ``complete_cycle_table``: each descriptor names the columns it
computes and the columns it reads, so a caller that needs a few output columns gets only the
descriptors behind them (and theirs) computed — with the very same functions, so the values
are identical to the full table's.

Every descriptor works on ONE cell's rows in cycle order (a :class:`CycleColumns` whose
``cycle_index``, ``test_time_second`` and ``test_time_estimated`` are already settled).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reference.features_v1 import capacity, catalog, knee, polarization, timing
from reference.features_v1.cycle_arrays import CycleColumns

#: Columns every completed table settles before any descriptor runs (clock and identity).
BASE_COLUMNS: tuple[str, ...] = ("cell_id", "cycle_index", "test_time_second",
                                 "test_time_estimated")


@dataclass
class CellContext:
    """What descriptors of one cell share: its reference capacity (Ah), metadata and the
    outputs of the descriptors computed so far."""

    reference_ah: float
    nominal_ah: float | None
    active_mass_g: float | None
    meta: Mapping[str, Any]
    done: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Descriptor:
    """One step of the completion: ``compute(cols, ctx)`` → ``{output: float [n]}``.

    ``inputs`` lists every per-cycle column the step reads (input columns or other
    descriptors' outputs); a step may return fewer than ``outputs`` (then those columns pass
    through from the input, e.g. a recorded temperature).
    """

    name: str
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    compute: Callable[[CycleColumns, CellContext], dict[str, np.ndarray]]


def _timing(cols: CycleColumns, ctx: CellContext) -> dict[str, np.ndarray]:
    return timing.timing_columns(cols, ctx.reference_ah, ctx.nominal_ah)


def _capacity(cols: CycleColumns, ctx: CellContext) -> dict[str, np.ndarray]:
    return capacity.capacity_columns(cols, ctx.reference_ah, ctx.active_mass_g,
                                     duration_hour=ctx.done["cycle_duration_hour"])


def _polarization(cols: CycleColumns, ctx: CellContext) -> dict[str, np.ndarray]:
    return {"polarization_volt": polarization.polarization_volt(cols)}


def _trends(cols: CycleColumns, ctx: CellContext) -> dict[str, np.ndarray]:
    return polarization.polarization_trend_columns(cols)


def _temperature(cols: CycleColumns, ctx: CellContext) -> dict[str, np.ndarray]:
    """The cell's metadata temperature (°C) where the table records none."""
    if cols.has_values("temperature_celsius"):
        return {}
    try:
        value = float(ctx.meta.get("temperature_celsius"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = np.nan
    return {"temperature_celsius": np.full(len(cols), value)}


def _knee(cols: CycleColumns, ctx: CellContext) -> dict[str, np.ndarray]:
    return knee.knee_columns(cols.num("cycle_index"), cols.num("discharge_capacity_ah"))


_TIMING_OUT = ("elapsed_hour", "cycle_duration_hour", "cycle_start_hour", "rest_hour",
               "rest_before_hour", "high_voltage_hour", "cumulative_high_voltage_hour",
               "charge_c_rate", "discharge_c_rate", "c_rate")
_CAPACITY_OUT = ("reference_capacity_ah", "retention", "coulombic_efficiency",
                 "coulombic_inefficiency_per_hour", "energy_efficiency",
                 "equivalent_full_cycles", "discharge_capacity_mah_per_g",
                 "charge_capacity_mah_per_g")
_MEAN_V = ("mean_charge_voltage_volt", "mean_discharge_voltage_volt")

#: In computation order (a descriptor only reads outputs of descriptors listed before it).
DESCRIPTORS: tuple[Descriptor, ...] = (
    Descriptor("timing", _TIMING_OUT,
               ("test_time_second", "cycle_duration_second", "cycle_index",
                "cycle_start_second", "rest_second", "rest_before_second",
                "high_voltage_second", "charge_capacity_ah", "discharge_capacity_ah",
                "charge_duration_second", "discharge_duration_second", "c_rate"), _timing),
    Descriptor("capacity", _CAPACITY_OUT,
               ("discharge_capacity_ah", "charge_capacity_ah", "discharge_energy_wh",
                "charge_energy_wh", "cycle_duration_hour", "equivalent_full_cycles"),
               _capacity),
    Descriptor("polarization", ("polarization_volt",), _MEAN_V, _polarization),
    Descriptor("trends", ("polarization_slope_volt_per_cycle",
                          "polarization_slope_volt_per_hour",
                          "internal_resistance_slope_ohm_per_cycle",
                          "internal_resistance_slope_ohm_per_hour"),
               _MEAN_V + ("cycle_index", "test_time_second", "internal_resistance_ohm"),
               _trends),
    Descriptor("temperature", ("temperature_celsius",), ("temperature_celsius",),
               _temperature),
    Descriptor("knee", ("knee_cycle", "knee_cycle_stderr", "knee_cycle_ci_low",
                        "knee_cycle_ci_high"), ("cycle_index", "discharge_capacity_ah"), _knee),
)

_PRODUCER = {out: d for d in DESCRIPTORS for out in d.outputs}


def output_columns(columns: Iterable[str] | None) -> tuple[str, ...]:
    """The output columns asked for (all of ``catalog.NAMES`` for None), validated.

    Raises
    ------
    KeyError
        A name that is not a per-cycle column (the message lists the nearest ones).
    """
    if columns is None:
        return catalog.NAMES
    if isinstance(columns, str):
        columns = (columns,)
    names = tuple(dict.fromkeys(columns))
    known = set(catalog.NAMES)
    for name in names:
        if name not in known:
            catalog.column(name)  # raises KeyError naming the nearest columns
    return names


def plan(columns: Iterable[str]) -> tuple[Descriptor, ...]:
    """Descriptors needed for ``columns``, with every descriptor they read from, in
    computation order."""
    need: set[str] = set()
    stack = [_PRODUCER[c] for c in columns if c in _PRODUCER]
    while stack:
        d = stack.pop()
        if d.name in need:
            continue
        need.add(d.name)
        stack.extend(_PRODUCER[c] for c in d.inputs if c in _PRODUCER and _PRODUCER[c] is not d)
    return tuple(d for d in DESCRIPTORS if d.name in need)
