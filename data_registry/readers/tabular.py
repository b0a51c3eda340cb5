"""One reader for the many vendor exports that are "a preamble, then a delimited table with
human headers and units": a :class:`TabularSpec` (pure data) per vendor says where the header
is, how headers map to canonical columns and what the vendor's conventions are.

Vendor helper targets (not canonical, removed after conversion):

* ``_state`` — a step state/type text column, for the current sign and the counter split;
* ``_capacity_ah`` / ``_energy_wh`` — ONE counter for both directions, split by state (or by the
  sign of the current when ``split_by = "current"``);
* ``_time_text`` — elapsed time written as ``HH:MM:SS`` (``time_text = "duration"``) or as a
  wall-clock timestamp (``"datetime"``: seconds since the first row).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_registry.errors import InputFormatError
from data_registry.readers.conventions import signed_current, split_counter, state_sense
from data_registry.readers.csv_stream import MAX_LINE_BYTES, CsvLayout
from data_registry.readers.headers import match_headers
from data_registry.readers.sniff import Head
from data_registry.readers.source import (Mapped, Source, csv_source, layout_from_head,
                                          refuse_unparsed)
from data_registry.schema import TABLES
from data_registry.units import parse_duration

TEXT_TARGETS = {"_state", "_time_text", "measurement_id"}


@dataclass(frozen=True)
class TabularSpec:
    """Everything vendor-specific about one delimited export (data, no code paths)."""

    format_name: str
    kind: str
    header: Callable[[Head], int | None]
    stems: dict[str, str]
    exact: dict[str, tuple[str, float]] = field(default_factory=dict)
    delimiter: str | None = None
    time_text: str | None = None  # None | "duration" | "datetime"
    split_by: str = "state"       # how a single counter is split: "state" | "current"
    charge_states: tuple[str, ...] = ()
    discharge_states: tuple[str, ...] = ()
    quote_char: str | bool = '"'
    unsigned: tuple[str, ...] = ()  # canonical counters the vendor writes signed: take |x|
    truncate_header: bool = False  # data rows have fewer fields than the header (Maccor EIS)
    reader_version: str = "1"
    description: str = ""

    def detect(self, head: Head) -> bool:
        """True when the header line is found in the head."""
        return head.is_text and self.header(head) is not None


def header_with(*required: str, limit: int = 80, delimiter: str | None = None
                ) -> Callable[[Head], int | None]:
    """A header finder: the first line (within ``limit``) holding all ``required`` fields."""
    need = {r.lower() for r in required}

    def find(head: Head) -> int | None:
        for i, line in enumerate(head.lines[:limit]):
            fields = {f.strip().strip('"').strip().lower()
                      for f in line.split(delimiter or head.delimiter(line))}
            if need <= fields:
                return i
        return None
    return find


def _columns(spec: TabularSpec, names: tuple[str, ...], file: str, row: int) -> list[Mapped]:
    canonical = [c for c in TABLES[spec.kind].names if c != "cell_id"]
    exact = [Mapped(n, *spec.exact[n], spec.exact[n][0] in TEXT_TARGETS)
             for n in names if n in spec.exact]
    rest = [n for n in names if n not in spec.exact]
    mapped = match_headers(rest, canonical, spec.stems, file, row)
    out: dict[str, Mapped] = {m.target: m for m in exact}
    for m in mapped:
        if m.target not in out:
            out[m.target] = Mapped(m.source, m.target, m.factor, m.target in TEXT_TARGETS)
    if "_time_text" in out and "test_time_second" not in out:
        out["test_time_second"] = Mapped(out["_time_text"].source, "test_time_second", 0.0,
                                         True)
    for counter, (a, b) in (("_capacity_ah", _CAPACITY), ("_energy_wh", _ENERGY)):
        if counter in out:
            for t in (a, b):
                out.setdefault(t, Mapped(out[counter].source, t, 0.0))
    return list(out.values())


_CAPACITY = ("charging_capacity_ah", "discharging_capacity_ah")
_ENERGY = ("charging_energy_wh", "discharging_energy_wh")


def open_tabular(spec: TabularSpec, head: Head, chunk_rows: int,
                 max_line_bytes: int = MAX_LINE_BYTES, metadata: dict | None = None,
                 extra_post: Callable | None = None, add_measurement_id: bool = False
                 ) -> Source:
    """Open ``head`` as described by ``spec`` (see module doc)."""
    i = spec.header(head)
    if i is None:
        raise InputFormatError(f"no {spec.format_name} header line found", code="no_header",
                               file=head.name, expected=spec.description or spec.format_name,
                               found=f"first line {head.lines[0][:80]!r}" if head.lines else "")
    layout, warns = layout_from_head(head, i, delimiter=spec.delimiter)
    if spec.quote_char is not True and spec.quote_char != '"':
        names = tuple(n.strip('"') for n in layout.names)
        layout = CsvLayout(**{**layout.__dict__, "names": names})
    if spec.truncate_header:
        first = next((ln for ln in head.lines[i + 1:i + 6] if ln.strip()), "")
        n = len(first.split(layout.delimiter))
        layout = CsvLayout(**{**layout.__dict__, "names": layout.names[:n]})
    columns = _columns(spec, layout.names, head.name, i + 1)
    if add_measurement_id:
        columns.append(Mapped(columns[0].source, "measurement_id", 1.0, True))
    by_target = {m.target: m for m in columns}
    start: list[float] = []
    stamps = None  # the wall-clock layout, decided once for the whole file
    if spec.time_text == "datetime" and "_time_text" in by_target:
        from data_registry.readers.timestamps import column_texts, decided_layout

        j = layout.names.index(by_target["_time_text"].source)
        rows = [ln.split(layout.delimiter) for ln in head.lines[layout.data_line - 1:][:20]
                if ln.strip()]
        stamps = decided_layout([r[j] for r in rows if j < len(r)], lambda: column_texts(
            head, j, layout.delimiter, layout.data_line, max_line_bytes))

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        if "_time_text" in by_target:
            src = by_target["_time_text"].source
            frame["test_time_second"] = _time_seconds(spec, raw[src], frame, head.name, src,
                                                      start, stamps)
        sense = None
        if "_state" in by_target:
            sense = state_sense(raw[by_target["_state"].source], spec.charge_states,
                                spec.discharge_states)
            frame["current_ampere"] = signed_current(frame["current_ampere"].to_numpy(),
                                                     sense)
        if spec.split_by == "current":
            sense = np.sign(frame["current_ampere"].to_numpy())
        for counter, (a, b) in (("_capacity_ah", _CAPACITY), ("_energy_wh", _ENERGY)):
            if counter in frame:
                values = frame.pop(counter).to_numpy()
                if sense is not None and by_target[a].factor == 0.0:
                    frame[a], frame[b] = split_counter(values, sense)
        for col in spec.unsigned:
            if col in frame:
                frame[col] = np.abs(frame[col].to_numpy())
        if extra_post is not None:
            frame = extra_post(frame, raw, sink)
        return frame

    return csv_source(head, format_name=spec.format_name, reader_version=spec.reader_version,
                      kind=spec.kind, layout=_quoting(layout, spec), columns=columns,
                      chunk_rows=chunk_rows, metadata=metadata or {}, warnings=warns,
                      post=post, max_line_bytes=max_line_bytes)


def _quoting(layout: CsvLayout, spec: TabularSpec) -> CsvLayout:
    return CsvLayout(**{**layout.__dict__, "quote_char": spec.quote_char})


def _time_seconds(spec: TabularSpec, text: pd.Series, frame: pd.DataFrame, file: str,
                  column: str, start: list[float], stamps: str | None = None) -> np.ndarray:
    """Seconds of a text clock: durations, or wall-clock stamps counted from the first row
    (in the file's decided ``stamps`` layout, :mod:`data_registry.readers.timestamps`; a
    layout it does not know is left to pandas' inference)."""
    if spec.time_text == "duration":
        secs = parse_duration(text)
    elif stamps is not None:
        from data_registry.readers.timestamps import elapsed_seconds

        secs = elapsed_seconds(text, stamps, start)
    else:
        clean = text.astype("string").str.strip()
        stamps = pd.to_datetime(clean, errors="coerce")  # format inferred from the first row
        if stamps.isna().sum() > clean.isna().sum():
            stamps = pd.to_datetime(clean, errors="coerce", format="mixed")
        ns = stamps.to_numpy(dtype="datetime64[ns]").astype("int64").astype(np.float64)
        ns[stamps.isna().to_numpy()] = np.nan
        if not start:
            first = ns[np.isfinite(ns)]
            start.append(first[0] if len(first) else 0.0)
        secs = (ns - start[0]) / 1e9
    what = ("HH:MM:SS" if spec.time_text == "duration" else "a date and time" + (
        f" in the file's layout ({stamps.replace('_', ' ')})" if stamps else ""))
    refuse_unparsed(secs, text, frame, file=file, column=column, message="unreadable time",
                    code="not_time", expected=what)
    return secs


def preamble_metadata(head: Head, upto: int, sep: str = ":") -> dict[str, str]:
    """``key: value`` pairs of the preamble lines before line ``upto`` (0-based)."""
    meta = {}
    for line in head.lines[:upto]:
        key, s, value = line.partition(sep)
        value = value.strip().strip(",;\t").strip()
        if s and key.strip() and value:
            meta[key.strip().strip('"').lower().replace(" ", "_")[:60]] = value[:200]
    return meta
