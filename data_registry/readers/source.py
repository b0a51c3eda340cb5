"""``Source``: an opened file that yields validated canonical chunks, and the CSV plumbing
every delimited-text reader shares (layout from the head, vendor column map → canonical)."""
from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from data_registry.errors import FadecastError, IngestWarning, InputFormatError, ValidationError
from data_registry.readers.csv_stream import (DECIMAL_COMMA, DECIMAL_POINT, MAX_LINE_BYTES,
                                              NOT_NUMERIC, CsvLayout, stream_records)
from data_registry.readers.sniff import UTF16_NOTE, Head
from data_registry.schema import TABLES
from data_registry.validate import LOOKAHEAD, make_validator

KINDS = ("samples", "cycles", "eis")


@dataclass
class Source:
    """One opened raw file.

    ``chunks()`` yields canonical, validated DataFrames in file order (no ``cell_id``;
    ``source_row`` = 1-based line of the raw file, or record number for binary formats).
    ``warnings`` holds the reader's warnings and, once ``chunks()`` is exhausted, the
    validator's (one per code, with a count). ``companions`` lists the sidecar files the
    reader read beside the main file (Arbin ``_Metadata.csv``, BioLogic ``.mpl`` …); the
    store keeps them verbatim with the main file.
    """

    path: Path
    format_name: str
    reader_version: str
    kind: str
    metadata: dict = field(default_factory=dict)
    warnings: list[IngestWarning] = field(default_factory=list)
    produce: Callable[[list[IngestWarning]], Iterator[pd.DataFrame]] | None = None
    _open_warnings: list[IngestWarning] = field(default_factory=list, repr=False)
    companions: list[Path] = field(default_factory=list)
    #: "raise" (refuse at the first bad row) or "skip-row" (drop bad rows, warning row_skipped)
    on_error: str = "raise"
    #: the file name errors and warnings give (an upload's client file name); default path.name
    display_name: str | None = None
    #: EIS only: "auto" (detect a stored −Z″), "im" or "minus_im"
    eis_sign: str = "auto"
    #: EIS only: the reader settled the sign itself (its chunks hold Im(Z)); ``open_source``
    #: then leaves ``eis_sign`` as the reader set it
    eis_sign_decided: bool = False
    #: what must live as long as the source: the head of a UTF-16 file's UTF-8 transcription
    #: (its temporary folder goes with it)
    keep_alive: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        self._open_warnings = list(self.warnings)

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Yield validated canonical chunks (re-iterable: each call re-reads the file)."""
        if not self.display_name or self.display_name == self.path.name:
            return self._chunks()
        return self._renamed_chunks()

    def _renamed_chunks(self) -> Iterator[pd.DataFrame]:
        """:meth:`_chunks` with errors and warnings naming ``display_name``."""
        own = (self.path.name, str(self.path))
        try:
            yield from self._chunks()
        except FadecastError as exc:
            if exc.file in own:
                exc.file = self.display_name
            raise
        finally:
            self.warnings[:] = [replace(w, file=self.display_name) if w.file in own else w
                                for w in self.warnings]

    def _chunks(self) -> Iterator[pd.DataFrame]:
        sink = list(self._open_warnings)
        self.warnings = sink
        validator = make_validator(self.kind, self.path.name, self.on_error, self.eis_sign)
        order = _columns(self.kind)
        n_rows = 0
        raw_chunks = _with_lookahead(self._named(self.produce(sink)), LOOKAHEAD)
        for raw, nxt in raw_chunks:
            n_rows += len(raw)
            look = (nxt["test_time_second"].to_numpy()[:LOOKAHEAD]
                    if nxt is not None and "test_time_second" in nxt.columns else None)
            out = validator.check(raw, look)
            if len(out):
                cols = [c for c in order if c in out.columns]
                yield (out if list(out.columns) == cols else out[cols]).reset_index(drop=True)
        if n_rows == 0:
            raise InputFormatError("no data rows (header only?)", code="no_data",
                                   file=self.path.name, expected="at least one data row",
                                   found="none")
        sink.extend(validator.warnings)

    def _named(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """The reader's chunks, with a parser's or decompressor's own failure (a damaged
        file: bytes that are not text, a cut gzip stream, a row the CSV parser cannot split)
        turned into an :class:`InputFormatError` naming the file and what was found — the
        readers name the errors they expect; this names the ones they cannot foresee."""
        import pyarrow as pa

        try:
            yield from frames
        except FadecastError:
            raise
        except (pa.ArrowInvalid, EOFError, UnicodeDecodeError, OSError) as exc:
            raise InputFormatError(
                "the file cannot be read as the format it was detected as (damaged or cut "
                "short?)", code="unparseable", file=self.path.name,
                expected=f"a complete {self.format_name} file as the instrument writes it",
                found=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                      [:240]) from exc

    def read(self) -> pd.DataFrame:
        """All chunks concatenated (for small files and tests)."""
        parts = list(self.chunks())
        if not parts:
            return pd.DataFrame(columns=_columns(self.kind))
        return pd.concat(parts, ignore_index=True)


def _with_lookahead(frames: Iterator[pd.DataFrame], need: int
                    ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame | None]]:
    """Pair each chunk with the next one (tiny chunks are merged so the next one has at least
    ``need`` rows, unless it is the last), so validators see ahead without copying chunks."""
    it = iter(frames)
    cur = next(it, None)
    while cur is not None:
        nxt = next(it, None)
        while nxt is not None and len(nxt) < need:
            more = next(it, None)
            if more is None:
                break
            nxt = pd.concat([nxt, more], ignore_index=True)
        yield cur, nxt
        cur = nxt


def _columns(kind: str) -> list[str]:
    """Output column order: ``source_row`` then the table's columns (no ``cell_id``)."""
    return ["source_row"] + [c for c in TABLES[kind].names if c not in ("cell_id", "source_row")]


