"""A wall-clock timestamp column as the test clock, for tables that have no elapsed time
(data loggers, home-made scripts: ``Timestamp;U;I;Zyklus`` with ``05.05.2025 14:36:06``).

``test_time_second`` = seconds since the FIRST row's timestamp. The date layout is decided
once, from the head's values, never per chunk:

* ``2025-05-05 14:36:06`` / ``2025-05-05T14:36:06.5`` (ISO: year first), and year first with
  slashes or dots (``2025/05/05 14:36:06``), read the same way;
* ``05.05.2025 14:36:06`` (dots: day first, the European convention);
* ``05/13/2025 …`` (slashes): a field above 12 in the head decides (``13/05/2025`` is day
  first); when every field is ≤ 12, one streaming pass over the column decides
  (:func:`slash_order`: the field that changes while the other stays is the day), month first
  (as US software writes it) when even that cannot tell.

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

#: normalised headers of a wall-clock column (English, German, French, Spanish, Italian; the
#: cyclers' own: LAND's Absolute Time / SysTime, Neware BTS 8's Realtime, and their Chinese,
#: Japanese and Korean words)
TIMESTAMP_STEMS = frozenset({
    "timestamp", "time_stamp", "date_time", "datetime", "date_and_time", "zeitstempel",
    "datum_zeit", "datum_uhrzeit", "datum", "date", "horodatage", "date_heure", "fecha_hora",
    "fecha", "data_ora", "data", "absolute_time", "abs_time", "realtime", "real_time",
    "system_time", "systime", "sys_time", "绝对时间", "系统时间", "日期时间", "时间戳", "絕對時間",
    "系統時間", "絶対時間", "日時", "절대시간"})


def stamp_header(names: list[str] | tuple[str, ...]) -> str | None:
    """The first header named like a wall-clock column (:data:`TIMESTAMP_STEMS`), or None."""
    return next((h for h in names if norm(split_header(h)[0]) in TIMESTAMP_STEMS), None)
#: year first: ISO (``2025-05-05``) or the same order with slashes or dots (``2025/05/05``, as
#: Chinese and Japanese software writes it): never ambiguous, read as ISO
_ISO = re.compile(r"^\d{4}([-/.])\d{1,2}\1\d{1,2}[ T]\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?"
                  r"\s?(Z|[+-]\d{2}:?\d{2})?$")
_YEAR_FIRST_SEP = re.compile(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})")
_DOTS = re.compile(r"^\d{1,2}\.\d{1,2}\.\d{2,4}[ T]\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?$")
_SLASH = re.compile(r"^(\d{1,2})/(\d{1,2})/\d{2,4}[ T]\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?"
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


#: day changes seen in one field while the other never changed, enough to call it the day
DAY_CHANGES = 3


def slash_order(values: Iterable[str]) -> str:
    """``"day_first"`` or ``"month_first"`` for slash dates whose head could not tell, in one
    streaming pass that stops as soon as it knows (memory does not grow with the file): a field
    above 12 decides; else the field that changes from one row to the next while the other
    stays is the day (a test crosses days far more often than months), once it has done so
    :data:`DAY_CHANGES` times; else month first (both orders read the same clock then)."""
    changes = [0, 0]
    last = None
    for v in values:
        m = _SLASH.match(v.strip().strip('"')) if v else None
        if m is None:
            continue
        a, b = int(m.group(1)), int(m.group(2))
        if a > 12:
            return "day_first"
        if b > 12:
            return "month_first"
        if last is not None:
            changes[0] += a != last[0] and b == last[1]
            changes[1] += b != last[1] and a == last[0]
            if changes[0] >= DAY_CHANGES and not changes[1]:
                return "day_first"
            if changes[1] >= DAY_CHANGES and not changes[0]:
                return "month_first"
        last = (a, b)
    return "day_first" if changes[0] > changes[1] else "month_first"


def decided_layout(head_values: list[str], all_values: Callable[[], Iterable[str]]
                   ) -> str | None:
    """The one date layout of a timestamp column: from its ``head_values``, and for slash
    dates the head cannot order, from the column's values in the whole file (``all_values()``,
    :func:`slash_order`); None when the head's values are in no known layout."""
    layout = date_layout(head_values)
    return slash_order(all_values()) if layout == "slash_ambiguous" else layout


