"""Streaming delimited-text engine: bounded memory, exact 1-based line numbers, fast parsing.

The file is read into one reused byte buffer (reads sized from the bytes per line seen so far)
and cut at the last line end of each read into pieces of about ``chunk_rows`` lines; each piece
is parsed by ``pyarrow.csv`` (C++; it copies what it parses, so the buffer can be reused) on a
prefetch thread, so parsing overlaps the validation and storage of earlier chunks.

Line numbers without a per-byte pass: when every line of a piece is one record — no blank line
(read with ``ignore_empty_lines=False`` it would be an all-null record), no bare ``\\r`` (for
CR-LF files the record count must equal the LF count), every line within the length limit
(checked by jumping from line end to line end with ``bytes.rfind``) — the line of record k is
``lines_before + k``. Otherwise, or on any parse error, the exact path indexes every newline
with numpy: blank lines are skipped but counted, an over-long line is refused before it is
parsed, and errors name the line and column. Both paths give identical results.

Peak memory is bounded by the chunk (at most ``chunk_rows`` rows and ``MAX_CHUNK_BYTES`` of
text, plus ``PREFETCH_CHUNKS`` parsed chunks and the next chunk the validator looks ahead into),
whatever the file size. Gzip'd files are decompressed transparently (``pyarrow.input_stream``).
Multi-line quoted fields are not supported (no cycler writes them); they are refused with a
clear message rather than mis-numbered.
"""
from __future__ import annotations

import re
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
#: Parsed chunks the parsing thread may run ahead of the validator (bounds memory).
PREFETCH_CHUNKS = 2


#: a number written with a decimal comma (``4832,61``, ``-1,5e-3``)
DECIMAL_COMMA = re.compile(r"^-?\d+,\d+([eE][-+]?\d+)?$")
#: a number written with a decimal point (``4.5``, ``.5``, ``-1.5e-3``)
DECIMAL_POINT = re.compile(r"^-?\d*\.\d+([eE][-+]?\d+)?$")


def decimal_mark_hint(value: str, layout: "CsvLayout") -> str:
    """Why a non-numeric cell may be a number with the other decimal mark ('' if not)."""
    v = value.strip()
    if not layout.decimal_comma and DECIMAL_COMMA.match(v):
        where = ("the sampled first lines had none, so the file is read with a decimal point"
                 if layout.delimiter != "," else "the file is comma-delimited")
        return (f"; decimal commas seem to be in use ({v!r} = {v.replace(',', '.')}?) but "
                f"{where}: write every number with one decimal mark (e.g. re-export with "
                "decimal points, or ';'-delimited with decimal commas throughout)")
    if layout.decimal_comma and DECIMAL_POINT.match(v):
        return (f"; the file was read with decimal commas (seen in its first lines) but "
                f"{v!r} has a decimal point: write every number with one decimal mark")
    return ""


