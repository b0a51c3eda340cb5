"""Write the bundled example cells used by `make demo` (run: python examples/make_pto_examples.py).

Two all-solid-state Li / β-Li3PS4 / pyrene-4,5,9,10-tetraone (PTO) cells at 60 °C, built to be
consistent with the figures of the motivating study. They are SIMULATED, not measured. Every
assumption is stated here:

- Theoretical capacity 409 mAh/g, 1C = 409 mA/g; active mass 1.00 mg, so 1C = 0.409 mA.
- Cryomilled cathode, initial utilisation 99.5 % (407 mAh/g).
- Time-driven loss (interfacial side reactions): zero until an onset at 560 h, then linear in
  the hours after it, scaled so the C/10 cell reaches 288 mAh/g near cycle 100 (~2,000 h).
  The same law in hours, applied to the 0.3C cell (≈ 6.6 h per cycle), leaves it at ~98 % of its
  maximum after 100 cycles: same cycles, ~3× less time.
- Small cycle-driven loss: 2e-4 × cycle count (both cells).
- Voltage: a smooth two-plateau open-circuit curve between 1.6 and 3.0 V plus an overpotential
  that grows with the time-driven loss (polarization grows slightly, as reported).
- Each cycle: CC discharge to the cell's current capacity, 10-minute rest, CC charge, 10-minute
  rest. Samples every 1/60 of a half-cycle plus step boundaries. Gaussian noise: 1 mV on voltage.

Files are in fadecast's generic CSV layout (Battery Data Format names, current positive = charge).
Only the first 40 cycles of each cell are written, to keep the repository small: what a lab
would have after a few weeks of testing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

MASS_G = 1.0e-3
Q_THEO_AH = 409e-3 * MASS_G  # 409 mAh/g
T_ONSET_H = 560.0
K_TIME_PER_H = (1 - 288 / 407) / (2000.0 - T_ONSET_H)
K_CYCLE = 2e-4
POINTS = 60
REST_S = 600.0


def ocv(soc: np.ndarray) -> np.ndarray:
    """Two-plateau open-circuit voltage of the PTO cathode vs Li, volts (soc in 0..1)."""
    return 1.75 + 0.9 * soc + 0.12 * np.tanh((soc - 0.5) * 10.0)


def make_cell(c_rate: float, n_cycles: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    i_1c = Q_THEO_AH  # A at 1C
    current = c_rate * i_1c
    t = 0.0
    rows = []
    for cyc in range(1, n_cycles + 1):
        t_h = t / 3600.0
        loss_time = K_TIME_PER_H * max(0.0, t_h - T_ONSET_H)
        q = Q_THEO_AH * 0.995 * (1.0 - loss_time - K_CYCLE * cyc)
        eta = 0.03 + 0.02 * c_rate / 0.1 + 0.15 * loss_time  # overpotential, V
        for step, sign in ((1, -1.0), (3, +1.0)):
            dur = q / current * 3600.0
            for k in range(POINTS + 1):
                frac = k / POINTS
                soc = 1.0 - frac if sign < 0 else frac
                v = ocv(soc) + sign * eta + rng.normal(0.0, 1e-3)
                cap = q * frac
                # Capacities are cumulative within the cycle (BDF): discharge first, then charge.
                rows.append((t + frac * dur, cyc, step, sign * current, v,
                             cap if sign > 0 else 0.0, cap if sign < 0 else q))
            t += dur
            v_rest = ocv(np.array(0.0 if sign < 0 else 1.0)) + rng.normal(0.0, 1e-3)
            rows.append((t + REST_S, cyc, step + 1, 0.0, float(v_rest),
                         q if sign > 0 else 0.0, q))
            t += REST_S
    df = pd.DataFrame(rows, columns=["test_time_second", "cycle_count", "step_count",
                                     "current_ampere", "voltage_volt", "charging_capacity_ah",
                                     "discharging_capacity_ah"])
    return df.round({"test_time_second": 3, "current_ampere": 9, "voltage_volt": 5,
                     "charging_capacity_ah": 9, "discharging_capacity_ah": 9})


def main() -> None:
    here = Path(__file__).resolve().parent
    for name, rate, seed in (("pto_c10", 0.1, 1), ("pto_c03", 0.3, 2)):
        path = here / f"{name}_raw.csv"
        make_cell(rate, 40, seed).to_csv(path, index=False)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
