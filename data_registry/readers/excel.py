"""Cycler Excel workbooks (``.xlsx``, and legacy ``.xls`` read with python-calamine;
Landt/Arbin-style: an info sheet plus one or more data sheets per channel, e.g.
``Global_Info`` + ``Channel_11_1``, ``Channel_11_2`` …; Neware BTS workbooks: ``test`` /
``cycle`` / ``step`` + ``record`` or ``Detail_…`` sheets).

A data sheet is one whose first row maps (Arbin names, Neware's, or the generic aliases, units
in the headers: ``Test_Time(s)``, ``Current(A)``, ``Capacity/mAh``) to time, voltage, current
and cycle. Data sheets are read in workbook order and concatenated; a workbook without one is
refused as an unsupported sheet layout, naming its sheets.

The test clock: a ``Total Time`` / ``Cumulative Time`` column (Neware) is the elapsed test time,
and a plain ``Time`` beside it is the STEP time, which is then ignored. Durations written as
text (``26:03:04``, ``1d 02:03:04``) or stored as Excel times are read as seconds; an
unreadable one is refused naming its sheet row.
"""
from __future__ import annotations

import datetime
import functools
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError, ValidationError
from data_registry.readers import arbin_csv, header_words, neware_csv
from data_registry.readers.headers import match_headers, step_clock
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, frame_source, refuse_unparsed
from data_registry.schema import CYCLES, SAMPLES

READER_VERSION = "2"
#: Neware's headers (``Chg. Cap.(Ah)`` …) as its CSV reader reads them; its clocks
#: (``Total Time``) are whole-test clocks of the generic vocabulary
NEWARE_STEMS = {**{k: v for k, v in neware_csv.SPEC.stems.items() if not v.startswith("_")},
                "cycle_id": "cycle_count", "step_id": "step_count"}  # newer BTS workbooks
STEMS = {**header_words.SAMPLE_STEMS, **arbin_csv.COLUMN_MAP, **NEWARE_STEMS}
STEMS.pop("date_time", None)
STEMS.pop("datetime", None)
NEEDED = {"test_time_second", "voltage_volt", "current_ampere", "cycle_count"}
NEEDED_CYCLES = {"cycle_index", "discharge_capacity_ah"}


#: the first bytes of an OLE2 compound file: a legacy Excel ``.xls`` (BIFF8) among other old
#: Office files
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def is_xlsx(head: Head) -> bool:
    """True for an Office Open XML workbook."""
    return "xl/workbook.xml" in head.zip_names


def is_xls(head: Head) -> bool:
    """True for a legacy Excel ``.xls`` workbook (an OLE2 file that opens as a workbook)."""
    if not head.raw.startswith(OLE2_MAGIC):
        return False
    try:
        sheet_map(head)
    except InputFormatError:
        return False
    return True


def is_workbook(head: Head) -> bool:
    """An ``.xlsx`` or a legacy ``.xls`` workbook."""
    return is_xlsx(head) or is_xls(head)


def _engine(path: str | os.PathLike) -> str:
    """pandas' reader of the workbook: python-calamine for a legacy ``.xls`` (BIFF; pandas'
    xlrd engine is deprecated), openpyxl for ``.xlsx``."""
    with open(path, "rb") as fh:
        return "calamine" if fh.read(8) == OLE2_MAGIC else "openpyxl"


def _unreadable(exc: Exception, name: str) -> InputFormatError:
    return InputFormatError(f"cannot open the workbook: {exc}"[:300], code="unreadable",
                            file=name)