#: extra text column of a lenient parse: ``"column=value"`` of a row's first non-numeric cell
NOT_NUMERIC = "__not_numeric__"


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

    def filter(self, mask: np.ndarray) -> "Columns":
        """The rows where ``mask`` (bool, one per row) is True."""
        return Columns(self.table.filter(pa.array(mask, type=pa.bool_())))


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
    #: non-numeric values become NaN instead of an error; the row's first such cell is named
    #: in the extra text column ``NOT_NUMERIC`` as ``"column=value"`` (policy skip-row)
    lenient: bool = False
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
    record. Chunks hold at most ``chunk_rows`` records. Raises :class:`InputFormatError` naming
    file, line and column on a malformed line, a non-numeric value, a truncated last line or a
    line longer than ``max_line_bytes``.
    """
    return _prefetch(_records(path, layout, chunk_rows, max_line_bytes), PREFETCH_CHUNKS)


def _prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run ``items`` on a thread, ``depth`` items ahead of the consumer (0: inline).

    Parsing (pyarrow, GIL released) then overlaps validation and the Parquet encoding of the
    previous chunks. Items arrive in order; an exception on the thread is raised here, after
    the items produced before it. Closing this generator early stops the thread.
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # re-raised on the consumer's thread
            q.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="fadecast-csv", daemon=True)
    thread.start()
    try:
        while True:
            tag, value = q.get()
            if tag == "end":
                return
            if tag == "error":
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)
        thread.join()


def _records(path: Path, layout: CsvLayout, chunk_rows: int, max_line_bytes: int
             ) -> Iterator[tuple["Columns", np.ndarray]]:
    """The body of :func:`stream_records` (runs on the prefetch thread)."""
    name = Path(path).name
    skip = layout.data_line - 1
    with open_stream(path, layout.gzip) as stream:
        pieces = _Pieces(stream, max_line_bytes, name)
        base = 0
        if skip:
            got = pieces.take(skip, 0, exact=True)
            if got is None:
                return
            header, _ = got
            _check_line_lengths(header, 0, max_line_bytes, name)
            base = int(np.count_nonzero(np.frombuffer(header, dtype=np.uint8) == 10))
            if base < skip:
                return
        while (got := pieces.take(chunk_rows, base, exact=False)) is not None:
            piece, final = got
            consumed = 0
            for frame, lines, used in _parse_piece(piece, base, layout, chunk_rows,
                                                   max_line_bytes, name, final, pieces):
                consumed = used
                if len(frame):
                    yield frame, lines
            pieces.note(len(piece), consumed)
            base += consumed


def cut_short(name: str, found: str, row: int | None = None) -> InputFormatError:
    """The error of a file whose data stop before its end (a gzip stream cut short in a copy
    or download, a failing read): ``found`` says what the decompressor or the disk said."""
    return InputFormatError("the file's data cannot be read to its end", code="unreadable_data",
                            file=name, row=row, expected="a complete file (a gzip file: one "
                            "that was not cut short in a copy or download)", found=found)


class _Pieces:
    """Cut a byte stream into pieces of whole lines, sized from the bytes per line seen so far.

    Reads land in one reused buffer behind the carried partial line, so data is copied once;
    pieces are cut at the last line end of a read (``bytes.rfind``: no per-byte Python or numpy
    pass). A line longer than ``limit`` bytes without a line end is refused as soon as it is
    seen, so memory stays bounded even for a file without line ends.
    """

    def __init__(self, stream: pa.NativeFile, limit: int, name: str) -> None:
        self.stream, self.limit, self.name = stream, limit, name
        self.carry = b""
        self.eof = False
        self.line_bytes = 128.0
        self.pool = bytearray(0)
        self.read_bytes = 0  # bytes of data read so far (decompressed)

    def note(self, nbytes: int, lines: int) -> None:
        """Record the size of a consumed piece (sizes the next read)."""
        if lines > 0:
            self.line_bytes = max(1.0, nbytes / lines)

    def take(self, want: int, base: int, *, exact: bool
             ) -> tuple[memoryview, bool] | None:
        """The next piece of about ``want`` lines (exactly at most ``want`` when ``exact``)
        and whether it ends the stream; None at the end. ``base`` = lines before it."""
        factor = 1.02 if exact else 0.98  # a byte-cut piece stays just under ``want`` lines
        size = int(max(min(want * self.line_bytes * factor, MAX_CHUNK_BYTES), 64 << 10,
                       self.limit + 2))
        carry = self.carry
        need = max(size, len(carry))  # a large carry (after an exact cut) is used up first
        if len(self.pool) < need:
            self.pool = bytearray(need)
        view = memoryview(self.pool)
        view[:len(carry)] = carry
        got = len(carry)
        while not self.eof and got < need:  # fill: a short read at the end is seen as EOF now
            try:
                k = self.stream.readinto(view[got:need])
            except OSError as exc:  # a truncated or corrupt gzip stream, a failing disk
                raise cut_short(self.name, f"{exc} after {self.read_bytes:,} bytes of "
                                           "data") from exc
            self.read_bytes += k
            if k == 0:
                self.eof = True
                break
            got += k
        if got == 0:
            return None
        if self.eof and got <= size:
            cut = got
        else:
            window = min(got, size)
            cut = self.pool.rfind(b"\n", 0, window) + 1
            if cut == 0 or window - cut > self.limit + 1:
                raise InputFormatError(
                    "line too long", code="line_too_long", file=self.name,
                    row=base + self.pool.count(b"\n", 0, cut) + 1,
                    expected=f"at most {self.limit} bytes per line",
                    found=f"more than {self.limit} bytes")
        if exact:
            nl = np.flatnonzero(np.frombuffer(self.pool, dtype=np.uint8, count=cut) == 10)
            if len(nl) >= want and int(nl[want - 1]) + 1 < cut:
                cut = int(nl[want - 1]) + 1
        self.carry = bytes(view[cut:got])
        return view[:cut], self.eof and not self.carry


def _parse_piece(piece: memoryview, base: int, layout: CsvLayout, chunk_rows: int, limit: int,
                 name: str, final: bool, pieces: _Pieces
                 ) -> Iterator[tuple["Columns", np.ndarray, int]]:
    """Parse one piece: ``(columns, line_numbers, lines consumed so far)`` per chunk.

    Fast path: when every line is one record (no blank line, no over-long line, no bare
    ``\\r``; checked without a per-byte numpy pass), line numbers are a running counter.
    Otherwise (or on any parse error) the exact path indexes every newline, and explains
    errors by line and column.
    """
    fast = _parse_fast(piece, base, layout, limit, final, pieces)
    if fast is not None:
        table = fast
        n = table.num_rows
        for start in range(0, n, chunk_rows):
            part = table.slice(start, chunk_rows)
            lines = np.arange(base + 1 + start, base + 1 + start + part.num_rows,
                              dtype=np.int64)
            yield Columns(part.combine_chunks()), lines, start + part.num_rows
        return
    nl = np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == 10)
    tail = final and (not len(nl) or int(nl[-1]) + 1 < len(piece))  # a last line without end
    n_lines = len(nl) + int(tail)
    for used in range(0, n_lines, chunk_rows):
        stop = min(used + chunk_rows, n_lines)
        begin = int(nl[used - 1]) + 1 if used else 0
        cut = int(nl[stop - 1]) + 1 if stop <= len(nl) else len(piece)
        frame, lines = _parse_chunk(piece[begin:cut], base + used, layout, limit, name,
                                    final and cut == len(piece),
                                    nl[used:min(stop, len(nl))] - begin)
        yield frame, lines, stop


def _parse_fast(piece: memoryview, base: int, layout: CsvLayout, limit: int, final: bool,
                pieces: _Pieces) -> pa.Table | None:
    """The piece parsed with one record per line, or None when the exact path is needed."""
    wanted = list(dict.fromkeys(layout.numeric + layout.text))
    if len(layout.names) < 2 or not wanted or not len(piece):
        return None
    if final and any(n.startswith("_unnamed_") for n in layout.names):
        return None
    pool, end = pieces.pool, len(piece)  # ``piece`` is pool[:end]
    # CR-LF files (Windows exports): pyarrow also ends a record at a bare CR, so the record
    # count must then equal the LF count (one C-speed count); LF-only files skip it
    newlines = pool.count(b"\n", 0, end) if pool.find(b"\r", 0, end) >= 0 else None
    s = 0
    while end - s > limit + 1:  # every line within ``limit``: jump from line end to line end
        r = pool.rfind(b"\n", s, s + limit + 1)
        if r < 0:
            return None
        s = r + 1
    if final and end - s > limit and pool.find(b"\n", s, end) < 0:
        return None
    types = {c: pa.float64() for c in layout.numeric}
    types.update({c: pa.string() for c in layout.text})
    try:
        table = _read(piece, layout, wanted, types, max(_BLOCK_BYTES, 2 * limit + 2),
                      empty_lines=True)
    except pa.ArrowInvalid:
        return None
    if table.num_rows and table.column(0).null_count:
        return None  # maybe a blank line (read as an all-null record): the exact path decides
    if newlines is not None and table.num_rows != newlines + int(pool[end - 1] != 10):
        return None  # a bare CR split a line: the exact path numbers lines by LF only
    return table


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
        text = str(exc)
        if not (layout.lenient and ("conversion error" in text or "invalid value" in text)):
            _explain(exc, chunk, base, layout, wanted, name, starts, ends, final)
            raise  # pragma: no cover - _explain always raises
        table = _lenient_table(chunk, layout, wanted, limit)
    if table.num_rows != len(lines):
        _refuse_bare_cr(np.frombuffer(chunk, dtype=np.uint8), base, starts, name)
        raise InputFormatError(
            "multi-line quoted fields are not supported", code="multiline_field", file=name,
            row=int(lines[0]) if len(lines) else base + 1,
            expected=f"{len(lines)} records (one per line)", found=f"{table.num_rows} records")
    return Columns(table.combine_chunks()), lines.astype(np.int64, copy=False)


def _lenient_table(chunk: bytes, layout: CsvLayout, wanted: list[str], limit: int) -> pa.Table:
    """The chunk with non-numeric cells as NaN and column ``NOT_NUMERIC`` naming the first
    such cell of each row (error path of the skip-row policy only)."""
    as_text = _read(chunk, layout, wanted, {c: pa.string() for c in wanted},
                    max(len(chunk) + 1, _BLOCK_BYTES, 2 * limit + 2)).to_pandas()
    flag = pd.Series(pd.NA, index=as_text.index, dtype=object)
    arrays = {}
    for col in wanted:
        raw = as_text[col]
        if col not in layout.numeric:
            arrays[col] = pa.array(raw, type=pa.string(), from_pandas=True)
            continue
        values = raw.str.replace(",", ".", regex=False) if layout.decimal_comma else raw
        num = pd.to_numeric(values.str.strip(), errors="coerce")
        bad = (raw.notna().to_numpy() & num.isna().to_numpy()
               & ~raw.str.strip().str.lower().isin(["nan", "-nan"])
               .to_numpy(dtype=bool, na_value=False))
        first = bad & flag.isna().to_numpy()
        flag[first] = col + "=" + raw[first].str.slice(0, 40)
        arrays[col] = pa.array(num.to_numpy(dtype=np.float64, na_value=np.nan),
                               type=pa.float64())
    arrays[NOT_NUMERIC] = pa.array(flag, type=pa.string(), from_pandas=True)
    return pa.table(arrays)


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


def _read(chunk: bytes | memoryview, layout: CsvLayout, wanted: list[str],
          types: dict[str, pa.DataType], block: int = _BLOCK_BYTES, *,
          empty_lines: bool = False) -> pa.Table:
    encoding = layout.encoding
    if encoding not in ("utf-8", "latin-1"):
        # a CJK code page (sniff.legacy_encoding): decoded here with replacement, as the head
        # was — pyarrow's own transcoding is strict, and one stray byte (a comment field, a
        # last line cut mid-character while the cycler writes) must not abort the read.
        # Delimiters and line ends are ASCII, never a trail byte: lines stay where they were
        chunk = bytes(chunk).decode(encoding, errors="replace").encode("utf-8")
        encoding = "utf-8"
    read = pacsv.ReadOptions(column_names=list(layout.names), encoding=encoding,
                             block_size=block,
                             use_threads=True)
    parse = pacsv.ParseOptions(delimiter=layout.delimiter, newlines_in_values=False,
                               quote_char=layout.quote_char,
                               ignore_empty_lines=not empty_lines)
    convert = pacsv.ConvertOptions(
        include_columns=wanted, column_types=types, null_values=[""],
        strings_can_be_null=True, quoted_strings_can_be_null=True,
        decimal_point="," if layout.decimal_comma else ".")
    return pacsv.read_csv(pa.BufferReader(pa.py_buffer(chunk)), read_options=read,
                          parse_options=parse,
                          convert_options=convert)


def _refuse_bare_cr(arr: np.ndarray, base: int, starts: np.ndarray, name: str) -> None:
    """Raise for a CR not followed by LF (pyarrow ends a record there, we count LF lines)."""
    cr = np.flatnonzero(arr[:-1] == 13)
    bare = cr[arr[cr + 1] != 10]
    if len(bare):
        line = int(np.searchsorted(starts, bare[0], side="right"))  # 1-based within chunk
        raise InputFormatError(
            "carriage return inside a line (old Mac line ends or a stray CR)",
            code="bare_carriage_return", file=name, row=base + line,
            expected="lines ending in LF or CR LF", found="a CR not followed by LF")


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
    _refuse_bare_cr(arr, base, starts, name)
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
                    "non-numeric value" + decimal_mark_hint(str(raw.iloc[i]), layout),
                    code="not_numeric", file=name, row=int(lines[i]),
                    column=col, expected="a number",
                    found=repr(str(raw.iloc[i])[:40])) from None
    raise InputFormatError(f"cannot parse as delimited text: {text[:200]}", code="parse_error",
                           file=name, row=base + 1) from None
