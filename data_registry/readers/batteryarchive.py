"""batteryarchive.org layout (as in battery-data-toolkit): a timeseries CSV (samples) and a
cycle-summary CSV (kind "cycles"). Headers carry units: ``Test_Time (s)``, ``Current (A)``.
Current is positive on charge (batteryarchive convention). ``Cell_Temperature (C)`` is preferred
over ``Environment_Temperature (C)`` for the temperature column.
"""
from __future__ import annotations

from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source
from data_registry.readers.tabular import TabularSpec, header_with, open_tabular

TIMESERIES = TabularSpec(
    format_name="batteryarchive_timeseries_csv", kind="samples",
    header=header_with("Test_Time (s)", "Cycle_Index", "Current (A)", "Voltage (V)", limit=3),
    stems={
        "test_time": "test_time_second", "cycle_index": "cycle_count",
        "current": "current_ampere", "voltage": "voltage_volt",
        "charge_capacity": "charging_capacity_ah", "discharge_capacity": "discharging_capacity_ah",
        "charge_energy": "charging_energy_wh", "discharge_energy": "discharging_energy_wh",
        "cell_temperature": "ambient_temperature_celsius",
        "environment_temperature": "ambient_temperature_celsius",
    },
    description="batteryarchive timeseries CSV",
)
CYCLES = TabularSpec(
    format_name="batteryarchive_cycles_csv", kind="cycles",
    header=header_with("Cycle_Index", "Test_Time (s)", "Discharge_Capacity (Ah)",
                       "Min_Voltage (V)", limit=3),
    stems={
        "cycle_index": "cycle_index", "test_time": "test_time_second",
        "charge_capacity": "charge_capacity_ah", "discharge_capacity": "discharge_capacity_ah",
        "charge_energy": "charge_energy_wh", "discharge_energy": "discharge_energy_wh",
    },
    description="batteryarchive cycle-summary CSV",
)


def open_timeseries(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                    **_: object) -> Source:
    """Open a batteryarchive timeseries CSV."""
    return open_tabular(TIMESERIES, head, chunk_rows, max_line_bytes)


def open_cycles(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                **_: object) -> Source:
    """Open a batteryarchive cycle-summary CSV."""
    return open_tabular(CYCLES, head, chunk_rows, max_line_bytes)