#: address space (bytes) a legacy workbook may use while it is read in a child process: a
#: damaged ``.xls`` made python-calamine ask for 8 GiB at once (measured, session 14), which
#: the operating system's OOM killer answered by killing the whole service
PROBE_MEMORY_BYTES = 3 << 30
PROBE_SECONDS = 120
#: the child's exit status when it cannot set itself up (no python-calamine, no ``resource``,
#: a hard limit it may not raise): the check is then unavailable, not a verdict on the file
PROBE_UNAVAILABLE = 3
_PROBE = ("import sys\n"
          "try:\n"
          "    import resource\n"
          "    cap = int(sys.argv[2])\n"
          "    hard = resource.getrlimit(resource.RLIMIT_AS)[1]\n"
          "    if hard != resource.RLIM_INFINITY:\n"
          "        cap = min(cap, hard)\n"
          "    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))\n"
          "    from python_calamine import CalamineWorkbook\n"
          "except Exception:\n"
          f"    sys.exit({PROBE_UNAVAILABLE})\n"
          "wb = CalamineWorkbook.from_path(sys.argv[1])\n"
          "for t in wb.sheet_names:\n    wb.get_sheet_by_name(t).to_python()\n")


def _probe_legacy(path: str, size: int, mtime_ns: int, name: str) -> None:
    """Read a legacy (OLE2) workbook once in a child process whose memory is capped
    (:data:`PROBE_MEMORY_BYTES` plus 50 × the file): a workbook whose structure makes the
    reader crash or run out of memory is refused here, and this process never opens it.
    The verdict is cached per file version (format detection asks several times); where the
    child cannot run or set itself up, the check is skipped (the workbook is read as before)."""
    refusal = _probe_verdict(path, size, mtime_ns, name)
    if refusal is not None:
        raise InputFormatError(refusal[0], code="unreadable", file=name, expected=refusal[1],
                               found=refusal[2])


@functools.lru_cache(maxsize=8)
def _probe_verdict(path: str, size: int, mtime_ns: int, name: str
                   ) -> tuple[str, str, str] | None:
    """(message, expected, found) of a refusal, or None."""
    import subprocess
    import sys

    cap = PROBE_MEMORY_BYTES + 50 * size  # the child caps itself (no preexec_fn: threads)
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, path, str(cap)],
                              capture_output=True, text=True, timeout=PROBE_SECONDS,
                              stdin=subprocess.DEVNULL, env={**os.environ, "RUST_BACKTRACE": "0"})
    except subprocess.TimeoutExpired:
        return ("cannot open the workbook: reading it did not finish",
                f"a workbook readable within {PROBE_SECONDS} s",
                "a damaged or unusually built .xls")
    except OSError:  # no usable interpreter (a frozen application): the check is unavailable
        return None
    if done.returncode in (0, PROBE_UNAVAILABLE):
        return None
    last = next((x for x in reversed(done.stderr.strip().splitlines())
                 if x.strip() and not x.startswith("note:")), "no message")
    return (f"cannot open the workbook: {last}"[:300],
            f"a legacy .xls workbook that reads within {cap >> 20} MiB",
            f"a damaged workbook (the reader failed: exit status {done.returncode})")


def _first_rows(path: str, name: str) -> list[tuple[str, tuple]]:
    """(sheet title, first row's values) of every sheet, in workbook order."""
    if _engine(path) == "calamine":
        from python_calamine import CalamineWorkbook

        stat = os.stat(path)
        _probe_legacy(str(path), stat.st_size, stat.st_mtime_ns, name)
        try:
            wb = CalamineWorkbook.from_path(path)
            out = []
            for title in wb.sheet_names:
                # the sheet's first row as it is, empty or not (pandas reads row 1 as the
                # header; calamine would otherwise skip a leading empty area)
                rows = wb.get_sheet_by_name(title).to_python(skip_empty_area=False, nrows=1)
                out.append((title, tuple(rows[0]) if rows else ()))
        except Exception as exc:  # noqa: BLE001 - not a readable workbook: a format error
            raise _unreadable(exc, name) from None
        wb.close()
        return out
    import openpyxl
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt workbook is a format error
        raise _unreadable(exc, name) from None
    out = [(ws.title, next(ws.iter_rows(max_row=1, values_only=True), ()))
           for ws in wb.worksheets]
    wb.close()
    return out


