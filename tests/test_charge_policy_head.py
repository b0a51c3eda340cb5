"""The charge policy as a cycle-life input: the Severson source's ``charge_policy_c_rate`` (the
protocol's planned mean charge rate, 1 / charge hours), the head feature
``log10_charge_policy_c_rate`` (median of cycles 2…W), the ``capacity_charge_policy`` head learnt
and preferred where the history states the policy (and the ``capacity`` head where it does not,
where the policy lies outside the trained ones, or where it adds nothing on the same cells), and
the API row that carries it — hand-computed cases, then the shipped model on real Severson cells
(skips without ../shared)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.models.cycle_life_head import RANGE_MARGIN, choose_head, fit_heads, head_features
from ml.sources import CellRecord
from ml.sources.severson import cell_cycles, charge_hours, hours_per_cycle

POLICY = "charge_policy_c_rate"


def test_severson_policy_rate_is_one_over_the_policys_charge_hours():
    # 4C over 0-80 % SOC: 80 steps of 0.01 / 4 h = 0.2 h; then 80-100 % at 1C: 0.2 h
    policy = np.full(80, 4.0)
    assert charge_hours(policy) == pytest.approx(0.4)
    assert hours_per_cycle(policy) == pytest.approx(0.4 + 0.25)   # + the 4C discharge
    q = np.r_[np.nan, np.full(5, 1.08)]
    table, dropped = cell_cycles(q, policy, "p")
    assert dropped == [] and table[POLICY].tolist() == pytest.approx([2.5] * 5)
    # the measured charge_c_rate of a cycler export is another column: never written here
    assert "charge_c_rate" not in table
    # a two-step policy: 6C to 40 %, 3C to 80 %: 40·0.01/6 + 40·0.01/3 + 0.2 = 0.4 h
    assert charge_hours(np.r_[np.full(40, 6.0), np.full(40, 3.0)]) == pytest.approx(0.4)


def _cell(cell_id: str, rate: float, charge: float | None, life: float,
          n_cycles: int = 150) -> CellRecord:
    """Linear fade ``1.1 (1 − rate n)`` (Ah); ``charge`` the policy rate of every cycle."""
    n = np.arange(1, n_cycles + 1, dtype=float)
    table = pd.DataFrame({"cycle_index": n, "discharge_capacity_ah": 1.1 * (1 - rate * n)})
    if charge is not None:
        table[POLICY] = charge
    return CellRecord(cell_id, table, None, {"cycle_life": life, "source": "unit"})


def test_head_feature_is_the_log10_median_policy_rate_of_the_window():
    cell = _cell("a", 1e-4, 2.0, 900.0)
    t = cell.cycles.copy()
    # 99 rows in 2…100: 40 of them 4.0, 59 of them 2.0 -> median 2.0
    t.loc[t["cycle_index"].between(61, 100), POLICY] = 4.0
    assert head_features(t, 1.1, 100)[f"log10_{POLICY}"] == pytest.approx(math.log10(2.0))
    # each rule, with values that WOULD move the median if the rule were dropped:
    # cycle 1 is outside 2…W: 49 rows of 2.0 (2…50) and 50 of 4.0 (51…100) -> 4.0; with
    # cycle 1's 2.0 counted it would be 3.0
    first = t.copy()
    first.loc[first["cycle_index"].between(51, 100), POLICY] = 4.0
    assert head_features(first, 1.1, 100)[f"log10_{POLICY}"] == pytest.approx(math.log10(4.0))
    # zeros and NaN are not policies: 20 rows of 0 / NaN among the 2.0 rows
    holes = t.copy()
    holes.loc[holes["cycle_index"].between(2, 11), POLICY] = 0.0
    holes.loc[holes["cycle_index"].between(12, 21), POLICY] = np.nan
    # 99 − 20 = 79 rows left: 39 of 2.0 and 40 of 4.0 -> median 4.0 (zeros kept: 2.0)
    assert head_features(holes, 1.1, 100)[f"log10_{POLICY}"] == pytest.approx(math.log10(4.0))
    # cycles past the window are not read: 50 rows of 9.0 after cycle 100 would move it
    late = t.copy()
    late.loc[late["cycle_index"] > 100, POLICY] = 9.0
    assert head_features(late, 1.1, 100)[f"log10_{POLICY}"] == pytest.approx(math.log10(2.0))
    # no column (or nothing positive): NaN, so a head reading it is not usable
    assert math.isnan(head_features(t.drop(columns=POLICY), 1.1, 100)[f"log10_{POLICY}"])
    assert math.isnan(head_features(t.assign(**{POLICY: 0.0}), 1.1, 100)[f"log10_{POLICY}"])


def _policy_cells(n: int = 40, seed: int = 0) -> tuple[list[CellRecord], np.ndarray]:
    """Lives set by the policy (life = 1000 / rate × 5 % log-normal noise), fade rates
    unrelated; rates 1C … 5C."""
    rng = np.random.default_rng(seed)
    charge = 10 ** rng.uniform(0.0, 0.7, n)
    fades = rng.permutation(10 ** rng.uniform(-4.0, -3.5, n))
    noise = 10 ** rng.normal(0.0, 0.02, n)
    return [_cell(f"c{i}", f, c, 1000.0 / c * e)
            for i, (f, c, e) in enumerate(zip(fades, charge, noise))], charge


def test_the_policy_head_is_learnt_and_preferred_where_the_policy_is_given():
    cells, charge = _policy_cells()
    heads = fit_heads({"capacity_charge_policy": cells, "capacity": cells}, windows=(100,))
    assert list(heads) == ["capacity_charge_policy", "capacity"]
    assert heads["capacity_charge_policy"]["cv_mape_pct"] < 8.0
    assert heads["capacity"]["cv_mape_pct"] > 3 * heads["capacity_charge_policy"]["cv_mape_pct"]
    # the trained range of each input is stored (log10 of the policy rate: its min and max)
    lo, hi = heads["capacity_charge_policy"]["range"][-1]
    assert (lo, hi) == pytest.approx((np.log10(charge.min()), np.log10(charge.max())))
    card = {"heads": heads, "window_cycles": 100, "knee_exponent": 3.5,
            "domain": {"hours_per_cycle": None, "chemistry": None}}
    new = _cell("new", 2e-4, 2.0, 500.0)
    name, mu, _sd, _w = choose_head(card, new.cycles, 1.1, nominal_given=False,
                                    hours_per_cycle=None)
    assert name == "capacity_charge_policy" and 10 ** mu == pytest.approx(500.0, rel=0.1)
    name, _mu, _sd, _w = choose_head(card, new.cycles.drop(columns=POLICY), 1.1,
                                     nominal_given=False, hours_per_cycle=None)
    assert name == "capacity"
    # a policy outside the trained ones by more than RANGE_MARGIN of their range is not read,
    # even where it lies within 6 sd of them
    span = hi - lo
    just_in = 10 ** (hi + 0.9 * RANGE_MARGIN * span)
    just_out = 10 ** (hi + 1.1 * RANGE_MARGIN * span)
    head = heads["capacity_charge_policy"]
    z_out = (np.log10(just_out) - head["mean"][-1]) / head["std"][-1]
    assert abs(z_out) < 6.0   # the sd gate alone would read it
    for rate, want in ((just_in, "capacity_charge_policy"), (just_out, "capacity")):
        got = choose_head(card, new.cycles.assign(**{POLICY: rate}), 1.1, nominal_given=False,
                          hours_per_cycle=None)[0]
        assert got == want, rate


def test_a_policy_head_that_does_not_beat_the_capacity_head_is_not_kept():
    """Lives set by the fade (life = 0.2 / fade rate, with noise), policies unrelated: the
    policy adds nothing on the same cells and folds, so only the capacity head is fitted."""
    rng = np.random.default_rng(2)
    fades = 10 ** rng.uniform(-3.5, -3.0, 30)                      # lives 200 … 630
    charge = rng.permutation(10 ** rng.uniform(0.0, 0.7, 30))
    noise = 10 ** rng.normal(0.0, 0.03, 30)
    cells = [_cell(f"f{i}", f, c, 0.2 / f * e)
             for i, (f, c, e) in enumerate(zip(fades, charge, noise))]
    heads = fit_heads({"capacity_charge_policy": cells, "capacity": cells}, windows=(100,))
    assert list(heads) == ["capacity"]


def test_a_policy_head_stands_alone_where_the_capacity_head_is_not_fitted():
    """At a later window whose capacity head does not beat a constant life (lives unrelated to
    the fade), the policy head is judged on its own test against the constant and kept."""
    cells, _ = _policy_cells(seed=4)
    cells = [CellRecord(c.cell_id, _cell(c.cell_id, 1e-4, float(c.cycles[POLICY].iloc[0]),
                                         c.meta["cycle_life"], n_cycles=320).cycles, None,
                        c.meta) for c in cells]
    heads = fit_heads({"capacity_charge_policy": cells, "capacity": cells},
                      windows=(100, 300))
    assert "capacity@300" not in heads and "capacity_charge_policy@300" in heads


def test_api_history_rows_carry_the_policy_rate():
    from serving.history import columns_from_rows
    from serving.schemas import ForecastRequest

    rows = [{"cycle_index": i, "test_time_second": 2400.0 * i, "discharge_capacity_ah": 1.08,
             "charge_policy_c_rate": 2.5} for i in range(1, 6)]
    req = ForecastRequest.model_validate({"history": rows, "horizon_cycles": 10})
    cols = columns_from_rows(req.history)
    assert cols["charge_policy_c_rate"].tolist() == [2.5] * 5
    with pytest.raises(ValueError, match="charge_policy_c_rate"):
        ForecastRequest.model_validate({"history": [{**rows[0], "charge_policy_c_rate": -1.0}],
                                        "horizon_cycles": 10})


def test_shipped_model_reads_severson_capacity_histories_with_their_charge_rate(
        severson_test1_served):
    """Severson test1 (never trained on), first 100 cycles, capacity + the policy's charge rate:
    the shipped model's charge-rate head reads them; its MAPE is well below the capacity head's
    on the same histories without the rate (measured 19.4 % with, 29.3 % without)."""
    from serving.predict import forecast_document

    model, cells = severson_test1_served
    if "capacity_charge_policy" not in (model.card.cycle_life or {}).get("heads", {}):
        pytest.skip("the shipped model predates the charge-rate head (run `make train`)")
    cols = ["cycle_index", "test_time_second", "discharge_capacity_ah"]
    err = {"with": [], "without": []}
    names = []
    for rec in cells:
        c = rec.cycles[rec.cycles["cycle_index"] <= 100]
        life = float(rec.meta["cycle_life"])
        for key, frame in (("with", c[cols + ["charge_policy_c_rate"]]), ("without", c[cols])):
            doc = forecast_document(model, frame, horizon_cycles=3000, nominal_capacity_ah=1.1)
            p50 = ((doc.get("end_of_life") or {}).get("cycle_index") or {}).get("p50")
            err[key].append(abs((p50 if p50 is not None else 3000) - life) / life)
            if key == "with":
                names.append((doc["uncertainty"].get("cycle_life_head") or {}).get("head"))
    # a history whose features lie > 6 sd from the trained cells is read by no head (one test1
    # cell's late fade rate), one whose policy lies outside the trained ones by the capacity
    # head (one test1 cell at 2.87C); the others by the policy head
    assert set(names) <= {"capacity_charge_policy", "capacity", None}, names
    assert names.count("capacity_charge_policy") >= 0.9 * len(names), names
    with_rate, without = 100 * np.mean(err["with"]), 100 * np.mean(err["without"])
    assert with_rate < 0.8 * without, (with_rate, without)


def test_a_charge_rate_head_that_does_not_beat_the_capacity_head_is_not_kept():
    """Lives set by the fade (life = 0.2 / fade rate) and charge rates unrelated: the rate adds
    nothing, so only the capacity head is fitted."""
    rng = np.random.default_rng(2)
    fades = 10 ** rng.uniform(-3.5, -3.0, 30)                      # lives 200 … 630
    charge = rng.permutation(10 ** rng.uniform(0.0, 0.7, 30))
    cells = [_cell(f"f{i}", f, c, 0.2 / f) for i, (f, c) in enumerate(zip(fades, charge))]
    heads = fit_heads({"capacity_charge_policy": cells, "capacity": cells}, windows=(100,))
    assert list(heads) == ["capacity"]


def test_a_stored_cells_stated_policy_fills_its_frame(tmp_path):
    """``--meta charge_policy_c_rate=…`` at ingest: validated, then the stored cell's model
    frame carries it on every cycle (a raw export's samples never give it)."""
    from data_registry.errors import StoreError
    from data_registry.store import Registry
    from serving.cell_store import CellFrames

    raw = Path(__file__).resolve().parent.parent / "examples" / "pto_c10_raw.csv"
    other = tmp_path / "other.csv"  # the same rows, another file (the store refuses a twin)
    other.write_bytes(raw.read_bytes() + b"\n")
    reg = Registry(home=tmp_path / "home")
    try:
        reg.ingest(raw, "stated", meta={"charge_policy_c_rate": "0.1"})
        reg.ingest(other, "unstated")
        frame, meta, _ = CellFrames().get(reg, "stated")
        assert meta["charge_policy_c_rate"] == 0.1
        assert len(frame) > 10 and (frame[POLICY] == 0.1).all()
        unstated = CellFrames().get(reg, "unstated")[0]
        assert POLICY not in unstated or unstated[POLICY].isna().all()
        with pytest.raises(StoreError) as err:
            reg.ingest(raw, "bad", meta={"charge_policy_c_rate": "fast"})
        assert err.value.code == "invalid_metadata" and "charge_policy_c_rate" in str(err.value)
    finally:
        reg.close()