def timestamp_column(names: list[str] | tuple[str, ...], first_values: dict[str, list[str]],
                     all_values: Callable[[str], Iterable[str]]) -> tuple[str, str] | None:
    """``(header, layout)`` of the first column named like a timestamp whose values are dates
    and times of one layout (:func:`decided_layout`; ``all_values(header)`` reads the column
    in the whole file), else None."""
    for h in names:
        if norm(split_header(h)[0]) in TIMESTAMP_STEMS:
            layout = decided_layout(first_values.get(h, []), lambda: all_values(h))
            if layout is not None:
                return h, layout
    return None


#: rows of the head a clock is checked on for restarts (:func:`clock_restarts`)
RESTART_ROWS = 5000


def clock_restarts(texts: Iterable[str]) -> bool:
    """True when a clock column's values (numbers or ``h:mm:ss`` durations; the first
    :data:`RESTART_ROWS`) fall back by more than a second at least twice: a step clock, not
    the test's (a single glitch row is the test clock's business)."""
    from itertools import islice

    from data_registry.units import parse_duration

    raw = pd.Series(list(islice(texts, RESTART_ROWS)), dtype="string").str.strip()
    values = pd.to_numeric(raw.str.replace(",", ".", regex=False), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)
    text = np.isnan(values) & raw.str.contains(":", regex=False).fillna(False).to_numpy()
    if text.any():
        values[text] = parse_duration(raw[text])
    values = values[np.isfinite(values)]
    return int(np.sum(np.diff(values) < -1.0)) >= 2


def step_clock_beside_stamp(file: str, names: list[str] | tuple[str, ...], clock: str,
                            texts: Callable[[str], Iterable[str]]) -> IngestWarning | None:
    """Warning ``step_time_ignored`` when the test-clock column ``clock`` starts again within
    the test (:func:`clock_restarts`; ``texts(header)`` reads a column) beside a wall clock
    (:func:`stamp_header`): Neware BTS 8's ``Time(h:min:s.ms)`` beside its ``Realtime`` is the
    step's clock, and the wall clock is the test's. None when ``clock`` stays the clock."""
    stamp = stamp_header(names)
    if stamp is None or stamp == clock or not clock_restarts(texts(clock)):
        return None
    return IngestWarning("step_time_ignored", f"'{clock}' starts again within the test (a step "
                         f"clock): the test clock is taken from the wall clock '{stamp}'", file,
                         1, clock)


def unreadable_stamps(names: list[str] | tuple[str, ...], first_values: dict[str, list[str]],
                      file: str, data_line: int = 2) -> None:
    """Raise for a table without a test clock whose timestamp-named column holds values of no
    one known layout, naming the column and the first value (and its line; the head's rows
    start on 1-based ``data_line``) that breaks the layout of the values before it."""
    for h in names:
        values = first_values.get(h) or []
        if norm(split_header(h)[0]) not in TIMESTAMP_STEMS or not values:
            continue
        k = next((i for i in range(len(values))
                  if date_layout(values[:i + 1]) is None), 0)
        raise InputFormatError(
            f"no elapsed-time column, and the timestamp column '{h}' is not in one date "
            "layout fadecast reads", code="not_time", file=file, row=data_line + k, column=h,
            expected="'2025-05-05 14:36:06' (ISO, optional offset; or 2025/05/05), "
                     "'05.05.2025 14:36:06' or '05/05/2025 2:36:06 PM' on every row — or an "
                     "elapsed-time column",
            found=repr(values[k]))


def column_texts(head, column: int, delimiter: str, data_line: int,
                 max_line_bytes: int) -> Iterator[str]:
    """The text of field ``column`` on every data line (from 1-based ``data_line``), lazily."""
    from data_registry.readers.numeric_lines import iter_lines

    for n, line in iter_lines(head, max_line_bytes):
        if n >= data_line:
            fields = line.rstrip("\r\n").split(delimiter)
            if column < len(fields):
                yield fields[column]


#: day-first dots or slashes, month-first slashes: (a)(sep)(b)(sep)(year) time [AM|PM]
_PARTS = (r"^\s*\"?(?P<a>\d{1,2})[./](?P<b>\d{1,2})[./](?P<y>\d{2,4})[ T](?P<H>\d{1,2}):"
          r"(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d+))?)?\s*(?P<p>[AaPp][Mm])?\"?\s*$")


