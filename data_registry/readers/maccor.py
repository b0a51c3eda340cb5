"""Maccor text exports (tab-separated), in the header styles seen in the wild:

* BEEP style: one preamble line (``Today's Date …``), header ``Rec# Cyc# Step Test (Sec) …``,
  or ``TestTime`` as ``'0d 00:00:00.0000'`` durations;
* cellpy "style 1": a 3-line preamble, ``TestTime`` as durations, unsigned ``Amps``;
* cellpy "style 2": a key/value preamble, header ``Rec Cycle P Cycle C Step TestTime … Md``
  with ``TestTime`` as a bare number whose unit is not written (it is minutes in Maccor's
  "minutes" export setting): the unit is inferred from the wall clock (``DPT Time``) and
  reported with warning ``time_unit_inferred``.

Current may be signed or unsigned depending on the export; the state letter (``State``/``Md``:
C = charge, D = discharge, R = rest) gives the canonical sign. ``Amp-hr``/``Watt-hr`` is one
per-step counter, split into charging/discharging columns by state (NaN in other states).
The wall clock (``DPt Time``) is local time of unknown zone (daylight-saving repeats are common,
see BEEP's ``tztest`` file): it is NOT converted to ``unix_time_second``; the test start is kept
in ``metadata['start_local_time']``.

Pauses: a paused Maccor test stops its test clock, but the cell keeps ageing (calendar
time). Where the wall clock advances more than :data:`PAUSE_MIN_SECOND` (60 s) beyond the test
clock AND more than :data:`PAUSE_RATIO` (10×) the test-clock step between two rows (BEEP's
``…_paused.052``: 10:59:59 → 13:00:00 at line 47 while ``Test (Sec)`` advances 0.02 s), the
excess (wall step − test step; ±1 s, the wall clock's resolution) is a pause, and ONE warning
``test_paused`` names each line, its pause and the total. With :data:`ADD_PAUSE_TIME` (on)
the pauses are added to ``test_time_second`` from each pause on (the cell kept ageing, and
time-driven fade must see that time); off, the elapsed time keeps the test clock and the warning
says how much calendar time it misses. The wall clock is read as
``M/D/YYYY H:MM:SS`` (24 h or AM/PM; time of day alone is unwrapped across midnight);
unreadable or missing values are not compared.
Backward steps (daylight-saving fall-back) add nothing; a forward step of exactly 1 h ± 5 s
from 01:xx/02:xx local time is read as a daylight-saving spring-forward, not a pause.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError
from data_registry.readers.conventions import signed_current, split_counter, state_sense
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, csv_source, layout_from_head
from data_registry.units import parse_duration

READER_VERSION = "2"

#: Maccor header → canonical column (``_``-prefixed = vendor-only helper column)
COLUMN_MAP: dict[str, str] = {
    "Cyc#": "cycle_count", "Cycle C": "cycle_count",
    "Step": "step_count",
    "Test (Sec)": "test_time_second", "TestTime": "test_time_second",
    "Test (Min)": "test_time_second", "Test (Hr)": "test_time_second",
    "Test (Hrs)": "test_time_second", "Test Time (Sec)": "test_time_second",
    "Test Time (Min)": "test_time_second", "Test Time (Hr)": "test_time_second",
    "Amps": "current_ampere", "Current [A]": "current_ampere",
    "Volts": "voltage_volt", "Voltage [V]": "voltage_volt",
    "Amp-hr": "_capacity_ah", "Cap. [Ah]": "_capacity_ah",
    "Watt-hr": "_energy_wh", "Ener. [Wh]": "_energy_wh",
    "State": "_state", "Md": "_state",
    "DPt Time": "_wall_clock", "DPT Time": "_wall_clock",
}
TEXT_COLUMNS = {"_state", "_wall_clock"}
CHARGE, DISCHARGE = ("C",), ("D",)
#: wall-clock seconds per TestTime unit → the unit's factor to seconds
TIME_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
#: the unit a Maccor clock header writes → factor to seconds (Maccor's export setting)
HEADER_TIME_UNITS = {"(Sec)": 1.0, "(Min)": 60.0, "(Hr)": 3600.0, "(Hrs)": 3600.0}
#: a pause: the wall clock advances more than this many seconds beyond the test clock …
PAUSE_MIN_SECOND = 60.0
#: … and more than this many times the test clock's step
PAUSE_RATIO = 10.0
#: add the pauses to ``test_time_second``
ADD_PAUSE_TIME = True
#: wall-clock formats tried in order (Maccor writes US month/day dates)
WALL_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S.%f",
                "%m/%d/%Y %I:%M:%S.%f %p", "%m/%d/%Y %H:%M")
TIME_OF_DAY_FORMATS = ("%H:%M:%S", "%I:%M:%S %p", "%H:%M:%S.%f")


def header_index(head: Head) -> int | None:
    """0-based index of the Maccor data header line within the first 40 lines."""
    return head.find_line(lambda s: s.startswith(("Rec#\tCyc#\t", "Rec\tCycle P\t")), 40)


def is_maccor(head: Head) -> bool:
    """True for a Maccor per-sample text export."""
    return head.is_text and header_index(head) is not None


def open_maccor(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                **_: object) -> Source:
    """Open a Maccor text export."""
    i = header_index(head)
    layout, warns = layout_from_head(head, i, delimiter="\t")
    present = {n: COLUMN_MAP[n] for n in layout.names if n in COLUMN_MAP}
    time_col = next((n for n, t in present.items() if t == "test_time_second"), None)
    first = _first_row(head, i, layout.names)
    duration = bool(time_col and ":" in first.get(time_col, ""))
    factor = next((f for unit, f in HEADER_TIME_UNITS.items()
                   if time_col and time_col.endswith(unit)), 1.0)
    if time_col == "TestTime" and not duration:
        factor, w = _infer_time_unit(head, i, layout.names)
        warns.append(w)
    columns = [Mapped(n, t, factor if t == "test_time_second" else 1.0,
                      t in TEXT_COLUMNS or (t == "test_time_second" and duration))
               for n, t in present.items()]
    meta = {"preamble": " | ".join(head.lines[:i])[:2000]}
    wc = next((n for n, t in present.items() if t == "_wall_clock"), None)
    if wc is not None:
        meta["start_local_time"] = first.get(wc, "")
    pauses = PauseTracker(head.name, wc or "", time_col or "", ADD_PAUSE_TIME)

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        if duration:
            secs = parse_duration(raw[time_col])
            bad = np.isnan(secs) & raw[time_col].notna().to_numpy()
            if bad.any():
                k = int(np.argmax(bad))
                raise InputFormatError(
                    "unreadable elapsed time", code="not_duration", file=head.name,
                    row=int(frame["source_row"].iloc[k]), column=time_col,
                    expected="'Nd HH:MM:SS.ffff'", found=repr(raw[time_col].iloc[k]))
            frame["test_time_second"] = secs
        sense = state_sense(raw[_src(present, "_state")], CHARGE, DISCHARGE)
        frame["current_ampere"] = signed_current(frame["current_ampere"].to_numpy(), sense)
        if "_capacity_ah" in frame:
            frame["charging_capacity_ah"], frame["discharging_capacity_ah"] = split_counter(
                frame.pop("_capacity_ah").to_numpy(), sense)
        if "_energy_wh" in frame:
            frame["charging_energy_wh"], frame["discharging_energy_wh"] = split_counter(
                frame.pop("_energy_wh").to_numpy(), sense)
        if wc is not None and len(frame):
            frame["test_time_second"] = pauses.shift(
                frame["test_time_second"].to_numpy(np.float64), wall_clock_seconds(raw[wc]),
                frame["source_row"].to_numpy(), raw[wc].to_numpy(), sink)
        return frame

    return csv_source(head, format_name="maccor_txt", reader_version=READER_VERSION,
                      kind="samples", layout=layout, columns=columns, chunk_rows=chunk_rows,
                      metadata=meta, warnings=warns, post=post, max_line_bytes=max_line_bytes)


def wall_clock_seconds(values: pd.Series) -> np.ndarray:
    """Maccor wall-clock text → seconds (float; NaN where unreadable).

    Formats: :data:`WALL_FORMATS`, else :data:`TIME_OF_DAY_FORMATS` (the one that reads the most
    values wins); anything else is unreadable (NaN), never guessed.

    Full dates give seconds since 1970 of the local clock (no zone); time-of-day values
    (no date) give seconds since midnight of their first day, unwrapped across midnight
    (a step back of more than 12 h is read as the next day).
    """
    codes, uniques = pd.factorize(pd.Series(values, dtype=object))  # 1-s clock: many repeats
    text = pd.Series(uniques, dtype=object)
    if len(text) and not str(text.iloc[0]).strip() == str(text.iloc[0]):
        text = text.str.strip()
    present = int(text.notna().sum())
    best, best_n, best_day = None, 0, False
    for formats, day_only in ((WALL_FORMATS, False), (TIME_OF_DAY_FORMATS, True)):
        for fmt in formats:
            parsed = pd.to_datetime(text, format=fmt, errors="coerce")
            n = int(parsed.notna().sum())
            if n > best_n:
                best, best_n, best_day = parsed, n, day_only
            if n == present:
                break
        if best_n == present:
            break
    if best is None:
        return np.full(len(values), np.nan)
    unique_secs = np.append((best - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy(
        dtype=np.float64, na_value=np.nan), np.nan)
    secs = unique_secs[codes]  # code -1 (missing) → the appended NaN
    if best_day:
        secs = secs - np.floor(np.nanmin(secs) / 86400.0) * 86400.0 if best_n else secs
        ok = np.flatnonzero(np.isfinite(secs))
        back = np.diff(secs[ok]) < -43200.0
        secs[ok] += 86400.0 * np.concatenate(([0], np.cumsum(back)))
    return secs


class PauseTracker:
    """Across chunks: finds test pauses (wall clock runs, test clock stalls), adds them to the
    elapsed time when ``add``, and keeps ONE ``test_paused`` warning up to date.

    A row *stalls* when its wall-clock step exceeds ``PAUSE_RATIO`` × its test-clock step (and
    the test step). A run of consecutive stalled rows whose excess (Σ wall step − Σ test step)
    exceeds ``PAUSE_MIN_SECOND`` is a pause: each of its rows' excess is added from that row on.
    Short runs (a wall-clock second ticking between fast samples) add nothing. A run still open
    at a chunk's end that qualifies only in the next chunk adds its earlier excess at its first
    row of that chunk (same total).
    """

    def __init__(self, name: str, wall_col: str, time_col: str, add: bool = True) -> None:
        self.name, self.wall_col, self.time_col, self.add = name, wall_col, time_col, add
        self.last_wall = np.nan      # last readable wall clock (s)
        self.last_test = np.nan      # the test time (as written, s) at that row
        self.last_text = ""
        self.day_offset = 0.0        # time-of-day clocks: days carried across chunks
        self.added = 0.0             # seconds added so far
        self.open: dict | None = None  # the stalled run open at the last chunk's end
        self.found: list[dict] = []    # pauses: line, second, span
        self.dst: list[int] = []
        self.index = -1

    def shift(self, test: np.ndarray, wall: np.ndarray, rows: np.ndarray, text: list,
              sink: list[IngestWarning]) -> np.ndarray:
        """``test`` (s, as written), with every pause so far added when ``add``; warns on new
        pauses."""
        ok = np.flatnonzero(np.isfinite(wall) & np.isfinite(test))
        inc = np.zeros(len(test))
        if not ok.size:
            return test + self.added
        w = wall[ok] + self.day_offset
        if np.isfinite(self.last_wall) and w[0] < self.last_wall - 43200.0 \
                and wall[ok].max() < 2 * 86400.0:  # a time-of-day clock past midnight
            w += 86400.0
            self.day_offset += 86400.0
        t = test[ok]
        dw = w - np.concatenate(([self.last_wall], w[:-1]))
        dt = t - np.concatenate(([self.last_test], t[:-1]))
        excess = dw - dt
        with np.errstate(invalid="ignore"):
            stalled = (dw > PAUSE_RATIO * np.maximum(dt, 0.0)) & (excess > 0)
            hour = np.floor((np.concatenate(([self.last_wall], w[:-1])) % 86400.0) / 3600.0)
            dst = stalled & (np.abs(excess - 3600.0) <= 5.0) & ((hour == 1) | (hour == 2))
        for k in np.flatnonzero(dst):
            self.dst.append(int(rows[ok[k]]))
        stalled &= ~dst
        def texts(k: int) -> str:  # the wall clock as written at ok-position k
            return str(text[ok[k]]).strip()
        idx = np.flatnonzero(stalled)
        runs = np.split(idx, np.flatnonzero(np.diff(idx) != 1) + 1) if idx.size else []
        still_open = None
        for run in runs:
            cont = self.open if (run[0] == 0 and self.open is not None) else None
            state = cont or {"line": int(rows[ok[run[0]]]), "excess": 0.0, "pending": 0.0,
                             "from": texts(run[0] - 1) if run[0] > 0 else self.last_text,
                             "entry": None}
            state["excess"] += float(excess[run].sum())
            state["to"] = texts(run[-1])
            if state["excess"] > PAUSE_MIN_SECOND:
                inc[ok[run]] += excess[run]
                inc[ok[run[0]]] += state["pending"]
                state["pending"] = 0.0
                if state["entry"] is None:
                    state["entry"] = len(self.found)
                    self.found.append({})
                self.found[state["entry"]] = {"line": state["line"], "second": state["excess"],
                                              "span": f"{state['from']} → {state['to']}"}
            else:
                state["pending"] += float(excess[run].sum())
            if run[-1] == len(ok) - 1:
                still_open = state
        self.open = still_open
        self.last_wall, self.last_test, self.last_text = float(w[-1]), float(t[-1]), texts(-1)
        add = np.cumsum(inc) if self.add else np.zeros(len(test))
        out = test + self.added + add
        self.added += float(add[-1])
        if self.found or self.dst:
            self._warn(sink)
        return out

    def _warn(self, sink: list[IngestWarning]) -> None:
        lines = [p["line"] for p in self.found]
        secs = [p["second"] for p in self.found]
        parts = [f"line {p['line']}: {p['second']:.2f} s ({p['span']})" for p in self.found[:5]]
        more = f" and {len(self.found) - 5} more" if len(self.found) > 5 else ""
        total = float(sum(secs))
        msg = (f"the test clock stood still {len(self.found)} time(s) while the wall clock "
               f"ran (a paused test, or a step such as an FRA impedance sweep that does not "
               f"count test time): '{self.wall_col}' ran while '{self.time_col}' stood ("
               + "; ".join(parts) + more + f"); {total:.2f} s ({total / 3600:.2f} h) in all "
               "(±1 s, the wall clock's resolution) " + (
                   "added to test_time_second from each pause on (the cell kept ageing)"
                   if self.add else "NOT in test_time_second, which keeps the test clock: "
                   "the cell aged this much longer than its elapsed time says")
               ) if self.found else ""
        if self.dst:
            msg += ("; " if msg else "") + (
                f"the wall clock jumps forward 1 h at 01:xx–02:xx local time at line(s) "
                f"{self.dst[:5]} (daylight-saving change): not read as a pause")
        w = IngestWarning("test_paused", msg, self.name, (lines or self.dst)[0],
                          "test_time_second", len(self.found),
                          {"lines": lines, "pauses_second": secs, "total_pause_second": total,
                           "added_to_test_time": self.add, "dst_lines": list(self.dst)})
        if self.index < 0:
            self.index = len(sink)
            sink.append(w)
        else:
            sink[self.index] = w


def _src(present: dict[str, str], target: str) -> str:
    return next(n for n, t in present.items() if t == target)


def _first_row(head: Head, i: int, names: tuple[str, ...]) -> dict[str, str]:
    for line in head.lines[i + 1:i + 5]:
        if line.strip():
            return dict(zip(names, (f.strip() for f in line.split("\t"))))
    return {}


def _infer_time_unit(head: Head, i: int, names: tuple[str, ...]) -> tuple[float, IngestWarning]:
    """Unit of a bare-number TestTime from the wall clock over the head's rows."""
    rows = [dict(zip(names, line.split("\t"))) for line in head.lines[i + 1:] if line.strip()]
    wall_col = next((n for n in names if COLUMN_MAP.get(n) == "_wall_clock"), None)
    if wall_col is None or len(rows) < 3:
        raise InputFormatError(
            "TestTime has no unit and no wall clock to infer it from", code="unknown_unit",
            file=head.name, row=i + 1, column="TestTime", expected="a DPT Time column",
            found=f"header {list(names)}")
    frame = pd.DataFrame(rows)
    wall = pd.to_datetime(frame[wall_col].str.strip(), errors="coerce", format="mixed")
    test = pd.to_numeric(frame["TestTime"], errors="coerce")
    span_wall = (wall.iloc[-1] - wall.iloc[0]).total_seconds()
    span_test = float(test.iloc[-1] - test.iloc[0])
    ratio = span_wall / span_test if span_test > 0 else np.nan
    for unit, f in TIME_UNITS.items():
        if np.isfinite(ratio) and abs(ratio / f - 1.0) < 0.05:
            return f, IngestWarning(
                "time_unit_inferred", f"TestTime carries no unit; the wall clock advances "
                f"{ratio:.2f} s per TestTime unit, so it is read as {unit}", head.name, i + 1,
                "TestTime", 1, {"seconds_per_unit": ratio})
    raise InputFormatError(
        "cannot infer the unit of TestTime from the wall clock", code="unknown_unit",
        file=head.name, row=i + 1, column="TestTime",
        expected="wall clock / TestTime ≈ 1, 60 or 3600", found=f"{ratio:.3g}")
