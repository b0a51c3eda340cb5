"""BioLogic EC-Lab binary ``.mpr`` files (magic ``BIO-LOGIC MODULAR FILE``), read with galvani.

galvani is GPL-3.0, so it is an OPTIONAL extra (``pip install fadecast[biologic]``), imported
only here and only when such a file is opened; without it the file is refused with
:class:`MissingDependencyError`.

Columns (galvani names): ``time/s``, ``Ewe/V``, ``I/mA`` (positive = charge), ``Ns`` (step),
``half cycle`` (cycle = half cycle // 2), ``Q charge/discharge/mA.h`` (one counter, positive while
charging, negative while discharging: split into magnitudes by its sign), ``Energy
charge/W.h``, ``Energy discharge/W.h``. Two technique-specific gaps are filled and flagged:

* OCV files have no current column: current is 0 by definition (warning ``ocv_zero_current``);
* some GCPL files store no ``I/mA`` but ``dq/mA.h`` per record: current = dq / Δt (warning
  ``current_from_dq``).

Impedance records: a settings file that chains PEIS/GEIS with cycling (cellpy's ``biol.mpr``:
5 sweeps, 310 records) writes the sweeps as records of the same table, with ``freq/Hz`` > 0
(0 in every other record), zero net current and a meaningless ``Ewe/V``. They are NOT samples:
they are skipped and counted in ONE warning ``eis_rows_skipped`` (first record, count,
frequency range, number of sweeps), as the battdat reader does. A ``Source`` yields one kind,
so the spectra are not stored from the ``.mpr``: export the technique from EC-Lab as text and
ingest that file (kind "eis").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError, MissingDependencyError
from data_registry.readers.conventions import split_counter
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, frame_source

READER_VERSION = "2"
MAGIC = b"BIO-LOGIC MODULAR FILE"

COLUMN_MAP: dict[str, tuple[str, float]] = {
    "time/s": ("test_time_second", 1.0),
    "Ewe/V": ("voltage_volt", 1.0),
    "I/mA": ("current_ampere", 1e-3),
    "Ns": ("step_count", 1.0),
    "Energy charge/W.h": ("charging_energy_wh", 1.0),
    "Energy discharge/W.h": ("discharging_energy_wh", 1.0),
}


def is_mpr(head: Head) -> bool:
    """True for a BioLogic ``.mpr`` file."""
    return head.raw.startswith(MAGIC)


def _galvani():
    try:
        from galvani import BioLogic
    except ImportError:
        raise MissingDependencyError(
            "BioLogic .mpr files need the optional extra 'biologic' (galvani, GPL-3.0)",
            code="missing_dependency", expected="pip install fadecast[biologic]",
            found="galvani not installed") from None
    return BioLogic


def open_mpr(head: Head, chunk_rows: int, **_: object) -> Source:
    """Open a BioLogic ``.mpr`` file via galvani."""
    biologic = _galvani()
    try:
        mpr = biologic.MPRfile(str(head.path))
    except Exception as exc:  # noqa: BLE001 - any parser failure is a format error
        raise InputFormatError(f"galvani cannot read this .mpr file: {exc}"[:300],
                               code="unreadable", file=head.name, expected="a valid .mpr file",
                               found=type(exc).__name__) from None
    names = set(mpr.data.dtype.names)
    if "freq/Hz" in names and len(mpr.data) and bool((mpr.data["freq/Hz"] > 0).all()):
        raise InputFormatError(
            "this .mpr holds only impedance records (PEIS/GEIS), no cycling samples",
            code="eis_only", file=head.name, column="freq/Hz",
            expected="cycling records (freq/Hz = 0); for the spectra, export the technique "
            "from EC-Lab as text and ingest that file as EIS",
            found=f"{len(mpr.data)} records, all with freq/Hz > 0")
    warns: list[IngestWarning] = []
    if "I/mA" not in names:
        if "dq/mA.h" in names:
            warns.append(IngestWarning("current_from_dq", "no I/mA column: current derived "
                                       "from dq/mA.h over the time step", head.name, None,
                                       "current_ampere"))
        elif "Ns" not in names:
            warns.append(IngestWarning("ocv_zero_current", "open-circuit file without a "
                                       "current column: current set to 0", head.name, None,
                                       "current_ampere"))
        else:
            raise InputFormatError("no current column in this .mpr file", code="missing_column",
                                   file=head.name, column="current_ampere",
                                   expected="I/mA or dq/mA.h", found=f"{sorted(names)}")
    meta = {"biologic_start": str(getattr(mpr, "timestamp", "") or "")}

    def load() -> pd.DataFrame:
        return pd.DataFrame({n: mpr.data[n] for n in mpr.data.dtype.names})

    carry = {"t": None, "freq_last": 0.0, "warning": -1}

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        n = len(frame)
        if "I/mA" not in raw:
            if "dq/mA.h" in raw:
                t = frame["test_time_second"].to_numpy()
                prev = np.concatenate(([t[0] if carry["t"] is None else carry["t"]], t[:-1]))
                dt = t - prev
                dq = raw["dq/mA.h"].to_numpy(np.float64) * 1e-3 * 3600.0
                frame["current_ampere"] = np.divide(dq, dt, out=np.zeros(n), where=dt > 0)
            else:
                frame["current_ampere"] = np.zeros(n)
        carry["t"] = frame["test_time_second"].iloc[-1] if n else carry["t"]
        frame["cycle_count"] = (raw["half cycle"].to_numpy(np.int64) // 2
                                if "half cycle" in raw else np.zeros(n, dtype=np.int64))
        if "Q charge/discharge/mA.h" in raw:
            q = raw["Q charge/discharge/mA.h"].to_numpy(np.float64) * 1e-3
            frame["charging_capacity_ah"], frame["discharging_capacity_ah"] = split_counter(
                q, np.sign(q))
        for col in ("charging_energy_wh", "discharging_energy_wh"):
            if col in frame:
                frame[col] = np.abs(frame[col].to_numpy())
        if "freq/Hz" in raw:
            freq = raw["freq/Hz"].to_numpy(np.float64)
            eis = freq > 0
            if eis.any():
                _count_eis(frame["source_row"].to_numpy(), freq, carry, sink, head.name)
            carry["freq_last"] = float(freq[-1]) if n else carry["freq_last"]
            return frame[~eis] if eis.any() else frame
        return frame

    columns = [Mapped(s, t, f) for s, (t, f) in COLUMN_MAP.items() if s in names]
    columns += [Mapped("half cycle", "cycle_count", 0.0),
                Mapped("I/mA", "current_ampere", 0.0)] if "I/mA" not in names else \
        [Mapped("half cycle", "cycle_count", 0.0)]
    return frame_source(head, format_name="biologic_mpr", reader_version=READER_VERSION,
                        kind="samples", load=load, columns=columns, chunk_rows=chunk_rows,
                        metadata=meta, warnings=warns, post=post)


def _count_eis(source_row: np.ndarray, freq_all: np.ndarray, carry: dict,
               sink: list[IngestWarning], name: str) -> None:
    """Add one chunk's impedance records (``freq/Hz`` > 0) to the single ``eis_rows_skipped``
    warning. A sweep starts at an impedance record after a non-impedance record, or whose
    frequency is not below the previous record's (the sweep restarted)."""
    eis = freq_all > 0
    prev = np.concatenate(([carry["freq_last"]], freq_all[:-1]))
    starts = int((eis & ((prev <= 0) | (freq_all >= prev))).sum())
    rows, freq = source_row[eis], freq_all[eis]
    if carry["warning"] < 0:
        carry["warning"] = len(sink)
        sink.append(IngestWarning("eis_rows_skipped", "", name, int(rows[0]), "freq/Hz", 0,
                                  {"frequency_min_hz": float(freq.min()),
                                   "frequency_max_hz": float(freq.max()), "sweeps": 0}))
    old = sink[carry["warning"]]
    details = dict(old.details or {})
    details["frequency_min_hz"] = min(details["frequency_min_hz"], float(freq.min()))
    details["frequency_max_hz"] = max(details["frequency_max_hz"], float(freq.max()))
    details["sweeps"] = int(details["sweeps"]) + starts
    count = int(old.count or 0) + len(rows)
    sink[carry["warning"]] = IngestWarning(
        old.code, f"{count} impedance records (freq/Hz > 0, {details['frequency_min_hz']:g}–"
        f"{details['frequency_max_hz']:g} Hz, {details['sweeps']} sweep(s)) are not samples "
        "and were skipped; to keep the spectra, export the impedance technique from EC-Lab as "
        "text and ingest that file as EIS", old.file, old.row, old.column, count, details)
