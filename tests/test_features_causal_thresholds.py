"""Sample thresholds are causal (issue 10): the rest-current threshold and the high-voltage
level a cycle's descriptors use come from the cell's samples up to the end of that cycle, so a
table built from a file truncated after cycle k gives cycles <= k exactly the values the whole
file gives them — an evaluation cut at cycle k does not see the future through a threshold.

What the prefix comparison allows, and why (none of it is a threshold):
- the cut keeps at least the cell's first 3 cycles (CONTRACTS reference capacity = max of the
  first three discharges) and reaches the ΔQ(V) reference cycle (10 when the cell has it) —
  before those the reference itself is still unknown;
- the rolling slopes (``*_slope_*``) centre x on the mean of the whole series before summing
  (``ml.features.trend.rolling_slope``, for conditioning): the same least-squares slope,
  equal to 1e-9 relative rather than bit for bit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.features import build_cycle_table
from ml.features.sample_cycles import sample_cycles
from ml.features.sample_frame import REST_CURRENT_FRACTION, prepare_samples
from ml.features.timing import HIGH_VOLTAGE_FRACTION
from ml.synthetic import make_cell
from ml.synthetic_samples import sample_rows


def _slope_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if "_slope_" in c]


def assert_prefix_stable(samples: pd.DataFrame, ks: list[int], cells=None) -> pd.DataFrame:
    """Build on the whole file and on the file truncated after each cycle k: rows <= k equal."""
    full = build_cycle_table(samples, cells=cells)
    for k in ks:
        part = build_cycle_table(samples[samples["cycle_count"] <= k], cells=cells)
        head = full[full["cycle_index"] <= k].reset_index(drop=True)
        assert len(part) == len(head) and len(part) >= 3
        slopes = _slope_columns(head)
        exact = [c for c in head.columns if c not in slopes]
        pd.testing.assert_frame_equal(part[exact], head[exact], check_exact=True,
                                      obj=f"table cut after cycle {k}")
        pd.testing.assert_frame_equal(part[slopes], head[slopes], check_exact=False,
                                      rtol=1e-9, atol=1e-15, obj=f"slopes cut after cycle {k}")
    return full


def whole_file_table(samples: pd.DataFrame) -> pd.DataFrame:
    """The raw per-cycle rows with the OLD whole-file thresholds (largest |I| and highest
    voltage of the entire file), to show the property fails without causal thresholds."""
    arr = prepare_samples(samples)
    arr.cell_rest_threshold_a = np.array([np.abs(samples["current_ampere"]).max()
                                          * REST_CURRENT_FRACTION])
    arr.cell_max_voltage_v = np.array([samples["voltage_volt"].max()])
    return sample_cycles(arr, voltage_curves=False)


def synthetic_samples() -> pd.DataFrame:
    """A synthetic export (ml.synthetic_samples) whose thresholds move late: the rate steps
    from C/3 to 1C after cycle 25 (largest |I| ×3) and the top of charge rises with the
    polarization every cycle; the rest after each charge carries a 2 mA trickle (a CV tail):
    above 0.1 % of the 1.5 A drawn until cycle 25, below 0.1 % of the later 5 A."""
    cycles = make_cell("p", seed=1, c_rate=0.3, c_rate_final=1.0, switch_cycle=25,
                       n_cycles=40, with_polarization=True).cycles
    samples = sample_rows(cycles, 5.0, points_per_step=6)
    samples.loc[samples["step_count"] == 2, "current_ampere"] = 2e-3
    return samples


def test_synthetic_export_truncated_after_cycle_k_gives_the_same_rows():
    samples = synthetic_samples()
    arr = prepare_samples(samples)
    # the thresholds really move during the file (else the test would prove nothing)
    assert arr.seg_abs_current_max_a[0] == pytest.approx(1.5)
    assert arr.seg_abs_current_max_a[-1] == pytest.approx(5.0)
    assert np.unique(arr.seg_voltage_max_v).size > 20  # top of charge creeps up
    full = assert_prefix_stable(samples, [10, 11, 24, 25, 26, 33])
    # whole-file thresholds leak the future into these early rows: the old table differs
    old = whole_file_table(samples)
    early = full["cycle_index"] <= 25
    for col in ("rest_second", "charge_duration_second"):
        assert not np.array_equal(full.loc[early, col], old.loc[early.to_numpy(), col]), col
    # the trickle is charge while 2 mA > 0.1 % × 1.5 A, rest once the largest |I| is 5 A
    rest = full.set_index("cycle_index")["rest_second"]
    assert (rest.loc[26:] > rest.loc[:25].max()).all()


def test_real_export_truncated_after_cycle_k_gives_the_same_rows(shared_data):
    """xcel p492-13 (a real cycler export): its largest |I| grows 0.95 mA → 19 mA → 95 mA and
    its top of charge 4.1000 → 4.1022 V over the test."""
    raw = pd.read_csv(shared_data / "xcel_p492_13" / "p492-13-raw.csv")
    rows = raw["Frequency_Hz"].isna()  # cycle 7's EIS rows are spectra, not samples
    samples = pd.DataFrame({
        "test_time_second": raw["Time_s"], "cycle_count": raw["Cycle_Index"],
        "step_count": raw["Step"], "current_ampere": raw["Current_A"],
        "voltage_volt": raw["Voltage_V"], "charging_capacity_ah": raw["Charge_Capacity_Ah"],
        "discharging_capacity_ah": raw["Discharge_Capacity_Ah"],
        "charging_energy_wh": raw["Charge_Energy_Wh"],
        "discharging_energy_wh": raw["Discharge_Energy_Wh"]})[rows].reset_index(drop=True)
    arr = prepare_samples(samples)
    assert arr.seg_abs_current_max_a[0] < 0.01 < arr.seg_abs_current_max_a[-1]
    full = assert_prefix_stable(samples, [3, 4, 5, 6, 8])
    old = whole_file_table(samples)
    # cycle 2 (the first charge, to 4.1000 V): time >= 0.9 × 4.1000 V, not × 4.1022 V
    assert full["high_voltage_second"].iloc[1] > old["high_voltage_second"].iloc[1]
    # cycle 1 discharges from open circuit only: no top of charge yet, no high-voltage time
    assert full["high_voltage_second"].iloc[0] == 0.0


def _three_cycles() -> pd.DataFrame:
    """Three 50 s cycles, one sample per 10 s. Cycles 1-2 charge at 0.1 A to 4.0 V, then a
    0.5 mA trickle; cycle 3 charges at 1 A to 4.4 V, then rests at 0 A."""
    v12, i12 = [3.0, 3.5, 4.0, 3.5, 3.5, 3.0], [0.1, 0.1, 0.1, 5e-4, 5e-4, -0.1]
    v3, i3 = [3.0, 3.7, 4.4, 3.7, 3.7, 3.0], [1.0, 1.0, 1.0, 0.0, 0.0, -1.0]
    return pd.DataFrame({
        "test_time_second": np.arange(18) * 10.0 + np.repeat([0.0, 10.0, 20.0], 6),
        "cycle_count": np.repeat([1, 2, 3], 6),
        "current_ampere": i12 + i12 + i3, "voltage_volt": v12 + v12 + v3})


def test_late_voltage_peak_does_not_move_early_high_voltage_time():
    """Hand-computed. High-voltage time counts intervals whose mean voltage is >= the level.
    Cycles 1-2 charge to 4.0 V: level 0.9 × 4.0 = 3.6 V; interval means 3.25, 3.75, 3.75,
    3.5, 3.25 V → 20 s. Cycle 3 charges to 4.4 V: level 3.96 V; means 3.35, 4.05, 4.05, 3.7,
    3.35 V → 20 s. (The whole-file level 3.96 V gave cycles 1-2 0 s: the future leaked.)
    Rest: cycles 1-2's rest threshold is 0.1 % × 0.1 A = 0.1 mA, so the 0.5 mA trickle is
    charge: rest 0 s, charge 40 s (means 100, 100, 50.25, 0.5 mA), discharge 10 s; cycle 3
    (1 mA): rest 10 s, charge 30 s, discharge 10 s. The whole-file 1 mA threshold made the
    trickle rest: 10 s in cycles 1-2."""
    samples = _three_cycles()
    assert HIGH_VOLTAGE_FRACTION == 0.9 and REST_CURRENT_FRACTION == 1e-3
    full = build_cycle_table(samples, voltage_curves=False)
    np.testing.assert_array_equal(full["high_voltage_second"], [20.0, 20.0, 20.0])
    np.testing.assert_array_equal(full["rest_second"], [0.0, 0.0, 10.0])
    np.testing.assert_array_equal(full["charge_duration_second"], [40.0, 40.0, 30.0])
    np.testing.assert_array_equal(full["discharge_duration_second"], [10.0, 10.0, 10.0])
    cut = build_cycle_table(samples[samples["cycle_count"] <= 2], voltage_curves=False)
    np.testing.assert_array_equal(cut["high_voltage_second"], [20.0, 20.0])
    np.testing.assert_array_equal(cut["rest_second"], [0.0, 0.0])
    old = whole_file_table(samples)  # what the whole-file thresholds gave
    np.testing.assert_array_equal(old["high_voltage_second"], [0.0, 0.0, 20.0])
    np.testing.assert_array_equal(old["rest_second"], [10.0, 10.0, 10.0])
    # a stated level is fixed for every cycle: 3.9 V → only cycle 3's 4.05 V intervals
    fixed = build_cycle_table(samples, cells={"cell": {"high_voltage_threshold_volt": 3.9}},
                              voltage_curves=False)
    np.testing.assert_array_equal(fixed["high_voltage_second"], [0.0, 0.0, 20.0])


def test_blocks_and_a_carried_prior_give_the_same_thresholds():
    """Small blocks (views) and an array continuing a cell with ``with_prior`` give the whole
    array's per-cycle thresholds, hence its threshold columns."""
    samples = synthetic_samples()
    whole = prepare_samples(samples)
    ref = sample_cycles(whole, voltage_curves=False)
    cols = ["rest_second", "charge_duration_second", "discharge_duration_second",
            "high_voltage_second", "end_of_charge_voltage_volt", "end_of_discharge_voltage_volt"]
    for block in (37, 500):
        got = sample_cycles(prepare_samples(samples), voltage_curves=False, block_rows=block)
        pd.testing.assert_frame_equal(got[cols], ref[cols], check_exact=True)
    k = 30  # continue from cycle 30 with the maxima of cycles <= 29 carried in
    tail = prepare_samples(samples[samples["cycle_count"] >= k].reset_index(drop=True))
    j = int(np.searchsorted(whole.seg_cycle, k)) - 1
    tail.with_prior(whole.seg_abs_current_max_a[j:j + 1], whole.seg_voltage_max_v[j:j + 1])
    np.testing.assert_array_equal(tail.seg_abs_current_max_a, whole.seg_abs_current_max_a[j + 1:])
    np.testing.assert_array_equal(tail.seg_voltage_max_v, whole.seg_voltage_max_v[j + 1:])
    got = sample_cycles(tail, voltage_curves=False)
    want = ref[ref["cycle_index"] >= k].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[cols], want[cols], check_exact=True)