_DECIMAL_COMMA = DECIMAL_COMMA


#: data lines of the head searched for a decimal comma (Excel writes ``1;4947`` on the first
#: line of a column whose later values are ``4832,61``: one line is not enough)
DECIMAL_COMMA_SAMPLE = 200


def decimal_comma_line(head: Head, data_index: int, delimiter: str,
                       limit: int = DECIMAL_COMMA_SAMPLE) -> int | None:
    """0-based head line of the first number written with a decimal comma (``4832,61``)
    among the ``limit`` lines from ``data_index``, or None: never for a ``,`` delimiter, nor
    when the sample holds at least as many numbers with a decimal point (``4.5``), so a text
    column such as ``1,2`` does not turn a decimal-point file into a decimal-comma one."""
    if delimiter == ",":
        return None
    first, commas, points = None, 0, 0
    for i in range(data_index, min(data_index + limit, len(head.lines))):
        fields = [f.strip().strip('"').strip() for f in head.lines[i].split(delimiter)]
        n = sum(1 for f in fields if "," in f and _DECIMAL_COMMA.match(f))
        points += sum(1 for f in fields if "." in f and DECIMAL_POINT.match(f))
        commas += n
        if n and first is None:
            first = i
    return first if commas > points else None


def layout_from_head(head: Head, header_index: int, *, skip_after_header: int = 0,
                     delimiter: str | None = None) -> tuple[CsvLayout, list[IngestWarning]]:
    """Layout of a delimited table whose header is head line ``header_index`` (0-based)."""
    line = head.lines[header_index]
    d = delimiter or head.delimiter(line)
    names = tuple(f.strip().strip('"').strip() for f in line.split(d))
    warns: list[IngestWarning] = []
    data_index = header_index + 1 + skip_after_header
    first = next((ln for ln in head.lines[data_index:data_index + 5] if ln.strip()), None)
    if first is not None and len(first.split(d)) > len(names):
        # trailing delimiters on data lines (Maccor, PEC): name the extra, empty fields
        names += tuple(f"_unnamed_{k}" for k in range(len(names), len(first.split(d))))
    decimal_comma = False
    at = decimal_comma_line(head, data_index, d)
    if at is not None:
        decimal_comma = True
        warns.append(IngestWarning("decimal_comma", "numbers use a decimal comma; read as "
                                   "decimal point", head.name, at + 1))
    if UTF16_NOTE in head.notes:
        warns.append(IngestWarning("utf16_encoding", "file is UTF-16 text; read from its UTF-8 "
                                   "transcription (the stored raw file is the original)",
                                   head.name))
    if head.encoding == "latin-1":
        warns.append(IngestWarning("latin1_encoding", "file is not valid UTF-8; decoded as "
                                   "latin-1 (Windows export?)", head.name))
    elif head.encoding != "utf-8":
        warns.append(IngestWarning("legacy_encoding", f"file is not valid UTF-8; decoded as "
                                   f"{head.encoding} (its header words read in that code page)",
                                   head.name))
    layout = CsvLayout(names=names, data_line=data_index + 1,
                       delimiter=d, encoding=head.encoding, decimal_comma=decimal_comma,
                       gzip=head.gzip)
    return layout, warns


