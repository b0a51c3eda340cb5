"""battery-data-toolkit (battdat) "raw" time series that also carries impedance columns.

Layout (DOE Battery Data Hub exports converted by battdat, e.g. ``p492-13-raw.csv``): one CSV
with ``Cycle_Index, Step, Time_s, Current_A, Voltage_V, Cell_Temperature_C,
Charge_Capacity_Ah, Discharge_Capacity_Ah, Charge_Energy_Wh, Discharge_Energy_Wh`` (units in
the names; current positive on charge) PLUS ``Frequency_Hz, Z_Real_Ohm, Z_Imag_Ohm`` (Im(Z)
as measured). The EIS sweep is written as rows of the same table, with ``Frequency_Hz`` set and
a meaningless voltage (e.g. -3.79 V). Because the columns of both kinds are present, the generic
detector would call the file an EIS CSV; this reader claims it first and reads it as SAMPLES:
rows with a frequency are skipped, counted in ONE warning ``eis_rows_skipped`` (first line,
count, frequency range). ``Datenum_d`` (MATLAB day number, time zone unknown) is not read.

The matching per-cycle summary (``p492-13-summary.csv``: ``Cycle_Index, Cycle_Label, tsecs_end,
Q_chg, Q_dis, E_chg, E_dis, T_avg, Equivalent_Full_Cycles`` …) is read as kind "cycles"
(``test_time_second`` = ``tsecs_end``, the end of the cycle); cycles without a discharge
capacity (EIS, rest, partial cycles) are skipped with ONE warning
``cycles_without_discharge_skipped``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.header_words import SAMPLE_STEMS
from data_registry.readers.headers import match_headers
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, csv_source, layout_from_head
from data_registry.schema import SAMPLES

READER_VERSION = "1"
#: headers (exact) that identify the layout: samples and impedance columns together
SAMPLE_SIGNATURE = {"Cycle_Index", "Time_s", "Current_A", "Voltage_V"}
EIS_SIGNATURE = {"Frequency_Hz", "Z_Real_Ohm", "Z_Imag_Ohm"}
STEMS = {**SAMPLE_STEMS, "cell_temperature": "ambient_temperature_celsius"}
_FREQUENCY = "_eis_frequency_hz"


def is_battdat_raw(head: Head) -> bool:
    """True for a battdat raw time series with EIS columns in the first line."""
    fields = set(head.fields(0, ",")) if head.lines else set()
    return SAMPLE_SIGNATURE <= fields and EIS_SIGNATURE <= fields


def open_battdat_raw(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                     **_: object) -> Source:
    """Open a battdat raw time series; EIS rows are skipped with one warning."""
    layout, warns = layout_from_head(head, 0, delimiter=",")
    names = tuple(n for n in layout.names if n not in ("Temp2", "Datenum_d"))
    canonical = [c for c in SAMPLES.names if c != "cell_id"]
    columns = match_headers(names, canonical, STEMS, head.name, 1)
    columns.append(Mapped("Frequency_Hz", _FREQUENCY))
    state = {"index": -1}

    def post(frame: pd.DataFrame, raw: object, sink: list[IngestWarning]) -> pd.DataFrame:
        freq = frame[_FREQUENCY].to_numpy()
        eis = ~np.isnan(freq)
        frame = frame.drop(columns=[_FREQUENCY])
        if not eis.any():
            return frame
        rows = frame["source_row"].to_numpy()[eis]
        f = freq[eis]
        if state["index"] < 0:
            state["index"] = len(sink)
            sink.append(IngestWarning(
                "eis_rows_skipped", "", head.name, int(rows[0]), "Frequency_Hz", 0,
                {"frequency_min_hz": float(f.min()), "frequency_max_hz": float(f.max())}))
        old = sink[state["index"]]
        details = dict(old.details or {})
        details["frequency_min_hz"] = min(details["frequency_min_hz"], float(f.min()))
        details["frequency_max_hz"] = max(details["frequency_max_hz"], float(f.max()))
        count = int(old.count or 0) + int(eis.sum())
        sink[state["index"]] = IngestWarning(
            old.code, f"{count} impedance rows (Frequency_Hz set, "
            f"{details['frequency_min_hz']:g}–{details['frequency_max_hz']:g} Hz) are not "
            "samples and were skipped", old.file, old.row, old.column, count, details)
        return frame[~eis]

    return csv_source(head, format_name="battdat_raw_csv", reader_version=READER_VERSION,
                      kind="samples", layout=layout, columns=columns, chunk_rows=chunk_rows,
                      warnings=warns, post=post, max_line_bytes=max_line_bytes)


#: battdat summary column → canonical per-cycle column (units already canonical)
SUMMARY_MAP: dict[str, str] = {
    "Cycle_Index": "cycle_index", "tsecs_end": "test_time_second",
    "Q_chg": "charge_capacity_ah", "Q_dis": "discharge_capacity_ah",
    "E_chg": "charge_energy_wh", "E_dis": "discharge_energy_wh",
    "tsecs_cycle": "cycle_duration_second", "T_avg": "temperature_celsius",
    "Equivalent_Full_Cycles": "equivalent_full_cycles",
}


#: the summary's label of each cycle, kept as ``cycle_label`` (``ml.features.cycle_kinds``)
LABEL = "Cycle_Label"


def is_battdat_summary(head: Head) -> bool:
    """True for a battdat per-cycle summary (``tsecs_end``, ``Q_dis`` … in the first line)."""
    fields = set(head.fields(0, ",")) if head.lines else set()
    return {"Cycle_Index", "tsecs_end", "Q_dis", "Q_chg", "Equivalent_Full_Cycles"} <= fields


def open_battdat_summary(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                         **_: object) -> Source:
    """Open a battdat per-cycle summary; cycles without a discharge capacity are skipped."""
    layout, warns = layout_from_head(head, 0, delimiter=",")
    columns = [Mapped(n, SUMMARY_MAP[n]) for n in layout.names if n in SUMMARY_MAP]
    labelled = LABEL in layout.names
    if labelled:
        columns.append(Mapped(LABEL, "cycle_label", text=True))
    state = {"index": -1}

    def post(frame: pd.DataFrame, raw: Any, sink: list[IngestWarning]) -> pd.DataFrame:
        if labelled:  # the summary's own words per cycle ("Capacity check", "HPPC" …)
            text = pd.Series(raw[LABEL], copy=False).astype(object)
            frame["cycle_label"] = text.where(text.notna() & (text.str.strip() != ""),
                                              None).to_numpy()
        missing = np.isnan(frame["discharge_capacity_ah"].to_numpy())
        if not missing.any():
            return frame
        rows = frame["source_row"].to_numpy()[missing]
        if state["index"] < 0:
            state["index"] = len(sink)
            sink.append(IngestWarning("cycles_without_discharge_skipped", "", head.name,
                                      int(rows[0]), "Q_dis", 0))
        old = sink[state["index"]]
        count = int(old.count or 0) + int(missing.sum())
        sink[state["index"]] = IngestWarning(
            old.code, f"{count} cycles without a discharge capacity (EIS, rest or partial "
            "cycles) were skipped", old.file, old.row, old.column, count)
        return frame[~missing]

    return csv_source(head, format_name="battdat_summary_csv", reader_version=READER_VERSION,
                      kind="cycles", layout=layout, columns=columns, chunk_rows=chunk_rows,
                      warnings=warns, post=post, max_line_bytes=max_line_bytes)
