"""BioLogic EC-Lab / BT-Lab text exports (``.txt``/``.csv``, tab- or ``;``-separated, optional
``EC-Lab ASCII FILE`` preamble; a ``.mpl`` log may sit beside it and is recorded in metadata).

* Cycling (GCPL, MB, …): ``time/s`` (seconds, or a wall-clock timestamp in BT-Lab's
  "absolute time" export), ``Ewe/V`` or ``Ecell/V``, ``I/mA`` or ``<I>/mA`` (positive =
  oxidation of the working electrode = charge of a cathode-vs-anode cell), ``cycle number``,
  ``Ns`` (sequence = step), ``Q charge/mA.h``, ``Q discharge/mA.h``. EC-Lab writes the
  discharge energy counter negative: counters are taken as magnitudes.
* PEIS/GEIS (kind "eis"): ``freq/Hz``, ``Re(Z)/Ohm``, ``-Im(Z)/Ohm`` — EC-Lab exports −Im(Z),
  converted here to Im(Z) (negative for capacitive behaviour). A new spectrum starts where the
  frequency sweep restarts (frequency rises); ``measurement_id`` = ``<file stem>#<n>``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source
from data_registry.readers.tabular import TabularSpec, open_tabular, preamble_metadata


def _fields(line: str, head: Head) -> list[str]:
    return [f.strip() for f in line.split(head.delimiter(line))]


def _find(head: Head, need_any: list[set[str]], limit: int = 200) -> int | None:
    for i, line in enumerate(head.lines[:limit]):
        if "/" not in line:
            continue
        f = set(_fields(line, head))
        if all(f & group for group in need_any):
            return i
    return None


_CYCLING = [{"time/s"}, {"Ewe/V", "Ecell/V", "<Ewe>/V", "<Ecell>/V"}, {"I/mA", "<I>/mA"}]
_EIS = [{"freq/Hz"}, {"Re(Z)/Ohm"}, {"-Im(Z)/Ohm"}]

SAMPLES = TabularSpec(
    format_name="biologic_txt", kind="samples", header=lambda h: _find(h, _CYCLING),
    stems={},
    exact={
        "Ewe/V": ("voltage_volt", 1.0), "Ecell/V": ("voltage_volt", 1.0),
        "<Ewe>/V": ("voltage_volt", 1.0), "<Ecell>/V": ("voltage_volt", 1.0),
        "I/mA": ("current_ampere", 1e-3), "<I>/mA": ("current_ampere", 1e-3),
        "cycle number": ("cycle_count", 1.0), "Ns": ("step_count", 1.0),
        "Q charge/mA.h": ("charging_capacity_ah", 1e-3),
        "Q discharge/mA.h": ("discharging_capacity_ah", 1e-3),
        "Energy charge/W.h": ("charging_energy_wh", 1.0),
        "Energy discharge/W.h": ("discharging_energy_wh", 1.0),
        "Temperature/°C": ("ambient_temperature_celsius", 1.0),
    },
    unsigned=("charging_capacity_ah", "discharging_capacity_ah", "charging_energy_wh",
              "discharging_energy_wh"),
    description="BioLogic EC-Lab text export (time/s, Ewe/V, I/mA, ...)",
)
EIS = TabularSpec(
    format_name="biologic_peis_txt", kind="eis", header=lambda h: _find(h, _EIS),
    stems={},
    exact={
        "freq/Hz": ("frequency_hz", 1.0), "Re(Z)/Ohm": ("z_real_ohm", 1.0),
        "-Im(Z)/Ohm": ("z_imag_ohm", -1.0), "time/s": ("test_time_second", 1.0),
        "Ewe/V": ("voltage_volt", 1.0), "Ecell/V": ("voltage_volt", 1.0),
        "<Ewe>/V": ("voltage_volt", 1.0), "cycle number": ("cycle_count", 1.0),
    },
    description="BioLogic PEIS text export (freq/Hz, Re(Z)/Ohm, -Im(Z)/Ohm)",
)


def _first_value(head: Head, i: int, column: str) -> str:
    names = _fields(head.lines[i], head)
    for line in head.lines[i + 1:i + 5]:
        if line.strip():
            values = dict(zip(names, _fields(line, head)))
            return values.get(column, "")
    return ""


def is_biologic_eis(head: Head) -> bool:
    """True for a PEIS/GEIS text export with frequencies in its first data row."""
    i = EIS.header(head) if head.is_text else None
    return i is not None and _first_value(head, i, "freq/Hz") not in ("", "0", "0.0")


def is_biologic_cycling(head: Head) -> bool:
    """True for a cycling text export (and not an impedance one)."""
    return (head.is_text and not head.lines[0].strip().endswith("LOG FILE")
            and SAMPLES.header(head) is not None and not is_biologic_eis(head))


def _metadata(head: Head, i: int) -> dict:
    meta = preamble_metadata(head, i)
    mpl = head.path.with_suffix(".mpl")
    if mpl.is_file():
        meta["biologic_log_file"] = mpl.name
        text = mpl.read_bytes()[:20000].decode("latin-1")
        for line in text.splitlines():
            key, sep, value = line.partition(" : ")
            if sep and key.strip() in ("Acquisition started on", "Run on channel", "Device",
                                       "Mass of active material", "Electrode material",
                                       "Comments", "Cycle Definition"):
                meta["biologic_" + key.strip().lower().replace(" ", "_")] = value.strip()
    return meta


def open_biologic_text(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                       **_: object) -> Source:
    """Open a BioLogic cycling text export."""
    i = SAMPLES.header(head)
    first_time = _first_value(head, i, "time/s")
    absolute = ("/" in first_time or "-" in first_time[1:]) and ":" in first_time
    exact = dict(SAMPLES.exact)
    exact["time/s"] = ("_time_text", 1.0) if absolute else ("test_time_second", 1.0)
    spec = TabularSpec(**{**SAMPLES.__dict__, "exact": exact,
                          "time_text": "datetime" if absolute else None})
    return _with_log(open_tabular(spec, head, chunk_rows, max_line_bytes,
                                  metadata=_metadata(head, i)))


def _with_log(source: Source) -> Source:
    """Record the ``.mpl`` log read by :func:`_metadata` as a companion kept verbatim."""
    log = source.path.with_suffix(".mpl")
    if source.metadata.get("biologic_log_file") == log.name and log.is_file():
        source.companions.append(log)
    return source


def open_biologic_eis(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                      **_: object) -> Source:
    """Open a BioLogic PEIS text export (−Im(Z) converted to Im(Z))."""
    i = EIS.header(head)
    state = {"n": 0, "last": np.inf}
    stem = head.stem

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        f = frame["frequency_hz"].to_numpy()
        prev = np.concatenate(([state["last"]], f[:-1]))
        n = state["n"] + np.cumsum(f > prev)
        state["n"], state["last"] = int(n[-1]) if len(n) else state["n"], f[-1] if len(f) \
            else state["last"]
        frame["measurement_id"] = (stem + "#") + pd.Series(n + 1).astype("string").to_numpy()
        return frame

    return _with_log(open_tabular(EIS, head, chunk_rows, max_line_bytes,
                                  metadata=_metadata(head, i), extra_post=post,
                                  add_measurement_id=True))
