"""A wall-clock timestamp column as the test clock, for tables that have no elapsed time
(data loggers, home-made scripts: ``Timestamp;U;I;Zyklus`` with ``05.05.2025 14:36:06``).

``test_time_second`` = seconds since the FIRST row's timestamp. The date layout is decided
once, from the head's values, never per chunk:

* ``2025-05-05 14:36:06`` / ``2025-05-05T14:36:06.5`` (ISO: year first);
* ``05.05.2025 14:36:06`` (dots: day first, the European convention);
* ``05/13/2025 …`` (slashes): a field above 12 in the head decides (``13/05/2025`` is day
  first); when every field is ≤ 12 the whole column is read once and the order chosen whose
  clock never steps back and jumps least (a day change read the wrong way jumps a month),
  month first (as US software writes it) when even that cannot tell.

Without an offset in the stamps the time zone is unknown: a daylight-saving change shows as a
one-hour jump (the validator refuses a clock going backwards); ISO stamps with an offset
(``Z``, ``+01:00``) are read in UTC, so such a change reads right. Warning
``test_time_from_timestamps`` says which column and which layout were used.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError
from data_registry.readers.headers import norm, split_header
from data_registry.readers.source import refuse_unparsed

#: normalised headers of a wall-clock column (English, German, French, Spanish, Italian)
TIMESTAMP_STEMS = frozenset({
    "timestamp", "time_stamp", "date_time", "datetime", "date_and_time", "zeitstempel",
    "datum_zeit", "datum_uhrzeit", "datum", "date", "horodatage", "date_heure", "fecha_hora",
    "fecha", "data_ora", "data"})
_ISO = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?"
                  r"\s?(Z|[+-]\d{2}:?\d{2})?$")
_DOTS = re.compile(r"^\d{1,2}\.\d{1,2}\.\d{2,4}[ T]\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?$")
_SLASH = re.compile(r"^(\d{1,2})/(\d{1,2})/\d{2,4}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?"
                    r"(\s?[AaPp][Mm])?$")


def date_layout(values: list[str]) -> str | None:
    """``"iso"``, ``"day_first"`` or ``"month_first"`` for timestamp texts, or None when the
    values are not date-and-time stamps of one layout."""
    vals = [v.strip().strip('"') for v in values if v and v.strip()]
    if not vals:
        return None
    if all(_ISO.match(v) for v in vals):
        return "iso"
    if all(_DOTS.match(v) for v in vals):
        return "day_first"
    slashes = [_SLASH.match(v) for v in vals]
    if all(slashes):
        if any(int(m.group(1)) > 12 for m in slashes):
            return "day_first"
        if any(int(m.group(2)) > 12 for m in slashes):
            return "month_first"
        return "slash_ambiguous"
    return None


def slash_order(values: Iterable[str]) -> str:
    """``"day_first"`` or ``"month_first"`` for slash dates whose head could not tell: a field
    above 12 anywhere decides (the scan stops there); else the order whose clock never steps
    back and whose largest step is smaller (a day change read the wrong way jumps a month);
    else month first."""
    seen = []
    for v in values:
        m = _SLASH.match(v.strip().strip('"')) if v else None
        if m is None:
            continue
        if int(m.group(1)) > 12:
            return "day_first"
        if int(m.group(2)) > 12:
            return "month_first"
        seen.append(v)
    text = pd.Series(seen, dtype="string")
    steps = {}
    for order in ("month_first", "day_first"):
        d = np.diff(stamp_seconds(text, order))
        d = d[np.isfinite(d)]
        steps[order] = (bool((d < 0).any()), float(d.max()) if d.size else 0.0)
    return min(("month_first", "day_first"), key=lambda o: steps[o])


def timestamp_column(names: list[str] | tuple[str, ...], first_values: dict[str, list[str]],
                     all_values: Callable[[str], list[str]] | None = None
                     ) -> tuple[str, str] | None:
    """``(header, layout)`` of the first column named like a timestamp whose head values are
    dates and times of one layout, else None. Slash dates the head cannot order (every field
    ≤ 12) are ordered from the column's values in the whole file (``all_values(header)``,
    :func:`slash_order`)."""
    for h in names:
        if norm(split_header(h)[0]) in TIMESTAMP_STEMS:
            layout = date_layout(first_values.get(h, []))
            if layout == "slash_ambiguous":
                layout = slash_order(all_values(h) if all_values else first_values[h])
            if layout is not None and layout.startswith("slash"):
                layout = "month_first"
            if layout is not None:
                return h, layout
    return None


def unreadable_stamps(names: list[str] | tuple[str, ...], first_values: dict[str, list[str]],
                      file: str) -> None:
    """Raise for a table without a test clock whose timestamp-named column holds values of no
    known layout (naming the column, a value and the layouts read); else return."""
    for h in names:
        if norm(split_header(h)[0]) in TIMESTAMP_STEMS and first_values.get(h):
            raise InputFormatError(
                f"no elapsed-time column, and the timestamp column '{h}' is not in a date "
                "layout fadecast reads", code="not_time", file=file, row=2, column=h,
                expected="'2025-05-05 14:36:06' (ISO, optional offset), '05.05.2025 14:36:06' "
                         "or '05/05/2025 2:36:06 PM' — or an elapsed-time column",
                found=repr(first_values[h][0]))


def column_texts(head, column: int, delimiter: str, data_line: int,
                 max_line_bytes: int) -> Iterator[str]:
    """The text of field ``column`` on every data line (from 1-based ``data_line``), lazily."""
    from data_registry.readers.numeric_lines import iter_lines

    for n, line in iter_lines(head, max_line_bytes):
        if n >= data_line:
            fields = line.rstrip("\r\n").split(delimiter)
            if column < len(fields):
                yield fields[column]


def decided_layout(head, column: int, delimiter: str, data_line: int, max_line_bytes: int,
                   head_values: list[str]) -> str | None:
    """The one date layout of a timestamp column: from ``head_values``, and for slash dates
    the head cannot order, from the column's values in the whole file (:func:`slash_order`);
    None when the head's values are in no known layout."""
    layout = date_layout(head_values)
    if layout == "slash_ambiguous":
        layout = slash_order(column_texts(head, column, delimiter, data_line, max_line_bytes))
    return layout


