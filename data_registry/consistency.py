"""Physical consistency of per-sample data: units and sign checked against ∫I dt.

A cycler's capacity counter is the integral of current over time. Comparing the recorded
capacity increments with ``|I| · Δt / 3600`` exposes mislabelled units and a flipped sign:

=====================  ===============================  ====================================
ratio ΔQ / ∫|I|dt       meaning                          action
=====================  ===============================  ====================================
≈ 1                     consistent                       none
≈ 1000                  capacity in mAh labelled Ah       capacity (and energy) ÷ 1000, warn
≈ 1/1000, plausible C   time in ms labelled s             time ÷ 1000, warn
≈ 1/1000, C > 50        current in mA labelled A          error (cannot tell which is right)
=====================  ===============================  ====================================

Sign: charging capacity that rises while current is negative (or discharging capacity while it
is positive) in ≥ 90 % of the evidence rows → current flipped, warning ``current_sign_flipped``.
Decided on the FIRST chunk (≥ ``MIN_EVIDENCE`` evidence rows needed, else nothing is corrected)
and applied to every chunk, so one file is never half corrected. With the default chunk of 10⁶
rows the first chunk holds whole cycles; a file whose first chunk is all rest is not checked.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, ValidationError

MIN_EVIDENCE = 10
#: band of the ΔQ/∫I dt ratio read as a factor-1000 unit slip
SLIP_BAND = (300.0, 3000.0)
MAX_PLAUSIBLE_C_RATE = 50.0
#: evidence rows whose time step exceeds this many times the median step are left out
PAUSE_STEP_FACTOR = 100.0
_CAPACITY = ("charging_capacity_ah", "discharging_capacity_ah")
_ENERGY = ("charging_energy_wh", "discharging_energy_wh")


@dataclass
class UnitCorrection:
    """Corrections decided from the first chunk; :meth:`apply` runs them on every chunk."""

    time_factor: float = 1.0
    capacity_factor: float = 1.0
    flip_current: bool = False
    warnings: list[IngestWarning] = field(default_factory=list)

    def apply(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return ``df`` with the corrections applied (unchanged when there are none)."""
        changes = {}
        if self.time_factor != 1.0 and "test_time_second" in df.columns:
            changes["test_time_second"] = df["test_time_second"] * self.time_factor
        if self.capacity_factor != 1.0:
            for c in _CAPACITY + _ENERGY:
                if c in df.columns:
                    changes[c] = df[c] * self.capacity_factor
        if self.flip_current and "current_ampere" in df.columns:
            changes["current_ampere"] = -df["current_ampere"]
        return df.assign(**changes) if changes else df


def _segments(df: pd.DataFrame) -> np.ndarray:
    """True where a row continues the previous row's cycle and step (capacity counters run)."""
    same = np.ones(len(df), dtype=bool)
    same[0] = False
    for col in ("cycle_count", "step_count"):
        if col in df.columns:
            v = df[col].to_numpy(dtype=np.float64)
            same[1:] &= v[1:] == v[:-1]
    return same


def capacity_evidence(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-row capacity increments and ∫|I|dt increments where a capacity counter rose.

    Returns arrays ``dq`` (Ah, recorded), ``idt`` (Ah, from current × time step), ``current``
    (A) and ``sense`` (+1 where the charging counter rose, −1 where the discharging one did).
    """
    empty = {k: np.empty(0) for k in ("dq", "idt", "current", "sense", "row")}
    need = {"test_time_second", "current_ampere"}
    if len(df) < 3 or not need <= set(df.columns):
        return empty
    cont = _segments(df)
    t = df["test_time_second"].to_numpy(dtype=np.float64)
    i = df["current_ampere"].to_numpy(dtype=np.float64)
    dt = np.diff(t, prepend=t[0])
    parts = {k: [] for k in empty}
    for col, sense in zip(_CAPACITY, (1.0, -1.0)):
        if col not in df.columns:
            continue
        q = df[col].to_numpy(dtype=np.float64)
        dq = np.diff(q, prepend=q[0])
        ok = cont & (dq > 0) & (dt > 0) & (np.abs(i) > 0) & np.isfinite(dq)
        if ok.any():  # a pause (the test clock stood, the wall clock ran; readers add it to
            # the elapsed time) is no time at this current: leave such steps out
            ok &= dt <= PAUSE_STEP_FACTOR * np.median(dt[ok])
        parts["dq"].append(dq[ok])
        parts["idt"].append(np.abs(i[ok]) * dt[ok] / 3600.0)
        parts["current"].append(i[ok])
        parts["sense"].append(np.full(int(ok.sum()), sense))
        parts["row"].append(df["source_row"].to_numpy()[ok])
    return {k: (np.concatenate(v) if v else np.empty(0)) for k, v in parts.items()}


def infer_corrections(df: pd.DataFrame, file: str) -> UnitCorrection:
    """Decide unit and sign corrections from one chunk of canonical samples (see module doc)."""
    ev = capacity_evidence(df)
    fix = UnitCorrection()
    if len(ev["dq"]) < MIN_EVIDENCE:
        return fix
    row0 = int(ev["row"][0])
    wrong = np.sign(ev["current"]) != ev["sense"]
    if wrong.mean() >= 0.9:
        fix.flip_current = True
        fix.warnings.append(IngestWarning(
            "current_sign_flipped",
            f"current had the opposite sign of the rising capacity counter (negative while "
            f"charging, positive while discharging) in {wrong.mean():.0%} of {len(wrong)} "
            "rows: sign flipped to positive = charge", file, row0,
            "current_ampere", 1))
    ratio = float(ev["dq"].sum() / ev["idt"].sum())
    if SLIP_BAND[0] <= ratio <= SLIP_BAND[1]:
        fix.capacity_factor = 1e-3
        fix.warnings.append(IngestWarning(
            "capacity_mah_as_ah",
            f"capacity rose {ratio:.0f}× faster than ∫I dt: read as mAh labelled Ah, "
            "capacity and energy divided by 1000", file, row0, "charging_capacity_ah", 1,
            {"ratio": ratio}))
    elif SLIP_BAND[0] <= 1.0 / ratio <= SLIP_BAND[1]:
        qmax = float(np.nanmax(df[[c for c in _CAPACITY if c in df.columns]].to_numpy()))
        c_rate = float(np.median(np.abs(ev["current"]))) / qmax if qmax > 0 else np.inf
        if c_rate > MAX_PLAUSIBLE_C_RATE:
            raise ValidationError(
                "current and capacity disagree by ~1000× (current in mA labelled A?)",
                code="units_inconsistent", file=file, row=row0, column="current_ampere",
                expected="ΔQ ≈ ∫I dt", found=f"ΔQ / ∫I dt = {ratio:.3g}")
        fix.time_factor = 1e-3
        fix.warnings.append(IngestWarning(
            "time_ms_as_seconds",
            f"∫I dt was {1 / ratio:.0f}× the recorded capacity: time read as milliseconds "
            "labelled seconds, divided by 1000", file, row0, "test_time_second", 1,
            {"ratio": ratio}))
    return fix
