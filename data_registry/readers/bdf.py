"""Battery Data Format (BDF) CSV with human headers: ``'Test Time / h'``, ``'Current / A'``.

Units come from the headers (hours → s, mA → A …). The sign convention is NOT trusted: some
BDF-flavoured exports (cellpy's ``batmo_bdf.csv``) write current POSITIVE on discharge; the
validator compares the current's sign with the rising capacity counter and flips it with
warning ``current_sign_flipped`` (see :mod:`data_registry.consistency`).
"""
from __future__ import annotations

from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source
from data_registry.readers.tabular import TabularSpec, open_tabular

SPEC = TabularSpec(
    format_name="bdf_csv", kind="samples",
    header=lambda head: _header(head),
    stems={
        "test_time": "test_time_second", "voltage": "voltage_volt",
        "current": "current_ampere", "cycle_count": "cycle_count",
        "step_count": "step_count", "step_index": "step_count",
        "charge_capacity": "charging_capacity_ah", "charging_capacity": "charging_capacity_ah",
        "discharge_capacity": "discharging_capacity_ah",
        "discharging_capacity": "discharging_capacity_ah",
        "charge_energy": "charging_energy_wh", "discharge_energy": "discharging_energy_wh",
        "ambient_temperature": "ambient_temperature_celsius",
        "unix_time": "unix_time_second",
    },
    description="BDF CSV ('Test Time / h', 'Voltage / V', 'Current / A', ...)",
)
_HUMAN = ("test time /", "voltage /", "current /")


def _header(head: Head) -> int | None:
    """First of the first 5 lines whose fields include 'Test Time / <unit>', 'Voltage / <unit>'
    and 'Current / <unit>' (BDF human-readable names, any unit)."""
    for i, line in enumerate(head.lines[:5]):
        fields = [f.strip().strip('"').lower() for f in line.split(head.delimiter(line))]
        if all(any(f.startswith(p) for f in fields) for p in _HUMAN):
            return i
    return None


def open_bdf(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
             **_: object) -> Source:
    """Open a BDF CSV."""
    return open_tabular(SPEC, head, chunk_rows, max_line_bytes)