@dataclass(frozen=True)
class SheetMap:
    """What a workbook's sheets hold: their names, the per-sample data sheets and their column
    mapping, and the per-cycle sheets (a cycler's cycle statistics) and theirs."""

    names: tuple[str, ...]
    samples: tuple[str, ...]
    sample_columns: tuple[Mapped, ...]
    cycles: tuple[str, ...]
    cycle_columns: tuple[Mapped, ...]
    #: the wall-clock column that is the sample sheets' test clock (no elapsed time in them)
    sample_stamp: str | None = None


def _first_match(header: list[str], canonical: list[str], stems: dict[str, str],
                 file: str) -> list[Mapped]:
    try:
        return match_headers(header, canonical, stems, file, 1)
    except ValidationError:
        return []


def sheet_map(head: Head) -> SheetMap:
    """The workbook's :class:`SheetMap`, from each sheet's first row (read once per file)."""
    stat = os.stat(head.path)
    return _sheet_map_of(str(head.path), stat.st_size, stat.st_mtime_ns, head.name)


@functools.lru_cache(maxsize=8)
def _sheet_map_of(path: str, size: int, mtime_ns: int, name: str) -> SheetMap:
    from data_registry.readers.timestamps import stamp_header

    samples, cycles, s_cols, c_cols = [], [], [], []
    s_stamp = None
    sample_names = [c for c in SAMPLES.names if c != "cell_id"]
    cycle_names = [c for c in CYCLES.names if c != "cell_id"]
    sheets = _first_rows(path, name)
    for title, first in sheets:
        header = [str(x) for x in first if x is not None and x != ""]
        header = [h for h in header if h not in step_clock(header)]
        cols = _first_match(header, sample_names, STEMS, name)
        targets = {m.target for m in cols}
        # LAND's Absolute Time: without an elapsed time, a wall clock is the test clock
        stamp = stamp_header(header) if "test_time_second" not in targets else None
        if NEEDED <= targets or (stamp and NEEDED - {"test_time_second"} <= targets):
            samples.append(title)
            if not s_cols:
                s_cols = cols if stamp is None else [*cols, Mapped(stamp, "test_time_second")]
                s_stamp = stamp
            continue
        cols = _first_match(header, cycle_names, header_words.CYCLE_STEMS, name)
        if NEEDED_CYCLES <= {m.target for m in cols}:
            cycles.append(title)
            c_cols = c_cols or cols
    names = tuple(title for title, _ in sheets)
    return SheetMap(names, tuple(samples), tuple(s_cols), tuple(cycles), tuple(c_cols), s_stamp)


def is_sample_workbook(head: Head) -> bool:
    """A workbook read as samples: any workbook but one whose only data are per-cycle sheets
    (then :func:`is_cycle_workbook`); a workbook of neither is refused by :func:`open_xlsx`
    naming its sheets."""
    return is_workbook(head) and not is_cycle_workbook(head)


def is_cycle_workbook(head: Head) -> bool:
    """A workbook without per-sample sheets but with a per-cycle one (Arbin ``Statistics``,
    Neware ``cycle``: a cycle column and a discharge capacity)."""
    if not is_workbook(head):
        return False
    try:
        m = sheet_map(head)
    except InputFormatError:
        return False
    return not m.samples and bool(m.cycles)


