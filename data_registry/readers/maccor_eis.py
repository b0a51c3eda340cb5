"""Maccor AC-impedance export (``*.EDA0001.041`` beside the ``.041`` cycling file): a preamble
starting ``MACCOR, INC.  AC Impedance Test``, then a tab-separated table ``Freq(Hz) Polar(V)
time(sec) Z'(a) Z''(b) Phase_Angle Z-Mag …`` whose data rows stop after ``V-DC``.

``Z''(b)`` is Im(Z) as measured (negative for capacitive behaviour, consistent with the
negative ``Phase_Angle``), so it is NOT negated. One file = one spectrum:
``measurement_id`` = file stem. ``Polar(V)`` (really ω = 2πf) is ignored.
"""
from __future__ import annotations

import pandas as pd

from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source, preamble_text
from data_registry.readers.tabular import TabularSpec, header_with, open_tabular

SPEC = TabularSpec(
    format_name="maccor_eis", kind="eis", delimiter="\t",
    header=header_with("Freq(Hz)", "Z'(a)", "Z''(b)", limit=40, delimiter="\t"),
    stems={},
    exact={"Freq(Hz)": ("frequency_hz", 1.0), "Z'(a)": ("z_real_ohm", 1.0),
           "Z''(b)": ("z_imag_ohm", 1.0), "time(sec)": ("test_time_second", 1.0),
           "V-DC": ("voltage_volt", 1.0)},
    truncate_header=True,
    description="Maccor AC impedance export (Freq(Hz), Z'(a), Z''(b))",
)


def is_maccor_eis(head: Head) -> bool:
    """True for a Maccor impedance export."""
    return (bool(head.lines) and head.lines[0].startswith("MACCOR, INC.")
            and SPEC.detect(head))


def open_maccor_eis(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                    **_: object) -> Source:
    """Open a Maccor impedance export."""
    i = SPEC.header(head)
    meta = {"preamble": preamble_text(head.lines[:i])}
    stem = head.path.name

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        frame["measurement_id"] = stem
        return frame
    return open_tabular(SPEC, head, chunk_rows, max_line_bytes, metadata=meta, extra_post=post,
                        add_measurement_id=True)
