"""Neware BTSDA "regular export" CSV: three nested levels in one file, told apart by leading
empty fields.

* ``Cycle Index,Chg. Cap.(Ah),…``      — a cycle row (first field = cycle number; the first
  cycle row may carry the first step row glued after its 8 fields);
* ``,Step Index,Step Number,Step Type…`` — a step row (second field = step index);
* ``,,DataPoint,Time,Total Time,Current(A),Voltage(V),Capacity(Ah),Energy(Wh),Date…`` — one
  record.

Records inherit the cycle and step of the rows above them, so this reader walks lines in order
(a per-line Python loop: this export is written for humans and is small; numbers are then
converted column-wise). ``Total Time`` (``HH:MM:SS``) is the elapsed time; current is signed;
the single ``Capacity``/``Energy`` counters are split by the sign of the current.
"""
from __future__ import annotations

import gzip
from collections.abc import Iterator

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError
from data_registry.readers.conventions import split_counter
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source
from data_registry.units import parse_duration

READER_VERSION = "1"
#: record field (after the two leading empties) → canonical column, factor
RECORD_MAP: dict[str, tuple[str, float]] = {
    "Current(A)": ("current_ampere", 1.0),
    "Voltage(V)": ("voltage_volt", 1.0),
}


def is_regular_export(head: Head) -> bool:
    """True when the first three lines are the cycle / step / record headers."""
    if len(head.lines) < 3:
        return False
    a, b, c = (head.lines[i].split(",") for i in range(3))
    return (a[0] == "Cycle Index" and b[:2] == ["", "Step Index"]
            and c[:3] == ["", "", "DataPoint"])


def open_neware_regular(head: Head, chunk_rows: int, **_: object) -> Source:
    """Open a Neware regular-export CSV."""
    names = [f.strip() for f in head.lines[2].split(",")[2:]]
    for need in ("Total Time", "Current(A)", "Voltage(V)"):
        if need not in names:
            raise InputFormatError(f"record header lacks '{need}'", code="missing_column",
                                   file=head.name, row=3, column=need,
                                   expected="Neware record columns", found=f"{names}")

    def produce(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        rows, lines, cycles, steps = [], [], [], []
        cycle, step = 0, 0
        opened = (gzip.open(head.path, "rt", encoding=head.encoding, errors="replace")
                  if head.gzip else open(head.path, encoding=head.encoding, errors="replace"))
        with opened as fh:
            for n, line in enumerate(fh, start=1):
                if n <= 3 or not line.strip():
                    continue
                f = line.rstrip("\r\n").split(",")
                if f[0]:
                    cycle = _int(f[0], head.name, n, "Cycle Index")
                    if len(f) > 8 and f[8]:
                        step = _int(f[8], head.name, n, "Step Index")
                elif f[1]:
                    step = _int(f[1], head.name, n, "Step Index")
                else:
                    rows.append(f[2:2 + len(names)])
                    lines.append(n)
                    cycles.append(cycle)
                    steps.append(step)
                    if len(rows) >= chunk_rows:
                        yield _frame(rows, names, lines, cycles, steps, head.name)
                        rows, lines, cycles, steps = [], [], [], []
        if rows:
            yield _frame(rows, names, lines, cycles, steps, head.name)

    return Source(path=head.path, format_name="neware_regular_csv",
                  reader_version=READER_VERSION, kind="samples", produce=produce)


def _int(text: str, file: str, row: int, column: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        raise InputFormatError("expected a whole number", code="not_numeric", file=file,
                               row=row, column=column, expected="an integer",
                               found=repr(text)) from None


def _frame(rows: list[list[str]], names: list[str], lines: list[int], cycles: list[int],
           steps: list[int], file: str) -> pd.DataFrame:
    short = [i for i, r in enumerate(rows) if len(r) < len(names)]
    if short:
        i = short[0]
        raise InputFormatError("record has too few fields", code="field_count", file=file,
                               row=lines[i], expected=f"{len(names) + 2} fields",
                               found=f"{len(rows[i]) + 2} fields")
    raw = pd.DataFrame(rows, columns=names)
    out = {"source_row": np.asarray(lines, dtype=np.int64),
           "test_time_second": parse_duration(raw["Total Time"]),
           "cycle_count": np.asarray(cycles, dtype=np.int64),
           "step_count": np.asarray(steps, dtype=np.int64)}
    for src, (dst, factor) in RECORD_MAP.items():
        values = pd.to_numeric(raw[src], errors="coerce").to_numpy(np.float64)
        bad = np.isnan(values) & (raw[src].str.strip() != "").to_numpy()
        if bad.any():
            k = int(np.argmax(bad))
            raise InputFormatError("non-numeric value", code="not_numeric", file=file,
                                   row=lines[k], column=src, expected="a number",
                                   found=repr(raw[src].iloc[k]))
        out[dst] = values * factor
    frame = pd.DataFrame(out)
    sense = np.sign(frame["current_ampere"].to_numpy())
    for src, (a, b) in (("Capacity(Ah)", ("charging_capacity_ah", "discharging_capacity_ah")),
                        ("Energy(Wh)", ("charging_energy_wh", "discharging_energy_wh"))):
        if src in raw:
            frame[a], frame[b] = split_counter(
                pd.to_numeric(raw[src], errors="coerce").to_numpy(np.float64), sense)
    return frame