def open_xlsx(head: Head, chunk_rows: int, **_: object) -> Source:
    """Open a cycler Excel workbook."""
    m = sheet_map(head)
    sheets, data, columns = list(m.names), list(m.samples), list(m.sample_columns)
    if not data:
        raise InputFormatError(
            "unsupported Excel sheet layout: no sheet has a header row with time, voltage, "
            "current and cycle columns", code="unsupported_layout", file=head.name,
            expected="a data sheet such as Channel_1_1 with Test_Time(s), Voltage(V), "
                     "Current(A), Cycle_Index", found=f"sheets {sheets}")

    rows: list[tuple[str, int]] = []  # (sheet, first record) of each part, for errors

    def load() -> pd.DataFrame:
        engine = _engine(head.path)
        try:
            parts = [pd.read_excel(head.path, sheet_name=s, engine=engine) for s in data]
        except Exception as exc:  # noqa: BLE001 - a sheet that does not parse: damaged file
            raise _unreadable(exc, head.name) from None
        rows.clear()
        start = 1
        for name, part in zip(data, parts):
            rows.append((name, start))
            start += len(part)
        return pd.concat(parts, ignore_index=True)

    clock = next(m for m in columns if m.target == "test_time_second")
    warns = []
    if m.sample_stamp is None:
        post = _clock_post(head, clock, rows)
    else:
        post = _stamp_post(head, clock.source)
        warns.append(IngestWarning(
            "test_time_from_timestamps", f"no elapsed-time column: the test clock is the wall "
            f"clock '{clock.source}', in seconds since the first row (the time zone is unknown: "
            "a daylight-saving change shows as a one-hour jump)", head.name, 1, clock.source))

    return frame_source(head, format_name="landt_xlsx", reader_version=READER_VERSION,
                        kind="samples", load=load, columns=columns, chunk_rows=chunk_rows,
                        warnings=warns,
                        metadata={"excel_data_sheets": ",".join(data),
                                  "excel_sheets": ",".join(sheets)}, post=post)


#: a duration cell past 24 h formatted ``h:mm:ss`` comes back as a date of Excel's 1900 date
#: system: serial 1 = 1900-01-01 (origin 1899-12-31) until Excel's phantom 29 Feb 1900, one
#: day earlier after it (origin 1899-12-30), as openpyxl converts them
EXCEL_ORIGINS = (datetime.datetime(1899, 12, 31), datetime.datetime(1899, 12, 30))
EXCEL_LEAP_BUG = datetime.datetime(1900, 3, 1)


def _clock_post(head: Head, clock: Mapped, rows: list[tuple[str, int]]):
    """The chunk post-step reading a sheet's clock column: numbers as mapped, durations as
    text and Excel time cells through :func:`excel_seconds`; an unreadable one refused naming
    its record and sheet row (``rows``: (sheet, first record) of each sheet read)."""

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        values = raw[clock.source]
        if not pd.api.types.is_numeric_dtype(values):  # durations as text or Excel times
            secs = excel_seconds(values, clock.factor)

            def where(record: int) -> str:
                sheet, first = next((n, f) for n, f in reversed(rows) if f <= record)
                return f"record {record} = sheet {sheet}, row {record - first + 2}"
            refuse_unparsed(secs, values, frame, file=head.name, column=clock.source,
                            message="unreadable elapsed time", code="not_duration",
                            expected="seconds, a duration such as '26:03:04' or "
                                     "'1d 02:03:04', or an Excel time cell (cells dated before "
                                     "1910 are durations; later dates are wall clocks, not "
                                     "test time)", where=where)
            frame["test_time_second"] = secs
        return frame
    return post


def _stamp_post(head: Head, column: str):
    """The chunk post-step reading a wall-clock column as the test clock
    (:func:`data_registry.readers.timestamps.elapsed_post`): date cells as ISO stamps, text in
    the layout its first values decide; seconds since the first row."""
    from data_registry.readers import timestamps

    parse: list = []  # the elapsed_post step, made once the first chunk decides the layout

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        values = raw[column]
        if pd.api.types.is_datetime64_any_dtype(values) or bool(values.map(
                lambda v: isinstance(v, (datetime.datetime, pd.Timestamp))).all()):
            text, layout = (pd.to_datetime(values, errors="coerce")
                            .dt.strftime("%Y-%m-%d %H:%M:%S.%f"), "iso")
        else:
            text = values.astype("string")
            first = [str(v) for v in text.dropna().head(50)]
            layout = timestamps.decided_layout(first, lambda: first) or "iso"
        if not parse:
            parse.append(timestamps.elapsed_post(column, layout, head.name))
        return parse[0](frame, raw.assign(**{column: text}), sink)
    return post


