"""Streaming delimited-text engine: bounded memory, exact 1-based line numbers, fast parsing.

The file is read into one reused byte buffer (reads sized from the bytes per line seen so far),
cut at line ends into chunks of at most ``chunk_rows`` lines, and each chunk is parsed by
``pyarrow.csv`` (multi-threaded C++; it copies what it parses, so the buffer can be reused).
Newline positions are found with numpy, which gives, without a Python loop over rows:

* the exact file line of every record (blank lines are skipped but counted), and
* the length of every line, so an over-long line is refused before it is parsed.

Peak memory is bounded by the chunk (at most ``chunk_rows`` rows and ``MAX_CHUNK_BYTES`` of
text, plus the next chunk the validator looks ahead into), whatever the file size. Gzip'd files are
decompressed transparently (``pyarrow.input_stream``). Multi-line quoted fields are not supported
(no cycler writes them); they are refused with a clear message rather than mis-numbered.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from data_registry.errors import InputFormatError

#: Default longest accepted line, in bytes (without the line end). Longer → InputFormatError.
MAX_LINE_BYTES = 1 << 20
_BLOCK_BYTES = 4 << 20  # pyarrow parse block: small enough to parse on every core
#: Largest read (and so chunk) in bytes, whatever ``chunk_rows`` asks: ~250k Arbin rows. Larger
#: chunks only cost page faults and cache misses (measured: 1M-row chunks were slower).
MAX_CHUNK_BYTES = 32 << 20


class Columns:
    """The parsed columns of one chunk (a pyarrow Table), read as pandas or numpy on demand."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __len__(self) -> int:
        return self.table.num_rows

    def __contains__(self, name: object) -> bool:
        return name in self.table.column_names

    def __getitem__(self, name: str) -> pd.Series:
        return self.table.column(name).to_pandas()

    def numpy(self, name: str) -> np.ndarray:
        """A float column as float64 (null → NaN)."""
        return self.table.column(name).to_numpy().astype(np.float64, copy=False)


@dataclass(frozen=True)
class CsvLayout:
    """Where the table sits in a delimited text file.

    Parameters
    ----------
    names:
        Header fields, in file order (as written; used as column names).
    data_line:
        1-based line number of the first data line (after header and units lines).
    delimiter, encoding, decimal_comma, gzip:
        Parsing options found by the sniffer.
    """

    names: tuple[str, ...]
    data_line: int
    delimiter: str = ","
    encoding: str = "utf-8"
    decimal_comma: bool = False
    gzip: bool = False
    quote_char: str | bool = '"'
    numeric: tuple[str, ...] = field(default_factory=tuple)
    text: tuple[str, ...] = field(default_factory=tuple)


def open_stream(path: Path, gzip: bool) -> pa.NativeFile:
    """Open ``path`` as a byte stream, transparently gunzipping when ``gzip``."""
    return pa.input_stream(str(path), compression="gzip" if gzip else None)


