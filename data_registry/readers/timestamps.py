"""A wall-clock timestamp column as the test clock, for tables that have no elapsed time
(data loggers, home-made scripts: ``Timestamp;U;I;Zyklus`` with ``05.05.2025 14:36:06``).

``test_time_second`` = seconds since the FIRST row's timestamp. The date layout is decided
once, from the head's values, never per chunk:

* ``2025-05-05 14:36:06`` / ``2025-05-05T14:36:06.5`` (ISO: year first);
* ``05.05.2025 14:36:06`` (dots: day first, the European convention);
* ``05/13/2025 …`` (slashes: month first, as US software writes them) unless a first field
  above 12 shows day first (``13/05/2025``).

The time zone is unknown: a daylight-saving change shows as a one-hour jump (the validator
refuses a clock going backwards). Warning ``test_time_from_timestamps`` says which column and
which layout were used.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError
from data_registry.readers.headers import norm, split_header

#: normalised headers of a wall-clock column (English, German, French, Spanish, Italian)
TIMESTAMP_STEMS = frozenset({
    "timestamp", "time_stamp", "date_time", "datetime", "date_and_time", "zeitstempel",
    "datum_zeit", "datum_uhrzeit", "datum", "date", "horodatage", "date_heure", "fecha_hora",
    "fecha", "data_ora", "data"})
_ISO = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
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
        return "day_first" if any(int(m.group(1)) > 12 for m in slashes) else "month_first"
    return None


def timestamp_column(names: list[str] | tuple[str, ...], first_values: dict[str, list[str]]
                     ) -> tuple[str, str] | None:
    """``(header, layout)`` of the first column named like a timestamp whose head values are
    dates and times of one layout, else None."""
    for h in names:
        if norm(split_header(h)[0]) in TIMESTAMP_STEMS:
            layout = date_layout(first_values.get(h, []))
            if layout is not None:
                return h, layout
    return None


def stamp_seconds(text: pd.Series, layout: str) -> np.ndarray:
    """Timestamps → seconds since 1970 (float; NaN where a value does not parse)."""
    clean = text.astype("string").str.strip().str.strip('"')
    if layout == "day_first":
        clean = clean.str.replace(r"(\d),(\d)", r"\1.\2", regex=True)  # 14:36:06,5
    stamps = pd.to_datetime(clean, errors="coerce", format="mixed",
                            dayfirst=layout == "day_first")
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
        bad = np.isnan(secs) & text.notna().to_numpy()
        if bad.any():
            k = int(np.argmax(bad))
            raise InputFormatError(
                "unreadable timestamp", code="not_time", file=file,
                row=int(frame["source_row"].iloc[k]), column=column,
                expected=f"a date and time like the first rows' ({layout.replace('_', ' ')})",
                found=repr(str(text.iloc[k])))
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
                         f"is '{column}' read as {how}, in seconds since the first row (time "
                         "zone unknown: a daylight-saving change shows as a one-hour jump)",
                         file, 1, column)
