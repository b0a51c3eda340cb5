"""Gamry Framework ``.DTA`` files: impedance spectra from their ``ZCURVE`` tables.

A DTA file is a header of tab-separated ``KEY  TYPE  VALUE  label`` lines (first line
``EXPLAIN``, then ``TAG  <experiment>``), then one or more tables: a ``NAME  TABLE`` line, a line
of column names, a line of units, and rows that each begin with a tab. An EIS experiment
(``TAG EISPOT`` / ``EISGALV`` …) writes its open-circuit record as ``OCVCURVE`` and the spectrum
as ``ZCURVE`` (``Pt Time Freq Zreal Zimag Zsig Zmod Zphz Idc Vdc IERange``; Hz, ohm, V).

* ``Zimag`` is Im(Z) as measured (negative for capacitive behaviour), like every impedance
  export here; the validator still checks the sign (``eis_sign``).
* Each ``ZCURVE…`` table is one spectrum: ``measurement_id`` = file stem (``<stem>#n`` when a
  file holds several); ``source_row`` = the row's 1-based line; ``Vdc`` → ``voltage_volt``.
* ``Time`` counts seconds from the start of THIS experiment, not the cell's test clock, so it
  is not stored as ``test_time_second``: the file's ``DATE``/``TIME`` go to the metadata and the
  spectrum's cycle is unknown (warning ``eis_cycle_count_unknown``).
* Gamry writes decimal commas on some Windows locales (``0,258``); fields are tab-separated, so
  a comma in a field is read as the decimal mark.
* ``EXPERIMENTABORTED`` (the run was stopped early) keeps the rows written: warning
  ``gamry_experiment_aborted``.
* A DTA without a ``ZCURVE`` table (cyclic voltammetry, chronopotentiometry, a cycling
  ``CURVE``) is refused naming the tables it holds.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.numeric_lines import iter_lines
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source, row_chunks, sweep_clock_warning

FORMAT_NAME = "gamry_dta"
READER_VERSION = "1"
#: ZCURVE column → (canonical column, unit the file must state)
COLUMNS = {"Freq": ("frequency_hz", "Hz"), "Zreal": ("z_real_ohm", "ohm"),
           "Zimag": ("z_imag_ohm", "ohm"), "Vdc": ("voltage_volt", "V")}
REQUIRED = ("Freq", "Zreal", "Zimag")
#: header keys kept as metadata (``gamry_<key>``)
HEADER_KEYS = ("TAG", "TITLE", "DATE", "TIME", "PSTAT", "VDC", "FREQINIT", "FREQFINAL",
               "PTSPERDEC", "VAC", "IACREQ", "IDC", "AREA", "EOC", "NOTES")


def is_gamry_dta(head: Head) -> bool:
    """True for a Gamry Framework data file (``EXPLAIN`` then a ``TAG`` line)."""
    lines = head.lines
    return (len(lines) >= 2 and lines[0].strip() == "EXPLAIN"
            and lines[1].split("\t")[0].strip() == "TAG")


def _number(text: str, file: str, line: int, column: str) -> float:
    t = text.strip().replace(",", ".")
    try:
        return float(t)
    except ValueError:
        raise InputFormatError(f"{column} is not a number", code="bad_value", file=file,
                               row=line, column=column, expected="a number (decimal point or "
                               "comma)", found=repr(text.strip())) from None


def read_dta(head: Head, max_line_bytes: int = MAX_LINE_BYTES
             ) -> tuple[dict[str, str], list[str], list[dict], int]:
    """Parse the whole file: ``(header values, table names, ZCURVE tables, line of
    EXPERIMENTABORTED or 0)``; each
    table is ``{"name", "line", "columns", "units", "rows": [(line, fields)]}``."""
    header: dict[str, str] = {}
    names: list[str] = []
    tables: list[dict] = []
    aborted = 0  # the line that says EXPERIMENTABORTED, 0 when none does
    table: dict | None = None
    expect = ""  # "columns" / "units" right after a TABLE line
    for n, text in iter_lines(head, max_line_bytes):
        line = text.rstrip("\r\n")
        fields = line.split("\t")
        if expect:
            if table is not None:
                table[expect] = [f.strip() for f in fields[1:]]
            expect = "units" if expect == "columns" else ""
            continue
        if line.startswith("\t"):
            if table is not None:
                table["rows"].append((n, fields[1:]))
            continue
        table = None
        key = fields[0].strip()
        if len(fields) >= 2 and fields[1].strip() == "TABLE":
            names.append(key)
            expect = "columns"
            if key.startswith("ZCURVE"):
                table = {"name": key, "line": n, "columns": [], "units": [], "rows": []}
                tables.append(table)
            continue
        if key == "EXPERIMENTABORTED":
            aborted = n
        if key == "TAG" and len(fields) >= 2:  # "TAG  EISPOT": the value is the 2nd field
            header.setdefault(key, fields[1].strip())
        elif key in HEADER_KEYS and len(fields) >= 3 and key not in header:
            header[key] = fields[2].strip()
    return header, names, tables, aborted


def _table_frame(table: dict, file: str, sink: list[IngestWarning]) -> pd.DataFrame:
    """One ZCURVE table as canonical columns (``source_row`` = line). Units compare without
    case (``ohm`` / ``Ohm``); a required column in another unit is refused, the optional
    ``Vdc`` left out with warning ``gamry_column_skipped``."""
    cols = table["columns"]
    units = table["units"] + [""] * max(0, len(cols) - len(table["units"]))
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise InputFormatError(
            f"{table['name']} table lacks column '{missing[0]}'", code="missing_column",
            file=file, row=table["line"] + 1, column=missing[0],
            expected=f"columns {list(REQUIRED)}", found=f"{cols}")
    out: dict[str, np.ndarray] = {
        "source_row": np.array([n for n, _ in table["rows"]], dtype=np.int64)}
    for name, (target, unit) in COLUMNS.items():
        if name not in cols:
            continue
        j = cols.index(name)
        if units[j].lower() != unit.lower() and name not in REQUIRED:
            sink.append(IngestWarning(
                "gamry_column_skipped", f"{table['name']} column {name} is in '{units[j]}', "
                f"not '{unit}': left out", file, table["line"] + 2, name, 1))
            continue
        if units[j].lower() != unit.lower():
            raise InputFormatError(
                f"{table['name']} column {name} is in '{units[j]}'", code="unknown_unit",
                file=file, row=table["line"] + 2, column=name, expected=f"'{unit}'",
                found=repr(units[j]))
        values = []
        for n, fields in table["rows"]:
            if j >= len(fields):
                raise InputFormatError(
                    f"row has {len(fields)} fields, the table's header {len(cols)}",
                    code="bad_value", file=file, row=n, column=name,
                    expected=f"{len(cols)} tab-separated fields", found=f"{len(fields)}")
            values.append(_number(fields[j], file, n, name))
        out[target] = np.asarray(values, dtype=np.float64)
    return pd.DataFrame(out)


def open_gamry_dta(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                   **_: object) -> Source:
    """Open a Gamry ``.DTA`` file's impedance spectra (its ``ZCURVE`` tables)."""
    header, names, tables, aborted = read_dta(head, max_line_bytes)
    if not tables:
        raise InputFormatError(
            "Gamry file without an impedance table: fadecast reads the ZCURVE tables of "
            "Gamry EIS experiments; export other experiments' data as CSV with canonical "
            "columns (see `fadecast ingest --list-columns`)", code="unsupported_format",
            file=head.name, expected="a ZCURVE table (TAG EISPOT / EISGALV)",
            found=f"TAG {header.get('TAG', '?')}, tables {names or 'none'}")
    warns = [sweep_clock_warning(head.name, "Time column", tables[0]["line"], len(tables))]
    if aborted:
        warns.append(IngestWarning(
            "gamry_experiment_aborted", "the file says EXPERIMENTABORTED: the spectrum stops "
            "where the run was stopped; its rows are kept", head.name, aborted, None, 1))
    meta = {f"gamry_{k.lower()}": v for k, v in header.items()}
    stem = head.stem

    def produce(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        for i, table in enumerate(tables, start=1):
            frame = _table_frame(table, head.name, sink)
            frame["measurement_id"] = stem if len(tables) == 1 else f"{stem}#{i}"
            yield from row_chunks(frame, chunk_rows)

    return Source(path=head.path, format_name=FORMAT_NAME, reader_version=READER_VERSION,
                  kind="eis", metadata=meta, warnings=warns, produce=produce)
