"""Capacity list: a headerless text file of discharge capacities, one cycle per line.

The layout lab scripts write with ``numpy.savetxt(q)`` or MATLAB ``save -ascii`` (Zhang et al.
2020 ``Capacity_data_<cell>.txt``: mAh, one line per cycle):

* one number per line: ``cycle_index`` = the 1-based line number (a blank line counts — it
  stands for a missing cycle — so later lines keep their cycle numbers); a file of
  decimal-comma numbers (``37,2``) is read as such;
* the same under ONE header line naming a discharge capacity (``capacity``, ``Capacity
  (mAh)``, ``Qd_Ah`` …; its unit is used): ``cycle_index`` = the data line's number;
* two numbers per line, ``cycle capacity`` (``numpy.savetxt(np.c_[n, q])``, the usual way to
  save a list whose cycles are not 1, 2, 3 … — checks every 50 cycles, a lost cycle): the
  first column must be whole numbers that increase line by line.

The capacities must look like one cell's trajectory: positive, and the median step between
consecutive lines at most :data:`MAX_MEDIAN_STEP` of the median (a list of cycle lives,
frequencies or RUL labels jumps far more), so a bare list of other numbers is not read.

A bare number names no unit: ``capacity_unit`` (CLI ``--capacity-unit``) states it; else it is
inferred as for generic tables (median > 20 ⇒ mAh, else Ah) and ALWAYS warned
(``capacity_unit_inferred``). The file has no clock: ``test_time_second`` = ``cycle_index ×
protocol_hours_per_cycle`` (or 2 / ``c_rate`` h per cycle), flagged ``test_time_estimated``;
without either the file is refused, as a generic per-cycle table without time is.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError, ValidationError
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.numeric_lines import (NumberLayout, guess_layout, head_rows,
                                                 line_problem, number_chunks, parse_fields)
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source

READER_VERSION = "1"
FORMAT_NAME = "capacity_list_txt"
#: fewest data lines a capacity list is recognised on
MIN_LINES = 3
#: largest median |step| between consecutive capacities, as a fraction of their median
MAX_MEDIAN_STEP = 0.05
_DECIMAL_COMMA_LINE = re.compile(r"^\s*[-+]?\d+,\d+([eE][-+]?\d+)?\s*$")


class ListLayout(NamedTuple):
    """What detection found: number layout, 1 or 2 columns, the head's capacities and their
    1-based lines, and the one-word capacity header (with its line; 0 when none)."""

    layout: NumberLayout
    width: int
    capacities: np.ndarray
    lines: list[int]
    header: str | None = None
    header_line: int = 0


def list_layout(head: Head) -> ListLayout | None:
    """The layout of a capacity list, or None (see module doc)."""
    if not head.is_text or not head.lines:
        return None
    header = _capacity_header(head)
    start = header[0] + 1 if header else 0
    first = next((ln for ln in head.lines[start:] if ln.strip()), "")
    for layout in _layouts(head, first, start):
        got = head_rows(head, layout, start=start)
        if got is None:
            continue
        rows, lines = got
        if len(rows) < MIN_LINES or rows[0].size not in ((1,) if header else (1, 2)):
            continue
        block = np.vstack(rows)
        if not np.isfinite(block).all():
            continue
        if block.shape[1] == 2:
            n = block[:, 0]
            if not ((n == np.round(n)).all() and (n >= 0).all() and (np.diff(n) > 0).all()):
                continue
        q = block[:, -1]
        if not _trajectory(q):
            continue
        return ListLayout(layout, block.shape[1], q, lines,
                          header[1] if header else None, header[0] + 1 if header else 0)
    return None


def _capacity_header(head: Head) -> tuple[int, str] | None:
    """(0-based head line, text) of a first line that is ONE header naming a discharge
    capacity (``capacity``, ``Capacity (mAh)``, ``Qd_Ah`` …), or None."""
    from data_registry.readers.header_words import CYCLE_STEMS
    from data_registry.readers.headers import match_header

    idx = next((i for i, ln in enumerate(head.lines) if ln.strip()), None)
    if idx is None:
        return None
    text = head.lines[idx].strip().lstrip("\ufeff").strip('"').strip()
    if any(d in text for d in (",", ";", "\t")) or parse_fields([text]) is not None:
        return None
    try:
        m = match_header(text, ["discharge_capacity_ah"], CYCLE_STEMS, head.name)
    except ValidationError:
        return None
    return (idx, text) if m is not None and m.target == "discharge_capacity_ah" else None


def _layouts(head: Head, first: str, start: int = 0) -> list[NumberLayout]:
    out = [guess_layout(first)]
    lines = [ln for ln in head.lines[start:] if ln.strip()]
    if lines and all(_DECIMAL_COMMA_LINE.match(ln) for ln in lines):
        out.append(NumberLayout(None, True))  # one column of decimal-comma numbers
    return out


def _trajectory(q: np.ndarray) -> bool:
    """Positive values whose median step is small against their median (one cell's fade)."""
    if not (q > 0).all():
        return False
    med = float(np.median(q))
    step = float(np.median(np.abs(np.diff(q))))
    return med > 0 and step <= MAX_MEDIAN_STEP * med


def is_capacity_list(head: Head) -> bool:
    """True for a headerless list of capacities, one cycle per line (see module doc)."""
    return list_layout(head) is not None


def open_capacity_list(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                       protocol_hours_per_cycle: float | None = None,
                       c_rate: float | None = None, capacity_unit: str | None = None,
                       **_: object) -> Source:
    """Open a capacity list (see module doc)."""
    from data_registry.readers.capacity_units import _capacity_factor
    from data_registry.readers.generic_csv import estimated_time

    found = list_layout(head)
    if found is None:
        raise InputFormatError(
            "not a capacity list", code="not_capacity_list", file=head.name,
            expected=f"at least {MIN_LINES} headerless lines of one capacity (or 'cycle "
                     "capacity') each, positive, changing slowly from line to line",
            found=f"first line {head.lines[0][:80]!r}" if head.lines else "no line of text")
    layout, width, q, lines, header, skip = found
    column = header or f"column {width}"
    warns: list[IngestWarning] = []
    factor, w = _capacity_factor(column, q, head.name, column, capacity_unit)
    if w is not None:
        warns.append(w)
    hours_given = protocol_hours_per_cycle is not None and protocol_hours_per_cycle > 0
    if not hours_given and not (c_rate is not None and c_rate > 0):
        raise ValidationError(
            "a capacity list has no clock; estimate it from the protocol with "
            "--hours-per-cycle H or --c-rate C", code="missing_column", file=head.name,
            row=lines[0], column="test_time_second",
            expected="--hours-per-cycle H / --c-rate C (API options hours_per_cycle / c_rate)",
            found=f"a list of {'cycle, capacity' if width == 2 else 'capacities'} (no time "
                  "column)")
    post, _, w = estimated_time(head, [Mapped(column, "cycle_index")],
                                protocol_hours_per_cycle, c_rate)
    warns.append(w)
    meta = {"capacity_list_columns": "cycle, capacity" if width == 2 else "capacity",
            "capacity_list_cycle": "first column" if width == 2 else
            "data line number (1-based, after the header)" if skip else
            "line number (1-based)",
            "capacity_list_delimiter": layout.describe()}
    if header:
        meta["capacity_list_header"] = header
    holder: list[Source] = []

    def produce(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        lenient = bool(holder) and holder[0].on_error == "skip-row"
        for at, values, bad in number_chunks(  # skip: the one-word capacity header
                head, layout, lambda n, parts: _line_problem(head.name, n, parts, width),
                rows=chunk_rows, lenient=lenient, max_line_bytes=max_line_bytes, skip=skip):
            yield post(_frame(at, values, bad, width, factor, skip), None, sink)

    source = Source(path=head.path, format_name=FORMAT_NAME, reader_version=READER_VERSION,
                    kind="cycles", metadata=meta, warnings=warns, produce=produce)
    holder.append(source)
    return source


def _line_problem(file: str, line: int, parts: list[str], width: int
                  ) -> tuple[InputFormatError, str] | None:
    """:func:`numeric_lines.line_problem` with this layout's column names."""
    names = ["capacity"] if width == 1 else ["cycle", "capacity"]
    return line_problem(file, line, parts, width,
                        [f"column {k + 1} ({n})" for k, n in enumerate(names)], ", ".join(names))


def _frame(at: list[int], values: list[np.ndarray], bad: list[tuple[int, str]], width: int,
           factor: float, skip: int = 0) -> pd.DataFrame:
    m = np.vstack(values) if values else np.empty((0, width))
    lines = np.asarray(at, dtype=np.int64)
    out = {"source_row": lines,
           "cycle_index": m[:, 0] if width == 2 else (lines - skip).astype(np.float64),
           "discharge_capacity_ah": m[:, -1] * factor}
    frame = pd.DataFrame(out)
    if bad:
        holes = pd.DataFrame({
            "source_row": np.asarray([n for n, _ in bad], dtype=np.int64),
            "cycle_index": np.full(len(bad), np.nan),
            "discharge_capacity_ah": np.full(len(bad), np.nan),
            "_not_numeric": np.asarray([why for _, why in bad], dtype=object)})
        frame["_not_numeric"] = np.full(len(frame), None, dtype=object)
        frame = pd.concat([frame, holes], ignore_index=True)
        frame = frame.sort_values("source_row", kind="stable", ignore_index=True)
    return frame
