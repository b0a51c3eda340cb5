"""Warburg A_w: window finding, Kramers–Kronig rejection, alignment to cycles, real spectra."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.features import build_cycle_table, complete_cycle_table
from ml.features.kramers_kronig import kk_test
from ml.features.warburg import KEYS, fit_warburg, warburg_table
from ml.features.warburg_trend import align_warburg

FREQ = np.logspace(4, -2, 61)  # 10 kHz → 10 mHz, 10 points per decade


def randles(sigma: float, *, rs: float = 0.05, rct: float = 0.2, cdl: float = 1e-3,
            f: np.ndarray = FREQ) -> np.ndarray:
    """Rs + (Rct + Z_W) ∥ Cdl with Z_W = σ(1 − j)/√ω: Z′ and −Z″ both → σ ω^-½ at low f."""
    w = 2 * np.pi * f
    zw = sigma * (1 - 1j) / np.sqrt(w)
    return rs + 1.0 / (1j * w * cdl + 1.0 / (rct + zw))


def spectrum(z: np.ndarray, f: np.ndarray = FREQ, **meta) -> pd.DataFrame:
    df = pd.DataFrame({"frequency_hz": f, "z_real_ohm": z.real, "z_imag_ohm": z.imag})
    return df.assign(**meta)


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.5])
def test_recovers_sigma_of_a_randles_warburg_spectrum(sigma):
    fit = fit_warburg(spectrum(randles(sigma), measurement_id="m1", cycle_count=4))
    assert fit["ok"], fit["reason"]
    assert fit["aw_ohm_per_sqrt_s"] == pytest.approx(sigma, rel=0.02)
    assert fit["aw_imag_ohm_per_sqrt_s"] == pytest.approx(sigma, rel=0.05)
    assert fit["fmin_hz"] == pytest.approx(0.01)  # the window reaches the lowest frequency
    assert fit["fmax_hz"] < 100.0  # and stays below the arc's apex, 1/(2π Rct Cdl) ≈ 800 Hz
    assert 0.8 < fit["nyquist_slope"] < 1.25
    assert fit["r2"] > 0.99 and fit["aw_stderr"] < 0.01 * sigma
    assert fit["measurement_id"] == "m1" and fit["cycle_count"] == 4
    assert fit["voltage_volt"] is None and fit["reason"] == ""


def test_window_is_found_from_the_nyquist_slope_not_arg_z():
    # A large series resistance keeps arg Z far below 45° everywhere; the fit is unchanged.
    base = fit_warburg(spectrum(randles(0.1)))
    shifted = fit_warburg(spectrum(randles(0.1, rs=5.0)))
    z = randles(0.1, rs=5.0)
    assert np.degrees(np.abs(np.angle(z))).max() < 10.0
    assert shifted["ok"]
    assert shifted["aw_ohm_per_sqrt_s"] == pytest.approx(base["aw_ohm_per_sqrt_s"], rel=1e-9)
    assert (shifted["fmin_hz"], shifted["fmax_hz"]) == (base["fmin_hz"], base["fmax_hz"])


def test_pure_rc_spectrum_has_no_diffusion_region():
    w = 2 * np.pi * FREQ
    z = 0.05 + 0.2 / (1 + 1j * w * 0.2 * 1e-3)
    fit = fit_warburg(spectrum(z))
    assert not fit["ok"]
    assert fit["reason"].startswith("no diffusion region")
    assert fit["aw_ohm_per_sqrt_s"] is None


def test_kramers_kronig_passes_noise_and_rejects_inconsistent_spectra():
    z = randles(0.1)
    rng = np.random.default_rng(3)
    noisy = z * (1 + 0.002 * (rng.standard_normal(z.size) + 1j * rng.standard_normal(z.size)))
    assert kk_test(FREQ, z).rms_residual < 1e-3
    assert kk_test(FREQ, noisy).ok
    # A real-part drift with no matching imaginary part (the cell changed during the sweep)
    # cannot come from a causal linear system.
    drift = z + 0.08 * (FREQ < 0.5)
    res = kk_test(FREQ, drift)
    assert not res.ok and res.rms_residual > 0.01
    fit = fit_warburg(spectrum(drift))
    assert not fit["ok"] and "Kramers-Kronig" in fit["reason"]


def test_too_few_points_and_missing_columns():
    fit = fit_warburg(spectrum(randles(0.1)[:4], f=FREQ[:4]))
    assert not fit["ok"] and "only 4 valid frequencies" in fit["reason"]
    with pytest.raises(Exception, match="z_imag_ohm"):
        fit_warburg(pd.DataFrame({"frequency_hz": FREQ, "z_real_ohm": 1.0}))


def test_warburg_table_has_the_contract_keys_and_is_json_ready():
    eis = pd.concat([spectrum(randles(0.1), measurement_id="a", voltage_volt=3.7,
                              test_time_second=100.0),
                     spectrum(randles(0.2), measurement_id="b")])
    table = warburg_table(eis.sample(frac=1.0, random_state=1))
    assert list(table.columns[: len(KEYS)]) == list(KEYS)
    by_id = table.set_index("measurement_id")
    assert by_id.loc["a", "aw_ohm_per_sqrt_s"] == pytest.approx(0.1, rel=0.02)
    assert by_id.loc["b", "aw_ohm_per_sqrt_s"] == pytest.approx(0.2, rel=0.02)
    item = fit_warburg(eis[eis["measurement_id"] == "b"])
    text = json.dumps(item, allow_nan=False)
    assert json.loads(text)["voltage_volt"] is None


def _cycles(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"cell_id": "c", "cycle_index": np.arange(1, n + 1),
                         "test_time_second": np.arange(1, n + 1) * 3600.0,
                         "discharge_capacity_ah": 1.0})


def test_alignment_latest_baseline_slopes_and_spike():
    eis = pd.concat([
        spectrum(randles(0.10), measurement_id="1", cycle_count=1, voltage_volt=2.5),
        spectrum(randles(0.12), measurement_id="2", cycle_count=3, voltage_volt=2.5),
        spectrum(randles(1.00), measurement_id="3", cycle_count=3, voltage_volt=3.0),
        spectrum(randles(0.14), measurement_id="4", cycle_count=5, voltage_volt=2.5),
    ])
    t = align_warburg(_cycles(), eis)
    aw = t["aw_ohm_per_sqrt_s"].to_numpy()
    np.testing.assert_allclose(aw, [0.10, 0.10, 0.12, 0.12, 0.14, 0.14], rtol=0.02)
    assert list(t["aw_measurement_count"]) == [1, 1, 2, 2, 3, 3]
    assert np.isnan(t["aw_slope_per_cycle"].iloc[2])  # 2 baseline points < 3 needed
    assert t["aw_slope_per_cycle"].iloc[4] == pytest.approx(0.01, rel=0.03)
    assert t["aw_slope_per_hour"].iloc[4] == pytest.approx(0.01, rel=0.03)  # 1 h per cycle
    top = t["aw_top_of_charge_ohm_per_sqrt_s"].to_numpy()
    assert np.isnan(top[:2]).all() and top[2:] == pytest.approx([1.0] * 4, rel=0.02)
    assert t["aw_spike_ratio"].iloc[2] == pytest.approx(1.0 / 0.12, rel=0.03)
    assert t["aw_spike_ratio"].iloc[4] == pytest.approx(1.0 / 0.14, rel=0.03)


def test_alignment_by_time_when_the_cycle_is_unknown():
    eis = spectrum(randles(0.1), measurement_id="x", test_time_second=2.5 * 3600)
    t = align_warburg(_cycles(), eis)
    assert t["aw_ohm_per_sqrt_s"].iloc[:2].isna().all()  # measured during cycle 3
    assert t["aw_ohm_per_sqrt_s"].iloc[2:].notna().all()


def test_build_cycle_table_carries_eis_columns(test_data):
    samples = pd.read_csv(test_data / "features" / "three_cycles.csv")
    eis = spectrum(randles(0.1), measurement_id="e", cycle_count=2)
    t = build_cycle_table(samples, eis=eis, voltage_curves=False)
    assert np.isnan(t["aw_ohm_per_sqrt_s"].iloc[0])
    assert t["aw_ohm_per_sqrt_s"].iloc[1:].to_numpy() == pytest.approx([0.1, 0.1], rel=0.02)


def _zhang(shared_data, cell: str) -> tuple[np.ndarray, np.ndarray]:
    folder = shared_data / "zhang2020_eis"
    f = pd.read_csv(folder / "frequencies_hz.csv")["frequency_hz"].to_numpy()
    data = np.loadtxt(folder / "per_cell" / f"EIS_data_{cell}.txt")
    # 120 columns: Re(Z) at 60 frequencies, then −Im(Z); the canonical z_imag_ohm is Im(Z).
    return f, data[:, :60] - 1j * data[:, 60:]


def test_zhang_25c01_aw_rises_with_age(shared_data):
    f, z = _zhang(shared_data, "25C01")
    fits = [fit_warburg(spectrum(zk, f=f, measurement_id=str(k))) for k, zk in enumerate(z)]
    aw = np.array([x["aw_ohm_per_sqrt_s"] for x in fits], dtype=float)
    assert np.mean([x["ok"] for x in fits]) > 0.95
    assert 0.07 < np.median(aw[:20]) < 0.11
    assert 0.12 < np.median(aw[-20:]) < 0.20
    from scipy.stats import spearmanr
    assert spearmanr(np.arange(aw.size), aw, nan_policy="omit").statistic > 0.8


def test_zhang_trend_is_insensitive_to_the_cycle_offset(shared_data):
    """Spectra every 2 cycles: row i is cycle 2i+1 or 2i+2 (the source's notes disagree)."""
    f, z = _zhang(shared_data, "25C01")
    cap = np.loadtxt(shared_data / "zhang2020_eis" / "per_cell" / "Capacity_data_25C01.txt")
    cycles = complete_cycle_table(pd.DataFrame({
        "cell_id": "25C01", "cycle_index": np.arange(1, cap.size + 1),
        "discharge_capacity_ah": cap / 1000.0}), cells={"25C01": {"hours_per_cycle": 10.0}})
    slopes = []
    for offset in (1, 2):
        eis = pd.concat([spectrum(zk, f=f, measurement_id=str(k), cycle_count=2 * k + offset)
                         for k, zk in enumerate(z[::4])])
        t = align_warburg(cycles, eis)
        valid = t["aw_ohm_per_sqrt_s"].notna()
        slope = np.polyfit(t.loc[valid, "cycle_index"], t.loc[valid, "aw_ohm_per_sqrt_s"], 1)[0]
        slopes.append(slope)
        assert np.corrcoef(t.loc[valid, "aw_ohm_per_sqrt_s"],
                           t.loc[valid, "discharge_capacity_ah"])[0, 1] < -0.7
    assert slopes[0] > 0 and slopes[1] == pytest.approx(slopes[0], rel=0.05)


def test_top_of_charge_by_event_voltage_soc_or_threshold():
    # Voltages drift up with age; each event's highest spectrum is its top of charge.
    eis = pd.concat([
        spectrum(randles(0.10), measurement_id="a1", cycle_count=1, voltage_volt=2.50),
        spectrum(randles(1.00), measurement_id="a2", cycle_count=1, voltage_volt=2.95),
        spectrum(randles(0.12), measurement_id="b1", cycle_count=4, voltage_volt=2.70),
        spectrum(randles(1.10), measurement_id="b2", cycle_count=4, voltage_volt=3.10),
    ])
    t = align_warburg(_cycles(), eis)
    np.testing.assert_allclose(t["aw_ohm_per_sqrt_s"], [0.10] * 3 + [0.12] * 3, rtol=0.02)
    np.testing.assert_allclose(t["aw_top_of_charge_ohm_per_sqrt_s"], [1.0] * 3 + [1.1] * 3,
                               rtol=0.02)
    # A stated threshold overrides: at 2.6 V, a2, b1 and b2 are all top of charge.
    t = align_warburg(_cycles(), eis, spike_voltage_volt={"c": 2.6})
    np.testing.assert_allclose(t["aw_ohm_per_sqrt_s"], [0.10] * 6, rtol=0.02)
    assert list(t["aw_measurement_count"]) == [1] * 6
    assert t["aw_top_of_charge_ohm_per_sqrt_s"].iloc[3] == pytest.approx(1.1, rel=0.02)
    # With a state of charge, it decides (>= 0.95).
    soc = eis.assign(state_of_charge=eis["measurement_id"].map(
        {"a1": 0.5, "a2": 1.0, "b1": 1.0, "b2": 0.5}))
    t = align_warburg(_cycles(), soc)
    np.testing.assert_allclose(t["aw_ohm_per_sqrt_s"].iloc[4:], [1.1, 1.1], rtol=0.02)
    np.testing.assert_allclose(t["aw_top_of_charge_ohm_per_sqrt_s"].iloc[4:], [0.12, 0.12],
                               rtol=0.02)


def test_warburg_table_of_no_spectra_is_empty_with_the_contract_columns():
    empty = pd.DataFrame(columns=["measurement_id", "frequency_hz", "z_real_ohm", "z_imag_ohm"])
    table = warburg_table(empty)
    assert len(table) == 0 and list(table.columns) == list(KEYS)


@pytest.mark.parametrize("rct_ohm", [150.0, 400.0, 1000.0])
def test_valid_randles_warburg_at_8_points_per_decade_passes_kk(rct_ohm):
    """A noise-free Randles + Warburg spectrum is causal and linear: it must pass, whatever Rct
    (with one Voigt element per three points it failed at Rct = 1000 Ω)."""
    f = np.logspace(5, -2, 57)
    w = 2 * np.pi * f
    z = 10 + 1 / (1 / (rct_ohm + 200 * (1 - 1j) / np.sqrt(w)) + 1j * w * 1e-5)
    result = kk_test(f, z)
    assert result.ok and result.rms_residual < 2e-3
