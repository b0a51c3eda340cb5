"""Neware BTS binary files, ``.nda`` (magic ``NEWARE``) and ``.ndax`` (a zip holding
``data.ndc``, ``TestInfo.xml`` …), read with ``fastnda`` (BSD-3, a core dependency).

fastnda gives ``total_time_s``, ``voltage_V``, ``current_mA`` (signed, negative = discharge),
``cycle_count``, ``step_count``, ``step_type``, ``capacity_mAh`` and ``energy_mWh`` as ONE signed
counter per step (negative during discharge), split here into charging/discharging magnitudes by
the sign of the current. ``unix_time_s`` may jump backwards in ndax files (fastnda warns): the
monotonic ``total_time_s`` is the elapsed time; ``unix_time_s`` is kept as wall clock and the
jump becomes warning ``unix_time_backwards``. fastnda's
auxiliary-channel columns are not mapped: their labels do not match their values in the sample
files (a "voltage" of 24.8 beside a "temperature" of 0.0).

Counters checked against the samples (per step, trapezoid): capacity vs ∫I dt and energy vs
∫I·V dt agree within 1.1 % (``test.nda``), 0.3 % (``test.ndax``) and 2.5 % (IFE ``.ndax``; a
21-sample step, 0.002 % on its long step): mAh/mWh are right, no unit slip. What looks like an
energy error of 0.04×–12× is the data: in ``test.nda`` the voltage is about −0.09 V, so energy
/ capacity ≈ 0.09 V instead of a cell's 3–4 V, and the energy counter's sign (which follows the
current) is OPPOSITE to ∫I·V dt. Both are reported: ``energy_counter_sign`` (steps whose counter
sign contradicts ∫I·V dt) and ``counter_vs_logged_current`` (|counter| / |∫| off by > 10 %).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError, MissingDependencyError
from data_registry.readers.conventions import split_counter
from data_registry.readers.counters import counter_ratios, mismatch_warning
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, flat_metadata, frame_source

READER_VERSION = "1"

#: fastnda column → canonical column, factor
COLUMN_MAP: dict[str, tuple[str, float]] = {
    "total_time_s": ("test_time_second", 1.0),
    "voltage_V": ("voltage_volt", 1.0),
    "current_mA": ("current_ampere", 1e-3),
    "cycle_count": ("cycle_count", 1.0),
    "step_count": ("step_count", 1.0),
    "unix_time_s": ("unix_time_second", 1.0),
}


def is_nda(head: Head) -> bool:
    """True for a Neware ``.nda`` file."""
    return head.raw.startswith(b"NEWARE")


def is_ndax(head: Head) -> bool:
    """True for a Neware ``.ndax`` archive."""
    names = head.zip_names
    return "data.ndc" in names and any(n.endswith("TestInfo.xml") for n in names)


def _fastnda():
    try:
        import fastnda
    except ImportError:  # pragma: no cover - a core dependency
        raise MissingDependencyError(
            "Neware .nda/.ndax files need the package fastnda", code="missing_dependency",
            expected="fastnda installed (pip install fastnda)", found="not installed") from None
    return fastnda


def check_counters(table: pd.DataFrame, file: str) -> list[IngestWarning]:
    """Warnings where fastnda's per-step counters disagree with the logged samples."""
    need = {"step_count", "total_time_s", "current_mA", "voltage_V", "capacity_mAh",
            "energy_mWh"}
    if not need <= set(table.columns) or len(table) < 2:
        return []
    step = table["step_count"].to_numpy()
    t = table["total_time_s"].to_numpy(np.float64)
    current = table["current_mA"].to_numpy(np.float64)  # mA·s vs mAh·3600: same unit below
    volt = table["voltage_V"].to_numpy(np.float64)
    out: list[IngestWarning] = []
    q, _ = counter_ratios(step, t, current / 3600.0,
                          table["capacity_mAh"].to_numpy(np.float64), from_zero=True)
    e, _ = counter_ratios(step, t, current * volt / 3600.0,
                          table["energy_mWh"].to_numpy(np.float64), from_zero=True)
    reason = "the counters are the cycler's own integration and are kept"
    for ratios, what, column in ((q, "capacity", "charging_capacity_ah"),
                                 (e, "energy", "charging_energy_wh")):
        w = mismatch_warning("counter_vs_logged_current", what, ratios, file, column, reason)
        if w is not None:
            out.append(w)
    flipped = int((e < 0).sum())
    if flipped:
        out.append(IngestWarning(
            "energy_counter_sign", f"in {flipped} of {len(e)} steps the energy counter's sign "
            "(which follows the current) is opposite to the integral of I·V (median voltage "
            f"{np.median(volt):.3g} V): energies are stored as magnitudes per current "
            "direction, not as energy into the cell", file, None, "charging_energy_wh",
            flipped, {"median_voltage_volt": float(np.median(volt))}))
    return out


def open_neware_binary(head: Head, chunk_rows: int, format_name: str = "neware_nda",
                       **_: object) -> Source:
    """Open a Neware ``.nda``/``.ndax`` file via fastnda."""
    fastnda = _fastnda()
    try:
        meta = flat_metadata(fastnda.read_metadata(str(head.path)), "neware.")
    except Exception:  # noqa: BLE001 - metadata is optional; data errors surface in load()
        meta = {}

    def load() -> pd.DataFrame:
        try:
            table = fastnda.read(str(head.path)).to_pandas()
        except Exception as exc:  # noqa: BLE001 - any library failure is a format error
            raise InputFormatError(f"fastnda cannot read this file: {exc}"[:300],
                                   code="unreadable", file=head.name,
                                   expected=f"a valid {format_name} file",
                                   found=type(exc).__name__) from None
        notes.extend(check_counters(table, head.name))
        if "unix_time_s" in table and bool((np.diff(table["unix_time_s"].to_numpy()) < 0).any()):
            notes.append(IngestWarning(
                "unix_time_backwards", "wall clock (unix_time_second) jumps backwards; "
                "test_time_second (fastnda total_time_s) is monotonic and used for order",
                head.name, None, "unix_time_second"))
        return table

    notes: list[IngestWarning] = []

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        sink.extend(notes)
        notes.clear()
        sense = np.sign(frame["current_ampere"].to_numpy())
        for src, (a, b) in (("capacity_mAh", ("charging_capacity_ah", "discharging_capacity_ah")),
                            ("energy_mWh", ("charging_energy_wh", "discharging_energy_wh"))):
            if src in raw:
                frame[a], frame[b] = split_counter(raw[src].to_numpy(np.float64) * 1e-3, sense)
        return frame

    columns = [Mapped(s, t, f) for s, (t, f) in COLUMN_MAP.items()]
    return frame_source(head, format_name=format_name, reader_version=READER_VERSION,
                        kind="samples", load=load, columns=columns, chunk_rows=chunk_rows,
                        metadata=meta, post=post)
