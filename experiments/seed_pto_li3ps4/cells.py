"""Simulated Li / β-Li3PS4 / PTO cells at 60 °C, consistent with the motivating study's figures.

These cells are SIMULATED from stated assumptions, not measured. Every assumption is a named
constant or a :class:`PtoCell` field (see ``report.md`` for the table):

- Theoretical capacity 409 mAh/g, 1C = 409 mA/g; active mass 1.00 mg, so 1C = 0.409 mA.
- Each cycle: CC discharge to the cell's current capacity, 10-min rest, CC charge of the same
  charge, 10-min rest. Hours per cycle therefore follow from the C-rate and the capacity:
  ``2 × utilisation × retention / c_rate + 1/3`` h (≈ 20.2 h at C/10, ≈ 6.97 h at 0.3C).
- Capacity = Q_theo × utilisation × (1 − L_time(t) − L_cycle(N)) × (1 + ε), ε ~ N(0, 0.1 %).
- L_time (interfacial side reactions): a smoothed hinge in elapsed hours,
  ``k × softplus((t − t_onset) / w) × w`` with w = 40 h: zero before the onset, then linear in
  hours. Cryomilled: t_onset = 600 h (≈ cycle 30 at C/10), k solved so that the C/10 cell
  reaches 288 mAh/g at cycle 100. Hand-milled (coarser, less interface): onset 1,050 h
  (≈ cycle 200 at 0.3C), k solved so it keeps 61 % after 1,000 cycles.
- L_cycle = 1e-4 × N (small, mechanical): both microstructures.
- Voltage: a smooth PTO-like curve between 1.8 and 2.92 V (open circuit) plus an overpotential
  ``0.03 + 0.02 × c_rate / 0.1 + 0.15 × L_time`` V (polarization grows slightly with the
  time-driven loss); Gaussian noise 1 mV.
- EIS (Randles circuit with a Warburg element, Z = Rs + 1 / (jωCdl + 1 / (Rct + σω^-½(1 − j))),
  Rs = 30 Ω, Cdl = 2 µF, Rct = 150 Ω × (1 + 3 L_time)), 1 MHz … 10 mHz, 10 points per decade,
  0.3 % multiplicative noise. Three spectra every ``eis_every`` cycles: at half discharge
  (≈ 2.35 V), at half charge (≈ 2.45 V) and at the top of charge (≈ 2.95 V, above 2.9 V).
  σ = A_w baseline 40 Ω s^-½ × (1 + 2 L_time) (a slow rise with the time-driven loss); at the top
  of charge σ = 1,200 Ω s^-½ × (1 + L_time) (> 1,000), reverting on the next discharge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MASS_G = 1.0e-3
Q_THEO_AH = 409e-3 * MASS_G  # 409 mAh/g × 1 mg
I_1C_A = Q_THEO_AH  # 1C = 409 mA/g
REST_S = 600.0
POINTS_PER_STEP = 40
K_CYCLE = 1.0e-4
ONSET_WIDTH_H = 40.0
NOISE_CAPACITY = 1.0e-3
NOISE_VOLT = 1.0e-3
TEMPERATURE_C = 60.0
# EIS (Randles + Warburg)
R_S_OHM = 30.0
C_DL_F = 2.0e-6
R_CT_OHM = 150.0
SIGMA_BASE = 40.0
SIGMA_TOP = 1200.0
EIS_NOISE = 3.0e-3
FREQUENCIES_HZ = np.logspace(6, -2, 8 * 10 + 1)


@dataclass(frozen=True)
class PtoCell:
    """One simulated cell (units in names; capacity targets in mAh/g)."""

    cell_id: str
    c_rate: float
    n_cycles: int
    utilisation: float
    onset_hour: float
    target_cycle: int
    target_retention: float  # of the first-cycle capacity, at target_cycle
    eis_every: int
    seed: int
    cathode: str


def _softplus_hinge(t_h: float, onset_h: float) -> float:
    z = (t_h - onset_h) / ONSET_WIDTH_H
    return ONSET_WIDTH_H * (z if z > 30 else math.log1p(math.exp(z)))


def loss_time(t_h: float, onset_h: float, k_per_h: float) -> float:
    """Time-driven loss (fraction of the initial capacity) after ``t_h`` elapsed hours."""
    return k_per_h * _softplus_hinge(t_h, onset_h)


def schedule(cell: PtoCell, k_per_h: float, noise: bool = True,
             switch: tuple[int, float] | None = None) -> pd.DataFrame:
    """Per-cycle truth: start/end hours, losses (fractions of the initial capacity), the
    noise-free capacity ``capacity_true_ah`` and the delivered ``capacity_ah`` (with noise,
    which also sets the step durations, so the clock stays consistent).

    ``switch = (cycle, c_rate)``: cycles after ``cycle`` run at ``c_rate`` (the counterfactual
    of a what-if forecast).
    """
    rng = np.random.default_rng(cell.seed)
    t_h, rows = 0.0, []
    for n in range(1, cell.n_cycles + 1):
        c_rate = switch[1] if switch is not None and n > switch[0] else cell.c_rate
        lt = loss_time(t_h, cell.onset_hour, k_per_h)
        lc = K_CYCLE * n
        q_true = Q_THEO_AH * cell.utilisation * (1.0 - lt - lc)
        q = q_true * (1.0 + rng.normal(0.0, NOISE_CAPACITY)) if noise else q_true
        dur_h = 2.0 * q / (c_rate * I_1C_A) + 2.0 * REST_S / 3600.0
        rows.append((n, t_h, t_h + dur_h, lt, lc, q_true, q))
        t_h += dur_h
    return pd.DataFrame(rows, columns=["cycle_index", "start_hour", "end_hour",
                                       "loss_time_frac", "loss_cycle_frac", "capacity_true_ah",
                                       "capacity_ah"])


def solve_rate(cell: PtoCell) -> float:
    """k (1/h) such that retention at ``target_cycle`` equals ``target_retention`` (bisection)."""
    lo, hi = 0.0, 1e-2
    probe = PtoCell(**{**cell.__dict__, "n_cycles": cell.target_cycle})
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        s = schedule(probe, mid, noise=False)
        ret = s["capacity_true_ah"].iloc[-1] / s["capacity_true_ah"].iloc[0]
        lo, hi = (mid, hi) if ret > cell.target_retention else (lo, mid)
    return 0.5 * (lo + hi)


def ocv(soc: np.ndarray) -> np.ndarray:
    """PTO-like open-circuit voltage vs Li (V) at state of charge ``soc`` (0–1): 1.8–2.92 V."""
    return 1.8 + 1.0 * soc + 0.12 * np.tanh((soc - 0.5) * 10.0)


def overpotential(c_rate: float, lt: float) -> float:
    """Overpotential (V): grows slightly with the time-driven loss."""
    return 0.03 + 0.02 * c_rate / 0.1 + 0.15 * lt


def samples(cell: PtoCell, truth: pd.DataFrame) -> pd.DataFrame:
    """Raw time series (generic CSV columns, current positive = charge) of every cycle."""
    rng = np.random.default_rng(cell.seed + 500)
    current = cell.c_rate * I_1C_A
    k = np.arange(POINTS_PER_STEP + 1) / POINTS_PER_STEP
    parts = []
    for row in truth.itertuples(index=False):
        q = row.capacity_ah
        eta = overpotential(cell.c_rate, row.loss_time_frac)
        dur = q / current * 3600.0
        t0 = row.start_hour * 3600.0
        n = len(k)
        noise = rng.normal(0.0, NOISE_VOLT, size=2 * n + 2)
        dis_t = t0 + k * dur
        chg_t = t0 + dur + REST_S + k * dur
        cols = {
            "test_time_second": np.concatenate([dis_t, [dis_t[-1] + REST_S], chg_t,
                                                [chg_t[-1] + REST_S]]),
            "cycle_count": np.full(2 * n + 2, row.cycle_index),
            "step_count": np.concatenate([np.full(n, 1), [2], np.full(n, 3), [4]]),
            "current_ampere": np.concatenate([np.full(n, -current), [0.0],
                                              np.full(n, current), [0.0]]),
            "voltage_volt": np.concatenate([ocv(1.0 - k) - eta, ocv(np.array([0.0])),
                                            ocv(k) + eta, ocv(np.array([1.0]))]) + noise,
            "charging_capacity_ah": np.concatenate([np.zeros(n + 1), q * k, [q]]),
            "discharging_capacity_ah": np.concatenate([q * k, [q], np.full(n + 1, q)]),
        }
        parts.append(pd.DataFrame(cols))
    df = pd.concat(parts, ignore_index=True)
    return df.round({"test_time_second": 3, "current_ampere": 10, "voltage_volt": 5,
                     "charging_capacity_ah": 10, "discharging_capacity_ah": 10})


def randles_warburg(freq_hz: np.ndarray, sigma: float, r_ct: float) -> np.ndarray:
    """Complex impedance (Ω) of Rs + (Cdl ∥ (Rct + Warburg σ))."""
    w = 2.0 * np.pi * freq_hz
    z_w = sigma * w ** -0.5 * (1.0 - 1j)
    return R_S_OHM + 1.0 / (1j * w * C_DL_F + 1.0 / (r_ct + z_w))


def sigma_of(lt: float, position: str) -> float:
    """Warburg coefficient (Ω s^-½): baseline, or the top-of-charge spike (> 1000)."""
    return SIGMA_TOP * (1.0 + lt) if position == "top_of_charge" else SIGMA_BASE * (1.0 + 2.0 * lt)


def spectra(cell: PtoCell, truth: pd.DataFrame) -> pd.DataFrame:
    """Generic EIS CSV rows (CONTRACTS layout; Im(Z) negative) every ``eis_every`` cycles."""
    rng = np.random.default_rng(cell.seed + 1000)
    rows = []
    for row in truth.itertuples(index=False):
        if row.cycle_index != 1 and row.cycle_index % cell.eis_every:
            continue
        lt = row.loss_time_frac
        eta = overpotential(cell.c_rate, lt)
        half = (row.end_hour - row.start_hour - 2 * REST_S / 3600.0) / 2.0
        where = (("discharge_half", row.start_hour + 0.5 * half, 0.5, ocv(np.array(0.5)) - eta),
                 ("charge_half", row.start_hour + half + REST_S / 3600.0 + 0.5 * half, 0.5,
                  ocv(np.array(0.5)) + eta),
                 ("top_of_charge", row.end_hour - REST_S / 3600.0, 1.0,
                  ocv(np.array(1.0)) + eta))
        for position, hour, soc, volt in where:
            z = randles_warburg(FREQUENCIES_HZ, sigma_of(lt, position),
                                R_CT_OHM * (1.0 + 3.0 * lt))
            z = z * (1.0 + rng.normal(0.0, EIS_NOISE, z.shape))
            mid = f"c{row.cycle_index:04d}_{position}"
            rows.append(pd.DataFrame({
                "measurement_id": mid, "cycle_count": row.cycle_index,
                "test_time_second": round(hour * 3600.0, 3),
                "voltage_volt": round(float(volt), 4), "state_of_charge": soc,
                "frequency_hz": FREQUENCIES_HZ, "z_real_ohm": z.real.round(4),
                "z_imag_ohm": z.imag.round(4)}))
    return pd.concat(rows, ignore_index=True)


CELLS: tuple[PtoCell, ...] = (
    PtoCell("pto_cryo_c10", 0.1, 100, 0.995, 600.0, 100, 288.0 / 407.0, 10, 11, "cryomilled"),
    PtoCell("pto_cryo_c03", 0.3, 100, 0.995, 600.0, 100, 288.0 / 407.0, 10, 12, "cryomilled"),
    PtoCell("pto_hand_c03", 0.3, 1000, 318.0 / 409.0, 1050.0, 1000, 0.61, 50, 13,
            "hand-milled"),
)


def rates() -> dict[str, float]:
    """k (1/h) per cathode: solved on the C/10 cryomilled and the hand-milled 0.3C targets."""
    return {"cryomilled": solve_rate(CELLS[0]), "hand-milled": solve_rate(CELLS[2])}


def write_cells(out_dir: Path) -> dict[str, dict]:
    """Write ``<cell>_raw.csv``, ``<cell>_eis.csv`` and ``<cell>_truth.csv`` for every cell.

    Returns ``{cell_id: {"raw", "eis", "truth", "meta"}}`` (paths and cell metadata).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    k = rates()
    made = {}
    for cell in CELLS:
        truth = schedule(cell, k[cell.cathode])
        paths = {name: out_dir / f"{cell.cell_id}_{name}.csv" for name in ("raw", "eis", "truth")}
        for name, frame in (("raw", samples(cell, truth)), ("eis", spectra(cell, truth)),
                            ("truth", truth)):
            tmp = paths[name].with_suffix(".csv.tmp")
            frame.to_csv(tmp, index=False)
            tmp.replace(paths[name])
        meta = {"chemistry": "Li/Li3PS4/PTO", "active_mass_g": MASS_G,
                "theoretical_capacity_ah": Q_THEO_AH,
                "temperature_celsius": TEMPERATURE_C, "cathode": cell.cathode,
                "c_rate": cell.c_rate}
        made[cell.cell_id] = {**{n: str(p) for n, p in paths.items()}, "meta": meta,
                              "k_time_per_hour": k[cell.cathode], "cell": cell}
    return made
