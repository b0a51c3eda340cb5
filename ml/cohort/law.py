"""The cohort's one degradation law (numpy; vectorised over posterior samples).

For cell i at the end of cycle k, as a fraction of the cohort's reference capacity::

    capacity = c0 + g · (rate_i − 0.5) + δ_i − L_time(τ_ik) − L_cycle(S_ik) + k · L_time · L_cycle

* ``τ`` (kilohours): Arrhenius-weighted elapsed time in which rest hours count ``w`` times an
  operating hour, ``τ_k = Σ_{j≤k} f(T_j) · (operating_j + w · rest_j) / 1000`` with
  ``f(T) = exp(−Ea/R · (1/T − 1/298.15 K))``;
* ``L_time = A · max(τ − τ_on, 0)^p`` — time-driven (calendar-like, side reactions) loss,
  with an optional onset ``τ_on`` (kh; ``max(τ_on, 0)``: a negative value means none) for
  interfaces that hold before they decay;
* ``S`` (hectocycles): rate-weighted cycle count ``S_k = Σ_{j<k} (c_j / 0.5)^β / 100`` plus half
  of cycle k, with β floored at 0 (mechanical, cycle-driven loss never falls with C-rate);
* ``L_cycle = B · S^q`` — cycle-driven (mechanical) loss whose rate grows with C-rate;
* ``+ k · L_time · L_cycle`` — the two mechanisms partly remove the same capacity (the
  interaction is negative); it is split evenly between them when shares are reported
  (:func:`split_losses`, the convention of the PyBaMM truth files);
* ``c0 + g · (rate_i − 0.5)`` — the undegraded capacity (rate losses lower it at high C-rate),
  ``δ_i`` — the per-cell random level (small, N(0, σ_δ²) by the population prior).

Shared parameters, in the order of :data:`SHARED`: ``log_time_scale`` (ln A),
``time_exponent`` (p), ``log_cycle_scale`` (ln B), ``cycle_exponent`` (q), ``rate_exponent``
(β), ``log_rest_weight`` (ln w), ``activation_kj_per_mol`` (Ea), ``capacity_at_ref_rate``
(c0), ``capacity_rate_slope`` (g), ``interaction`` (k), ``time_onset_kh`` (τ_on). The per-cell offsets δ_i follow.
"""
from __future__ import annotations

import numpy as np

from ml.cohort.histories import CellHistory

__all__ = ["SHARED", "RATE_REF", "losses", "capacity_fraction", "time_share"]

SHARED = ("log_time_scale", "time_exponent", "log_cycle_scale", "cycle_exponent",
          "rate_exponent", "log_rest_weight", "activation_kj_per_mol", "capacity_at_ref_rate",
          "capacity_rate_slope", "interaction", "time_onset_kh")
RATE_REF = 0.5
GAS_CONSTANT = 8.314462618e-3  # kJ / (mol K)
T_REF_K = 298.15
_MIN_EXPONENT = 0.05
(I_LA, I_P, I_LB, I_Q, I_BETA, I_LW, I_EA, I_C0, I_G, I_K, I_ON) = range(len(SHARED))


def _col(theta: np.ndarray, i: int) -> np.ndarray:
    """Column ``i`` of a (K, P) parameter array as (K, 1) for broadcasting over cycles."""
    return theta[:, i:i + 1]


def effective_kilohours(cell: CellHistory, theta: np.ndarray) -> np.ndarray:
    """τ (kh) at the end of every cycle, shape (K, n), for parameter rows ``theta`` (K, P)."""
    ea = _col(theta, I_EA)
    inv_t = 1.0 / (cell.temperature_celsius + 273.15) - 1.0 / T_REF_K
    w = np.exp(np.clip(_col(theta, I_LW), -5.0, 5.0))
    if np.all(inv_t == 0.0):
        per = cell.operating_hour[None, :] + w * cell.rest_hour[None, :]
    else:
        per = np.exp(np.clip(-ea / GAS_CONSTANT * inv_t[None, :], -30, 30)) * (
            cell.operating_hour[None, :] + w * cell.rest_hour[None, :])
    # the capacity of cycle k is measured mid-way through its operating hours, before the
    # rest that ends the cycle: count every earlier cycle in full and half of this one's
    op_half = 0.5 * cell.operating_hour[None, :] * (per / np.maximum(
        cell.operating_hour[None, :] + w * cell.rest_hour[None, :], 1e-12))
    return (np.cumsum(per, axis=1) - per + op_half) / 1000.0


def stress_hectocycles(cell: CellHistory, theta: np.ndarray) -> np.ndarray:
    """S (hundreds of rate-weighted cycles) at the end of every cycle, shape (K, n)."""
    beta = np.maximum(_col(theta, I_BETA), 0.0)  # cycle loss never falls with C-rate
    ratio = np.log(cell.c_rate / RATE_REF)[None, :]
    per = np.exp(np.clip(beta * ratio, -30, 30))
    # cycles skipped in the index (a table that starts at cycle 5) count as cycles run alike
    first = float(cell.cycle_index[0]) - 1.0
    return (np.cumsum(per, axis=1) - 0.5 * per + first * per[:, :1]) / 100.0


