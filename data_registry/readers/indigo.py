"""Indigo HDF5 (as in BEEP): a pandas/PyTables "fixed" frame ``time_series_data`` read
directly with h5py (no PyTables needed): ``blockN_items`` name the columns of
``blockN_values``.

Columns: ``time_s``, ``cell_voltage_v``, ``cell_current_a`` (signed, positive = charge),
``cycle_count``, ``half_cycle_count``, ``cell_temperature_c``, ``system_time_us`` (unix µs),
and the signed coulomb counter ``cell_coulomb_count_c`` / energy ``cell_energy_j``. In the
BEEP sample these RESTART AT 0 in every half cycle (the first sample of a half cycle reads
0.000 C); older notes called them running counters. The reader detects which: restarting
counters are taken as they are, running ones as the change since the half cycle's first
sample (C → Ah, J → Wh), then assigned to charge/discharge by the counter's OWN sign (the net
direction it accumulated in), never by the sign of the current at the row: the BEEP sample's
discharges hold short charge pulses (up to ~35 % of a discharge's samples have I > 0), and a
current-sign split moved the whole amount discharged so far (e.g. 7.43 Ah at record 1074) into
the charging column, doubling per-cycle charge (CE ~0.5). A counter reading exactly 0 (a half
cycle's start) is 0 in both columns.

Counters vs logged current: per half cycle the counter agrees with the trapezoid ∫I dt of
the log only to 0.79×–1.48× (median 1.01×; 84 half cycles of the BEEP sample), while the
counter itself is steady (discharge 18.48 ± 0.28 Ah vs ∫I dt 18.43 ± 2.11 Ah). The log holds
one sample every ~17 s (up to 270 s) during current pulses of ±25–75 A (std ~36 A), so ∫I dt of
the log is the inaccurate side: no unit or sign slip. The counters are kept; warning
``counter_vs_logged_current`` reports the spread (see :mod:`data_registry.readers.counters`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError
from data_registry.readers.conventions import split_counter
from data_registry.readers.counters import (counter_ratios, mismatch_warning,
                                            segment_integrals)
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, frame_source

READER_VERSION = "2"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
GROUP = "time_series_data"

COLUMN_MAP: dict[str, tuple[str, float]] = {
    "time_s": ("test_time_second", 1.0),
    "cell_voltage_v": ("voltage_volt", 1.0),
    "cell_current_a": ("current_ampere", 1.0),
    "cycle_count": ("cycle_count", 1.0),
    "cell_temperature_c": ("ambient_temperature_celsius", 1.0),
    "system_time_us": ("unix_time_second", 1e-6),
}


def _columns_of(path) -> list[str]:
    import h5py
    with h5py.File(path, "r") as f:
        if GROUP not in f or "axis0" not in f[GROUP]:
            return []
        return [x.decode() if isinstance(x, bytes) else str(x) for x in f[GROUP]["axis0"][:]]


def is_indigo(head: Head) -> bool:
    """True for an HDF5 file holding Indigo's ``time_series_data`` frame."""
    if not head.raw.startswith(HDF5_MAGIC):
        return False
    try:
        return {"cell_coulomb_count_c", "cell_voltage_v"} <= set(_columns_of(head.path))
    except OSError:
        return False


def read_frame(path) -> pd.DataFrame:
    """The ``time_series_data`` frame as a DataFrame (h5py, every block)."""
    import h5py
    cols: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        g = f[GROUP]
        k = 0
        while f"block{k}_items" in g:
            items = [x.decode() if isinstance(x, bytes) else str(x)
                     for x in g[f"block{k}_items"][:]]
            values = g[f"block{k}_values"][:]
            for j, name in enumerate(items):
                cols[name] = values[:, j]
            k += 1
    return pd.DataFrame(cols)


def counters_restart(segment: np.ndarray, counter: np.ndarray) -> bool:
    """True when the counter restarts at 0 in each segment: at the first sample of the
    segments it is below 1 % of its typical end-of-segment magnitude."""
    if not len(counter):
        return False
    first = np.concatenate(([0], np.flatnonzero(segment[1:] != segment[:-1]) + 1))
    last = np.concatenate((first[1:] - 1, [len(counter) - 1]))
    scale = np.nanmedian(np.abs(counter[last]))
    return bool(scale > 0 and np.nanmedian(np.abs(counter[first])) < 0.01 * scale)


