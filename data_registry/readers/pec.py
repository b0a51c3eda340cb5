"""PEC (Pulse Electronics / PEC SBT) CSV: a ``Key:,value`` preamble, then a table whose header
starts ``Test,Cell,Rack,Shelf,Position,Cell ID,Step``. Units in the headers (``Voltage (mV)``,
``Current (mA)``, ``Charge Capacity (mAh)``). Current is signed (negative = discharge).

Vendor quirks (data below): energy is labelled ``Charge Capacity (mWh)`` in older exports, and
newer exports give total time as ``Total Time (Hours in hh:mm:ss.xxx)`` strings.
"""
from __future__ import annotations

from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source
from data_registry.readers.tabular import (TabularSpec, header_with, open_tabular,
                                           preamble_metadata)

SPEC = TabularSpec(
    format_name="pec_csv", kind="samples",
    header=header_with("Test", "Cell", "Rack", "Shelf", "Position", "Step", "Cycle", limit=80,
                       delimiter=","),
    delimiter=",",
    stems={
        "total_time": "test_time_second", "cycle": "cycle_count", "step": "step_count",
        "voltage": "voltage_volt", "current": "current_ampere",
        "charge_capacity": "charging_capacity_ah", "discharge_capacity": "discharging_capacity_ah",
        "charge_energy": "charging_energy_wh", "discharge_energy": "discharging_energy_wh",
        "ambient_temperature": "ambient_temperature_celsius",
        "temp": "ambient_temperature_celsius",
    },
    exact={
        "Charge Capacity (mWh)": ("charging_energy_wh", 1e-3),
        "Discharge Capacity (mWh)": ("discharging_energy_wh", 1e-3),
        "Total Time (Hours in hh:mm:ss.xxx)": ("_time_text", 1.0),
    },
    time_text="duration",
    description="PEC CSV (header 'Test,Cell,Rack,Shelf,Position,Cell ID,Step,...')",
)


def open_pec(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
             **_: object) -> Source:
    """Open a PEC CSV export."""
    meta = preamble_metadata(head, SPEC.header(head) or 0)
    return open_tabular(SPEC, head, chunk_rows, max_line_bytes, metadata=meta)