def losses(cell: CellHistory, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time-driven, cycle-driven) loss fractions at every cycle, each (K, n)."""
    theta = np.atleast_2d(theta)
    tau = effective_kilohours(cell, theta)
    s = stress_hectocycles(cell, theta)
    p = np.maximum(_col(theta, I_P), _MIN_EXPONENT)
    q = np.maximum(_col(theta, I_Q), _MIN_EXPONENT)
    onset = np.maximum(_col(theta, I_ON), 0.0)
    lt = np.exp(np.clip(_col(theta, I_LA), -30, 5)) * np.power(np.maximum(tau - onset, 1e-12), p)
    lc = np.exp(np.clip(_col(theta, I_LB), -30, 5)) * np.power(np.maximum(s, 1e-12), q)
    return lt, lc


def _grouped_sum(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inv, weights=values, minlength=uniq.size)


def last_split_losses(cell: CellHistory, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, cycle) losses with the interaction split, at the LAST cycle only, each (K,).

    Equal to ``split_losses(cell, theta)[:, -1]`` but summed per distinct temperature and
    C-rate, so it costs (draws × distinct values) instead of (draws × cycles).
    """
    theta = np.atleast_2d(theta)
    ea = theta[:, I_EA:I_EA + 1]
    w = np.exp(np.clip(theta[:, I_LW:I_LW + 1], -5.0, 5.0))
    inv_t = 1.0 / (cell.temperature_celsius + 273.15) - 1.0 / T_REF_K
    t_u, op_u = _grouped_sum(inv_t[:-1], cell.operating_hour[:-1])
    _, rest_u = _grouped_sum(inv_t[:-1], cell.rest_hour[:-1])
    arr_u = np.exp(np.clip(-ea / GAS_CONSTANT * t_u[None, :], -30, 30))
    arr_n = np.exp(np.clip(-ea[:, 0] / GAS_CONSTANT * inv_t[-1], -30, 30))
    tau = ((arr_u * (op_u[None, :] + w * rest_u[None, :])).sum(axis=1)
           + 0.5 * arr_n * cell.operating_hour[-1]) / 1000.0
    beta = np.maximum(theta[:, I_BETA:I_BETA + 1], 0.0)
    logc = np.log(cell.c_rate / RATE_REF)
    c_u, n_u = _grouped_sum(logc, np.ones_like(logc))
    wts = np.exp(np.clip(beta * c_u[None, :], -30, 30))
    w_n = np.exp(np.clip(beta[:, 0] * logc[-1], -30, 30))
    w_1 = np.exp(np.clip(beta[:, 0] * logc[0], -30, 30))
    s = ((wts * n_u[None, :]).sum(axis=1) - 0.5 * w_n
         + (float(cell.cycle_index[0]) - 1.0) * w_1) / 100.0
    p = np.maximum(theta[:, I_P], _MIN_EXPONENT)
    q = np.maximum(theta[:, I_Q], _MIN_EXPONENT)
    onset = np.maximum(theta[:, I_ON], 0.0)
    lt = np.exp(np.clip(theta[:, I_LA], -30, 5)) * np.power(np.maximum(tau - onset, 1e-12), p)
    lc = np.exp(np.clip(theta[:, I_LB], -30, 5)) * np.power(np.maximum(s, 1e-12), q)
    half = -0.5 * theta[:, I_K] * lt * lc
    return lt + half, lc + half


def undegraded_fraction(rate: float, theta: np.ndarray, offset: np.ndarray | float) -> np.ndarray:
    """c0 + g (rate − 0.5) + δ, shape (K, 1)."""
    theta = np.atleast_2d(theta)
    off = np.reshape(np.asarray(offset, dtype=float), (-1, 1))
    return _col(theta, I_C0) + _col(theta, I_G) * (rate - RATE_REF) + off


def interaction(lt: np.ndarray, lc: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The (negative) overlap of the two losses, ``−k · L_time · L_cycle``, shape of ``lt``."""
    theta = np.atleast_2d(theta)
    return -_col(theta, I_K) * lt * lc


def split_losses(cell: CellHistory, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time-driven, cycle-driven) losses with the interaction shared evenly (Shapley)."""
    lt, lc = losses(cell, theta)
    half = 0.5 * interaction(lt, lc, theta)
    return lt + half, lc + half


def capacity_fraction(cell: CellHistory, theta: np.ndarray,
                      offset: np.ndarray | float) -> np.ndarray:
    """Capacity as a fraction of the reference at every cycle, shape (K, n)."""
    lt, lc = losses(cell, theta)
    return (undegraded_fraction(cell.typical_c_rate, theta, offset) - lt - lc
            - interaction(lt, lc, theta))


def time_share(lt: np.ndarray, lc: np.ndarray) -> np.ndarray:
    """Time-driven loss / (time + cycle loss) of split losses; 0.5 where both are ~0."""
    lt = np.maximum(lt, 0.0)
    lc = np.maximum(lc, 0.0)
    total = lt + lc
    return np.where(total > 1e-12, lt / np.where(total > 1e-12, total, 1.0), 0.5)