def open_xlsx_cycles(head: Head, chunk_rows: int, protocol_hours_per_cycle: float | None = None,
                     c_rate: float | None = None, **_: object) -> Source:
    """Open a workbook's per-cycle sheet (the first: Arbin ``Statistics``, Neware ``cycle``)
    as per-cycle rows; without a time column the clock comes from the stated protocol
    (``--hours-per-cycle`` / ``--c-rate``, flagged estimated) or the file is refused."""
    from data_registry.readers.generic_csv import estimated_time

    m = sheet_map(head)
    sheet, columns = m.cycles[0], list(m.cycle_columns)
    warns = []
    post = None
    clock = next((c for c in columns if c.target == "test_time_second"), None)
    if clock is None:
        if not (protocol_hours_per_cycle or c_rate):
            raise ValidationError(
                f"per-cycle sheet '{sheet}' has no elapsed-time column; estimate it from the "
                "protocol with --hours-per-cycle H or --c-rate C", code="missing_column",
                file=head.name, row=1, column="test_time_second",
                expected="a time column, or --hours-per-cycle H / --c-rate C",
                found=f"columns {[c.source for c in columns]}")
        post, columns, w = estimated_time(head, columns, protocol_hours_per_cycle, c_rate)
        warns.append(w)
    else:
        post = _clock_post(head, clock, [(sheet, 1)])

    def load() -> pd.DataFrame:
        try:
            return pd.read_excel(head.path, sheet_name=sheet, engine=_engine(head.path))
        except Exception as exc:  # noqa: BLE001 - a sheet that does not parse: damaged file
            raise _unreadable(exc, head.name) from None

    return frame_source(head, format_name="xlsx_cycles", reader_version=READER_VERSION,
                        kind="cycles", load=load, columns=columns, chunk_rows=chunk_rows,
                        metadata={"excel_cycle_sheet": sheet,
                                  "excel_sheets": ",".join(m.names)}, warnings=warns,
                        post=post)


def excel_seconds(values: pd.Series, factor: float = 1.0) -> np.ndarray:
    """Elapsed times of a non-numeric column → seconds, value by value: Excel time cells
    (``datetime.time``; ``timedelta`` for ``[h]:mm:ss``; a date before 1910 for ``h:mm:ss``
    past 24 h, counted from :data:`EXCEL_ORIGINS`), duration text (``26:03:04``, ``1d 02:03:04``,
    :func:`data_registry.units.parse_duration`), or numbers (and numeric text) in the header's
    unit, times ``factor``. NaN where none applies (a real date is a wall clock, not a test
    time). Known limit: openpyxl returns Excel days 59–61 all as 28 Feb 1900, so a duration
    cell between 59 and 61 days cannot be told apart and reads as 59.x days."""
    from data_registry.units import parse_duration

    if pd.api.types.is_timedelta64_dtype(values):
        return values.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(values):  # every cell an h:mm:ss past 24 h
        values = values.astype(object)
    out = np.full(len(values), np.nan)
    text = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values.to_numpy()):
        if isinstance(v, datetime.datetime):  # before timedelta/time: pd.Timestamp too
            v = pd.Timestamp(v).to_pydatetime()
            if v.year < 1910:  # a duration (of up to ten years), not a wall-clock date
                origin = EXCEL_ORIGINS[0] if v < EXCEL_LEAP_BUG else EXCEL_ORIGINS[1]
                out[i] = (v - origin).total_seconds()
        elif isinstance(v, datetime.timedelta):
            out[i] = v.total_seconds()
        elif isinstance(v, np.timedelta64):
            out[i] = v / np.timedelta64(1, "s")
        elif isinstance(v, datetime.time):
            out[i] = v.hour * 3600 + v.minute * 60 + v.second + v.microsecond * 1e-6
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[i] = float(v) * factor
        elif isinstance(v, str) and ":" in v:
            text[i] = True
        elif isinstance(v, str):
            out[i] = pd.to_numeric(v.strip().replace(",", "."), errors="coerce") * factor
    if text.any():
        out[text] = parse_duration(values[text].astype("string"))
    return out
