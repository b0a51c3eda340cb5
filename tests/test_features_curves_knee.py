"""Q(V), ΔQ(V) summaries and dQ/dV peaks; Bacon–Watts knee; rolling slopes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml.features import build_cycle_table, delta_q_summary
from ml.features.knee import knee_columns
from ml.features.trend import rolling_slope
from ml.features.voltage_curves import discharge_q_of_v, dqdv_peak


def test_delta_q_summary_by_hand():
    ref = np.array([0.0, 1.0, 2.0, 3.0])
    cyc = np.array([0.0, 0.9, 1.7, 2.9])  # ΔQ = 0, -0.1, -0.3, -0.1
    d = delta_q_summary(ref, cyc)
    dq = np.array([0.0, -0.1, -0.3, -0.1])
    assert d["delta_q_v_mean_ah"] == pytest.approx(-0.125)
    assert d["delta_q_v_minimum_ah"] == pytest.approx(-0.3)
    assert d["delta_q_v_variance_ah2"] == pytest.approx(np.mean((dq + 0.125) ** 2))
    assert d["delta_q_v_skewness"] == pytest.approx(stats.skew(dq))
    same = delta_q_summary(ref, ref)
    assert same["delta_q_v_variance_ah2"] == 0.0 and np.isnan(same["delta_q_v_skewness"])
    with pytest.raises(ValueError, match="differ in shape"):
        delta_q_summary(ref, cyc[:3])


def test_q_of_v_is_monotone_despite_voltage_noise():
    q = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    v = np.array([3.9, 3.7, 3.75, 3.5, 3.0])  # a relaxation bump at the third sample
    grid = np.array([4.0, 3.8, 3.7, 3.6, 3.0, 2.9])
    qv = discharge_q_of_v(q, v, grid)
    # Above the first sample: its Q; 3.8 V lies between 3.9 (0.1) and 3.7 (0.2) → 0.15;
    # the bump is ignored (running minimum); below the last sample: the total.
    np.testing.assert_allclose(qv[[0, 1, 3, 4, 5]], [0.1, 0.15, 0.35, 0.5, 0.5])
    assert 0.2 <= qv[2] <= 0.3
    assert (np.diff(qv) >= 0).all()


def test_dqdv_peak_of_a_plateau():
    grid = np.linspace(2.5, 4.0, 301)
    q = 1.0 / (1.0 + np.exp((grid - 3.3) / 0.02))  # all charge delivered around 3.3 V
    v, h = dqdv_peak(grid, q)
    assert v == pytest.approx(3.3, abs=0.01)
    # Peak of the logistic derivative is 1/(4·0.02) = 12.5 Ah/V; smoothing lowers it a little.
    assert 9.0 < h <= 12.5


def _synthetic_cell(n_cycles: int, fade_per_cycle: float) -> pd.DataFrame:
    """CC discharges at 1 A from an OCV curve shifted by capacity loss; 60 samples per step."""
    rows = []
    t = 0.0
    for c in range(1, n_cycles + 1):
        cap = 1.0 - fade_per_cycle * (c - 1)
        for s in range(61):  # charge
            rows.append((t + s * 60.0 * cap, c, 1.0, 3.4 + 0.8 * s / 60.0))
        t += 3600.0 * cap
        for s in range(61):  # discharge: V falls linearly with delivered charge
            rows.append((t + s * 60.0 * cap, c, -1.0, 4.1 - 1.2 * s / 60.0))
        t += 3600.0 * cap
    return pd.DataFrame(rows, columns=["test_time_second", "cycle_count", "current_ampere",
                                       "voltage_volt"])


def test_delta_q_descriptors_in_build_cycle_table():
    t = build_cycle_table(_synthetic_cell(14, 0.01)).set_index("cycle_index")
    assert t.loc[:9, "delta_q_v_mean_ah"].isna().all()
    assert (t.loc[10:, "delta_q_v_reference_cycle"] == 10).all()
    # Q_c(V) = cap_c × (4.1 − V)/1.2 on the reference grid [2.9, 4.1] V: ΔQ is linear in V,
    # from 0 at 4.1 V to (cap_c − cap_10) at 2.9 V → mean = half, minimum = all of it.
    for c in (11, 14):
        loss = 0.01 * (c - 10)
        assert t.loc[c, "delta_q_v_minimum_ah"] == pytest.approx(-loss, rel=0.03)
        assert t.loc[c, "delta_q_v_mean_ah"] == pytest.approx(-loss / 2, rel=0.03)
        assert t.loc[c, "delta_q_v_skewness"] == pytest.approx(0.0, abs=0.1)
    without = build_cycle_table(_synthetic_cell(14, 0.01), voltage_curves=False)
    assert without["delta_q_v_mean_ah"].isna().all()


def test_reference_falls_back_to_earliest_cycle_from_two():
    t = build_cycle_table(_synthetic_cell(5, 0.01))
    assert (t["delta_q_v_reference_cycle"].dropna() == 2).all()
    assert np.isnan(t["delta_q_v_mean_ah"].iloc[0])


def test_knee_of_a_two_slope_curve():
    rng = np.random.default_rng(0)
    x = np.arange(1, 401, dtype=float)
    q = 1.0 - 1e-4 * x - 2e-3 * np.maximum(x - 250, 0) + rng.normal(0, 1e-3, x.size)
    k = knee_columns(x, q)
    assert k["knee_cycle"][-1] == pytest.approx(250, abs=10)
    assert k["knee_cycle_ci_low"][-1] <= 250 <= k["knee_cycle_ci_high"][-1]
    assert 0 < k["knee_cycle_stderr"][-1] < 15
    # Causal: before the knee has happened, none is reported.
    assert np.isnan(k["knee_cycle"][:200]).all()


def test_no_knee_on_a_straight_or_flattening_line():
    rng = np.random.default_rng(1)
    x = np.arange(1, 301, dtype=float)
    straight = 1.0 - 1e-4 * x + rng.normal(0, 1e-3, x.size)
    assert np.isnan(knee_columns(x, straight)["knee_cycle"]).mean() > 0.95
    flattening = 1.0 - 1e-3 * np.minimum(x, 150)  # fade slows: not a knee
    assert np.isnan(knee_columns(x, flattening)["knee_cycle"]).all()


def test_rolling_slope_window_and_gaps():
    x = np.arange(6.0)
    y = np.array([0.0, 1.0, np.nan, 3.0, 5.0, 7.0])
    s = rolling_slope(x, y, window=3)
    assert np.isnan(s[:2]).all() and np.isnan(s[2])
    assert s[3] == pytest.approx(1.0)  # points 0, 1, 3
    assert s[5] == pytest.approx(2.0)  # points 3, 4, 5


def test_two_dqdv_peaks_of_a_two_plateau_discharge():
    from ml.features.voltage_curves import dqdv_peaks

    grid = np.linspace(2.5, 4.0, 601)
    # 0.6 Ah around 3.7 V and 0.3 Ah around 3.2 V: peak heights 0.6/(4·0.02) and 0.3/(4·0.02).
    q = 0.6 / (1 + np.exp((grid - 3.7) / 0.02)) + 0.3 / (1 + np.exp((grid - 3.2) / 0.02))
    v1, h1, v2, h2 = dqdv_peaks(grid, q)
    assert v1 == pytest.approx(3.7, abs=0.01) and v2 == pytest.approx(3.2, abs=0.01)
    assert h1 / h2 == pytest.approx(2.0, rel=0.05)
    single = dqdv_peaks(grid, 1.0 / (1 + np.exp((grid - 3.3) / 0.02)))
    assert np.isnan(single[2]) and np.isnan(single[3])


def test_every_output_column_is_catalogued(test_data):
    from ml.features.catalog import NAMES, column

    t = build_cycle_table(pd.read_csv(test_data / "features" / "three_cycles.csv"))
    assert tuple(t.columns) == NAMES
    assert column("retention").unit == ""
    with pytest.raises(KeyError, match="nearest: \\['retention'"):
        column("retentoin")


def test_row_wise_summaries_equal_the_one_curve_summary():
    """The vectorised path of build_cycle_table gives the same summaries as delta_q_summary,
    a curve with a NaN point and an unchanged curve (skewness undefined) included."""
    from ml.features.voltage_curves import _summaries_of_rows

    rng = np.random.default_rng(3)
    ref = np.linspace(0.0, 1.0, 50)
    rows = ref[None, :] - rng.uniform(0.0, 0.05, (4, 50))
    rows[2, 7] = np.nan
    rows[3] = ref
    got = _summaries_of_rows(ref, rows)
    assert set(got) == set(delta_q_summary(ref, rows[0]))
    for r in range(4):
        for name, value in delta_q_summary(ref, rows[r]).items():
            assert got[name][r] == pytest.approx(value, nan_ok=True), (r, name)
