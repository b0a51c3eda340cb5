"""complete_cycle_table: validation messages, clock estimation, derived columns on user tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_registry.errors import ValidationError
from ml.features import complete_cycle_table


def _cycles(**over) -> pd.DataFrame:
    base = {"cycle_index": [1, 2, 3], "test_time_second": [3600.0, 7200.0, 14400.0],
            "discharge_capacity_ah": [1.0, 0.98, 0.97],
            "charge_capacity_ah": [1.02, 1.0, 0.98]}
    base.update(over)
    return pd.DataFrame(base)


def test_derived_columns_by_hand():
    t = complete_cycle_table(_cycles(), cells={"c1": {"nominal_capacity_ah": 1.25}})
    assert list(t["cell_id"]) == ["c1"] * 3
    np.testing.assert_allclose(t["elapsed_hour"], [1.0, 2.0, 4.0])
    np.testing.assert_allclose(t["cycle_duration_hour"], [1.0, 1.0, 2.0])  # cycle 1 from t=0
    np.testing.assert_allclose(t["coulombic_efficiency"], [1 / 1.02, 0.98, 0.97 / 0.98])
    np.testing.assert_allclose(t["coulombic_inefficiency_per_hour"],
                               [(1 - 1 / 1.02) / 1.0, 0.02 / 1.0, (1 - 0.97 / 0.98) / 2.0])
    later = complete_cycle_table(_cycles(cycle_index=[5, 6, 7]))
    assert np.isnan(later["cycle_duration_hour"].iloc[0])  # a continuation: start unknown
    np.testing.assert_allclose(t["retention"], [0.8, 0.98 / 1.25, 0.97 / 1.25])
    np.testing.assert_allclose(t["equivalent_full_cycles"], np.cumsum([1.0, 0.98, 0.97]) / 1.25)
    assert t["energy_efficiency"].isna().all() and t["polarization_volt"].isna().all()
    assert (t["test_time_estimated"] == 0).all()
    assert t.attrs["ignored_columns"] == []


def test_reference_is_max_of_first_three_cycles_without_nominal():
    t = complete_cycle_table(_cycles(discharge_capacity_ah=[0.9, 1.0, 0.95]))
    np.testing.assert_allclose(t["reference_capacity_ah"], [1.0] * 3)
    np.testing.assert_allclose(t["retention"], [0.9, 1.0, 0.95])


def test_unknown_columns_are_ignored_and_reported():
    t = complete_cycle_table(_cycles(operator=["a", "b", "c"], Cycle_Label=["x", "y", "z"]))
    assert t.attrs["ignored_columns"] == ["operator", "Cycle_Label"]
    assert "operator" not in t.columns


def test_rows_are_sorted_by_cycle():
    t = complete_cycle_table(_cycles().iloc[[2, 0, 1]])
    assert list(t["cycle_index"]) == [1, 2, 3]


def test_missing_required_column_is_named():
    with pytest.raises(ValidationError, match="lacks required column 'discharge_capacity_ah'"):
        complete_cycle_table(_cycles().drop(columns=["discharge_capacity_ah"]))
    with pytest.raises(ValidationError, match=r"'test_time_second' \(or state a protocol"):
        complete_cycle_table(_cycles().drop(columns=["test_time_second"]))


def test_text_in_a_number_column_names_file_row_and_column():
    bad = _cycles(discharge_capacity_ah=[1.0, "n/a", 0.97])
    with pytest.raises(ValidationError) as exc:
        complete_cycle_table(bad, file="cellA.csv")
    assert str(exc.value) == ("cellA.csv:3 column 'discharge_capacity_ah': value is not a "
                              "number (expected a float, found 'n/a')")
    assert exc.value.code == "not_a_number"


def test_non_finite_required_value_is_an_error():
    with pytest.raises(ValidationError, match=r"x.csv:4 column 'discharge_capacity_ah': value must "
                       r"be finite \(expected a finite float, found inf\)"):
        complete_cycle_table(_cycles(discharge_capacity_ah=[1.0, 0.9, np.inf]), file="x.csv")


def test_repeated_cycle_and_backward_time_are_errors():
    with pytest.raises(ValidationError, match="cycle_index repeats") as exc:
        complete_cycle_table(_cycles(cycle_index=[1, 2, 2]))
    assert exc.value.row == 4 and exc.value.column == "cycle_index"
    with pytest.raises(ValidationError, match=r"row 4 column 'test_time_second': "
                       r"test_time_second decreases .* \(expected >= 7200 .*found 3000\)"):
        complete_cycle_table(_cycles(test_time_second=[3600.0, 7200.0, 3000.0]))
    with pytest.raises(ValidationError, match="whole number"):
        complete_cycle_table(_cycles(cycle_index=[1, 2.5, 3]))


def test_clock_estimated_from_hours_per_cycle():
    c = _cycles(cycle_index=[1, 2, 4]).drop(columns=["test_time_second"])
    t = complete_cycle_table(c, cells={"c1": {"hours_per_cycle": 2.5}})
    # Σ 2.5 h × Δcycle: cycles 1, 2, 4 end at 2.5, 5 and 10 h.
    np.testing.assert_allclose(t["test_time_second"], [9000.0, 18000.0, 36000.0])
    assert (t["test_time_estimated"] == 1).all()
    assert "hours_per_cycle" not in t.columns


def test_clock_estimated_from_c_rate_and_efc():
    c = _cycles().drop(columns=["test_time_second"])
    # 2 / C-rate hours per cycle (charge + discharge at 0.5C = 4 h).
    t = complete_cycle_table(c.assign(c_rate=0.5))
    np.testing.assert_allclose(t["elapsed_hour"], [4.0, 8.0, 12.0])
    # With EFC: hours = 2 × EFC / C-rate.
    t = complete_cycle_table(c.assign(c_rate=0.25, equivalent_full_cycles=[1.0, 1.9, 2.7]))
    np.testing.assert_allclose(t["elapsed_hour"], [8.0, 15.2, 21.6])
    np.testing.assert_allclose(t["equivalent_full_cycles"], [1.0, 1.9, 2.7])


def test_partly_missing_clock_is_filled_and_flagged_per_row():
    c = _cycles(test_time_second=[3600.0, np.nan, 14400.0], hours_per_cycle=[1.0, 1.0, 2.0])
    t = complete_cycle_table(c)
    np.testing.assert_allclose(t["test_time_second"], [3600.0, 7200.0, 14400.0])
    assert list(t["test_time_estimated"]) == [0, 1, 0]


def test_missing_clock_without_protocol_names_the_row():
    with pytest.raises(ValidationError, match="no protocol is stated") as exc:
        complete_cycle_table(_cycles(test_time_second=[3600.0, np.nan, 14400.0]))
    assert exc.value.row == 3 and exc.value.column == "test_time_second"


def test_several_cells_are_completed_independently():
    a = _cycles().assign(cell_id="a")
    b = _cycles(discharge_capacity_ah=[2.0, 1.9, 1.8]).assign(cell_id="b")
    t = complete_cycle_table(pd.concat([b, a]))
    assert list(t["cell_id"]) == ["a"] * 3 + ["b"] * 3
    np.testing.assert_allclose(t["retention"], [1.0, 0.98, 0.97, 1.0, 0.95, 0.9])


def test_polarization_trend_from_mean_voltages():
    n = 12
    c = pd.DataFrame({"cycle_index": np.arange(1, n + 1), "test_time_second":
                      np.arange(1, n + 1) * 7200.0, "discharge_capacity_ah": 1.0,
                      "mean_charge_voltage_volt": 3.9 + 0.01 * np.arange(n),
                      "mean_discharge_voltage_volt": 3.6 - 0.01 * np.arange(n)})
    t = complete_cycle_table(c)
    np.testing.assert_allclose(t["polarization_volt"], 0.3 + 0.02 * np.arange(n), atol=1e-12)
    np.testing.assert_allclose(t["polarization_slope_volt_per_cycle"].iloc[2:], 0.02)
    np.testing.assert_allclose(t["polarization_slope_volt_per_hour"].iloc[2:], 0.01)
    assert t["polarization_slope_volt_per_cycle"].iloc[:2].isna().all()
