"""``model_table`` builds its output from numpy arrays: the table must be IDENTICAL (values,
dtypes, column order, index, attrs) to the previous pandas per-column implementation, kept here
as the reference."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.synthetic import make_cell
from ml.features import complete_cycle_table
from ml.windows import FEATURE_NAMES, FIRST_CYCLES, _TABLE_COLUMNS, _check_history, model_table


def _reference_model_table(cycles, *, nominal_capacity_ah=None, min_history=3):
    """``ml.windows.model_table`` as of d10dc0a (pandas per-column ops on the DataFrame
    ``complete_cycle_table`` returns)."""
    cells = None
    if nominal_capacity_ah is not None:
        ids = cycles["cell_id"].astype(str).unique() if "cell_id" in cycles.columns else []
        cells = {str(ids[0]) if len(ids) else "cell": {"nominal_capacity_ah": nominal_capacity_ah}}
    df = complete_cycle_table(cycles, cells, columns=_TABLE_COLUMNS)
    _check_history(df, min_history)
    df["cycle_index"] = df["cycle_index"].astype("float64")
    cipph = pd.to_numeric(df["coulombic_inefficiency_per_hour"], errors="coerce")
    df["coulombic_inefficiency_per_hour"] = cipph.clip(-0.01, 0.01)
    pol = pd.to_numeric(df.get("polarization_volt"), errors="coerce")
    pol_start = pol.dropna().iloc[:FIRST_CYCLES].median() if pol.notna().any() else np.nan
    df["polarization_rise_volt"] = pol - pol_start
    aw = pd.to_numeric(df.get("aw_ohm_per_sqrt_s"), errors="coerce")
    aw_start = aw.dropna().iloc[0] if aw.notna().any() else np.nan
    df["aw_rise_fraction"] = aw / aw_start - 1.0 if aw_start and aw_start > 0 else np.nan
    for name in FEATURE_NAMES:
        df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
    return df


def _histories():
    """(label, per-cycle frame) pairs covering the shapes users send."""
    out = []
    for seed, kw in enumerate([{}, {"with_polarization": True, "aw_every_n_cycles": 10},
                               {"with_polarization": True, "aw_every_n_cycles": 1,
                                "noise_frac": 0.0}, {"aw_every_n_cycles": 7}]):
        cyc = make_cell(f"c{seed}", seed=seed, n_cycles=120, **kw).cycles
        out.append((f"synthetic{seed}", cyc))
        out.append((f"synthetic{seed}-short", cyc.iloc[:5]))
    base = make_cell("m", seed=9, n_cycles=60, with_polarization=True,
                     aw_every_n_cycles=5).cycles
    out.append(("no-cell-id", base.drop(columns=["cell_id"])))
    out.append(("required-only", base[["cycle_index", "test_time_second",
                                       "discharge_capacity_ah"]]))
    shuffled = base.sample(frac=1.0, random_state=0)
    out.append(("unsorted", shuffled))
    gaps = base.copy()
    gaps.loc[gaps.index[::4], ["c_rate", "temperature_celsius", "charge_capacity_ah"]] = np.nan
    gaps.loc[gaps.index[:2], "aw_ohm_per_sqrt_s"] = np.nan
    out.append(("gaps", gaps))
    neg_aw = base.copy()
    neg_aw["aw_ohm_per_sqrt_s"] = -neg_aw["aw_ohm_per_sqrt_s"]  # aw start <= 0: no rise
    out.append(("negative-aw", neg_aw))
    text = base.astype({"c_rate": object, "temperature_celsius": object})
    text.loc[text.index[3], "c_rate"] = None
    out.append(("object-columns", text))
    nullable = base.astype({"c_rate": "Float64", "temperature_celsius": "Float64",
                            "discharge_capacity_ah": "Float64", "cycle_index": "Int64"})
    nullable.loc[nullable.index[5], "c_rate"] = pd.NA
    out.append(("nullable-dtypes", nullable))
    return out


@pytest.mark.parametrize("nominal", [None, 5.5])
@pytest.mark.parametrize("label,cycles", _histories(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_fast_model_table_is_identical_to_the_pandas_one(label, cycles, nominal):
    new = model_table(cycles.copy(), nominal_capacity_ah=nominal)
    old = _reference_model_table(cycles.copy(), nominal_capacity_ah=nominal)
    assert list(new.columns) == list(old.columns)
    assert new.dtypes.to_dict() == old.dtypes.to_dict()
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    for name in FEATURE_NAMES:  # bit for bit, NaN in the same places
        a, b = new[name].to_numpy(), old[name].to_numpy()
        assert a.dtype == np.float64 and np.array_equal(a, b, equal_nan=True), name
    assert new.attrs == old.attrs


def test_fast_model_table_does_not_share_memory_with_the_input():
    cycles = make_cell("s", seed=2, n_cycles=40, with_polarization=True,
                       aw_every_n_cycles=1).cycles
    before = cycles.copy()
    table = model_table(cycles)
    table.loc[:, "test_time_second"] = -1.0
    table.loc[:, "discharge_capacity_ah"] = -1.0
    pd.testing.assert_frame_equal(cycles, before)
