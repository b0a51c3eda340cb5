"""Indigo HDF5 (as in BEEP): a pandas/PyTables "fixed" frame ``time_series_data`` read
directly with h5py (no PyTables needed): ``blockN_items`` name the columns of
``blockN_values``.

Columns: ``time_s``, ``cell_voltage_v``, ``cell_current_a`` (signed, positive = charge),
``cycle_count``, ``half_cycle_count``, ``cell_temperature_c``, ``system_time_us`` (unix µs),
and the RUNNING coulomb counter ``cell_coulomb_count_c`` / energy ``cell_energy_j`` over the whole
test. Canonical counters are per cycle and per direction, so the reader takes the change since
the start of each half cycle (C → Ah, J → Wh) and assigns it by the sign of the current.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.errors import InputFormatError
from data_registry.readers.conventions import split_counter
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, frame_source

READER_VERSION = "1"
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


def open_indigo(head: Head, chunk_rows: int, **_: object) -> Source:
    """Open an Indigo HDF5 file."""
    def load() -> pd.DataFrame:
        try:
            df = read_frame(head.path)
        except (OSError, KeyError) as exc:
            raise InputFormatError(f"cannot read the Indigo frame: {exc}", code="unreadable",
                                   file=head.name) from None
        half = df["half_cycle_count"].to_numpy()
        for src, dst, f in (("cell_coulomb_count_c", "_q_ah", 1 / 3600.0),
                            ("cell_energy_j", "_e_wh", 1 / 3600.0)):
            v = df[src].to_numpy(np.float64)
            start = pd.Series(v).groupby(half).transform("first").to_numpy()
            df[dst] = np.abs(v - start) * f
        return df

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        sense = np.sign(frame["current_ampere"].to_numpy())
        frame["charging_capacity_ah"], frame["discharging_capacity_ah"] = split_counter(
            raw["_q_ah"].to_numpy(), sense)
        frame["charging_energy_wh"], frame["discharging_energy_wh"] = split_counter(
            raw["_e_wh"].to_numpy(), sense)
        return frame

    columns = [Mapped(s, t, f) for s, (t, f) in COLUMN_MAP.items()]
    return frame_source(head, format_name="indigo_h5", reader_version=READER_VERSION,
                        kind="samples", load=load, columns=columns, chunk_rows=chunk_rows,
                        post=post)
