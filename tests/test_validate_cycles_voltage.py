"""Cycle numbers derived from the current where the cycle column says nothing, and negative
electrode potentials (three-electrode / half-cell tests) kept with a warning."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_registry.cycle_numbers import CycleCounter
from data_registry.errors import ValidationError
from data_registry.readers import open_source
from data_registry.validate import VOLTAGE_FLOOR_V

DT = 60.0  # s between rows

#: (current A, rows) blocks of the hand-built test: rest, D, rest, C, rest, D, rest, a charge
#: pulse and a discharge pulse (0.1 A for one row each: 0.1/60 Ah = 1 % of a half cycle, under
#: the 2 % that makes a half cycle), rest, C, rest, D, rest
BLOCKS = [(0.0, 2), (-1.0, 10), (0.0, 2), (1.0, 10), (0.0, 2), (-1.0, 10), (0.0, 1), (0.1, 1),
          (0.0, 1), (-0.1, 1), (0.0, 1), (1.0, 10), (0.0, 2), (-1.0, 10), (0.0, 1)]
#: hand-computed: a new cycle at the first row of each charge half cycle after a discharge —
#: rows 14 (first C) and 41 (the C after the pulses; the pulses at rows 37 and 39 stay in
#: cycle 2). File line = row + 2 (header on line 1).
FIRST_ROWS = [0, 14, 41]
N_ROWS = 64


def protocol(cycle_column) -> pd.DataFrame:
    """The BLOCKS protocol, one row per minute, with the given cycle column (or None: empty)."""
    current = np.concatenate([np.full(n, i) for i, n in BLOCKS])
    assert len(current) == N_ROWS
    return pd.DataFrame({"test_time_second": np.arange(N_ROWS) * DT,
                         "voltage_volt": 3.7 + 0.1 * np.sign(current),
                         "current_ampere": current,
                         "cycle_count": cycle_column if cycle_column is not None else ""})


def write(tmp_path, df, name="cell.csv"):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def hand_cycles(start: int) -> np.ndarray:
    out = np.full(N_ROWS, start)
    for k, first in enumerate(FIRST_ROWS[1:], 1):
        out[first:] = start + k
    return out


@pytest.mark.parametrize("chunk_rows", [1_000_000, 7, 1])
def test_constant_cycle_column_is_derived_from_current(tmp_path, chunk_rows):
    src = open_source(write(tmp_path, protocol(np.ones(N_ROWS, dtype=int))),
                      chunk_rows=chunk_rows)
    df = src.read()
    assert len(df) == N_ROWS
    # the column's one value (1) numbers the first cycle; the rest count up from it
    np.testing.assert_array_equal(df["cycle_count"].to_numpy(), hand_cycles(1))
    first_lines = df.groupby("cycle_count")["source_row"].min().tolist()
    assert first_lines == [r + 2 for r in FIRST_ROWS] == [2, 16, 43]
    # discharge per derived cycle, ∫|I|dt over I < 0 (each row carries 60 s): hand-computed
    i = df["current_ampere"].to_numpy()
    dis = pd.Series(np.where(i < 0, -i * DT / 3600.0, 0.0)).groupby(df["cycle_count"]).sum()
    np.testing.assert_allclose(dis.to_numpy(), [10 / 60, 10 / 60 + 0.1 / 60, 10 / 60])
    (w,) = src.warnings
    assert (w.code, w.row, w.column) == ("cycle_count_derived", 2, "cycle_count")
    assert "holds one value (1) over 64 rows" in w.message
    assert "3 cycles derived from the current" in w.message
    assert w.details["cycles_derived"] == 3 and w.details["column_values"] == [1]


def test_cycle_column_that_counts_is_kept(tmp_path):
    # the same current with the column advancing where the cycler's procedure would: unchanged
    src = open_source(write(tmp_path, protocol(hand_cycles(1))), chunk_rows=5)
    df = src.read()
    np.testing.assert_array_equal(df["cycle_count"].to_numpy(), hand_cycles(1))
    assert src.warnings == []


def test_column_counting_discharge_first_is_kept(tmp_path):
    # a cycler whose cycle is "discharge then charge": the column advances at rows 2, 26, 53
    # (each discharge), 3 changes — it counts cycles, only with another convention: kept
    col = np.zeros(N_ROWS, dtype=int)
    for first in (2, 26, 53):
        col[first:] += 1
    src = open_source(write(tmp_path, protocol(col)), chunk_rows=9)
    df = src.read()
    np.testing.assert_array_equal(df["cycle_count"].to_numpy(), col)
    assert src.warnings == []


def test_one_alternation_keeps_the_constant_column(tmp_path):
    # rest, D, rest, C, rest: the current shows 2 cycles, too few to overrule the column
    df = protocol(np.zeros(N_ROWS, dtype=int)).iloc[:26]
    for chunk_rows in (1_000_000, 3):
        src = open_source(write(tmp_path, df), chunk_rows=chunk_rows)
        out = src.read()
        assert (out["cycle_count"] == 0).all() and len(out) == 26
        assert src.warnings == []


def test_empty_cycle_column_is_derived_from_current(tmp_path):
    src = open_source(write(tmp_path, protocol(None)), chunk_rows=10)
    df = src.read()
    np.testing.assert_array_equal(df["cycle_count"].to_numpy(), hand_cycles(0))
    (w,) = src.warnings
    assert (w.code, w.row) == ("cycle_count_missing", 2)
    assert "3 cycles derived from the current" in w.message


def test_counter_judges_a_run_split_across_chunks_like_one_pass():
    # a 1 A discharge of 10 rows (1/6 Ah), then a 0.1 A charge: 1/600 Ah per row = 1 % of the
    # discharge, a half cycle (2 %) from its second row on. Split after its first row, the
    # charge is in question; the next chunk settles it and row 10 gains one, as in one pass.
    i = np.array([-1.0] * 10 + [0.1] * 30)
    t = np.arange(40) * DT
    whole = CycleCounter(0).number(i, t)
    np.testing.assert_array_equal(whole, [0] * 10 + [1] * 30)
    c = CycleCounter(0)
    a = c.number(i[:11], t[:11])
    assert c.pending_from == 10 and a[10] == 0
    b = c.number(i[11:], t[11:])
    assert c.bump == 1 and not c.carried_pending
    np.testing.assert_array_equal(np.concatenate((a[:10], a[10:] + c.bump, b)), whole)


def test_counter_pulse_split_across_chunks_starts_no_cycle():
    # the charge pulse on row 37 of the protocol, cut after row 37: in question, then a pulse
    df = protocol(None)
    i, t = df["current_ampere"].to_numpy(), df["test_time_second"].to_numpy()
    c = CycleCounter(0)
    a = c.number(i[:38], t[:38])
    assert c.pending_from == 37
    b = c.number(i[38:], t[38:])
    assert c.bump == 0
    np.testing.assert_array_equal(np.concatenate((a, b)), hand_cycles(0))


def test_maccor_without_advance_cycle_step(shared_data):
    # every row of this Maccor export has Cyc# 0: the procedure never advances the cycle
    src = open_source(shared_data / "parsers" / "maccor_txt_cellpy" / "maccor_001.txt")
    df = src.read()
    (w,) = [w for w in src.warnings if w.code == "cycle_count_derived"]
    assert "holds one value (0) over 6,704 rows" in w.message and w.details["cycles_derived"] == 5
    g = df.groupby("cycle_count")
    assert g.ngroups == 5
    # first line of each cycle (awk over Cyc#/Step/Amps/State): line 5 (first record), then the
    # first charge row after each discharge: steps 4, 9, 14, 19 begin on lines 478, 2762, 4192,
    # 5501
    assert g["source_row"].min().tolist() == [5, 478, 2762, 4192, 5501]
    # the file's Amp-hr counter at the end of each discharge (steps 2, 7, 12, 17, 22), Ah:
    # an initial 0.5 A top-off discharge, then 0.5 A, 2.5 A, 5 A and 10 A discharges of the
    # 5 Ah cell — 17.36 Ah over five cycles, not one
    dis = g["discharging_capacity_ah"].max().to_numpy()
    np.testing.assert_allclose(dis, [0.63781, 4.54403, 4.35400, 4.28448, 3.54279])
    assert dis.sum() == pytest.approx(17.36311)


def test_maccor_with_counting_cycle_column_unchanged(shared_data):
    src = open_source(shared_data / "parsers" / "maccor_txt_cellpy" / "maccor_002.txt",
                      chunk_rows=500)
    df = src.read()
    assert not [w for w in src.warnings if w.code.startswith("cycle_count")]
    # Cyc# counts: 1 up to line 4011, 2 from line 4012 (where the second charge begins)
    assert df.groupby("cycle_count")["source_row"].min().to_dict() == {1: 16, 2: 4012}


def samples_with_voltage(v_at_row_3: float) -> pd.DataFrame:
    df = protocol(np.ones(N_ROWS, dtype=int)).iloc[:12].copy()  # rest, discharge: one cycle
    df.loc[3, "voltage_volt"] = v_at_row_3  # file line 5
    return df


def test_negative_electrode_potential_kept_with_warning(tmp_path):
    df = samples_with_voltage(-1.65017)
    df.loc[7, "voltage_volt"] = -0.7  # line 9: a second low value
    src = open_source(write(tmp_path, df))
    out = src.read()
    assert out.loc[out["source_row"] == 5, "voltage_volt"].item() == pytest.approx(-1.65017)
    (w,) = src.warnings
    assert (w.code, w.row, w.column, w.count) == ("voltage_below_range", 5, "voltage_volt", 2)
    assert "first at line 5 (-1.65017 V)" in w.message
    assert w.details["lines"] == [5, 9] and w.details["values"] == [-1.65017, -0.7]


def test_voltage_at_usual_bound_gives_no_warning(tmp_path):
    src = open_source(write(tmp_path, samples_with_voltage(-0.5)))
    src.read()
    assert src.warnings == []


@pytest.mark.parametrize("bad", [-1e6, VOLTAGE_FLOOR_V - 0.01])
def test_voltage_below_floor_refused(tmp_path, bad):
    with pytest.raises(ValidationError, match="physically possible range") as e:
        open_source(write(tmp_path, samples_with_voltage(bad))).read()
    assert (e.value.row, e.value.column, e.value.code) == (5, "voltage_volt", "out_of_range")
    assert e.value.expected.startswith("V in [-5, 10]") and e.value.found == f"{bad:g}"


def test_absurd_high_voltage_refused(tmp_path):
    with pytest.raises(ValidationError) as e:
        open_source(write(tmp_path, samples_with_voltage(1000.0))).read()
    assert (e.value.row, e.value.expected, e.value.found) == (5, "V in [-0.5, 10]", "1000")


def test_voltage_below_floor_skipped_with_skip_row(tmp_path):
    df = samples_with_voltage(-1e6)
    df.loc[7, "voltage_volt"] = -2.0
    src = open_source(write(tmp_path, df), on_error="skip-row")
    out = src.read()
    assert len(out) == 11 and 5 not in out["source_row"].tolist()
    assert sorted(w.code for w in src.warnings) == ["row_skipped", "voltage_below_range"]
    low = next(w for w in src.warnings if w.code == "voltage_below_range")
    assert (low.row, low.count) == (9, 1)


def test_mpr_with_negative_working_electrode_potential(shared_data):
    # navani's MB test file: Ewe = -1.65017 V on record 1, refused before the floor was widened
    src = open_source(shared_data / "parsers" / "navani_examples" / "00_test_02_MB_C01.mpr")
    df = src.read()
    assert len(df) == 11
    (w,) = [w for w in src.warnings if w.code == "voltage_below_range"]
    assert w.row == 1 and "(-1.65017 V)" in w.message and w.count == 11
    assert df["voltage_volt"].iloc[0] == pytest.approx(-1.65017, abs=1e-5)