def brief_fields(fields, limit: int = 8, width: int = 40) -> str:
    """A header or row as an error echoes it: the first ``limit`` fields (each cut to
    ``width`` characters), then ``… (N more)`` — a 10 000-column row stays readable."""
    fields = list(fields)
    shown = [f if len(f) <= width else f[:width - 1] + "…" for f in map(str, fields[:limit])]
    text = "[" + ", ".join(repr(f) for f in shown)
    if len(fields) > limit:
        return text + f", … ({len(fields) - limit} more)]"
    return text + "]"


@dataclass(frozen=True)
class Mapped:
    """One vendor column mapped to a canonical one: ``canonical = raw * factor``."""

    source: str
    target: str
    factor: float = 1.0
    text: bool = False


#: who provides the record chunks of the file a CSV reader is about to stream, on this thread
#: or task: None = the file itself (:func:`stream_records`). ``data_registry.multi_cell`` sets
#: it so ONE parse of a many-cells table feeds each cell's own reader; the provider returns
#: None for a file it does not hold, which is then streamed as always.
RECORD_FEED: contextvars.ContextVar[Callable[..., Iterator | None] | None] = \
    contextvars.ContextVar("fadecast_record_feed", default=None)


def _records(path: Path, layout: CsvLayout, *, chunk_rows: int,
             max_line_bytes: int) -> Iterator:
    """The record chunks of ``path``: from :data:`RECORD_FEED` when it holds them, else
    streamed from the file."""
    feed = RECORD_FEED.get()
    routed = feed(path, layout, chunk_rows, max_line_bytes) if feed is not None else None
    return routed if routed is not None else stream_records(
        path, layout, chunk_rows=chunk_rows, max_line_bytes=max_line_bytes)


def filtered_records(path: Path, layout: CsvLayout, rows: "RowFilter | None", *,
                     chunk_rows: int, max_line_bytes: int) -> Iterator:
    """:func:`_records` with a many-cell table's row filter applied (chunks left empty by it
    are skipped; ``lines`` stay the raw file's)."""
    for raw, lines in _records(path, layout, chunk_rows=chunk_rows,
                               max_line_bytes=max_line_bytes):
        if rows is not None:
            keep = rows(raw, lines)
            if keep is not None:
                raw, lines = raw.filter(keep), lines[keep]
                if not len(lines):
                    continue
        yield raw, lines