#: day-first dots or slashes, month-first slashes: (a)(sep)(b)(sep)(year) time [AM|PM]
_PARTS = (r"^\s*\"?(?P<a>\d{1,2})[./](?P<b>\d{1,2})[./](?P<y>\d{2,4})[ T](?P<H>\d{1,2}):"
          r"(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d+))?)?\s*(?P<p>[AaPp][Mm])?\"?\s*$")


def stamp_seconds(text: pd.Series, layout: str) -> np.ndarray:
    """Timestamps of one ``layout`` → seconds since 1970 (float; NaN where a value does not
    parse in THAT layout: a month above 12 is never re-read the other way round)."""
    clean = text.astype("string").str.strip().str.strip('"')
    if layout == "iso":
        # an offset (Z, +01:00) is honoured: a daylight-saving change then reads right
        stamps = pd.to_datetime(clean, errors="coerce", format="ISO8601", utc=True)
    else:
        p = clean.str.extract(_PARTS)
        day, month = (p["a"], p["b"]) if layout == "day_first" else (p["b"], p["a"])
        year = pd.to_numeric(p["y"], errors="coerce")
        year = year.where(year >= 100, year + 2000)
        hour = pd.to_numeric(p["H"], errors="coerce")
        pm = p["p"].str.lower()
        hour = hour.where(pm.isna(), hour % 12 + (pm == "pm").astype(float) * 12)
        iso = (year.astype("Int64").astype("string") + "-" + month.str.zfill(2) + "-"
               + day.str.zfill(2) + " " + hour.astype("Int64").astype("string").str.zfill(2)
               + ":" + p["M"] + ":" + p["S"].fillna("00") + "." + p["f"].fillna("0"))
        stamps = pd.to_datetime(iso, errors="coerce", format="%Y-%m-%d %H:%M:%S.%f")
    ns = stamps.to_numpy(dtype="datetime64[ns]").astype("int64").astype(np.float64)
    ns[stamps.isna().to_numpy()] = np.nan
    return ns / 1e9


def elapsed_post(column: str, layout: str, file: str, post=None):
    """A chunk post-step setting ``test_time_second`` = seconds since the first row's stamp
    (kept across chunks); an unreadable stamp is refused naming its line."""
    start: list[float] = []

    def parse(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        text = raw[column]
        secs = stamp_seconds(text, layout)
        refuse_unparsed(secs, text, frame, file=file, column=column,
                        message="unreadable timestamp", code="not_time",
                        expected=f"a date and time like the first rows' "
                                 f"({layout.replace('_', ' ')})")
        if not start:
            ok = secs[np.isfinite(secs)]
            start.append(float(ok[0]) if len(ok) else 0.0)
        frame["test_time_second"] = secs - start[0]
        return frame if post is None else post(frame, raw, sink)
    return parse


def timestamp_warning(file: str, column: str, layout: str) -> IngestWarning:
    """Warning ``test_time_from_timestamps``."""
    how = {"iso": "year-month-day", "day_first": "day.month.year (day first)",
           "month_first": "month/day/year (month first)"}[layout]
    return IngestWarning("test_time_from_timestamps", f"no elapsed-time column: the test clock "
                         f"is '{column}' read as {how}, in seconds since the first row (an offset "
                         "in the stamps is honoured; without one the time zone is unknown and a "
                         "daylight-saving change shows as a one-hour jump)",
                         file, 1, column)
