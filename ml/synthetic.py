"""Synthetic cells whose capacity fade has a KNOWN split into time- and cycle-driven loss.

Each cell follows ``capacity = Q_ref * (1 - L_time(t) - L_cycle(N) - rate_loss(c)) + recovery + noise``
with

* ``L_time(t) = a * (max(t - t_onset, 0) / 1000 h) ** p`` — calendar/SEI-like loss in elapsed
  hours ``t`` (exponent ``p`` ~ 0.5; ``t_onset`` > 0 for a cell that holds, then fades);
* ``L_cycle(N) = b * (N / 100) ** q + k * (max(N - N_knee, 0) / 100) ** 2`` — usage-driven loss
  in cycles ``N`` whose scale ``b`` grows with the C-rate (optional knee);
* a reversible capacity *recovery* after long rests that decays over a few cycles (not a loss);
* polarization and Warburg coefficient series that grow with the time-driven loss, and a
  coulombic inefficiency that follows the time-driven loss rate (SEI consumes charge).

Truth columns ``loss_time_frac`` / ``loss_cycle_frac`` are fractions of the nominal capacity
(named like the pybamm-dev truth). Pure numpy/pandas; deterministic for a given seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from data_registry.errors import FadecastError
from ml.sources import CellRecord

__all__ = ["CellParams", "make_fleet", "make_cell", "make_cohort", "simulate_cell"]

HOUR_REF = 1000.0  # hours: scale of the time term
CYCLE_REF = 100.0  # cycles: scale of the cycle term
RATES = (0.1, 0.2, 0.3, 0.5, 1.0)
RESTS_HOUR = (0.0, 4.0, 12.0)


@dataclass(frozen=True)
class CellParams:
    """Everything that defines one synthetic cell (units in the names)."""

    cell_id: str
    nominal_capacity_ah: float = 5.0
    c_rate: float = 0.5
    c_rate_final: float | None = None  # rate after the switch cycle (None: constant)
    switch_cycle: int = 0
    rest_hour: float = 0.0  # extra rest at full charge
    rest_every_n_cycles: int = 1
    storage_hour: float = 0.0  # one long storage period ...
    storage_after_cycle: int = 0  # ... after this cycle (0: none)
    time_scale: float = 0.05  # a: time loss at 1000 h after onset, fraction
    time_exponent: float = 0.5  # p
    time_onset_hour: float = 0.0
    cycle_scale: float = 0.05  # b: cycle loss at 100 cycles, fraction
    cycle_exponent: float = 1.0  # q
    knee_cycle: float = 0.0  # 0: no knee
    knee_scale: float = 0.0
    n_cycles: int = 200
    stop_retention: float = 0.6  # the test stops after the first cycle below this (of nominal)
    noise_frac: float = 0.002
    temperature_celsius: float = 25.0
    with_polarization: bool = True
    aw_every_n_cycles: int = 0  # 0: no EIS
    recovery_frac_per_10h: float = 0.004


def _rates(p: CellParams) -> np.ndarray:
    n = np.arange(1, p.n_cycles + 1)
    c = np.full(p.n_cycles, p.c_rate, dtype=float)
    if p.c_rate_final is not None and p.switch_cycle > 0:
        c[n > p.switch_cycle] = p.c_rate_final
    return c


def _rests(p: CellParams) -> np.ndarray:
    n = np.arange(1, p.n_cycles + 1)
    rest = np.where((p.rest_every_n_cycles > 0) & (n % max(p.rest_every_n_cycles, 1) == 0),
                    p.rest_hour, 0.0)
    if p.storage_after_cycle > 0 and p.storage_hour > 0:
        rest = rest + np.where(n == p.storage_after_cycle, p.storage_hour, 0.0)
    return rest


def time_loss(hours: np.ndarray, p: CellParams) -> np.ndarray:
    """Time-driven loss (fraction of nominal) at elapsed ``hours``; monotone non-decreasing."""
    h = np.maximum(np.asarray(hours, dtype=float) - p.time_onset_hour, 0.0)
    return p.time_scale * (h / HOUR_REF) ** p.time_exponent


def cycle_loss(cycles: np.ndarray, p: CellParams, c_rates: np.ndarray | None = None) -> np.ndarray:
    """Cycle-driven loss (fraction of nominal) after ``cycles`` full cycles; monotone.

    With a rate switch the per-cycle increments scale with ``sqrt(c_rate / 0.5)``, so the loss is
    the running sum of the increments of the base power law weighted by each cycle's stress.
    """
    n = np.asarray(cycles, dtype=float)
    base = p.cycle_scale * (n / CYCLE_REF) ** p.cycle_exponent
    if p.knee_cycle > 0:
        base = base + p.knee_scale * (np.maximum(n - p.knee_cycle, 0.0) / CYCLE_REF) ** 2
    if c_rates is None:
        return base
    stress = np.sqrt(np.asarray(c_rates, dtype=float) / p.c_rate)
    inc = np.diff(np.concatenate([[0.0], base]))
    return np.cumsum(inc * stress)


def simulate_cell(p: CellParams, seed: int = 0) -> CellRecord:
    """One synthetic cell: per-cycle table (CONTRACTS names) + per-cycle truth.

    Returns
    -------
    CellRecord
        ``cycles``: ``cycle_index``, ``test_time_second`` (end of cycle), ``cycle_duration_second``,
        ``rest_second``, ``c_rate``, ``temperature_celsius``, charge/discharge capacity (Ah) and
        energy (Wh), mean charge/discharge voltage (V), ``aw_ohm_per_sqrt_s`` (NaN where no EIS);
        ``truth``: ``cycle_index``, ``test_time_second``, ``loss_time_frac``, ``loss_cycle_frac``.
    """
    if p.n_cycles < 3:
        raise FadecastError("a synthetic cell needs at least 3 cycles", code="bad_parameter",
                            column="n_cycles", expected=">= 3", found=str(p.n_cycles))
    rng = np.random.default_rng(seed)
    n = np.arange(1, p.n_cycles + 1)
    c = _rates(p)
    extra_rest = _rests(p)
    # CC discharge + CC-CV charge (~1/c each, CV adds a little) + two 30-min rests + extra rest
    active_hour = 2.0 / c + 0.15 / np.sqrt(c)
    duration_hour = active_hour + 1.0 + extra_rest
    end_hour = np.cumsum(duration_hour)
    lt = time_loss(end_hour, p)
    lc = cycle_loss(n, p, c)
    rate_loss = 0.012 * c  # reversible: lower delivered capacity at higher current
    # recovery: a long rest before the discharge lets some capacity come back for a few cycles
    prev_rest = np.concatenate([[0.0], extra_rest[:-1]])
    bump = np.zeros(p.n_cycles)
    for i in np.flatnonzero(prev_rest >= 4.0):
        amp = p.recovery_frac_per_10h * min(prev_rest[i], 200.0) / 10.0
        bump[i:] += amp * np.exp(-(n[i:] - n[i]) / 3.0)
    q = p.nominal_capacity_ah
    discharge = q * (1.0 - lt - lc - rate_loss + bump)
    discharge = discharge * (1.0 + p.noise_frac * rng.standard_normal(p.n_cycles))
    # SEI consumes charge: charge throughput exceeds discharge by the time-loss increment (x3,
    # part of the side reaction is reversible shuttle) plus a small constant inefficiency
    dlt = np.diff(np.concatenate([[0.0], lt]))
    charge = discharge + q * (3.0 * dlt + 2e-4) * (1.0 + 0.05 * rng.standard_normal(p.n_cycles))
    pol = np.full(p.n_cycles, np.nan)
    v_ch = np.full(p.n_cycles, np.nan)
    v_dis = np.full(p.n_cycles, np.nan)
    if p.with_polarization:
        pol = 0.04 + 0.06 * c + 0.8 * lt + 0.1 * lc + 0.001 * rng.standard_normal(p.n_cycles)
        v_dis = 3.70 - pol / 2.0
        v_ch = 3.70 + pol / 2.0
    aw = np.full(p.n_cycles, np.nan)
    if p.aw_every_n_cycles > 0:
        at = (n == 1) | (n % p.aw_every_n_cycles == 0)
        aw_all = 0.01 * (1.0 + 6.0 * lt + 0.5 * lc) * (1.0 + 0.01 * rng.standard_normal(p.n_cycles))
        aw[at] = aw_all[at]
    below = np.flatnonzero(1.0 - lt - lc < p.stop_retention)
    if below.size and below[0] >= 2:
        keep = int(below[0]) + 1
        n, c, extra_rest, duration_hour, end_hour = (n[:keep], c[:keep], extra_rest[:keep],
                                                     duration_hour[:keep], end_hour[:keep])
        lt, lc, discharge, charge = lt[:keep], lc[:keep], discharge[:keep], charge[:keep]
        pol, v_ch, v_dis, aw = pol[:keep], v_ch[:keep], v_dis[:keep], aw[:keep]
    cycles = pd.DataFrame({
        "cell_id": p.cell_id,
        "cycle_index": n.astype("int64"),
        "test_time_second": end_hour * 3600.0,
        "cycle_duration_second": duration_hour * 3600.0,
        "rest_second": (1.0 + extra_rest) * 3600.0,
        "c_rate": c,
        "temperature_celsius": p.temperature_celsius,
        "charge_capacity_ah": charge,
        "discharge_capacity_ah": discharge,
        "charge_energy_wh": charge * np.where(np.isnan(v_ch), 3.75, v_ch),
        "discharge_energy_wh": discharge * np.where(np.isnan(v_dis), 3.65, v_dis),
        "mean_charge_voltage_volt": v_ch,
        "mean_discharge_voltage_volt": v_dis,
        "aw_ohm_per_sqrt_s": aw,
    })
    truth = pd.DataFrame({
        "cell_id": p.cell_id,
        "cycle_index": n.astype("int64"),
        "test_time_second": end_hour * 3600.0,
        "loss_time_frac": lt,
        "loss_cycle_frac": lc,
    })
    meta = {"source": "synthetic", "nominal_capacity_ah": q, "c_rate": p.c_rate,
            "rest_hour": p.rest_hour, "params": p,
            "split_group": f"{p.c_rate:g}C|{p.rest_hour:g}h"}
    return CellRecord(p.cell_id, cycles, truth, meta)


def make_cell(cell_id: str = "syn_000", *, seed: int = 0, **overrides) -> CellRecord:
    """One synthetic cell from :class:`CellParams` defaults plus ``overrides``."""
    try:
        params = CellParams(cell_id=cell_id, **overrides)
    except TypeError as exc:
        raise FadecastError(f"unknown synthetic cell parameter: {exc}",
                            code="bad_parameter") from exc
    return simulate_cell(params, seed=seed)


def _draw_params(i: int, rng: np.random.Generator, prefix: str, easy: bool) -> CellParams:
    c = float(rng.choice(RATES))
    rest = float(rng.choice(RESTS_HOUR))
    every = int(rng.choice([1, 1, 5, 10])) if rest > 0 else 1
    switch, c_final = 0, None
    storage_h, storage_after = 0.0, 0
    onset = 0.0
    knee_c, knee_s = 0.0, 0.0
    if not easy:
        if rng.random() < 0.25:
            c_final = float(rng.choice([r for r in RATES if r != c]))
            switch = int(rng.integers(20, 80))
        if rng.random() < 0.2:
            storage_h, storage_after = float(rng.uniform(100, 600)), int(rng.integers(10, 60))
        if rng.random() < 0.15:
            onset = float(rng.uniform(50, 400))
        if rng.random() < 0.2:
            knee_c, knee_s = float(rng.uniform(60, 160)), float(rng.uniform(0.05, 0.2))
    # time loss ~ sqrt(hours): a in [0.04, 0.25] per sqrt(1000 h); cycle loss grows with rate
    a = float(np.exp(rng.uniform(np.log(0.04), np.log(0.25))))
    b = float(np.exp(rng.uniform(np.log(0.03), np.log(0.15)))) * np.sqrt(c / 0.5)
    p_exp = float(rng.uniform(0.4, 0.65)) if not easy else 0.5
    q_exp = float(rng.uniform(0.9, 1.3)) if not easy else 1.0
    n_cycles = int(rng.integers(80, 260))
    return CellParams(
        cell_id=f"{prefix}_{i:03d}", nominal_capacity_ah=float(rng.choice([1.1, 2.5, 5.0])),
        c_rate=c, c_rate_final=c_final, switch_cycle=switch, rest_hour=rest,
        rest_every_n_cycles=every, storage_hour=storage_h, storage_after_cycle=storage_after,
        time_scale=a, time_exponent=p_exp, time_onset_hour=onset, cycle_scale=b,
        cycle_exponent=q_exp, knee_cycle=knee_c, knee_scale=knee_s, n_cycles=n_cycles,
        noise_frac=0.001 if easy else float(rng.uniform(0.0005, 0.003)),
        temperature_celsius=25.0 if easy else float(rng.choice([15.0, 25.0, 35.0])),
        with_polarization=easy or rng.random() < 0.8,
        aw_every_n_cycles=0 if easy else int(rng.choice([0, 0, 10, 20])),
    )


def make_fleet(n_cells: int, seed: int | Sequence[int] = 0, *, easy: bool = False,
               prefix: str = "syn") -> list[CellRecord]:
    """A fleet of synthetic cells across C-rates (C/10 … 1C), rest patterns and fade shapes.

    Parameters
    ----------
    n_cells:
        Number of cells (>= 1).
    seed:
        Seeds the parameter draws and the noise; the same seed gives the same fleet. A tuple
        such as ``(0, 1)`` is another stream: ``numpy.random.SeedSequence`` reads it as the
        number ``0 + 1 * 2**32``, so no seed below ``2**32`` gives the same fleet.
    easy:
        Only constant rates, fixed exponents (time 0.5, cycle 1.0), no onset/knee/storage, low
        noise — a fleet on which the split must be recovered well.
    prefix:
        Cell ids are ``<prefix>_000`` …

    Returns
    -------
    list[CellRecord]
        ``meta["source"] == "synthetic"``; ``meta["params"]`` holds the :class:`CellParams`.
    """
    if n_cells < 1:
        raise FadecastError("a fleet needs at least one cell", code="bad_parameter",
                            column="n_cells", expected=">= 1", found=str(n_cells))
    rng = np.random.default_rng(seed)
    cells = []
    for i in range(n_cells):
        params = _draw_params(i, rng, prefix, easy)
        cells.append(simulate_cell(params, seed=int(rng.integers(0, 2**31 - 1))))
    return cells


#: sibling protocols of a synthetic cohort: (C-rate, extra rest h, every n cycles) — the same
#: four paces as the PyBaMM cohorts (slow; fast; fast with long rests; medium with storage)
COHORT_PROTOCOLS: tuple[tuple[float, float, int], ...] = (
    (0.2, 0.0, 1), (1.0, 0.0, 1), (1.0, 8.0, 1), (0.3, 48.0, 5))


def make_cohort(name: str, seed: int, *,
                protocols: tuple[tuple[float, float, int], ...] = COHORT_PROTOCOLS,
                n_cycles: int = 200) -> list[CellRecord]:
    """A cohort of synthetic SIBLING cells: one draw of the mechanism strengths, shapes and
    temperature, run under each protocol of ``protocols`` (C-rate, extra rest hours at full
    charge, every n cycles). The cycle-driven scale grows as ``sqrt(c_rate / 0.5)``; the
    time-driven law is shared. Cell ids ``<name>_a``, ``<name>_b`` …; ``meta["cohort"]`` is
    ``name``. Deterministic for a given seed.
    """
    if not protocols:
        raise FadecastError("a cohort needs at least one protocol", code="bad_parameter",
                            column="protocols", expected=">= 1 protocol", found="none")
    rng = np.random.default_rng(seed)
    a = float(np.exp(rng.uniform(np.log(0.04), np.log(0.25))))
    b0 = float(np.exp(rng.uniform(np.log(0.02), np.log(0.12))))
    p_exp = float(rng.uniform(0.4, 0.65))
    q_exp = float(rng.uniform(0.9, 1.3))
    temp = float(rng.choice([25.0, 35.0]))
    nominal = float(rng.choice([1.1, 2.5, 5.0]))
    noise = float(rng.uniform(0.0005, 0.002))
    cells = []
    for j, (c, rest, every) in enumerate(protocols):
        params = CellParams(
            cell_id=f"{name}_{chr(ord('a') + j)}", nominal_capacity_ah=nominal, c_rate=c,
            rest_hour=rest, rest_every_n_cycles=every, time_scale=a, time_exponent=p_exp,
            cycle_scale=b0 * np.sqrt(c / 0.5), cycle_exponent=q_exp, n_cycles=n_cycles,
            noise_frac=noise, temperature_celsius=temp, stop_retention=0.65)
        rec = simulate_cell(params, seed=int(rng.integers(0, 2**31 - 1)))
        rec.meta.update(cohort=name, rest_every_n_cycles=every)
        cells.append(rec)
    return cells