def stream_records(
    path: Path,
    layout: CsvLayout,
    *,
    chunk_rows: int = 1_000_000,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[tuple["Columns", np.ndarray]]:
    """Yield ``(columns, line_numbers)`` chunks of the table described by ``layout``.

    ``columns`` holds the requested ``layout.numeric`` columns as float64 (empty field → NaN) and
    ``layout.text`` columns as strings; ``line_numbers`` (int64) is the 1-based file line of each
    record. Raises :class:`InputFormatError` naming file, line and column on a malformed line,
    a non-numeric value, a truncated last line or a line longer than ``max_line_bytes``.
    """
    name = Path(path).name
    skip = layout.data_line - 1
    with open_stream(path, layout.gzip) as stream:
        for base, chunk, final, nl in _line_chunks(stream, skip, chunk_rows, max_line_bytes,
                                                   name):
            if base < skip:  # the header lines
                _check_line_lengths(chunk, base, max_line_bytes, name, nl)
                continue
            frame, lines = _parse_chunk(chunk, base, layout, max_line_bytes, name, final, nl)
            if len(frame):
                yield frame, lines


def _line_chunks(stream: pa.NativeFile, first: int, chunk_rows: int, limit: int, name: str
                 ) -> Iterator[tuple[int, memoryview | bytes, bool, np.ndarray]]:
    """Cut a byte stream into ``(lines_before, bytes, is_last, newline_offsets)`` chunks.

    The first chunk holds exactly ``first`` lines (the header); the others hold whole lines,
    at most ``chunk_rows`` each and about ``MAX_CHUNK_BYTES`` at most; the last may lack its
    final line end. Each read is sized
    from the bytes-per-line seen so far and lands in one reused buffer behind the carried partial
    line, so data is copied once. A line longer than ``limit`` bytes is refused as soon as
    it is seen, so memory stays bounded even for a file without line ends.
    """
    carry = b""
    base = 0
    want = first if first > 0 else chunk_rows
    line_bytes = 128.0
    pool: np.ndarray | None = None
    while True:
        size = int(max(min(want * line_bytes * 1.02, MAX_CHUNK_BYTES), 64 << 10, limit + 2))
        # one buffer, reused: pyarrow copies what it parses (so no chunk outlives its read),
        # and reusing it spares the page faults of a fresh allocation per chunk
        if pool is None or pool.size < len(carry) + size:
            pool = np.empty(len(carry) + size, dtype=np.uint8)
            is_nl = np.empty(len(carry) + size, dtype=bool)
        arr = pool[:len(carry) + size]
        arr[:len(carry)] = np.frombuffer(carry, dtype=np.uint8)
        buf = memoryview(arr).cast("B")
        view, got, eof = buf[len(carry):], 0, False
        while got < size:  # fill the buffer, so a short read at the end is seen as EOF now
            k = stream.readinto(view[got:])
            if k == 0:
                eof = True
                break
            got += k
        data = buf[:len(carry) + got]
        mask = np.equal(arr[:len(carry) + got], 10, out=is_nl[:len(carry) + got])
        nl = np.flatnonzero(mask)
        start, used = 0, 0  # byte offset and newline count consumed in ``data``
        # full chunks first; a short chunk only when this read fell short of one (the rest
        # of an overshooting read is carried, so chunks stay close to ``chunk_rows``)
        while len(nl) - used >= want or (base >= first and used == 0 and len(nl) > 0
                                         and not eof):
            take = min(want, len(nl) - used)
            cut = int(nl[used + take - 1]) + 1
            yield base, data[start:cut], False, nl[used:used + take] - start
            line_bytes = max(1.0, (cut - start) / take)
            base, used, start = base + take, used + take, cut
            want = chunk_rows
        rest = data[start:]
        if eof:
            if len(rest):
                yield base, rest, True, nl[used:] - start
            return
        partial = len(rest) - (int(nl[-1]) + 1 - start if len(nl) > used else 0)
        if partial > limit + 1:
            raise InputFormatError(
                "line too long", code="line_too_long", file=name,
                row=base + (len(nl) - used) + 1,
                expected=f"at most {limit} bytes per line", found=f"more than {limit} bytes")
        carry = bytes(rest)


def _line_bounds(chunk: bytes, nl: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, without ``\\r``) byte offsets of every line of ``chunk``."""
    arr = np.frombuffer(chunk, dtype=np.uint8)
    if nl is None:
        nl = np.flatnonzero(arr == 10)
    starts = np.empty(len(nl) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl + 1
    ends = np.empty(len(nl) + 1, dtype=np.int64)
    ends[:-1] = nl
    ends[-1] = len(chunk)
    if starts[-1] == len(chunk):  # chunk ends with a newline: no trailing partial line
        starts, ends = starts[:-1], ends[:-1]
    has = ends > starts
    cr = np.zeros(len(ends), dtype=bool)
    cr[has] = arr[ends[has] - 1] == 13
    return starts, ends - cr


def _check_line_lengths(chunk: bytes, base: int, limit: int, name: str,
                        nl: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    starts, ends = _line_bounds(chunk, nl)
    lengths = ends - starts
    if len(lengths) and lengths.max() > limit:
        i = int(np.argmax(lengths > limit))
        raise InputFormatError(
            "line too long", code="line_too_long", file=name, row=base + i + 1,
            expected=f"at most {limit} bytes per line", found=f"{int(lengths[i])} bytes")
    return starts, ends


def _parse_chunk(chunk: bytes, base: int, layout: CsvLayout, limit: int, name: str,
                 final: bool, nl: np.ndarray | None = None) -> tuple[Columns, np.ndarray]:
    if final and any(n.startswith("_unnamed_") for n in layout.names):
        completed = _complete_last_line(bytes(chunk), layout)
        if len(completed) != len(chunk):
            chunk, nl = completed, None
    starts, ends = _check_line_lengths(chunk, base, limit, name, nl)
    nonempty = ends > starts
    lines = base + 1 + (np.flatnonzero(nonempty) if not nonempty.all()
                        else np.arange(len(starts), dtype=np.int64))
    wanted = list(dict.fromkeys(layout.numeric + layout.text))
    types = {c: pa.float64() for c in layout.numeric}
    types.update({c: pa.string() for c in layout.text})
    try:
        table = _read(chunk, layout, wanted, types, max(_BLOCK_BYTES, 2 * limit + 2))
    except pa.ArrowInvalid as exc:
        _explain(exc, chunk, base, layout, wanted, name, starts, ends, final)
        raise  # pragma: no cover - _explain always raises
    if table.num_rows != len(lines):
        raise InputFormatError(
            "multi-line quoted fields are not supported", code="multiline_field", file=name,
            row=int(lines[0]) if len(lines) else base + 1,
            expected=f"{len(lines)} records (one per line)", found=f"{table.num_rows} records")
    return Columns(table.combine_chunks()), lines.astype(np.int64, copy=False)


def _complete_last_line(chunk: bytes, layout: CsvLayout) -> bytes:
    """Give back the trailing empty fields a file's last line lost with its final delimiter.

    Exports that end every data line with a delimiter (Maccor, PEC) often omit it on the
    very last line; only the unnamed, empty trailing fields are restored.
    """
    unnamed = sum(1 for n in layout.names if n.startswith("_unnamed_"))
    body = chunk.rstrip(b"\r\n")
    if not unnamed or not body:
        return chunk
    last = body[body.rfind(b"\n") + 1:]
    missing = len(layout.names) - (last.count(layout.delimiter.encode()) + 1)
    if 0 < missing <= unnamed:
        return body + layout.delimiter.encode() * missing + chunk[len(body):]
    return chunk


def _read(chunk: bytes, layout: CsvLayout, wanted: list[str],
          types: dict[str, pa.DataType], block: int = _BLOCK_BYTES) -> pa.Table:
    read = pacsv.ReadOptions(column_names=list(layout.names), encoding=layout.encoding,
                             block_size=block,
                             use_threads=True)
    parse = pacsv.ParseOptions(delimiter=layout.delimiter, newlines_in_values=False,
                               quote_char=layout.quote_char)
    convert = pacsv.ConvertOptions(
        include_columns=wanted, column_types=types, null_values=[""],
        strings_can_be_null=True, quoted_strings_can_be_null=True,
        decimal_point="," if layout.decimal_comma else ".")
    return pacsv.read_csv(pa.BufferReader(pa.py_buffer(chunk)), read_options=read,
                          parse_options=parse,
                          convert_options=convert)


_EXPECTED_COLS = re.compile(r"Expected (\d+) columns, got (\d+)")


def _explain(exc: Exception, chunk: bytes, base: int, layout: CsvLayout, wanted: list[str],
             name: str, starts: np.ndarray, ends: np.ndarray, final: bool) -> None:
    """Turn a pyarrow parse error into an InputFormatError with line and column (error path)."""
    text = str(exc)
    arr = np.frombuffer(chunk, dtype=np.uint8)
    quotes = np.cumsum(arr == ord('"'))
    per_line = quotes[np.maximum(ends - 1, 0)] - np.where(starts > 0, quotes[starts - 1], 0)
    odd = np.flatnonzero((per_line % 2 == 1) & (ends > starts))
    if len(odd):
        raise InputFormatError(
            "a quoted field spans lines (multi-line fields are not supported)",
            code="multiline_field", file=name, row=base + int(odd[0]) + 1,
            expected="balanced quotes on every line", found="an unclosed quote") from None
    m = _EXPECTED_COLS.search(text)
    if m:
        arr = np.frombuffer(chunk, dtype=np.uint8)
        delim = np.cumsum(arr == ord(layout.delimiter))
        fields = np.where(ends > starts,
                          delim[np.maximum(ends - 1, 0)] - np.where(starts > 0,
                                                                    delim[starts - 1], 0) + 1,
                          len(layout.names))
        bad = np.flatnonzero(fields != len(layout.names))
        i = int(bad[0]) if len(bad) else 0
        row = base + i + 1
        found = int(fields[i]) if len(bad) else int(m.group(2))
        if final and i == len(starts) - 1 and bytes(chunk[-1:]) != b"\n":
            raise InputFormatError(
                "truncated last line (the file ends in the middle of a record)",
                code="truncated_line", file=name, row=row,
                expected=f"{len(layout.names)} fields", found=f"{found} fields") from None
        raise InputFormatError(
            f"wrong number of fields (delimiter {layout.delimiter!r})", code="field_count",
            file=name, row=row, expected=f"{len(layout.names)} fields",
            found=f"{found} fields") from None
    if "conversion error" in text or "invalid value" in text:
        as_text = _read(chunk, layout, wanted, {c: pa.string() for c in wanted},
                        len(chunk) + 1).to_pandas()
        lines = base + 1 + np.flatnonzero(ends > starts)
        for col in layout.numeric:
            raw = as_text[col]
            values = raw.str.replace(",", ".", regex=False) if layout.decimal_comma else raw
            num = pd.to_numeric(values, errors="coerce")
            bad = np.flatnonzero(raw.notna().to_numpy() & num.isna().to_numpy()
                                 & ~raw.str.strip().str.lower().isin(["nan", "-nan"])
                                 .to_numpy(dtype=bool, na_value=False))
            if len(bad):
                i = int(bad[0])
                raise InputFormatError(
                    "non-numeric value", code="not_numeric", file=name, row=int(lines[i]),
                    column=col, expected="a number",
                    found=repr(str(raw.iloc[i])[:40])) from None
    raise InputFormatError(f"cannot parse as delimited text: {text[:200]}", code="parse_error",
                           file=name, row=base + 1) from None