def dropped_counter(segment: np.ndarray, t: np.ndarray, current: np.ndarray,
                    counter: np.ndarray, min_coulomb: float = 36.0) -> np.ndarray:
    """Samples whose restarting counter reads exactly 0 although more than ``min_coulomb`` C
    (default 36 C = 0.01 Ah) of |I| dt has flowed since their segment began."""
    first, _, _ = segment_integrals(segment, t, np.abs(current))
    area = np.concatenate(([0.0], 0.5 * (np.abs(current[1:]) + np.abs(current[:-1]))
                           * np.diff(t)))
    area[first] = 0.0
    csum = np.cumsum(area)
    start = np.repeat(csum[first], np.diff(np.concatenate((first, [len(t)]))))
    return (counter == 0.0) & (csum - start > min_coulomb)


def open_indigo(head: Head, chunk_rows: int, **_: object) -> Source:
    """Open an Indigo HDF5 file."""
    def load() -> pd.DataFrame:
        try:
            df = read_frame(head.path)
        except (OSError, KeyError) as exc:
            raise InputFormatError(f"cannot read the Indigo frame: {exc}", code="unreadable",
                                   file=head.name) from None
        half = df["half_cycle_count"].to_numpy()
        restarts = counters_restart(half, df["cell_coulomb_count_c"].to_numpy(np.float64))
        t = df["time_s"].to_numpy(np.float64)
        current = df["cell_current_a"].to_numpy(np.float64)
        missing = dropped_counter(half, t, current,
                                  df["cell_coulomb_count_c"].to_numpy(np.float64)) if restarts \
            else np.zeros(len(df), dtype=bool)
        for src, dst, f in (("cell_coulomb_count_c", "_q_ah", 1 / 3600.0),
                            ("cell_energy_j", "_e_wh", 1 / 3600.0)):
            v = df[src].to_numpy(np.float64)
            start = 0.0 if restarts else \
                pd.Series(v).groupby(half).transform("first").to_numpy()
            df[dst] = np.where(missing, np.nan, (v - start) * f)  # signed: + = charge
        if missing.any():
            first = int(np.argmax(missing))
            notes.append(IngestWarning(
                "counter_missing", "capacity/energy counter reads 0 although current has "
                "flowed since the half cycle began (counter reset early or not logged); "
                "those samples' counters are stored as missing", head.name, first + 1,
                "charging_capacity_ah", int(missing.sum())))
        ratios, _ = counter_ratios(half, t, current,
                                   np.where(missing, np.nan,
                                            df["cell_coulomb_count_c"].to_numpy(np.float64)),
                                   from_zero=restarts)
        w = mismatch_warning(
            "counter_vs_logged_current", "capacity", ratios, head.name, "charging_capacity_ah",
            "the cycler integrates current between logged samples (here one every "
            f"{np.median(np.diff(t)):.0f} s, current std {np.std(current):.0f} A), so the "
            "integral of the log is the inaccurate side",
            median_sample_interval_second=float(np.median(np.diff(t))) if len(t) > 1 else 0.0)
        if w is not None:
            notes.append(w)
        return df

    notes: list[IngestWarning] = []

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        sink.extend(notes)
        notes.clear()
        # each counter by its OWN sign (the direction its amount was accumulated in), not by
        # the sign of the current at the row: a short charge pulse inside a discharge would
        # otherwise move the whole amount discharged so far into the charging column
        for src, ch, dis in (("_q_ah", "charging_capacity_ah", "discharging_capacity_ah"),
                             ("_e_wh", "charging_energy_wh", "discharging_energy_wh")):
            q = raw[src].to_numpy()
            charging, discharging = split_counter(q, np.sign(q))
            frame[ch] = np.where(q == 0.0, 0.0, charging)
            frame[dis] = np.where(q == 0.0, 0.0, discharging)
        return frame

    columns = [Mapped(s, t, f) for s, (t, f) in COLUMN_MAP.items()]
    return frame_source(head, format_name="indigo_h5", reader_version=READER_VERSION,
                        kind="samples", load=load, columns=columns, chunk_rows=chunk_rows,
                        post=post)
