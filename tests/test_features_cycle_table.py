"""build_cycle_table on a hand-computed 3-cycle file, and its invariances."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.features import build_cycle_table

CELLS = {"hand": {"nominal_capacity_ah": 1.0}}


@pytest.fixture
def samples(test_data) -> pd.DataFrame:
    return pd.read_csv(test_data / "features" / "three_cycles.csv")


def _check(table: pd.DataFrame, column: str, expected: list[float], rel: float = 1e-12):
    np.testing.assert_allclose(table[column].to_numpy(float), expected, rtol=rel, atol=1e-12,
                               err_msg=column)


def test_hand_computed_capacities_and_energies(samples):
    t = build_cycle_table(samples, cells=CELLS, voltage_curves=False)
    assert list(t["cell_id"]) == ["hand"] * 3
    assert list(t["cycle_index"]) == [1, 2, 3]
    _check(t, "charge_capacity_ah", [1.0, 0.95, 1.0])
    _check(t, "discharge_capacity_ah", [0.9, 0.9, 0.95])
    _check(t, "charge_energy_wh", [4.0, 3.895, 4.2])
    _check(t, "discharge_energy_wh", [2.7, 2.61, 2.945])
    _check(t, "mean_charge_voltage_volt", [4.0, 4.1, 4.2])
    _check(t, "mean_discharge_voltage_volt", [3.0, 2.9, 3.1])
    _check(t, "polarization_volt", [1.0, 1.2, 1.1])
    _check(t, "mid_capacity_polarization_volt", [1.0, 1.2, 1.1])
    _check(t, "coulombic_efficiency", [0.9, 0.9 / 0.95, 0.95])
    _check(t, "energy_efficiency", [2.7 / 4.0, 2.61 / 3.895, 2.945 / 4.2])
    _check(t, "end_of_charge_voltage_volt", [4.0, 4.1, 4.2])
    _check(t, "end_of_discharge_voltage_volt", [3.0, 2.9, 3.1])


def test_hand_computed_timing(samples):
    t = build_cycle_table(samples, cells=CELLS, voltage_curves=False)
    _check(t, "test_time_second", [7440, 12840, 27840])
    _check(t, "elapsed_hour", [7440 / 3600, 12840 / 3600, 27840 / 3600])
    _check(t, "cycle_start_hour", [0.0, 7440 / 3600, 13200 / 3600])
    _check(t, "cycle_duration_second", [7440, 5400, 15000])
    _check(t, "rest_second", [600, 360, 600])
    _check(t, "rest_before_hour", [0.0, 0.0, 0.1])
    _check(t, "charge_duration_second", [3600, 3420, 7200])
    _check(t, "discharge_duration_second", [3240, 1620, 6840])
    # 0.9 × 4.2 V = 3.78 V: charge plateaus and the 3.8/4.0 V rests count.
    _check(t, "high_voltage_hour", [4200 / 3600, 3420 / 3600, 7800 / 3600])
    _check(t, "cumulative_high_voltage_hour", [4200 / 3600, 7620 / 3600, 15420 / 3600])
    # C-rates against the nominal 1.0 Ah.
    _check(t, "discharge_c_rate", [1.0, 2.0, 0.5])
    _check(t, "charge_c_rate", [1.0, 1.0, 0.5])
    _check(t, "c_rate", [1.0, 2.0, 0.5])
    _check(t, "coulombic_inefficiency_per_hour",
           [0.1 / (7440 / 3600), (1 - 0.9 / 0.95) / 1.5, 0.05 / (15000 / 3600)])
    assert (t["test_time_estimated"] == 0).all()


def test_reference_capacity_and_retention(samples):
    with_nominal = build_cycle_table(samples, cells=CELLS, voltage_curves=False)
    _check(with_nominal, "retention", [0.9, 0.9, 0.95])
    _check(with_nominal, "equivalent_full_cycles", [0.9, 1.8, 2.75])
    free = build_cycle_table(samples, voltage_curves=False)
    _check(free, "reference_capacity_ah", [0.95] * 3)  # max of the first 3 cycles
    _check(free, "retention", [0.9 / 0.95, 0.9 / 0.95, 1.0])
    _check(free, "discharge_c_rate", [0.9 / 0.9 / 0.95, 2.0 / 0.95, 0.5 / 0.95])


def test_specific_capacity_needs_active_mass(samples):
    t = build_cycle_table(samples, cells={"hand": {"active_mass_g": 2.0}}, voltage_curves=False)
    _check(t, "discharge_capacity_mah_per_g", [450.0, 450.0, 475.0])
    assert build_cycle_table(samples, voltage_curves=False)[
        "discharge_capacity_mah_per_g"].isna().all()


def test_cycler_counters_are_used_when_present(samples):
    # Counters that reset every step (as Maccor writes them) give the same capacities.
    s = samples.copy()
    q_in = np.zeros(len(s))
    q_out = np.zeros(len(s))
    for (cyc, step), part in s.groupby(["cycle_count", "step_count"]):
        t = part["test_time_second"].to_numpy(float)
        i = part["current_ampere"].to_numpy(float)
        q = (t - t[0]) * np.abs(i) / 3600.0
        (q_in if i[0] > 0 else q_out)[part.index] = q
    s["charging_capacity_ah"] = q_in
    s["discharging_capacity_ah"] = q_out
    t = build_cycle_table(s, voltage_curves=False)
    _check(t, "charge_capacity_ah", [1.0, 0.95, 1.0])
    _check(t, "discharge_capacity_ah", [0.9, 0.9, 0.95])


def test_milliamp_input_changes_nothing_relative(samples):
    base = build_cycle_table(samples, cells=CELLS, voltage_curves=False)
    ma = samples.assign(current_ampere=samples["current_ampere"] * 1000.0)
    scaled = build_cycle_table(ma, cells={"hand": {"nominal_capacity_ah": 1000.0}},
                               voltage_curves=False)
    np.testing.assert_allclose(scaled["discharge_capacity_ah"], base["discharge_capacity_ah"]
                               * 1000.0, rtol=1e-12)
    for col in ("coulombic_efficiency", "energy_efficiency", "retention", "c_rate",
                "rest_second", "charge_duration_second", "mean_charge_voltage_volt",
                "equivalent_full_cycles", "high_voltage_hour", "polarization_volt"):
        np.testing.assert_allclose(scaled[col], base[col], rtol=1e-12, err_msg=col)


@pytest.mark.parametrize("drop", [[], ["source_row"], ["step_count"]])
def test_row_order_does_not_matter(samples, drop):
    base = build_cycle_table(samples.drop(columns=drop), cells=CELLS)
    rng = np.random.default_rng(7)
    shuffled = samples.drop(columns=drop).iloc[rng.permutation(len(samples))]
    again = build_cycle_table(shuffled, cells=CELLS)
    pd.testing.assert_frame_equal(base, again)


def test_two_continuation_parts_equal_the_whole(samples):
    whole = build_cycle_table(samples, cells=CELLS, voltage_curves=False)
    first = samples[samples["cycle_count"] <= 2]
    second = samples[samples["cycle_count"] == 3]
    parts = pd.concat([build_cycle_table(first, cells=CELLS, voltage_curves=False),
                       build_cycle_table(second, cells=CELLS, voltage_curves=False)],
                      ignore_index=True)
    for col in ("charge_capacity_ah", "discharge_capacity_ah", "discharge_energy_wh",
                "test_time_second", "rest_second", "charge_duration_second"):
        np.testing.assert_allclose(parts[col], whole[col], rtol=1e-12, err_msg=col)
    # Concatenating the parts' samples reproduces the whole exactly.
    rejoined = build_cycle_table(pd.concat([second, first]), cells=CELLS, voltage_curves=False)
    pd.testing.assert_frame_equal(rejoined, whole)


def test_many_cells_equal_each_cell_alone(samples):
    other = samples.assign(cell_id="twin", current_ampere=samples["current_ampere"] * 2.0)
    both = build_cycle_table(pd.concat([other, samples]), voltage_curves=False)
    assert list(both["cell_id"]) == ["hand"] * 3 + ["twin"] * 3
    alone = build_cycle_table(other, voltage_curves=False)
    np.testing.assert_allclose(both["discharge_capacity_ah"].iloc[3:], alone[
        "discharge_capacity_ah"], rtol=1e-12)
    np.testing.assert_allclose(both["discharge_capacity_ah"].iloc[3:],
                               2 * both["discharge_capacity_ah"].iloc[:3], rtol=1e-12)


def test_temperature_and_resistance_are_averaged_per_cycle(samples):
    s = samples.assign(ambient_temperature_celsius=25.0 + samples["cycle_count"],
                       internal_resistance_ohm=np.where(samples["cycle_count"] == 2, 0.05,
                                                        np.nan))
    t = build_cycle_table(s, voltage_curves=False)
    _check(t, "temperature_celsius", [26.0, 27.0, 28.0])
    assert np.isnan(t["internal_resistance_ohm"].iloc[0])
    assert t["internal_resistance_ohm"].iloc[1] == pytest.approx(0.05)


def test_blocks_give_the_same_table(samples):
    from ml.features.sample_cycles import sample_cycles
    from ml.features.sample_frame import prepare_samples

    cells = pd.concat([samples.assign(cell_id=f"c{k}", current_ampere=samples["current_ampere"]
                                      * (1 + k)) for k in range(5)])
    arr = prepare_samples(cells)
    assert len(arr.blocks(30)) == 3  # 22 rows per cell: blocks of 2, 2 and 1 cells
    # Blocks of ~5 rows start inside cells (with the previous row as context).
    assert any(not b.first_of_cell[0] for b in arr.segment_blocks(5))
    whole = sample_cycles(prepare_samples(cells), block_rows=10 ** 9)
    for rows in (5, 7, 30):
        pd.testing.assert_frame_equal(sample_cycles(prepare_samples(cells), block_rows=rows),
                                      whole)
