"""NASA Ames PCoE battery data (Saha & Goebel 2007): the per-operation ``metadata.csv``.

Layout: one row per operation of every cell — ``type`` (charge / discharge / impedance),
``start_time`` (a MATLAB datevec, ``[2010. 7. 21. 15. 0. 35.093]``), ``ambient_temperature``
(°C), ``battery_id`` (``B0005`` …), ``test_id``, ``uid``, ``filename``, ``Capacity`` (Ah, on
discharges), ``Re``/``Rct`` (Ω, on impedance sweeps; sometimes complex strings). The raw
``B00xx.mat`` files are refused with a pointer here: this table already holds what a capacity
forecast needs.

Read as kind "cycles": per cell, each valid DISCHARGE becomes one cycle (``cycle_index`` 1, 2 …
in time order; :func:`operations_to_cycles`, which ``ml.sources.nasa_pcoe`` uses too — one code
path for the evaluation's NASA cells and a user's ingest).

Clock: start times are real; end times are not in the table, so a discharge ends at its start
plus ``capacity / 2 A`` (the nominal load; loads were 1–4 A), capped at the next operation's
start. ``test_time_second`` counts from the cell's first operation, so rests (up to 307 h)
between operations are kept.

Validation (one :class:`~data_registry.errors.IngestWarning` per kind, naming the first line):
``"[]"`` capacities are dropped (``missing_capacity``); capacities outside
[:data:`MIN_VALID_CAPACITY_AH`, :data:`MAX_VALID_CAPACITY_AH`] Ah are aborted or junk discharges
(B0033/34/39/41 start with some) and are dropped (``junk_capacity``); impedance rows are not
cycles and are not stored here (``impedance_rows_not_stored``, with the count). An unreadable
start time is refused with its line.

The table holds every cell: ``--cell-column battery_id`` with ``--cell-id PREFIX`` stores each
cell, or ``--cell-value B0036`` one of them (:mod:`data_registry.readers.cell_column`);
without either, a file of several cells is refused, never merged. The operations of the chosen
cell are held in memory to order them (a few hundred rows per cell).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, ValidationError
from data_registry.readers.csv_stream import MAX_LINE_BYTES, CsvLayout
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source, filtered_records, layout_from_head, row_chunks

__all__ = ["NOMINAL_CAPACITY_AH", "NOMINAL_LOAD_AMPERE", "MIN_VALID_CAPACITY_AH",
           "MAX_VALID_CAPACITY_AH", "MAX_VALID_RESISTANCE_OHM", "parse_datevec",
           "operations_to_cycles", "is_nasa_metadata", "open_nasa_metadata"]

READER_VERSION = "1"
NOMINAL_CAPACITY_AH = 2.0
NOMINAL_LOAD_AMPERE = 2.0
MIN_VALID_CAPACITY_AH = 0.5
MAX_VALID_CAPACITY_AH = 2.5
MAX_VALID_RESISTANCE_OHM = 10.0
#: the header columns that identify the table (all of them, exact names)
SIGNATURE = ("type", "start_time", "ambient_temperature", "battery_id", "Capacity", "Re", "Rct")
CELL_COLUMN = "battery_id"
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_datevec(text: str) -> datetime:
    """A MATLAB datevec string ``[2010. 7. 21. 15. 0. 35.093]`` (also in scientific notation,
    ``[2.010e+03 7.000e+00 …]``) as a naive datetime.

    Raises
    ------
    ValueError
        Not six numbers or not a valid date.
    """
    nums = [float(x) for x in _NUMBER.findall(str(text))]
    if len(nums) != 6:
        raise ValueError(f"expected 6 numbers, found {len(nums)}")
    y, mo, d, h, mi, s = nums
    return datetime(int(round(y)), int(round(mo)), int(round(d))) + timedelta(
        hours=h, minutes=mi, seconds=s)


def parse_starts(text: pd.Series, lines: np.ndarray, file: str) -> pd.Series:
    """``start_time`` datevec strings as datetimes; the first unreadable one is refused with
    its ``file`` and line (from ``lines``)."""
    out = []
    for line, value in zip(lines, text):
        try:
            out.append(parse_datevec(value))
        except ValueError as exc:
            raise ValidationError(f"unreadable start time: {exc}", code="bad_timestamp",
                                  file=file, row=int(line), column="start_time",
                                  expected="a MATLAB datevec '[y m d h mi s]'",
                                  found=repr(value)) from None
    return pd.Series(pd.to_datetime(out), index=text.index)


def _resistance(text: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return float("nan")
    return v if 0 < v <= MAX_VALID_RESISTANCE_OHM else float("nan")


def operations_to_cycles(ops: pd.DataFrame, cell: str, file: str
                         ) -> tuple[pd.DataFrame, list[IngestWarning], pd.DataFrame]:
    """One cell's operations → ``(cycles, warnings, impedance)``.

    ``ops`` columns: ``type``, ``start`` (datetime), ``ambient_temperature`` (°C),
    ``Capacity``, ``Re``, ``Rct`` (text as in the file) and ``file_row`` (1-based line).
    ``cycles``: ``cycle_index``, ``test_time_second`` (s since the cell's first operation, at
    the estimated END of each valid discharge), ``discharge_capacity_ah``,
    ``temperature_celsius``, ``source_row``. ``impedance``: ``test_time_second``, ``re_ohm``,
    ``rct_ohm`` (NaN where complex, non-positive or above :data:`MAX_VALID_RESISTANCE_OHM`),
    ``source_row``.
    """
    ops = ops.sort_values("start", kind="stable").reset_index(drop=True)
    t0 = ops["start"].iloc[0]
    start_s = (ops["start"] - t0).dt.total_seconds().to_numpy()
    next_s = np.append(start_s[1:], np.inf)
    warns: list[IngestWarning] = []
    dis = ops["type"].astype(str).str.strip().to_numpy() == "discharge"
    cap_text = ops["Capacity"].astype(str).str.strip()
    missing = dis & cap_text.isin(["[]", "", "nan"]).to_numpy()
    if missing.any():
        warns.append(IngestWarning("missing_capacity", f"{cell}: {int(missing.sum())} "
                                   "discharge(s) with Capacity '[]' dropped", file,
                                   int(ops["file_row"][missing].iloc[0]), "Capacity",
                                   int(missing.sum())))
    cap = pd.to_numeric(cap_text, errors="coerce").to_numpy()
    junk = dis & ~missing & ~((cap >= MIN_VALID_CAPACITY_AH) & (cap <= MAX_VALID_CAPACITY_AH))
    if junk.any():
        warns.append(IngestWarning("junk_capacity", f"{cell}: {int(junk.sum())} discharge(s) "
                                   f"with capacity outside [{MIN_VALID_CAPACITY_AH}, "
                                   f"{MAX_VALID_CAPACITY_AH}] Ah dropped", file,
                                   int(ops["file_row"][junk].iloc[0]), "Capacity",
                                   int(junk.sum()), {"values": cap[junk][:10].tolist()}))
    keep = dis & ~missing & ~junk
    duration = np.minimum(cap[keep] / NOMINAL_LOAD_AMPERE * 3600.0,
                          next_s[keep] - start_s[keep])
    cycles = pd.DataFrame({
        "cycle_index": np.arange(1, int(keep.sum()) + 1, dtype="int64"),
        "test_time_second": start_s[keep] + duration,
        "discharge_capacity_ah": cap[keep],
        "temperature_celsius": pd.to_numeric(ops["ambient_temperature"], errors="coerce")
        .to_numpy(dtype="float64")[keep],
        "source_row": ops["file_row"].to_numpy(dtype="int64")[keep],
    })
    imp = ops[ops["type"].astype(str).str.strip() == "impedance"]
    re_ohm = imp["Re"].map(_resistance).to_numpy(dtype="float64")
    rct_ohm = imp["Rct"].map(_resistance).to_numpy(dtype="float64")
    bad = (np.isnan(re_ohm) | np.isnan(rct_ohm)) & (imp["Re"].astype(str).str.len() > 0).to_numpy()
    if bad.any():
        warns.append(IngestWarning("bad_impedance", f"{cell}: {int(bad.sum())} Re/Rct value(s) "
                                   "complex, non-positive or absurd set to NaN", file,
                                   int(imp["file_row"][bad].iloc[0]), "Re", int(bad.sum())))
    impedance = pd.DataFrame({"test_time_second": (imp["start"] - t0).dt.total_seconds()
                              .to_numpy(), "re_ohm": re_ohm, "rct_ohm": rct_ohm,
                              "source_row": imp["file_row"].to_numpy(dtype="int64")})
    return cycles, warns, impedance


def is_nasa_metadata(head: Head) -> bool:
    """True for the NASA PCoE ``metadata.csv`` (its operation columns in the first line)."""
    fields = {f.strip().strip('"') for f in head.fields(0, ",")} if head.lines else set()
    return set(SIGNATURE) <= fields


def open_nasa_metadata(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                       cell_column: str | None = None, cell_value: str | None = None,
                       **_: object) -> Source:
    """Open the table as per-cycle rows of ONE cell (``cell_value`` of ``battery_id``, or the
    only cell the file holds; several without a choice are refused, naming the options)."""
    from data_registry.readers.cell_column import cell_rows_for

    layout, warns = layout_from_head(head, 0, delimiter=",")
    rows = cell_rows_for(head, layout, cell_column or CELL_COLUMN, cell_value, max_line_bytes)
    read = tuple(dict.fromkeys((*SIGNATURE, *(rows.columns if rows is not None else ()))))
    layout = CsvLayout(**{**layout.__dict__, "numeric": (), "text": read})
    holder: list[Source] = []

    def produce(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        if rows is not None:
            rows.reset()
        parts = []
        for raw, lines in filtered_records(head.path, layout, rows, chunk_rows=chunk_rows,
                                           max_line_bytes=max_line_bytes):
            if len(lines):
                parts.append(pd.DataFrame({**{c: raw[c].fillna("").to_numpy(dtype=object)
                                              for c in SIGNATURE}, "file_row": lines}))
        if rows is not None:
            rows.finish(holder[0].metadata if holder else {})
        if not parts:
            return
        ops = pd.concat(parts, ignore_index=True)
        ops["start"] = parse_starts(ops["start_time"], ops["file_row"].to_numpy(), head.name)
        cell = str(ops[CELL_COLUMN].iloc[0]).strip()
        cycles, found, impedance = operations_to_cycles(ops, cell, head.name)
        sink.extend(found)
        if len(impedance):
            sink.append(IngestWarning("impedance_rows_not_stored", f"{cell}: {len(impedance)} "
                                      "impedance operation(s) (Re, Rct) are not cycles and were "
                                      "not stored", head.name,
                                      int(impedance["source_row"].min()), "type",
                                      len(impedance)))
        cycles["test_time_estimated"] = 0
        yield from row_chunks(cycles, chunk_rows)

    source = Source(path=head.path, format_name="nasa_pcoe_metadata_csv",
                    reader_version=READER_VERSION, kind="cycles",
                    metadata={"nominal_capacity_ah": NOMINAL_CAPACITY_AH}, warnings=warns,
                    produce=produce)
    holder.append(source)
    return source
