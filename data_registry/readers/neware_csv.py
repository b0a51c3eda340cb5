"""Neware BTS flat CSV export (one row per record): ``DataPoint, Cycle Index, Step Index,
Step Type, Time, Cumulative Time, Current(A), Voltage(V), … Chg. Cap.(Ah), DChg. Cap.(Ah) …``.

``Cumulative Time`` (``HH:MM:SS``, hours may exceed 24) is the elapsed test time; ``Time`` is the
step time and is ignored. Current is signed (negative = discharge); charge and discharge
capacities are separate, cumulative within the step.
"""
from __future__ import annotations

from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source
from data_registry.readers.tabular import TabularSpec, header_with, open_tabular

SPEC = TabularSpec(
    format_name="neware_csv", kind="samples",
    header=header_with("DataPoint", "Cycle Index", "Step Index", "Step Type", "Voltage(V)",
                       limit=3),
    stems={
        "cumulative_time": "_time_text", "total_time": "_time_text",
        "cycle_index": "cycle_count", "step_index": "step_count",
        "current": "current_ampere", "voltage": "voltage_volt",
        "chg_cap": "charging_capacity_ah", "dchg_cap": "discharging_capacity_ah",
        "chg_energy": "charging_energy_wh", "dchg_energy": "discharging_energy_wh",
    },
    time_text="duration",
    description="Neware flat CSV ('DataPoint,Cycle Index,Step Index,Step Type,...')",
)


def open_neware_csv(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                    **_: object) -> Source:
    """Open a Neware flat CSV export."""
    return open_tabular(SPEC, head, chunk_rows, max_line_bytes)
