"""Novonix HPC CSV: a ``[Summary]`` section of ``key: value`` lines, then ``[Data]`` and a table
whose lines are each wrapped in ONE pair of double quotes (so quoting is turned off and the
quotes stripped from the first/last fields). Units in headers (``Run Time (h)``,
``Potential (V)``). Current is signed; ``Capacity (Ah)``/``Energy (Wh)`` are single counters,
split into charging/discharging by the sign of the current.

The ``*_metadata.csv`` file Novonix writes beside it is a per-cycle summary (kind "cycles",
Ah / Wh / V) WITHOUT elapsed time: it is read only with the ingest option
``protocol_hours_per_cycle`` (time estimated and flagged), else refused naming that option.
"""
from __future__ import annotations

from pathlib import Path

from data_registry.errors import FadecastError
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head, read_head
from data_registry.readers.generic_csv import estimated_time
from data_registry.readers.source import Mapped, Source, csv_source, layout_from_head
from data_registry.readers.tabular import TabularSpec, open_tabular, preamble_metadata

#: Novonix summary column → canonical per-cycle column, factor
SUMMARY_MAP: dict[str, tuple[str, float]] = {
    "Cycle": ("cycle_index", 1.0),
    "Qc": ("charge_capacity_ah", 1.0), "Qd": ("discharge_capacity_ah", 1.0),
    "Ec": ("charge_energy_wh", 1.0), "Ed": ("discharge_energy_wh", 1.0),
    "AverageChargeVoltage": ("mean_charge_voltage_volt", 1.0),
    "AverageDischargeVoltage": ("mean_discharge_voltage_volt", 1.0),
}


def _header(head: Head) -> int | None:
    i = head.find_line(lambda s: s.strip() == "[Data]", 200)
    return None if i is None or i + 1 >= len(head.lines) else i + 1


SPEC = TabularSpec(
    format_name="novonix_csv", kind="samples", header=_header, delimiter=",",
    stems={
        "run_time": "test_time_second", "cycle_number": "cycle_count",
        "step_number": "step_count", "current": "current_ampere", "potential": "voltage_volt",
        "capacity": "_capacity_ah", "energy": "_energy_wh",
        "temperature": "ambient_temperature_celsius",
    },
    split_by="current", quote_char=False,
    description="Novonix CSV ([Summary] ... [Data] section)",
)


def is_novonix(head: Head) -> bool:
    """True for a Novonix data file (``[Summary]`` first, a ``[Data]`` section)."""
    return bool(head.lines) and head.lines[0].strip() == "[Summary]" and SPEC.detect(head)


def is_novonix_summary(head: Head) -> bool:
    """True for the Novonix per-cycle ``*_metadata.csv`` summary."""
    f = set(head.fields(0, ","))
    return {"Cycle", "Qc", "Qd", "CE", "AverageChargeVoltage"} <= f


def summary_path(path: Path) -> Path:
    """Where Novonix writes the per-cycle ``<stem>_metadata.csv`` beside a data file."""
    return path.with_name(path.stem + "_metadata.csv")


def _is_summary_file(path: Path) -> bool:
    try:
        return is_novonix_summary(read_head(path))
    except FadecastError:  # empty or unreadable: not a companion
        return False


def open_novonix(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                 **_: object) -> Source:
    """Open a Novonix CSV export.

    The ``<stem>_metadata.csv`` summary beside it, when it is one (checked by content), is a
    companion: kept verbatim with the data file and named in ``novonix_summary_file``.
    """
    meta = preamble_metadata(head, _header(head) or 0)
    side = summary_path(head.path)
    found = side.is_file() and _is_summary_file(side)
    if found:
        meta["novonix_summary_file"] = side.name
    source = open_tabular(SPEC, head, chunk_rows, max_line_bytes, metadata=meta)
    if found:
        source.companions.append(side)
    return source


def open_novonix_summary(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                         protocol_hours_per_cycle: float | None = None,
                         c_rate: float | None = None, **_: object) -> Source:
    """Open a Novonix per-cycle summary (needs ``protocol_hours_per_cycle``)."""
    layout, warns = layout_from_head(head, 0, delimiter=",")
    columns = [Mapped(n, *SUMMARY_MAP[n]) for n in layout.names if n in SUMMARY_MAP]
    post, columns, w = estimated_time(head, columns, protocol_hours_per_cycle, c_rate)
    return csv_source(head, format_name="novonix_summary_csv", reader_version="1",
                      kind="cycles", layout=layout, columns=columns, chunk_rows=chunk_rows,
                      warnings=warns + [w], post=post, max_line_bytes=max_line_bytes)
