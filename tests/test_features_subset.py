"""complete_cycle_table(columns=...): only the descriptors behind the asked columns run, and
their values equal the full table's, bit for bit (random tables, synthetic cells, real data)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.features import catalog, complete_cycle_table, descriptors, knee
from ml.windows import _TABLE_COLUMNS

SUBSETS = [
    _TABLE_COLUMNS,
    ("retention",),
    ("coulombic_inefficiency_per_hour", "cell_id"),
    ("knee_cycle", "knee_cycle_ci_high"),
    ("polarization_slope_volt_per_hour", "temperature_celsius"),
    ("charge_c_rate", "equivalent_full_cycles", "discharge_capacity_mah_per_g"),
    ("delta_q_v_mean_ah", "aw_ohm_per_sqrt_s", "cycle_index"),
]


def _random_table(rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    """1–3 cells of 5–60 cycles, shuffled, with a random choice of optional columns and holes."""
    parts, meta = [], {}
    for k in range(int(rng.integers(1, 4))):
        n = int(rng.integers(5, 61))
        cyc = np.sort(rng.choice(np.arange(0, 3 * n), size=n, replace=False))
        q = 1.0 - 0.002 * cyc - np.where(cyc > cyc[n // 2], 0.004 * (cyc - cyc[n // 2]), 0.0)
        df = pd.DataFrame({"cell_id": f"c{k}", "cycle_index": cyc,
                           "test_time_second": np.cumsum(rng.uniform(3000, 9000, n)),
                           "discharge_capacity_ah": q + rng.normal(0, 1e-3, n)})
        for name, lo, hi in (("charge_capacity_ah", 1.0, 1.1), ("charge_energy_wh", 3.6, 4.0),
                             ("discharge_energy_wh", 3.3, 3.6), ("rest_second", 0, 600),
                             ("mean_charge_voltage_volt", 3.8, 3.9),
                             ("mean_discharge_voltage_volt", 3.5, 3.6),
                             ("internal_resistance_ohm", 0.01, 0.02), ("c_rate", 0.5, 1.0),
                             ("temperature_celsius", 20, 30), ("aw_ohm_per_sqrt_s", 1, 2),
                             ("cycle_duration_second", 3000, 9000)):
            if rng.random() < 0.5:
                v = rng.uniform(lo, hi, n)
                v[rng.random(n) < 0.1] = np.nan
                df[name] = v
        parts.append(df)
        meta[f"c{k}"] = {"nominal_capacity_ah": 1.1} if rng.random() < 0.5 else {
            "temperature_celsius": 25.0, "active_mass_g": 2.0}
    table = pd.concat(parts, ignore_index=True)
    return table.sample(frac=1.0, random_state=int(rng.integers(1 << 30))), meta


def _same(full: pd.DataFrame, sub: pd.DataFrame, columns) -> None:
    columns = list(dict.fromkeys(columns))  # a repeated name appears once
    assert list(sub.columns) == columns
    pd.testing.assert_frame_equal(sub, full[columns], check_exact=True)
    assert sub.attrs == full.attrs


@pytest.mark.parametrize("seed", range(12))
def test_subset_equals_full_on_random_tables(seed):
    rng = np.random.default_rng(seed)
    table, meta = _random_table(rng)
    full = complete_cycle_table(table, cells=meta)
    for columns in SUBSETS:
        _same(full, complete_cycle_table(table, cells=meta, columns=columns), columns)
    pick = tuple(rng.choice(catalog.NAMES, size=8, replace=False))
    _same(full, complete_cycle_table(table, cells=meta, columns=pick), pick)


def test_subset_equals_full_on_a_synthetic_cell_with_every_signal():
    from ml.synthetic import make_cell

    cyc = make_cell("s", seed=3, n_cycles=150, with_polarization=True,
                    aw_every_n_cycles=10).cycles
    full = complete_cycle_table(cyc)
    for columns in SUBSETS:
        _same(full, complete_cycle_table(cyc, columns=columns), columns)


def test_real_tables_subset_equals_full(shared_data):
    folder = shared_data / "pybamm-dev"
    ref = pd.read_csv(folder / "dev_023.cycles.csv")
    meta = {"dev_023": {"nominal_capacity_ah": 5.0}}
    full = complete_cycle_table(ref, cells=meta)
    for columns in SUBSETS:
        _same(full, complete_cycle_table(ref, cells=meta, columns=columns), columns)


def test_only_needed_descriptors_run(monkeypatch):
    calls = []
    real = knee.knee_columns
    monkeypatch.setattr(knee, "knee_columns", lambda *a: calls.append(1) or real(*a))
    t = pd.DataFrame({"cycle_index": np.arange(1, 41), "test_time_second": 3600.0 *
                      np.arange(1, 41), "discharge_capacity_ah": 1 - 0.001 * np.arange(40)})
    complete_cycle_table(t, columns=_TABLE_COLUMNS)
    assert calls == []
    out = complete_cycle_table(t, columns=["knee_cycle"])
    assert calls == [1] and list(out.columns) == ["knee_cycle"]


def test_plan_follows_the_dependency_table():
    names = lambda cols: [d.name for d in descriptors.plan(cols)]  # noqa: E731
    assert names(["cycle_index", "discharge_capacity_ah"]) == []
    assert names(["knee_cycle"]) == ["knee"]
    # capacity reads cycle_duration_hour, an output of timing
    assert names(["coulombic_inefficiency_per_hour"]) == ["timing", "capacity"]
    assert names(["polarization_slope_volt_per_cycle", "elapsed_hour"]) == ["timing", "trends"]
    # every descriptor only reads outputs of descriptors before it, outputs are catalogue
    # columns and no column has two producers
    seen: set[str] = set()
    produced = {o for d in descriptors.DESCRIPTORS for o in d.outputs}
    for d in descriptors.DESCRIPTORS:
        assert set(d.outputs) <= set(catalog.NAMES)
        assert not seen & set(d.outputs)
        later = {i for i in d.inputs if i in produced and i not in d.outputs} - seen
        assert not later, (d.name, later)
        seen |= set(d.outputs)


def test_unknown_column_is_refused_with_the_nearest_names():
    t = pd.DataFrame({"cycle_index": [1, 2, 3], "test_time_second": [1.0, 2.0, 3.0],
                      "discharge_capacity_ah": [1.0, 0.99, 0.98]})
    with pytest.raises(KeyError, match="retention"):
        complete_cycle_table(t, columns=["retension"])


def test_subset_values_by_hand():
    t = pd.DataFrame({"cycle_index": [3, 1, 2], "test_time_second": [10800.0, 3600.0, 7200.0],
                      "discharge_capacity_ah": [0.97, 1.0, 0.98],
                      "charge_capacity_ah": [0.98, 1.02, 1.0]})
    out = complete_cycle_table(t, columns=["retention", "coulombic_inefficiency_per_hour",
                                           "cycle_index"])
    assert out["cycle_index"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(out["retention"], [1.0, 0.98, 0.97])
    np.testing.assert_allclose(out["coulombic_inefficiency_per_hour"],
                               [1 - 1 / 1.02, 0.02, 1 - 0.97 / 0.98])


def test_a_row_without_cell_id_is_a_located_error():
    from data_registry.errors import ValidationError

    t = pd.DataFrame({"cell_id": ["a", None, "a"], "cycle_index": [1, 2, 3],
                      "test_time_second": [1.0, 2.0, 3.0],
                      "discharge_capacity_ah": [1.0, 0.99, 0.98]})
    with pytest.raises(ValidationError, match="cell_id is missing") as exc:
        complete_cycle_table(t, file="c.csv")
    assert exc.value.row == 3 and exc.value.column == "cell_id"
