"""Validator rules on generated per-sample files whose capacity counters are exactly ∫I dt."""
from __future__ import annotations

import pandas as pd
import pytest

from data_registry.errors import ValidationError
from data_registry.readers import open_source


def cycling(n_cycles: int = 2, dt: float = 10.0, current: float = 1.0) -> pd.DataFrame:
    """CC charge 1 A for 600 s, discharge −1 A for 600 s, per cycle; capacity = ∫I dt."""
    rows = []
    t = 0.0
    for cyc in range(1, n_cycles + 1):
        for step, sign in ((1, 1.0), (2, -1.0)):
            for k in range(int(600 / dt)):
                q = current * (k * dt) / 3600.0
                rows.append((t, 3.5 + 0.5 * sign * k / 60, sign * current, cyc, step,
                             q if sign > 0 else 0.0, q if sign < 0 else 0.0))
                t += dt
    return pd.DataFrame(rows, columns=["test_time_second", "voltage_volt", "current_ampere",
                                       "cycle_count", "step_count", "charging_capacity_ah",
                                       "discharging_capacity_ah"])


def write(tmp_path, df, name="cell.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def codes(src):
    return [w.code for w in src.warnings]


def test_clean_file_has_no_warnings(tmp_path):
    src = open_source(write(tmp_path, cycling()))
    df = src.read()
    assert len(df) == 240 and codes(src) == []


def test_isolated_backward_row_dropped(tmp_path):
    df = cycling()
    df.loc[50, "test_time_second"] = 100.0  # between 490 and 510: one row dips back
    src = open_source(write(tmp_path, df), chunk_rows=7)
    out = src.read()
    assert len(out) == 239
    assert 52 not in out["source_row"].tolist()  # data row 50 = file line 52
    (w,) = src.warnings
    assert (w.code, w.row, w.column, w.count) == ("time_backwards_row", 52,
                                                  "test_time_second", 1)


def test_isolated_forward_spike_dropped(tmp_path):
    df = cycling()
    df.loc[80, "test_time_second"] = 99999.0
    src = open_source(write(tmp_path, df))
    out = src.read()
    assert len(out) == 239 and 82 not in out["source_row"].tolist()
    assert codes(src) == ["time_backwards_row"]


def test_sustained_backward_jump_is_error(tmp_path):
    df = cycling()
    df.loc[100:, "test_time_second"] -= 500.0
    with pytest.raises(ValidationError, match="time goes backwards for more than one row") as e:
        open_source(write(tmp_path, df), chunk_rows=16).read()
    assert (e.value.row, e.value.column, e.value.code) == (102, "test_time_second",
                                                           "time_backwards")
    assert e.value.expected == ">= 990 s" and e.value.found == "500 s"


def test_duplicate_rows_dropped(tmp_path):
    df = cycling()
    df = pd.concat([df.iloc[:30], df.iloc[29:31], df.iloc[30:]], ignore_index=True)
    src = open_source(write(tmp_path, df), chunk_rows=30)
    out = src.read()
    assert len(out) == 240
    (w,) = src.warnings
    assert (w.code, w.row, w.count) == ("duplicate_rows", 32, 2)


def test_cycle_counter_reset_renumbered(tmp_path):
    df = cycling(n_cycles=3)
    df.loc[df["cycle_count"] == 3, "cycle_count"] = 1  # the cycler restarted its count
    src = open_source(write(tmp_path, df), chunk_rows=50)
    out = src.read()
    assert out["cycle_count"].drop_duplicates().tolist() == [1, 2, 3]
    (w,) = src.warnings
    assert (w.code, w.row, w.column) == ("cycle_count_reset", 242, "cycle_count")


def test_flipped_current_sign_inferred(tmp_path):
    df = cycling()
    df["current_ampere"] *= -1
    src = open_source(write(tmp_path, df))
    out = src.read()
    assert (out.loc[out["step_count"] == 1, "current_ampere"] > 0).all()
    assert codes(src) == ["current_sign_flipped"]


def test_capacity_in_mah_labelled_ah(tmp_path):
    df = cycling()
    df[["charging_capacity_ah", "discharging_capacity_ah"]] *= 1000
    src = open_source(write(tmp_path, df))
    out = src.read()
    assert out["charging_capacity_ah"].max() == pytest.approx(590 / 3600)
    assert codes(src) == ["capacity_mah_as_ah"]
    assert src.warnings[0].details["ratio"] == pytest.approx(1000, rel=0.01)


def test_time_in_ms_labelled_s(tmp_path):
    df = cycling()
    df["test_time_second"] *= 1000
    src = open_source(write(tmp_path, df))
    out = src.read()
    assert out["test_time_second"].iloc[-1] == pytest.approx(2390.0)
    assert codes(src) == ["time_ms_as_seconds"]


def test_current_in_ma_labelled_a_is_error(tmp_path):
    df = cycling()
    df["current_ampere"] *= 1000
    with pytest.raises(ValidationError, match="current in mA labelled A") as e:
        open_source(write(tmp_path, df)).read()
    assert e.value.code == "units_inconsistent" and e.value.column == "current_ampere"
