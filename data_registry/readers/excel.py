"""Cycler Excel workbooks (``.xlsx``; Landt/Arbin-style: an info sheet plus one or more data
sheets per channel, e.g. ``Global_Info`` + ``Channel_11_1``, ``Channel_11_2`` …).

A data sheet is one whose first row maps (Arbin names or the generic aliases, units in the
headers: ``Test_Time(s)``, ``Current(A)``, ``Capacity/mAh``) to time, voltage, current and
cycle. Data sheets are read in workbook order and concatenated; a workbook without one is
refused as an unsupported sheet layout, naming its sheets.
"""
from __future__ import annotations

import pandas as pd

from data_registry.errors import InputFormatError, ValidationError
from data_registry.readers import arbin_csv, generic_csv
from data_registry.readers.headers import match_headers
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, frame_source
from data_registry.schema import SAMPLES

READER_VERSION = "1"
STEMS = {**generic_csv.SAMPLE_STEMS, **arbin_csv.COLUMN_MAP}
STEMS.pop("date_time", None)
STEMS.pop("datetime", None)
NEEDED = {"test_time_second", "voltage_volt", "current_ampere", "cycle_count"}


def is_xlsx(head: Head) -> bool:
    """True for an Office Open XML workbook."""
    return "xl/workbook.xml" in head.zip_names


def _sheet_map(head: Head) -> tuple[list[str], list[str], list[Mapped]]:
    import openpyxl
    try:
        wb = openpyxl.load_workbook(head.path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt workbook is a format error
        raise InputFormatError(f"cannot open the workbook: {exc}"[:300], code="unreadable",
                               file=head.name) from None
    names, data, mapping = list(wb.sheetnames), [], []
    canonical = [c for c in SAMPLES.names if c != "cell_id"]
    for ws in wb.worksheets:
        first = next(ws.iter_rows(max_row=1, values_only=True), ())
        header = [str(x) for x in first if x is not None]
        try:
            cols = match_headers(header, canonical, STEMS, head.name, 1)
        except ValidationError:
            continue
        if NEEDED <= {m.target for m in cols}:
            data.append(ws.title)
            mapping = mapping or cols
    wb.close()
    return names, data, mapping


def open_xlsx(head: Head, chunk_rows: int, **_: object) -> Source:
    """Open a cycler Excel workbook."""
    sheets, data, columns = _sheet_map(head)
    if not data:
        raise InputFormatError(
            "unsupported Excel sheet layout: no sheet has a header row with time, voltage, "
            "current and cycle columns", code="unsupported_layout", file=head.name,
            expected="a data sheet such as Channel_1_1 with Test_Time(s), Voltage(V), "
                     "Current(A), Cycle_Index", found=f"sheets {sheets}")

    def load() -> pd.DataFrame:
        parts = [pd.read_excel(head.path, sheet_name=s, engine="openpyxl") for s in data]
        return pd.concat(parts, ignore_index=True)

    return frame_source(head, format_name="landt_xlsx", reader_version=READER_VERSION,
                        kind="samples", load=load, columns=columns, chunk_rows=chunk_rows,
                        metadata={"excel_data_sheets": ",".join(data),
                                  "excel_sheets": ",".join(sheets)})
