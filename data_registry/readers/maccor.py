"""Maccor text exports (tab-separated), in the header styles seen in the wild:

* BEEP style: one preamble line (``Today's Date …``), header ``Rec# Cyc# Step Test (Sec) …``,
  or ``TestTime`` as ``'0d 00:00:00.0000'`` durations;
* cellpy "style 1": a 3-line preamble, ``TestTime`` as durations, unsigned ``Amps``;
* cellpy "style 2": a key/value preamble, header ``Rec Cycle P Cycle C Step TestTime … Md``
  with ``TestTime`` as a bare number whose unit is not written (it is minutes in Maccor's
  "minutes" export setting): the unit is inferred from the wall clock (``DPT Time``) and
  reported with warning ``time_unit_inferred``.

Current may be signed or unsigned depending on the export; the state letter (``State``/``Md``:
C = charge, D = discharge, R = rest) gives the canonical sign. ``Amp-hr``/``Watt-hr`` is one
per-step counter, split into charging/discharging columns by state (NaN in other states).
The wall clock (``DPt Time``) is local time of unknown zone (daylight-saving repeats are common,
see BEEP's ``tztest`` file): it is NOT converted to ``unix_time_second``; the test start is kept
in ``metadata['start_local_time']``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError
from data_registry.readers.conventions import signed_current, split_counter, state_sense
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, csv_source, layout_from_head
from data_registry.units import parse_duration

READER_VERSION = "1"

#: Maccor header → canonical column (``_``-prefixed = vendor-only helper column)
COLUMN_MAP: dict[str, str] = {
    "Cyc#": "cycle_count", "Cycle C": "cycle_count",
    "Step": "step_count",
    "Test (Sec)": "test_time_second", "TestTime": "test_time_second",
    "Test (Min)": "test_time_second", "Test (Hr)": "test_time_second",
    "Test (Hrs)": "test_time_second", "Test Time (Sec)": "test_time_second",
    "Test Time (Min)": "test_time_second", "Test Time (Hr)": "test_time_second",
    "Amps": "current_ampere", "Current [A]": "current_ampere",
    "Volts": "voltage_volt", "Voltage [V]": "voltage_volt",
    "Amp-hr": "_capacity_ah", "Cap. [Ah]": "_capacity_ah",
    "Watt-hr": "_energy_wh", "Ener. [Wh]": "_energy_wh",
    "State": "_state", "Md": "_state",
    "DPt Time": "_wall_clock", "DPT Time": "_wall_clock",
}
TEXT_COLUMNS = {"_state", "_wall_clock"}
CHARGE, DISCHARGE = ("C",), ("D",)
#: wall-clock seconds per TestTime unit → the unit's factor to seconds
TIME_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
#: the unit a Maccor clock header writes → factor to seconds (Maccor's export setting)
HEADER_TIME_UNITS = {"(Sec)": 1.0, "(Min)": 60.0, "(Hr)": 3600.0, "(Hrs)": 3600.0}


def header_index(head: Head) -> int | None:
    """0-based index of the Maccor data header line within the first 40 lines."""
    return head.find_line(lambda s: s.startswith(("Rec#\tCyc#\t", "Rec\tCycle P\t")), 40)


def is_maccor(head: Head) -> bool:
    """True for a Maccor per-sample text export."""
    return head.is_text and header_index(head) is not None


def open_maccor(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                **_: object) -> Source:
    """Open a Maccor text export."""
    i = header_index(head)
    layout, warns = layout_from_head(head, i, delimiter="\t")
    present = {n: COLUMN_MAP[n] for n in layout.names if n in COLUMN_MAP}
    time_col = next((n for n, t in present.items() if t == "test_time_second"), None)
    first = _first_row(head, i, layout.names)
    duration = bool(time_col and ":" in first.get(time_col, ""))
    factor = next((f for unit, f in HEADER_TIME_UNITS.items()
                   if time_col and time_col.endswith(unit)), 1.0)
    if time_col == "TestTime" and not duration:
        factor, w = _infer_time_unit(head, i, layout.names)
        warns.append(w)
    columns = [Mapped(n, t, factor if t == "test_time_second" else 1.0,
                      t in TEXT_COLUMNS or (t == "test_time_second" and duration))
               for n, t in present.items()]
    meta = {"preamble": " | ".join(head.lines[:i])[:2000]}
    if "_wall_clock" in present.values():
        wc = next(n for n, t in present.items() if t == "_wall_clock")
        meta["start_local_time"] = first.get(wc, "")

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        if duration:
            secs = parse_duration(raw[time_col])
            bad = np.isnan(secs) & raw[time_col].notna().to_numpy()
            if bad.any():
                k = int(np.argmax(bad))
                raise InputFormatError(
                    "unreadable elapsed time", code="not_duration", file=head.name,
                    row=int(frame["source_row"].iloc[k]), column=time_col,
                    expected="'Nd HH:MM:SS.ffff'", found=repr(raw[time_col].iloc[k]))
            frame["test_time_second"] = secs
        sense = state_sense(raw[_src(present, "_state")], CHARGE, DISCHARGE)
        frame["current_ampere"] = signed_current(frame["current_ampere"].to_numpy(), sense)
        if "_capacity_ah" in frame:
            frame["charging_capacity_ah"], frame["discharging_capacity_ah"] = split_counter(
                frame.pop("_capacity_ah").to_numpy(), sense)
        if "_energy_wh" in frame:
            frame["charging_energy_wh"], frame["discharging_energy_wh"] = split_counter(
                frame.pop("_energy_wh").to_numpy(), sense)
        return frame

    return csv_source(head, format_name="maccor_txt", reader_version=READER_VERSION,
                      kind="samples", layout=layout, columns=columns, chunk_rows=chunk_rows,
                      metadata=meta, warnings=warns, post=post, max_line_bytes=max_line_bytes)


def _src(present: dict[str, str], target: str) -> str:
    return next(n for n, t in present.items() if t == target)


def _first_row(head: Head, i: int, names: tuple[str, ...]) -> dict[str, str]:
    for line in head.lines[i + 1:i + 5]:
        if line.strip():
            return dict(zip(names, (f.strip() for f in line.split("\t"))))
    return {}


def _infer_time_unit(head: Head, i: int, names: tuple[str, ...]) -> tuple[float, IngestWarning]:
    """Unit of a bare-number TestTime from the wall clock over the head's rows."""
    rows = [dict(zip(names, line.split("\t"))) for line in head.lines[i + 1:] if line.strip()]
    wall_col = next((n for n in names if COLUMN_MAP.get(n) == "_wall_clock"), None)
    if wall_col is None or len(rows) < 3:
        raise InputFormatError(
            "TestTime has no unit and no wall clock to infer it from", code="unknown_unit",
            file=head.name, row=i + 1, column="TestTime", expected="a DPT Time column",
            found=f"header {list(names)}")
    frame = pd.DataFrame(rows)
    wall = pd.to_datetime(frame[wall_col].str.strip(), errors="coerce", format="mixed")
    test = pd.to_numeric(frame["TestTime"], errors="coerce")
    span_wall = (wall.iloc[-1] - wall.iloc[0]).total_seconds()
    span_test = float(test.iloc[-1] - test.iloc[0])
    ratio = span_wall / span_test if span_test > 0 else np.nan
    for unit, f in TIME_UNITS.items():
        if np.isfinite(ratio) and abs(ratio / f - 1.0) < 0.05:
            return f, IngestWarning(
                "time_unit_inferred", f"TestTime carries no unit; the wall clock advances "
                f"{ratio:.2f} s per TestTime unit, so it is read as {unit}", head.name, i + 1,
                "TestTime", 1, {"seconds_per_unit": ratio})
    raise InputFormatError(
        "cannot infer the unit of TestTime from the wall clock", code="unknown_unit",
        file=head.name, row=i + 1, column="TestTime",
        expected="wall clock / TestTime ≈ 1, 60 or 3600", found=f"{ratio:.3g}")
