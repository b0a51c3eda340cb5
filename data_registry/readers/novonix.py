"""Novonix HPC CSV: a ``[Summary]`` section of ``key: value`` lines, then ``[Data]`` and a table
whose lines are each wrapped in ONE pair of double quotes (so quoting is turned off and the
quotes stripped from the first/last fields). Units in headers (``Run Time (h)``,
``Potential (V)``). Current is signed; ``Capacity (Ah)``/``Energy (Wh)`` are single counters,
split into charging/discharging by the sign of the current.

The ``*_metadata.csv`` file Novonix writes beside it is a per-cycle summary WITHOUT elapsed time;
it is recognised and refused with a pointer to the data file.
"""
from __future__ import annotations

from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source
from data_registry.readers.tabular import TabularSpec, open_tabular, preamble_metadata


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


def open_novonix(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                 **_: object) -> Source:
    """Open a Novonix CSV export."""
    meta = preamble_metadata(head, _header(head) or 0)
    return open_tabular(SPEC, head, chunk_rows, max_line_bytes, metadata=meta)
