"""Headerless numeric text, one record per line: the delimiter, the decimal mark, and a
line-by-line reader that names the line and field of every unreadable value.

Lab scripts write such files with ``numpy.savetxt``, MATLAB ``save -ascii`` / ``writematrix``
or Excel: numbers separated by blanks (runs of spaces or tabs, leading blanks allowed), commas,
semicolons or tabs; a ``;``-separated file may write decimal commas. The files are small (one
line per measurement or per cycle), so the reader is a plain line loop (gzip read
transparently), bounded by ``chunk`` lines at a time.
"""
from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from data_registry.errors import InputFormatError
from data_registry.readers.csv_stream import cut_short
from data_registry.readers.sniff import Head

#: a number with a decimal comma, alone on its line or between ``;``/tab delimiters
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class NumberLayout:
    """How the numbers of one line are separated: ``delimiter`` None = runs of blanks."""

    delimiter: str | None = None
    decimal_comma: bool = False

    def describe(self) -> str:
        names = {None: "blanks", ",": "commas", ";": "semicolons", "\t": "tabs"}
        return names[self.delimiter] + (", decimal commas" if self.decimal_comma else "")


def guess_layout(line: str) -> NumberLayout:
    """The layout of a line of numbers: ``;`` (decimal commas allowed) before tab before
    ``,`` before blanks."""
    s = line.strip()
    if ";" in s:
        return NumberLayout(";", "," in s)
    if "\t" in s:
        fields = [f.strip() for f in s.split("\t") if f.strip()]
        return NumberLayout("\t", any(_DECIMAL_COMMA.match(f) for f in fields))
    if "," in s:
        return NumberLayout(",", False)
    return NumberLayout(None, False)


def fields(line: str, layout: NumberLayout) -> list[str]:
    """The fields of a line (a trailing delimiter ignored; quotes stripped)."""
    s = line.strip().lstrip("\ufeff")
    if layout.delimiter is None:
        out = s.split()
    else:
        out = [f.strip().strip('"').strip() for f in s.split(layout.delimiter)]
        if len(out) > 1 and out[-1] == "":
            out.pop()
    if layout.decimal_comma:
        out = [f.replace(",", ".") for f in out]
    return out


def parse_fields(parts: list[str]) -> np.ndarray | None:
    """The fields as float64, or None when one is not a number."""
    try:
        return np.asarray(parts, dtype=np.float64)
    except ValueError:
        return None


def first_bad(parts: list[str]) -> int:
    """Index of the first field that is not a number (-1 if none)."""
    for k, text in enumerate(parts):
        try:
            float(text)
        except ValueError:
            return k
    return -1


def head_rows(head: Head, layout: NumberLayout, limit: int = 400, start: int = 0
              ) -> tuple[list[np.ndarray], list[int]] | None:
    """The leading run of non-blank head lines (from 0-based ``start``, up to ``limit``) that
    are all finite numbers, as many on each as on the first, with their 1-based line numbers; None
    when the first non-blank line is not such a line. The run stops at the first other line,
    so a bad line further down is left for the reader to name (line, field, value) instead of
    making the file unrecognisable."""
    rows, lines = [], []
    for i, line in enumerate(head.lines[:limit]):
        if i < start or not line.strip():
            continue
        v = parse_fields(fields(line, layout))
        if v is None or v.size == 0 or (rows and v.size != rows[0].size) \
                or not np.isfinite(v).all():
            break
        rows.append(v)
        lines.append(i + 1)
    return (rows, lines) if rows else None


def numeric_matrix_shape(head: Head, min_columns: int) -> tuple[int, int] | None:
    """``(lines in the head, numbers per line)`` when every non-blank head line (up to 50) is
    the same count (≥ ``min_columns``) of numbers, ``NaN`` allowed, and no header: a
    MATLAB-style matrix (Severson's ``Qn_test1.csv``: one cell per line, its capacity at each
    cycle across). None otherwise."""
    lines = [ln for ln in head.lines if ln.strip()][:50] if head.is_text else []
    if not lines:
        return None
    layout = guess_layout(lines[0])
    rows = [parse_fields(fields(line, layout)) for line in lines]
    width = rows[0].size if rows[0] is not None else 0
    if width < min_columns or any(r is None or r.size != width for r in rows):
        return None
    return len(lines), int(width)


