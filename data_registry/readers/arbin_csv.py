"""Arbin CSV export (MITS Pro / BEEP style), with the optional ``<name>_Metadata.csv`` sidecar.

Arbin's sign convention already matches ours (positive = charge); capacities are cumulative per
cycle, in Ah. Newer exports put units in the header (``Test_Time(s)``, ``Current(A)``); both
spellings are matched, the unit in the header wins over the default below.
"""
from __future__ import annotations

import csv
from pathlib import Path

from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.headers import match_headers, norm
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source, csv_source, layout_from_head
from data_registry.units import split_header

READER_VERSION = "1"

#: Arbin header (lower case, no unit) → canonical column; default units are canonical.
COLUMN_MAP: dict[str, str] = {
    "test_time": "test_time_second",
    "datetime": "unix_time_second",
    "date_time": "unix_time_second",
    "step_index": "step_count",
    "cycle_index": "cycle_count",
    "current": "current_ampere",
    "voltage": "voltage_volt",
    "charge_capacity": "charging_capacity_ah",
    "discharge_capacity": "discharging_capacity_ah",
    "charge_energy": "charging_energy_wh",
    "discharge_energy": "discharging_energy_wh",
    "internal_resistance": "internal_resistance_ohm",
    "temperature": "ambient_temperature_celsius",
    "aux_temperature_1": "ambient_temperature_celsius",
}
#: headers that together identify an Arbin export
SIGNATURE = {"data_point", "test_time", "step_index", "cycle_index", "current", "voltage"}


def _stems(head: Head) -> set[str]:
    """Normalised header names of the first line, units stripped."""
    return {norm(split_header(f)[0]) for f in head.fields(0)}


def is_arbin_csv(head: Head) -> bool:
    """True when the first line is an Arbin data header."""
    return bool(head.lines) and SIGNATURE <= _stems(head)


def is_arbin_metadata(head: Head) -> bool:
    """True for the ``_Metadata.csv`` sidecar (no samples: refused with a pointer)."""
    s = _stems(head)
    return bool(head.lines) and {"test_id", "schedule_file_name"} <= s


def metadata_path(path: Path) -> Path:
    """Where the ``_Metadata.csv`` sidecar of an Arbin export would be."""
    return path.with_name(path.stem + "_Metadata.csv")


def read_metadata(path: Path) -> dict:
    """Key → value of the first data row of the ``_Metadata.csv`` sidecar beside ``path``."""
    side = metadata_path(path)
    if not side.is_file():
        return {}
    with open(side, newline="", encoding="utf-8", errors="replace") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        return {}
    meta = {}
    for k, v in zip(rows[0], rows[1]):
        k = k.strip()
        if k and v.strip():
            meta[f"arbin_{k.lower()}"] = v.strip()
    return meta


def open_arbin_csv(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                   **_: object) -> Source:
    """Open an Arbin CSV export."""
    layout, warns = layout_from_head(head, 0)
    columns = match_headers(layout.names, [], COLUMN_MAP, head.name, 1)
    first = next((ln for ln in head.lines[1:6] if ln.strip()), "")
    values = dict(zip(layout.names, (f.strip() for f in first.split(layout.delimiter))))
    # BEEP-era exports write DateTime as unix seconds; MITS Pro writes a local date string,
    # whose time zone is unknown: then it is not read as unix_time_second
    columns = [m for m in columns
               if m.target != "unix_time_second" or _is_number(values.get(m.source, ""))]
    meta = read_metadata(head.path)
    source = csv_source(head, format_name="arbin_csv", reader_version=READER_VERSION,
                        kind="samples", layout=layout, columns=columns, chunk_rows=chunk_rows,
                        metadata=meta, warnings=warns, max_line_bytes=max_line_bytes)
    if meta:
        source.companions.append(metadata_path(head.path))
    return source


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
