"""Regenerate the small canonical CSV fixtures of the store tests (run once; files committed).

A 0.1 Ah cell cycled at 1C (0.1 A) for 3 cycles, one sample per minute: charge 60 min, rest
5 min, discharge 60 min, rest 5 min. Capacities integrate the current exactly, so the readers'
consistency checks see a clean file. ``cell_part1.csv`` + ``cell_part2.csv`` are
``cell_full.csv`` split in the middle of cycle 2 (each with the header).

    python tests/data/store/make_fixtures.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
STEP_SECOND = 60.0
CURRENT_AMPERE = 0.1


def cell_samples(n_cycles: int = 3) -> pd.DataFrame:
    """Canonical per-sample rows of the fixture cell."""
    rows = []
    t = 0.0
    for cycle in range(1, n_cycles + 1):
        q_in = q_out = 0.0
        fade = 1.0 - 0.01 * (cycle - 1)
        for step, current, minutes in ((1, CURRENT_AMPERE, 60), (2, 0.0, 5),
                                       (3, -CURRENT_AMPERE * fade, 60), (4, 0.0, 5)):
            for _ in range(minutes):
                t += STEP_SECOND
                if current > 0:
                    q_in += current * STEP_SECOND / 3600
                    v = 3.2 + 0.9 * q_in / 0.1
                elif current < 0:
                    q_out += -current * STEP_SECOND / 3600
                    v = 4.1 - 0.9 * q_out / 0.1
                else:
                    v = 3.6
                rows.append((t, round(v, 6), current, cycle, step, round(q_in, 9),
                             round(q_out, 9), 25.0))
    return pd.DataFrame(rows, columns=["test_time_second", "voltage_volt", "current_ampere",
                                       "cycle_count", "step_count", "charging_capacity_ah",
                                       "discharging_capacity_ah", "ambient_temperature_celsius"])


def eis_spectra() -> pd.DataFrame:
    """Two spectra (a Randles cell with a Warburg tail), 8 frequencies each."""
    f = np.logspace(3, -1, 8)
    rows = []
    for mid, cycle, rs in (("m1", 1, 0.05), ("m2", 3, 0.06)):
        w = 2 * np.pi * f
        z = rs + 0.02 / (1 + 1j * w * 0.02 * 1e-3) + 0.01 * (1 - 1j) / np.sqrt(w)
        for fi, zi in zip(f, z):
            rows.append((mid, cycle, round(fi, 6), round(zi.real, 9), round(zi.imag, 9)))
    return pd.DataFrame(rows, columns=["measurement_id", "cycle_count", "frequency_hz",
                                       "z_real_ohm", "z_imag_ohm"])


def main() -> None:
    full = cell_samples()
    full.to_csv(HERE / "cell_full.csv", index=False)
    cut = int(len(full) * 0.5)
    full.iloc[:cut].to_csv(HERE / "cell_part1.csv", index=False)
    full.iloc[cut:].to_csv(HERE / "cell_part2.csv", index=False)
    eis = eis_spectra()
    eis[eis.measurement_id == "m1"].to_csv(HERE / "eis_m1.csv", index=False)
    eis[eis.measurement_id == "m2"].to_csv(HERE / "eis_m2.csv", index=False)


if __name__ == "__main__":
    main()
