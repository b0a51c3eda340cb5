"""Scribner ZPlot / ZView ``.z`` impedance files (also written by Solartron and Autolab
set-ups that export "for ZView").

Two layouts share one column header, ``Freq(Hz) Ampl Bias Time(Sec) Z'(a) Z''(b) GD Err
Range``:

* ``ZPLOT2 ASCII``: a ``Key: value`` preamble, the tab-separated header, ``End Comments``, then
  tab-separated rows;
* ``ZPlotW`` / ``Z60W Data File``: quoted preamble lines, a settings line, the point count, the
  header inside quotes (blank-separated), then comma-separated rows.

``Z''(b)`` is Im(Z) as measured (negative for capacitive behaviour); the validator still checks
the sign (``eis_sign``). One file = one spectrum: ``measurement_id`` = file stem,
``source_row`` = the row's 1-based line. ``Time(Sec)`` counts from the start of the sweep, not
the cell's test, so it is not stored: the spectrum's cycle is unknown (warning
``eis_cycle_count_unknown``). A declared point count that differs from the rows read is
warned (``zview_point_count_mismatch``: a truncated file?).
"""
from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.numeric_lines import iter_lines
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source, preamble_text, row_chunks, sweep_clock_warning

FORMAT_NAME = "zview_z"
READER_VERSION = "1"
#: header name → canonical column
COLUMNS = {"Freq(Hz)": "frequency_hz", "Z'(a)": "z_real_ohm", "Z''(b)": "z_imag_ohm"}
_SPLIT = re.compile(r"[\t ]+")
_POINTS = re.compile(r"^\s*Data Points:\s*(\d+)\s*$")


def _names(line: str) -> list[str]:
    return [t for t in _SPLIT.split(line.strip().strip('"').strip()) if t]


def header_index(lines: list[str]) -> int | None:
    """0-based index of the ``Freq(Hz) … Z'(a) Z''(b)`` header line, or None."""
    for i, line in enumerate(lines):
        if "Freq(Hz)" in line and set(COLUMNS) <= set(_names(line)):
            return i
    return None


def is_zview(head: Head) -> bool:
    """True for a ZPlot/ZView file (its column header; a Maccor export, which copies that
    header under a ``MACCOR, INC.`` preamble, has its own reader)."""
    lines = head.lines
    return (bool(lines) and not lines[0].startswith("MACCOR")
            and header_index(lines) is not None)


def _starts_with_number(line: str) -> bool:
    first = re.split(r"[,\t ]+", line, maxsplit=1)[0]
    try:
        float(first)
    except ValueError:
        return False
    return True


def _declared_points(lines: list[str], header: int) -> int | None:
    for i, line in enumerate(lines[:header]):
        m = _POINTS.match(line)
        if m:
            return int(m.group(1))
    # ZPlotW / Z60W: the count is the bare whole number on the line before the header
    prev = lines[header - 1].strip() if header > 0 else ""
    return int(prev) if prev.isdigit() else None


def open_zview(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
               **_: object) -> Source:
    """Open a ZPlot / ZView ``.z`` spectrum."""
    at = header_index(head.lines)
    if at is None:
        raise InputFormatError("no Freq(Hz) … Z'(a) Z''(b) header in the file's head",
                               code="missing_column", file=head.name,
                               expected="a ZPlot/ZView column header", found=head.lines[:3])
    names = _names(head.lines[at])
    declared = _declared_points(head.lines, at)
    stem = head.stem
    meta = {"zview_preamble": preamble_text(head.lines[:at])}

    def produce(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        lines, rows = [], []
        header_line = None
        for n, text in iter_lines(head, max_line_bytes):
            if header_line is None:
                if set(COLUMNS) <= set(_names(text)) and "Freq(Hz)" in text:
                    header_line = n
                continue
            line = text.strip()
            if not rows and not _starts_with_number(line):
                continue  # "End Comments" and the like before the first row
            fields = [f.strip() for f in (line.split(",") if "," in line
                                          else _SPLIT.split(line))]
            if len(fields) != len(names):
                raise InputFormatError(
                    f"row has {len(fields)} fields, the header {len(names)}",
                    code="bad_value", file=head.name, row=n,
                    expected=f"{len(names)} fields ({' '.join(names)})", found=line[:80])
            values = []
            for name in COLUMNS:
                raw = fields[names.index(name)]
                try:
                    values.append(float(raw))
                except ValueError:
                    raise InputFormatError(f"{name} is not a number", code="bad_value",
                                           file=head.name, row=n, column=name,
                                           expected="a number", found=repr(raw)) from None
            lines.append(n)
            rows.append(values)
        if declared is not None and declared != len(rows):
            sink.append(IngestWarning(
                "zview_point_count_mismatch", f"the file declares {declared} points but holds "
                f"{len(rows)} rows (a truncated file?)", head.name, header_line, None, 1,
                {"declared": declared, "read": len(rows)}))
        block = np.asarray(rows, dtype=np.float64).reshape(-1, len(COLUMNS))
        frame = pd.DataFrame({"source_row": np.asarray(lines, dtype=np.int64),
                              **{c: block[:, j] for j, c in enumerate(COLUMNS.values())}})
        frame["measurement_id"] = stem
        yield from row_chunks(frame, chunk_rows)

    warns = [sweep_clock_warning(head.name, "Time(Sec)", at + 1)]
    return Source(path=head.path, format_name=FORMAT_NAME, reader_version=READER_VERSION,
                  kind="eis", metadata=meta, warnings=warns, produce=produce)
