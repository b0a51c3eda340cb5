"""Warburg coefficient A_w (Ω s^-½) per EIS spectrum, with an automatically found window.

In the semi-infinite diffusion region Z = R + σω^-½(1 − j), so Z′ and −Z″ both grow linearly
in ω^-½ (ω = 2πf) with slope σ = A_w, and the Nyquist plot is a 45° line: Δ(−Z″)/ΔZ′ ≈ 1. The
region is found on the Nyquist slope — not on arg Z, which a series resistance keeps far below
45°. Every contiguous run of >= ``MIN_POINTS`` frequencies is scored at once with prefix sums:
a run qualifies when −Z″ and Z′ both rise at every step towards lower frequency, −Z″ does not
fall back below the run's last value at any lower frequency (so an arc's rising flank is not
mistaken for a tail), the run's
Nyquist slope lies in [``NYQUIST_SLOPE_MIN``, ``NYQUIST_SLOPE_MAX``] and Z′ is linear in ω^-½
(R² >= ``MIN_R2``); the run reaching the lowest frequency wins, then the longest, then the
best R². A_w is the OLS slope of
Z′ vs ω^-½ there; the slope of −Z″ vs ω^-½ is the cross-check. Spectra that fail the linear
Kramers–Kronig test are rejected.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError
from ml.features.kramers_kronig import kk_test

MIN_POINTS = 5
MIN_R2 = 0.95
NYQUIST_SLOPE_MIN = 0.5
NYQUIST_SLOPE_MAX = 2.0
#: The −Z″ slope may differ from the Z′ slope by at most this factor (either way).
CROSS_CHECK_RATIO = 2.0
KEYS = ("measurement_id", "cycle_count", "test_time_second", "voltage_volt",
        "aw_ohm_per_sqrt_s", "aw_stderr", "fmin_hz", "fmax_hz", "r2", "ok", "reason")
_REQUIRED = ("frequency_hz", "z_real_ohm", "z_imag_ohm")
_META = ("measurement_id", "cycle_count", "test_time_second", "voltage_volt", "cell_id",
         "state_of_charge")


def _window_stats(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """OLS of y on x for every window [i, j] (inclusive) → arrays [n, n] (NaN for j < i+1)."""
    c = {k: np.concatenate(([0.0], np.cumsum(v))) for k, v in
         (("n", np.ones_like(x)), ("x", x), ("y", y), ("xx", x * x), ("xy", x * y),
          ("yy", y * y))}
    i = np.arange(x.size)[:, None]
    j = np.arange(x.size)[None, :]
    s = {k: v[j + 1] - v[i] for k, v in c.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        sxx = s["xx"] - s["x"] ** 2 / s["n"]
        sxy = s["xy"] - s["x"] * s["y"] / s["n"]
        syy = s["yy"] - s["y"] ** 2 / s["n"]
        slope = sxy / sxx
        rss = np.maximum(syy - slope * sxy, 0.0)
        r2 = np.where(syy > 0, 1.0 - rss / syy, np.nan)
        stderr = np.sqrt(rss / np.maximum(s["n"] - 2, 1) / sxx)
    return {"n": s["n"], "slope": slope, "r2": r2, "stderr": stderr}


def _meta_value(spectrum: pd.DataFrame, name: str) -> Any:
    if name not in spectrum.columns:
        return None
    v = spectrum[name].dropna()
    if v.empty:
        return None
    v = v.iloc[0]
    if name == "measurement_id" or name == "cell_id":
        return str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return int(f) if name == "cycle_count" else f


def fit_warburg(spectrum: pd.DataFrame) -> dict[str, Any]:
    """A_w of one spectrum.

    Parameters
    ----------
    spectrum : rows of one measurement with ``frequency_hz`` (Hz), ``z_real_ohm``,
        ``z_imag_ohm`` (Ω; Im(Z), negative for capacitive/diffusive behaviour); optional
        ``measurement_id``, ``cycle_count``, ``test_time_second``, ``voltage_volt``.

    Returns
    -------
    dict with the CONTRACTS keys (``aw_ohm_per_sqrt_s`` ± ``aw_stderr`` in Ω s^-½; the window
    ``fmin_hz``–``fmax_hz``; ``r2`` of Z′ vs ω^-½; ``ok``; ``reason`` — empty when ok) plus
    ``aw_imag_ohm_per_sqrt_s`` (the −Z″ cross-check slope), ``nyquist_slope``, ``n_points``,
    ``kk_rms_residual``. Failed fits keep the slope where one was found but set ``ok`` False.
    """
    missing = [c for c in _REQUIRED if c not in spectrum.columns]
    if missing:
        raise ValidationError(f"EIS spectrum lacks column(s) {missing}", code="missing_column",
                              column=missing[0], expected=", ".join(_REQUIRED),
                              found=", ".join(map(str, spectrum.columns)))
    out: dict[str, Any] = {k: _meta_value(spectrum, k) for k in KEYS[:4]}
    if "state_of_charge" in spectrum.columns:
        out["state_of_charge"] = _meta_value(spectrum, "state_of_charge")
    out.update(aw_ohm_per_sqrt_s=None, aw_stderr=None, fmin_hz=None, fmax_hz=None, r2=None,
               ok=False, reason="", aw_imag_ohm_per_sqrt_s=None, nyquist_slope=None,
               n_points=0, kk_rms_residual=None)
    data = spectrum[list(_REQUIRED)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    data = data[np.isfinite(data).all(axis=1) & (data[:, 0] > 0)]
    data = data[np.argsort(-data[:, 0], kind="stable")]
    if data.shape[0] < MIN_POINTS:
        out["reason"] = f"only {data.shape[0]} valid frequencies (need >= {MIN_POINTS})"
        return out
    f, zr, zi = data[:, 0], data[:, 1], data[:, 2]
    kk = kk_test(f, zr + 1j * zi)
    out["kk_rms_residual"] = kk.rms_residual
    x = (2.0 * np.pi * f) ** -0.5
    mzi = -zi
    real = _window_stats(x, zr)
    imag = _window_stats(x, mzi)
    nyq = _window_stats(zr, mzi)
    n = f.size
    bad_step = np.concatenate(([0], np.cumsum((np.diff(zr) <= 0) | (np.diff(mzi) <= 0))))
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    rising = (bad_step[j] - bad_step[i]) == 0
    length = j - i + 1
    # Diffusion is the lowest-frequency process: below the run, −Z″ must not fall back (the
    # rising flank of a charge-transfer arc, followed by its falling flank, is not a tail).
    tol = 0.02 * float(np.ptp(mzi))
    after_min = np.append(np.minimum.accumulate(mzi[::-1])[::-1][1:], np.inf)
    tail = (after_min >= mzi - tol)[None, :]
    ok = ((length >= MIN_POINTS) & rising & tail & (nyq["slope"] >= NYQUIST_SLOPE_MIN)
          & (nyq["slope"] <= NYQUIST_SLOPE_MAX) & (real["r2"] >= MIN_R2) & (real["slope"] > 0))
    if not ok.any():
        out["reason"] = ("no diffusion region: no run of >= {} frequencies with a Nyquist "
                         "slope in [{}, {}] and Z' linear in w^-1/2".format(
                             MIN_POINTS, NYQUIST_SLOPE_MIN, NYQUIST_SLOPE_MAX))
        if np.mean(zi > 0) >= 0.5:  # the commonest cause: −Z″ stored where Im(Z) belongs
            out["reason"] += ("; Im(Z) is positive at most frequencies: the data look like "
                              "-Z'' (read the file with --eis-sign minus_im or auto)")
        return out
    # Diffusion is the LOW-frequency process: prefer the run reaching the lowest frequency,
    # then the longest run, then the best linearity.
    score = np.where(ok, (j * (n + 1) + length) + np.nan_to_num(real["r2"]) * 0.5, -np.inf)
    a, b = np.unravel_index(int(np.argmax(score)), score.shape)
    aw = float(real["slope"][a, b])
    aw_im = float(imag["slope"][a, b])
    out.update(aw_ohm_per_sqrt_s=aw, aw_stderr=float(real["stderr"][a, b]),
               fmin_hz=float(f[b]), fmax_hz=float(f[a]), r2=float(real["r2"][a, b]),
               aw_imag_ohm_per_sqrt_s=aw_im, nyquist_slope=float(nyq["slope"][a, b]),
               n_points=int(b - a + 1))
    reasons = []
    if not kk.ok:
        reasons.append(f"fails the Kramers-Kronig check (rms residual {kk.rms_residual:.3g}, "
                       f"max {kk.max_residual:.3g} of |Z|)")
    ratio = aw_im / aw if aw > 0 else np.inf
    if not (1.0 / CROSS_CHECK_RATIO <= ratio <= CROSS_CHECK_RATIO):
        reasons.append(f"-Z'' slope disagrees with Z' slope (ratio {ratio:.3g})")
    out["ok"] = not reasons
    out["reason"] = "; ".join(reasons)
    return out


def warburg_table(eis: pd.DataFrame) -> pd.DataFrame:
    """One :func:`fit_warburg` row per spectrum (grouped by ``cell_id`` if present and
    ``measurement_id``; a table without ``measurement_id`` is one spectrum), in input order."""
    keys = [k for k in ("cell_id", "measurement_id") if k in eis.columns]
    if len(eis) == 0:
        rows = []
    elif not keys:
        rows = [fit_warburg(eis)]
    else:
        rows = []
        for key, part in eis.groupby(keys, sort=False, dropna=False):
            row = fit_warburg(part)
            if "cell_id" in keys:
                row["cell_id"] = str(key[0])
            rows.append(row)
    cols = (["cell_id"] if "cell_id" in keys else []) + list(KEYS)
    df = pd.DataFrame(rows, columns=None if rows else cols)
    return df[cols + [c for c in df.columns if c not in cols]]