def stamp_seconds(text: pd.Series, layout: str) -> np.ndarray:
    """Timestamps of one ``layout`` → seconds since 1970 (float; NaN where a value does not
    parse in THAT layout: a month above 12 is never re-read the other way round). Dots and
    slashes are parsed with the explicit format of the first value's shape (pandas' C path),
    and only values of another shape (no fraction, …) through the slower field extraction."""
    clean = text.astype("string").str.strip().str.strip('"')
    clean = clean.str.replace(r"(:\d{2}),(\d)", r"\1.\2", regex=True)  # 14:36:06,5
    if layout == "iso":
        if clean.str.match(_YEAR_FIRST_SEP).any():  # 2025/05/05 14:36:06 → 2025-05-05 …
            clean = clean.str.replace(_YEAR_FIRST_SEP, r"\1-\2-\3", regex=True)
        # an offset (Z, +01:00) is honoured: a daylight-saving change then reads right
        stamps = pd.to_datetime(clean, errors="coerce", format="ISO8601", utc=True)
    else:
        stamps = pd.Series(pd.NaT, index=clean.index, dtype="datetime64[ns]")
        fmt = _format_of(clean.dropna(), layout)
        if fmt is not None:
            stamps = pd.to_datetime(clean, errors="coerce", format=fmt)
        miss = (stamps.isna() & clean.notna()).to_numpy()
        if miss.any():
            stamps = stamps.copy()
            stamps[miss] = _by_parts(clean[miss], layout)
    ns = stamps.to_numpy(dtype="datetime64[ns]").astype("int64").astype(np.float64)
    ns[stamps.isna().to_numpy()] = np.nan
    return ns / 1e9


def _format_of(values: pd.Series, layout: str) -> str | None:
    """The strptime format of the first value's shape (day/month order from ``layout``)."""
    if not len(values):
        return None
    m = re.match(_PARTS, str(values.iloc[0]))
    if m is None:
        return None
    first = str(values.iloc[0]).strip().strip('"')
    sep_date = "." if "." in first.split()[0].split("T")[0] else "/"
    day, month = ("%d", "%m") if layout == "day_first" else ("%m", "%d")
    year = "%Y" if len(m.group("y")) == 4 else "%y"
    between = "T" if "T" in first else " "
    hour = "%I" if m.group("p") else "%H"
    clock = f"{hour}:%M" + (":%S" if m.group("S") else "") + (".%f" if m.group("f") else "")
    return (f"{day}{sep_date}{month}{sep_date}{year}{between}{clock}"
            + (" %p" if m.group("p") and " " in first.split(between, 1)[-1] else
               "%p" if m.group("p") else ""))


def _by_parts(clean: pd.Series, layout: str) -> pd.Series:
    """Stamps of the dot / slash layouts field by field (any shape :data:`_PARTS` reads)."""
    p = clean.str.extract(_PARTS)
    day, month = (p["a"], p["b"]) if layout == "day_first" else (p["b"], p["a"])
    year = pd.to_numeric(p["y"], errors="coerce")
    # two-digit years as strptime reads them: 69–99 → 1900s, 00–68 → 2000s
    year = year.where(year >= 100, year + np.where(year >= 69, 1900, 2000))
    hour = pd.to_numeric(p["H"], errors="coerce")
    pm = p["p"].str.lower()
    twelve = hour.where(hour.between(1, 12))  # 13:30 PM is no time
    hour = hour.where(pm.isna(), twelve % 12 + (pm == "pm").astype(float) * 12)
    iso = (year.astype("Int64").astype("string") + "-" + month.str.zfill(2) + "-"
           + day.str.zfill(2) + " " + hour.astype("Int64").astype("string").str.zfill(2)
           + ":" + p["M"] + ":" + p["S"].fillna("00") + "." + p["f"].fillna("0"))
    return pd.to_datetime(iso, errors="coerce", format="%Y-%m-%d %H:%M:%S.%f")


def elapsed_seconds(text: pd.Series, layout: str, start: list[float]) -> np.ndarray:
    """Stamps of ``layout`` → seconds since the file's first stamp (``start`` keeps it across
    chunks: empty on the first call); NaN where a value does not parse."""
    secs = stamp_seconds(text, layout)
    if not start:
        ok = secs[np.isfinite(secs)]
        start.append(float(ok[0]) if len(ok) else 0.0)
    return secs - start[0]


def elapsed_post(column: str, layout: str, file: str, post=None):
    """A chunk post-step setting ``test_time_second`` = seconds since the first row's stamp
    (kept across chunks); an unreadable stamp is refused naming its line."""
    start: list[float] = []

    def parse(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        text = raw[column]
        secs = elapsed_seconds(text, layout, start)
        refuse_unparsed(secs, text, frame, file=file, column=column,
                        message="unreadable timestamp", code="not_time",
                        expected=f"a date and time like the first rows' "
                                 f"({layout.replace('_', ' ')})")
        frame["test_time_second"] = secs
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