def iter_lines(head: Head, max_line_bytes: int) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-blank line of the file, decoded as the head
    was (UTF-8 without its BOM, or the legacy code page it was read in); gzip'd files
    decompressed."""
    encoding = head.encoding
    n = 0
    with (gzip.open(head.path, "rb") if head.gzip else open(head.path, "rb")) as fh:
        lines = iter(fh)
        while True:
            try:
                raw = next(lines, None)
            except (EOFError, OSError, zlib.error) as exc:  # a cut or damaged gzip stream
                raise cut_short(head.name, str(exc), row=n + 1) from exc
            if raw is None:
                return
            n += 1
            size = len(raw.rstrip(b"\r\n"))
            if size > max_line_bytes:
                raise InputFormatError(
                    "line too long", code="line_too_long", file=head.name, row=n,
                    expected=f"at most {max_line_bytes} bytes per line", found=f"{size} bytes")
            text = raw.decode(encoding, errors="replace")
            if n == 1:
                text = text.lstrip("\ufeff")
            if text.strip():
                yield n, text


def number_chunks(head: Head, layout: NumberLayout,
                  check: Callable[[int, list[str]], tuple[Exception, str] | None], *,
                  rows: int, lenient: bool, max_line_bytes: int, skip: int = 0
                  ) -> Iterator[tuple[list[int], list[np.ndarray], list[tuple[int, str]]]]:
    """The file's lines after line ``skip`` as chunks of at most ``rows`` lines:
    ``(line numbers, parsed numbers, skipped (line, reason))``. ``check(line, fields)`` returns
    None for a good line, else ``(error, reason)``: the error is raised, or with ``lenient``
    (``on_error="skip-row"``) the line is skipped with its reason."""
    at: list[int] = []
    values: list[np.ndarray] = []
    bad: list[tuple[int, str]] = []
    for n, text in iter_lines(head, max_line_bytes):
        if n <= skip:
            continue
        parts = fields(text, layout)
        problem = check(n, parts)
        if problem is None:
            at.append(n)
            values.append(parse_fields(parts))
        elif lenient:
            bad.append((n, problem[1]))
        else:
            raise problem[0]
        if len(at) + len(bad) >= rows:
            yield at, values, bad
            at, values, bad = [], [], []
    if at or bad:
        yield at, values, bad


def line_problem(file: str, line: int, parts: list[str], width: int, names: list[str],
                 expected_values: str) -> tuple[InputFormatError, str] | None:
    """The error of an unusable line of ``width`` numbers (wrong count, not a number, not
    finite) naming file, line and column (``names[k]``, e.g. ``"column 3 (capacity)"``), and the
    short ``column=found`` a skipped line is listed with; None for a good line.
    ``expected_values`` says what the ``width`` values are (for the wrong-count message)."""
    if len(parts) != width:
        return (InputFormatError(
            "wrong number of values on the line", code="field_count", file=file, row=line,
            expected=f"{width} value{'s' if width > 1 else ''} ({expected_values}), as on the "
                     "first lines", found=f"{len(parts)} values {parts[:4]}"),
            f"values={len(parts)} of {width}")
    v = parse_fields(parts)
    if v is None:
        k = first_bad(parts)
        return (InputFormatError("not a number", code="not_numeric", file=file, row=line,
                                 column=names[k], expected="a number", found=repr(parts[k])),
                f"{names[k]}={parts[k]}")
    if not np.isfinite(v).all():
        k = int(np.argmax(~np.isfinite(v)))
        return (InputFormatError("missing or non-finite value", code="not_finite", file=file,
                                 row=line, column=names[k], expected="a finite number",
                                 found=repr(parts[k])),
                f"{names[k]}={parts[k]}")
    return None
