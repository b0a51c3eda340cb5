"""Generic CSV: canonical column names, or the documented aliases below, units in the names.

Three layouts, told apart by their columns:

* ``generic_csv`` (samples): ``test_time_second, voltage_volt, current_ampere, cycle_count``
  (+ optional SAMPLES columns);
* ``generic_cycles_csv`` (per-cycle summary): ``cycle_index, discharge_capacity_ah`` and
  ``test_time_second`` (elapsed at the END of the cycle). Without a time column, pass
  ``protocol_hours_per_cycle`` to estimate it (flagged ``test_time_estimated = 1``), else the
  file is refused;
* ``generic_eis_csv``: ``measurement_id, frequency_hz, z_real_ohm, z_imag_ohm`` (Im(Z) as
  measured, negative for capacitive behaviour).

Aliases (case-insensitive; a unit may follow as ``_unit``, ``(unit)``, ``[unit]`` or ``/ unit``,
e.g. ``time_h``, ``Current (mA)``, ``capacity / mAh``; no unit = the canonical unit) are in
:data:`SAMPLE_STEMS`, :data:`CYCLE_STEMS` and :data:`EIS_STEMS`. Delimiter ``,`` ``;`` or tab.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, ValidationError
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.headers import match_headers
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, csv_source, layout_from_head
from data_registry.schema import CYCLES, EIS, SAMPLES

READER_VERSION = "1"

SAMPLE_STEMS: dict[str, str] = {
    "test_time": "test_time_second", "time": "test_time_second",
    "elapsed_time": "test_time_second",
    "voltage": "voltage_volt", "potential": "voltage_volt",
    "current": "current_ampere",
    "cycle": "cycle_count", "cycle_number": "cycle_count", "cycle_index": "cycle_count",
    "step": "step_count", "step_index": "step_count", "step_number": "step_count",
    "charge_capacity": "charging_capacity_ah", "charging_capacity": "charging_capacity_ah",
    "discharge_capacity": "discharging_capacity_ah",
    "discharging_capacity": "discharging_capacity_ah",
    "charge_energy": "charging_energy_wh", "charging_energy": "charging_energy_wh",
    "discharge_energy": "discharging_energy_wh", "discharging_energy": "discharging_energy_wh",
    "temperature": "ambient_temperature_celsius",
    "ambient_temperature": "ambient_temperature_celsius",
    "internal_resistance": "internal_resistance_ohm",
    "unix_time": "unix_time_second",
}
CYCLE_STEMS: dict[str, str] = {
    "cycle": "cycle_index", "cycle_number": "cycle_index", "cycle_count": "cycle_index",
    "test_time": "test_time_second", "time": "test_time_second",
    "elapsed_time": "test_time_second",
    "discharge_capacity": "discharge_capacity_ah", "charge_capacity": "charge_capacity_ah",
    "discharge_energy": "discharge_energy_wh", "charge_energy": "charge_energy_wh",
    "temperature": "temperature_celsius", "internal_resistance": "internal_resistance_ohm",
    "cycle_duration": "cycle_duration_second", "rest": "rest_second",
}
EIS_STEMS: dict[str, str] = {
    "frequency": "frequency_hz", "freq": "frequency_hz",
    "z_real": "z_real_ohm", "re_z": "z_real_ohm", "zreal": "z_real_ohm",
    "z_imag": "z_imag_ohm", "im_z": "z_imag_ohm", "zimag": "z_imag_ohm",
    "measurement": "measurement_id", "spectrum": "measurement_id",
    "cycle": "cycle_count", "test_time": "test_time_second", "time": "test_time_second",
    "voltage": "voltage_volt", "soc": "state_of_charge",
}

LAYOUTS: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "generic_csv": ("samples", SAMPLE_STEMS, [c for c in SAMPLES.names if c != "cell_id"]),
    "generic_cycles_csv": ("cycles", CYCLE_STEMS, [c for c in CYCLES.names if c != "cell_id"]),
    "generic_eis_csv": ("eis", EIS_STEMS, [c for c in EIS.names if c != "cell_id"]),
}
#: the columns whose presence identifies each layout (canonical names, or stems for samples)
SIGNATURES: dict[str, set[str]] = {
    "generic_eis_csv": {"frequency_hz", "z_real_ohm", "z_imag_ohm"},
    "generic_cycles_csv": {"cycle_index", "discharge_capacity_ah"},
    "generic_csv": {"test_time_second", "voltage_volt", "current_ampere"},
}


def _mapped(head: Head, name: str) -> list[Mapped]:
    _, stems, canonical = LAYOUTS[name]
    names = head.fields(0)
    try:
        return match_headers(names, canonical, stems, head.name, 1)
    except ValidationError:
        return []


def detect_layout(head: Head) -> str | None:
    """Which generic layout the head's first line is (or None).

    A layout whose signature columns are all present wins; otherwise the layout with most
    signature columns, if at least two, so a file missing one column is still recognised and
    then refused with a precise ``missing_column`` error.
    """
    if not head.lines:
        return None
    scores = {}
    for name in ("generic_eis_csv", "generic_cycles_csv", "generic_csv"):
        targets = {m.target for m in _mapped(head, name)}
        hits = len(SIGNATURES[name] & targets)
        scores[name] = (hits == len(SIGNATURES[name]), hits)
    best = max(scores, key=lambda n: scores[n])
    return best if scores[best][1] >= 2 else None


def open_generic(head: Head, chunk_rows: int, format_name: str = "generic_csv",
                 protocol_hours_per_cycle: float | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES, **_: object) -> Source:
    """Open a generic CSV of the given layout (see module doc)."""
    kind, stems, canonical = LAYOUTS[format_name]
    layout, warns = layout_from_head(head, 0)
    columns = match_headers(layout.names, canonical, stems, head.name, 1)
    unknown = [n for n in layout.names if n and n not in {m.source for m in columns}]
    if unknown:
        warns.append(IngestWarning("unknown_columns", f"columns ignored: {unknown[:10]}",
                                   head.name, 1, None, len(unknown)))
    post = None
    if kind == "eis":
        columns = [Mapped(m.source, m.target, m.factor, m.target == "measurement_id")
                   for m in columns]
        if "measurement_id" in {m.target for m in columns}:
            post = _eis_post(columns)
    if kind == "cycles" and "test_time_second" not in {m.target for m in columns}:
        post, columns, w = estimated_time(head, columns, protocol_hours_per_cycle)
        warns.append(w)
    return csv_source(head, format_name=format_name, reader_version=READER_VERSION, kind=kind,
                      layout=layout, columns=columns, chunk_rows=chunk_rows, warnings=warns,
                      post=post, max_line_bytes=max_line_bytes)


def _eis_post(columns: list[Mapped]):
    """Copy the (text) measurement id column into the canonical frame."""
    source = next(m.source for m in columns if m.target == "measurement_id")

    def post(frame: pd.DataFrame, raw, sink: list) -> pd.DataFrame:
        frame["measurement_id"] = raw[source].astype("string").to_numpy()
        return frame
    return post


def estimated_time(head: Head, columns: list[Mapped], hours: float | None):
    """Post-step, column list and warning that estimate ``test_time_second`` of a per-cycle
    file as ``cycle_index × hours`` (flagged ``test_time_estimated = 1``); refuses without
    ``hours``."""
    if hours is None or not hours > 0:
        raise ValidationError(
            "per-cycle file has no elapsed-time column; give the protocol's hours per cycle "
            "(ingest option protocol_hours_per_cycle) to estimate it", code="missing_column",
            file=head.name, row=1, column="test_time_second",
            expected="a test_time_second column or protocol_hours_per_cycle > 0",
            found=f"header {head.fields(0)}")
    seconds = float(hours) * 3600.0

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        return frame.assign(test_time_second=frame["cycle_index"].to_numpy() * seconds,
                            test_time_estimated=np.int64(1))
    placeholder = Mapped(columns[0].source, "test_time_second", 0.0)
    w = IngestWarning("test_time_estimated", f"test_time_second estimated as cycle_index × "
                      f"{hours:g} h (stated protocol)", head.name, 1, "test_time_second")
    return post, columns + [placeholder], w