def csv_source(head: Head, *, format_name: str, reader_version: str, kind: str,
               layout: CsvLayout, columns: list[Mapped], chunk_rows: int,
               metadata: dict | None = None, warnings: list[IngestWarning] | None = None,
               post: Callable[[pd.DataFrame, pd.DataFrame, list[IngestWarning]],
                              pd.DataFrame] | None = None,
               max_line_bytes: int = MAX_LINE_BYTES, rows: "RowFilter | None" = None) -> Source:
    """A :class:`Source` over a delimited file: stream, map vendor columns, scale units.

    ``post(canonical, raw, sink)`` may adjust each canonical chunk (e.g. a vendor sign
    convention) using the raw vendor columns. ``rows`` (a table of many cells: one cell's
    rows, or the guard that refuses a second cell) sees every raw chunk first and may keep a
    subset of its rows; ``source_row`` stays the raw file's line. Refuses up front when a
    required canonical column has no vendor column.
    """
    mapped = {m.target for m in columns}
    required = [c for c in TABLES[kind].required if c != "cell_id"]
    missing = [c for c in required if c not in mapped]
    if missing:
        raise ValidationError(
            f"missing required column '{missing[0]}' for a {format_name} file",
            code="missing_column", file=head.name, row=layout.data_line - 1,
            column=missing[0], expected=f"a column for each of {required}",
            found=f"header {brief_fields(layout.names)}")
    # factor 0 marks a placeholder that ``post`` fills (a split counter, a parsed time)
    rank = {c: i for i, c in enumerate(_columns(kind))}
    columns = sorted(columns, key=lambda m: rank.get(m.target, len(rank)))  # canonical order
    columns, post = _duration_time(head, layout, columns, post)
    numeric = tuple(dict.fromkeys(m.source for m in columns if not m.text and m.factor != 0.0))
    text = tuple(dict.fromkeys([*(m.source for m in columns if m.text and m.factor != 0.0),
                                *(rows.columns if rows is not None else ())]))
    layout = CsvLayout(**{**layout.__dict__, "numeric": numeric, "text": text})
    holder: list[Source] = []

    def produce(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        lenient = bool(holder) and holder[0].on_error == "skip-row"
        use = CsvLayout(**{**layout.__dict__, "lenient": True}) if lenient else layout
        if rows is not None:
            rows.reset()  # chunks() may be called again: each pass counts afresh
        for raw, lines in filtered_records(head.path, use, rows, chunk_rows=chunk_rows,
                                           max_line_bytes=max_line_bytes):
            out = {"source_row": lines}
            for m in columns:
                if m.text or m.factor == 0.0 or m.target in out:
                    continue
                v = raw.numpy(m.source)
                out[m.target] = v * m.factor if m.factor != 1.0 else v
            frame = pd.DataFrame(out, copy=False)
            if post is not None:
                frame = post(frame, raw, sink)
            if lenient and NOT_NUMERIC in raw:
                frame["_not_numeric"] = raw[NOT_NUMERIC].to_numpy(dtype=object)
            yield frame
        if rows is not None:
            rows.finish(holder[0].metadata if holder else {})

    source = Source(path=head.path, format_name=format_name, reader_version=reader_version,
                    kind=kind, metadata=dict(metadata or {}), warnings=list(warnings or []),
                    produce=produce)
    holder.append(source)
    return source


class RowFilter:
    """What :func:`csv_source` asks of a row filter (see
    :class:`data_registry.readers.cell_column.CellRows`): the text ``columns`` it reads, a
    call per raw chunk returning a bool mask of the rows to keep (or None: all), and
    ``finish(metadata)`` once the file is read (it may raise, or record what it kept)."""

    columns: tuple[str, ...] = ()

    def reset(self) -> None:  # pragma: no cover
        return None

    def __call__(self, raw, lines: np.ndarray) -> np.ndarray | None:  # pragma: no cover
        return None

    def finish(self, metadata: dict) -> None:  # pragma: no cover
        return None


def _first_values(head: Head, layout: CsvLayout) -> dict[str, str]:
    """Header name → text of the first non-empty data line in the head."""
    start = max(layout.data_line - 1, 0)
    for line in head.lines[start:start + 5]:
        if line.strip():
            return dict(zip(layout.names, (f.strip().strip('"').strip()
                                           for f in line.split(layout.delimiter))))
    return {}


def row_chunks(frame: pd.DataFrame, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """``frame`` in slices of at most ``chunk_rows`` rows (each re-indexed from 0)."""
    step = max(int(chunk_rows), 1)
    for lo in range(0, len(frame), step):
        yield frame.iloc[lo:lo + step].reset_index(drop=True)


def preamble_text(lines: list[str], strip: str = "", limit: int = 2000) -> str:
    """The non-blank lines of a file's preamble joined with `` | `` (each stripped of blanks
    and of the leading ``strip`` characters, e.g. BaSyTec's ``~``), cut to ``limit`` chars."""
    parts = (x.strip().lstrip(strip).strip().strip('"').strip() for x in lines)
    return " | ".join(p for p in parts if p)[:limit]


def refuse_unparsed(parsed: np.ndarray, text: pd.Series, frame: pd.DataFrame, *, file: str,
                    column: str, message: str, code: str, expected: str,
                    where: Callable[[int], str] | None = None) -> None:
    """Raise :class:`InputFormatError` at the first value of ``text`` that was given (not
    empty) but did not parse (NaN in ``parsed``), naming its ``source_row``; ``where(row)``
    may add where that row lives (an Excel sheet row)."""
    bad = np.isnan(parsed) & text.notna().to_numpy()
    if not bad.any():
        return
    k = int(np.argmax(bad))
    row = int(frame["source_row"].iloc[k])
    found = repr(str(text.iloc[k]))
    raise InputFormatError(message, code=code, file=file, row=row, column=column,
                           expected=expected, found=found + (f" ({where(row)})" if where else ""))


def _duration_time(head: Head, layout: CsvLayout, columns: list[Mapped], post):
    """A numeric elapsed-time column whose first value is written as a duration
    (``HH:MM:SS``, ``1d 02:03:04``, ``1.02:03:04``) is read as text and parsed
    (:func:`data_registry.units.parse_duration`), whatever the unit the header names."""
    from data_registry.units import parse_duration

    m = next((c for c in columns if c.target == "test_time_second" and not c.text
              and c.factor != 0.0), None)
    if m is None or ":" not in _first_values(head, layout).get(m.source, ""):
        return columns, post
    columns = [Mapped(c.source, c.target, c.factor, True) if c is m else c for c in columns]

    def parse(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        text = raw[m.source]
        secs = parse_duration(text)
        refuse_unparsed(secs, text, frame, file=head.name, column=m.source,
                        message="unreadable elapsed time", code="not_duration",
                        expected="seconds, or a duration such as '12:03:04', '1d 02:03:04', "
                                 "'1.02:03:04'")
        frame["test_time_second"] = secs
        return frame if post is None else post(frame, raw, sink)
    return columns, parse


def frame_source(head: Head, *, format_name: str, reader_version: str, kind: str,
                 load: Callable[[], pd.DataFrame], columns: list[Mapped], chunk_rows: int,
                 metadata: dict | None = None, warnings: list[IngestWarning] | None = None,
                 post: Callable[[pd.DataFrame, pd.DataFrame, list[IngestWarning]],
                                pd.DataFrame] | None = None) -> Source:
    """A :class:`Source` over a binary format whose library loads the whole table at once.

    ``load()`` runs lazily in ``chunks()``; ``source_row`` is the 1-based record number.
    Columns are mapped and scaled as in :func:`csv_source`, then yielded in ``chunk_rows``
    slices (the validator still streams).
    """
    mapped = {m.target for m in columns}
    required = [c for c in TABLES[kind].required if c != "cell_id"]
    missing = [c for c in required if c not in mapped]
    if missing:
        raise ValidationError(
            f"missing required column '{missing[0]}' for a {format_name} file",
            code="missing_column", file=head.name, column=missing[0],
            expected=f"a column for each of {required}", found=f"{[m.source for m in columns]}")

    def produce(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        table = load()
        for start in range(0, len(table), chunk_rows):
            raw = table.iloc[start:start + chunk_rows]
            out = {"source_row": np.arange(start + 1, start + len(raw) + 1, dtype=np.int64)}
            for m in columns:
                if m.text or m.factor == 0.0 or m.target in out or m.source not in raw:
                    continue
                v = pd.to_numeric(raw[m.source], errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan)
                out[m.target] = v * m.factor if m.factor != 1.0 else v
            frame = pd.DataFrame(out, copy=False)
            if post is not None:
                frame = post(frame, raw.reset_index(drop=True), sink)
            yield frame

    return Source(path=head.path, format_name=format_name, reader_version=reader_version,
                  kind=kind, metadata=dict(metadata or {}), warnings=list(warnings or []),
                  produce=produce)


def flat_metadata(tree: dict, prefix: str = "", limit: int = 60) -> dict[str, str]:
    """Scalar leaves of a nested dict as ``a.b.c → str`` (first ``limit``), for the catalog."""
    out: dict[str, str] = {}

    def walk(node: dict, path: str) -> None:
        for k, v in node.items():
            if len(out) >= limit:
                return
            key = f"{path}.{k}" if path else str(k)
            if isinstance(v, dict):
                walk(v, key)
            elif v not in (None, ""):
                out[prefix + key] = str(v)[:200]
    walk(tree, "")
    return out


def sweep_clock_warning(file: str, clock: str, row: int | None, count: int = 1
                        ) -> IngestWarning:
    """Warning ``eis_cycle_count_unknown`` of a potentiostat spectrum whose ``clock`` column
    counts from the start of its own sweep: no cycle, no test time, and how to state the
    cycle (``--eis-cycle N``, :func:`stated_eis_cycle`)."""
    return IngestWarning(
        "eis_cycle_count_unknown", f"the spectrum carries no cycle number and its {clock} "
        "counts from the start of the sweep, not the cell's test: cycle_count and "
        "test_time_second left unknown (state the cycle with --eis-cycle N)", file, row,
        "cycle_count", count)


def stated_eis_cycle(source: Source, cycle: int) -> None:
    """Place a one-spectrum EIS file at the cycle its user states (``--eis-cycle N``): rows
    without a ``cycle_count`` get ``cycle``. A file whose rows all carry their own cycle keeps
    them (warning ``reader_option_unused``); a file holding several spectra without cycles is
    refused (one stated cycle cannot place them all: ``--eis-every-cycles`` numbers the lines
    of an EIS matrix). The reader's ``eis_cycle_count_unknown`` warning is dropped."""
    if source.kind != "eis":
        note = IngestWarning("reader_option_unused", f"only EIS files use eis_cycle "
                             f"(--eis-cycle); not used for this {source.format_name} file",
                             source.path.name, None, "eis_cycle", 1)
        source.warnings.append(note)
        source._open_warnings.append(note)
        return
    produce = source.produce
    kept = [w for w in source._open_warnings if w.code != "eis_cycle_count_unknown"]
    source._open_warnings[:] = kept
    source.warnings[:] = kept

    def placed(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        ids: set[str] = set()
        filled = 0
        for frame in produce(sink):
            have = (pd.to_numeric(frame["cycle_count"], errors="coerce").to_numpy(float)
                    if "cycle_count" in frame else np.full(len(frame), np.nan))
            free = ~np.isfinite(have)
            if free.any():
                ids.update(map(str, pd.unique(frame["measurement_id"][free])))
                if len(ids) > 1:
                    raise InputFormatError(
                        "--eis-cycle places ONE spectrum at a cycle; this file holds several "
                        "without a cycle", code="invalid_reader_option", file=source.path.name,
                        row=int(frame["source_row"][free].iloc[0]), column="eis_cycle",
                        expected="a file of one spectrum (an EIS matrix: --eis-every-cycles K)",
                        found=f"spectra {sorted(ids)[:3]}")
                frame = frame.assign(cycle_count=np.where(free, float(cycle), have))
                filled += int(free.sum())
            yield frame
        if not filled:
            sink.append(IngestWarning("reader_option_unused", "every spectrum of the file "
                                      "carries its own cycle: --eis-cycle not used",
                                      source.path.name, None, "eis_cycle", 1))

    source.produce = placed
