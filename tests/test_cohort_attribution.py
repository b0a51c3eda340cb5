"""Cohort attribution (ml.cohort): known splits recovered, one cell answered honestly, the
next-protocol advice checked by actually running the advised sibling, plans, and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from data_registry.errors import FadecastError
from ml.cohort.document import CellInput, PlanInput, solve
from ml.cohort.histories import history_from_frame
from ml.synthetic import make_cohort
from serving.cli import main

SEED = 7305  # a synthetic EVALUATION seed (ml.cohort.training.EVALUATION_SEEDS): never trained on
COLS = ["cycle_index", "test_time_second", "discharge_capacity_ah", "c_rate", "rest_second",
        "temperature_celsius"]


def _truth_share(rec, n):
    row = rec.truth.iloc[n - 1]
    return row.loss_time_frac / (row.loss_time_frac + row.loss_cycle_frac)


def _inputs(recs, n):
    return [CellInput(r.cell_id, r.cycles[COLS].head(n), r.cell_id) for r in recs]


@pytest.fixture(scope="module")
def cohort():
    return make_cohort("t", SEED)


def test_known_split_recovered_within_interval():
    """Four siblings of one known law (√t time loss, a = 0.12 at 1000 h; linear cycle loss,
    0.05 per 100 cycles at 0.5C, ∝ √C-rate): the split is recovered inside the interval."""
    cohort = [_sibling(c, h, n, seed=i) for i, (c, h, n) in
              enumerate(((0.2, 0.0, 1), (1.0, 0.0, 1), (1.0, 8.0, 1), (0.3, 48.0, 5)))]
    res = solve(_inputs(cohort, 80), with_design=False)
    errors = []
    for rec, cell in zip(cohort, res.document["cells"]):
        q = cell["attribution"]["time_share"]
        truth = _truth_share(rec, 80)
        assert q["p05"] <= truth <= q["p95"], (rec.cell_id, q, truth)
        errors.append(abs(q["p50"] - truth))
    assert max(errors) < 0.05, errors
    # the joint least-squares reference rides along in the same answer
    assert set(res.document["cohort"]["reference_fit"]["time_share"]) == \
        {r.cell_id for r in cohort}


def test_single_constant_cell_gets_wide_interval_and_sibling_advice(cohort):
    doc = solve(_inputs(cohort[:1], 80)).document
    q = doc["cells"][0]["attribution"]["time_share"]
    ident = doc["identifiability"]
    assert q["p95"] - q["p05"] > 0.4, q
    assert ident["run_a_sibling"] is True and "run a sibling" in ident["advice"]
    # the same cell among its siblings is pinned far better
    many = solve(_inputs(cohort, 80)).document
    q4 = many["cells"][0]["attribution"]["time_share"]
    assert q4["p95"] - q4["p05"] < 0.7 * (q["p95"] - q["p05"])


def _sibling(c_rate, rest_hour, every, n_cycles=400, seed=0):
    """A sibling of one fixed law (√t time loss, linear cycle loss growing with √C-rate), no
    reversible recovery after rests, 0.1 % noise."""
    from ml.synthetic import CellParams, simulate_cell

    p = CellParams(cell_id=f"s{c_rate:g}_{rest_hour:g}", c_rate=c_rate, rest_hour=rest_hour,
                   rest_every_n_cycles=every, time_scale=0.12, cycle_scale=0.05 *
                   (c_rate / 0.5) ** 0.5, n_cycles=n_cycles, stop_retention=0.5,
                   noise_frac=0.001, recovery_frac_per_10h=0.0)
    return simulate_cell(p, seed=seed)


def test_advised_protocol_narrows_the_width_when_actually_run():
    """Expected widths are computed, not a rule of thumb: running the advised sibling (same
    law) for the advised hours narrows the realised width as predicted; the existing protocol
    repeated is the least useful candidate."""
    slow = _sibling(0.2, 0.0, 1)
    doc = solve(_inputs([slow], 60)).document
    best = doc["identifiability"]["next_protocol"]
    cands = best["candidates"]
    assert best["expected_time_share_width"] == min(c["expected_time_share_width"]
                                                     for c in cands)
    assert best["expected_time_share_width"] < 0.8 * best["time_share_width_now"]
    same = next(c for c in cands if c["c_rate"] == 0.2 and c["rest_hour"] == 0.0)
    assert same["expected_time_share_width"] > best["expected_time_share_width"]
    sib = _sibling(best["c_rate"], best["rest_hour"], best["rest_every_n_cycles"] or 1,
                   seed=1).cycles[COLS]
    sib = sib[sib["test_time_second"] <= slow.cycles["test_time_second"].iloc[59]]
    after = solve([CellInput(slow.cell_id, slow.cycles[COLS].head(60), "a"),
                   CellInput("advised", sib, "b")], with_design=False).document
    q0 = doc["cells"][0]["attribution"]["time_share"]
    q1 = after["cells"][0]["attribution"]["time_share"]
    assert q1["p95"] - q1["p05"] < 0.6 * (q0["p95"] - q0["p05"])
    truth = _truth_share(slow, 60)
    assert q1["p05"] <= truth <= q1["p95"]


def test_plan_forecast_of_a_sibling_from_the_others(cohort):
    target = cohort[3]
    plan = target.cycles[["cycle_index", "test_time_second", "c_rate", "rest_second"]].head(60)
    res = solve(_inputs(cohort[:3], 80), [PlanInput("d_plan", plan, "plan.csv")],
                with_design=False)
    fc = res.document["plans"][0]["forecast"]
    assert [r["cycle_index"] for r in fc] == list(range(1, 61))
    p50 = np.array([r["capacity_ah"]["p50"] for r in fc])
    meas = target.cycles["discharge_capacity_ah"].to_numpy()[:60]
    nominal = target.meta["nominal_capacity_ah"]
    assert np.mean(np.abs(p50 - meas)) / nominal < 0.02
    lo = np.array([r["capacity_ah"]["p05"] for r in fc])
    hi = np.array([r["capacity_ah"]["p95"] for r in fc])
    assert np.mean((meas >= lo) & (meas <= hi)) > 0.8
    # loss parts add up to (about) the loss below the plan's level
    row = fc[-1]
    assert 0 < row["loss_time_fraction"]["p50"] < 0.5 and 0 <= row["loss_cycle_fraction"]["p50"]


@pytest.mark.parametrize("case, code, column", [
    ("duplicate", "duplicate_cell", "cell_id"),
    ("nominal", "mixed_nominal_capacity", "nominal_capacity_ah"),
    ("plan_clock", "missing_column", "test_time_second"),
    ("nan", "bad_value", "discharge_capacity_ah"),
    ("short", "history_too_short", "cycle_index"),
])
def test_bad_cohort_input_names_the_field(cohort, case, code, column):
    cells = _inputs(cohort[:2], 30)
    plans = []
    if case == "duplicate":
        cells = [cells[0], CellInput(cells[0].cell_id, cells[1].frame, "b.csv")]
    elif case == "nominal":
        cells = [CellInput(c.cell_id, c.frame, c.where, q) for c, q in zip(cells, (1.1, 5.0))]
    elif case == "plan_clock":
        plans = [PlanInput("p", pd.DataFrame({"cycle_index": [1, 2, 3], "c_rate": 0.5}), "p")]
    elif case == "nan":
        f = cells[0].frame.copy()
        f.loc[4, "discharge_capacity_ah"] = np.nan
        cells[0] = CellInput(cells[0].cell_id, f, "a.csv")
    elif case == "short":
        cells[1] = CellInput(cells[1].cell_id, cells[1].frame.head(2), "b.csv")
    with pytest.raises(FadecastError) as err:
        solve(cells, plans, with_design=False)
    assert err.value.code == code and err.value.column == column, str(err.value)


def test_missing_protocol_columns_are_estimated_and_said(cohort):
    frame = cohort[0].cycles[["cycle_index", "test_time_second", "discharge_capacity_ah"]]
    h = history_from_frame(frame.head(20), "x")
    assert set(h.estimated) == {"rest_second", "c_rate", "temperature_celsius"}
    assert np.all(h.rest_hour == 0) and np.all(h.temperature_celsius == 25.0)


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_attribute_json_is_one_document_and_bad_input_one_line(capsys, tmp_path, cohort):
    paths = []
    for r in cohort[:2]:
        p = tmp_path / f"{r.cell_id}.csv"
        r.cycles[COLS].head(50).to_csv(p, index=False)
        paths.append(str(p))
    both = tmp_path / "both.csv"
    pd.concat([r.cycles.head(50) for r in cohort[2:]]).to_csv(both, index=False)
    plan = tmp_path / "plan.csv"
    cohort[3].cycles[["cycle_index", "test_time_second", "c_rate"]].head(20).to_csv(plan,
                                                                                  index=False)
    code, out, err = _run(capsys, "attribute", "--cycles", *paths, str(both), "--plan",
                          f"next={plan}", "--horizon-cycles", "4", "--no-track", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [c["cell_id"] for c in doc["cells"]] == ["t_a", "t_b", "t_c", "t_d"]
    assert len(doc["cells"][0]["forecast"]) == 4
    assert doc["cells"][0]["forecast"][0]["cycle_index"] == 51
    assert doc["plans"][0]["name"] == "next" and len(doc["plans"][0]["forecast"]) == 20
    assert set(doc) == {"model", "cohort", "cells", "plans", "identifiability"}
    assert doc["plans"][0]["clock"] == "given"
    code, out, err = _run(capsys, "attribute", "--cycles", *paths, str(both), "--plan",
                          f"next={plan}", "--plan-clock", "follows-capacity", "--no-track",
                          "--json")
    assert code == 0, err
    follows = json.loads(out)["plans"][0]
    assert follows["clock"] == "follows_capacity"
    assert follows["forecast"][-1]["test_time_second"] <= \
        doc["plans"][0]["forecast"][-1]["test_time_second"]
    bad = tmp_path / "bad.csv"
    bad.write_text("cycle_index,test_time_second,discharge_capacity_ah\n1,10,1.0\n2,nan,1.0\n"
                   "3,30,1.0\n")
    code, out, err = _run(capsys, "attribute", "--cycles", paths[0], str(bad), "--no-track")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "bad.csv:3" in err and "test_time_second" in err
    code, out, err = _run(capsys, "attribute", "--cycles", paths[0], paths[0], "--no-track")
    assert code == 2 and "duplicate cell id" in err and err.count("\n") == 1


def test_registry_cohort_then_attribute_is_an_mlflow_run(capsys, tmp_path, cohort):
    for r in cohort[:2]:
        p = tmp_path / f"{r.cell_id}.csv"
        r.cycles[COLS].head(40).to_csv(p, index=False)
        meta = ["--meta", "cohort=lot7"] if r.cell_id == "t_a" else []
        code, out, err = _run(capsys, "ingest", str(p), "--cell-id", r.cell_id,
                              "--no-progress", *meta)
        assert code == 0, err
    code, out, err = _run(capsys, "cohort", "lot7", "--json")
    assert code == 0 and json.loads(out) == {"cohort": "lot7", "cells": ["t_a"]}
    code, out, err = _run(capsys, "cohort", "lot7", "--add", "t_b", "--json")
    assert json.loads(out)["cells"] == ["t_a", "t_b"]
    code, out, err = _run(capsys, "cohort", "lot7", "--add", "nope")
    assert code == 2 and "nope" in err
    code, out, err = _run(capsys, "show", "t_b", "--json")
    assert json.loads(out)["metadata"]["cohort"] == "lot7"
    code, out, err = _run(capsys, "cells", "--json")
    assert {c["cell_id"]: c["cohort"] for c in json.loads(out)} == {"t_a": "lot7", "t_b": "lot7"}
    code, out, err = _run(capsys, "cells")
    assert out.splitlines()[0].split()[-1] == "cohort" and out.splitlines()[1].endswith("lot7")
    code, out, err = _run(capsys, "attribute", "--cohort", "lot7", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["cohort"]["name"] == "lot7" and len(doc["cells"]) == 2
    run_id = err.split("MLflow run ")[1].split()[0]
    import mlflow

    from data_registry.home import mlflow_tracking_uri

    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking_uri())
    run = client.get_run(run_id)
    assert "t_a.time_share_p50" in run.data.metrics
    assert run.data.params["input_sha256.t_a"]
    arts = {a.path for a in client.list_artifacts(run_id)} | \
        {a.path for a in client.list_artifacts(run_id, "plots")}
    assert "attribution.json" in arts and "plots/cell_t_a.png" in arts


def test_dev_cohort_split_recovered(shared_data):
    from ml.cohort.training import cut_cohort, grouped_cohorts, truth_share
    from ml.sources import load_source

    if not (shared_data / "pybamm-cohorts-dev").is_dir():
        pytest.skip("../shared/data/pybamm-cohorts-dev is absent")
    recs = load_source("pybamm-cohorts-dev", root=shared_data, cohorts=["cd10"])
    assert recs[0].meta["cohort_part"] == "evaluation"
    records = grouped_cohorts(recs)["cd10"]
    cells = cut_cohort(records)
    res = solve([CellInput(c.cell_id, r.cycles.head(c.n), c.cell_id, 5.0)
                 for r, c in zip(records, cells)], with_design=False)
    for r, c, doc in zip(records, cells, res.document["cells"]):
        q = doc["attribution"]["time_share"]
        assert q["p05"] <= truth_share(r, c.n) <= q["p95"]
        assert abs(q["p50"] - truth_share(r, c.n)) < 0.04


def test_plan_clock_follows_the_predicted_capacity(cohort):
    """``plan_clock="follows_capacity"``: every planned cycle is shortened by the
    constant-current time its predicted fade saves, 2 (1 − capacity/reference) / c_rate h,
    with the capacity the law predicts on that very clock (a fixed point); rests are kept."""
    from ml.cohort import law
    from ml.cohort.plans import clock_following_capacity

    target = cohort[0]  # C/5 with no extra rest: ~10 h per cycle at full capacity
    plan = target.cycles[["cycle_index", "test_time_second", "c_rate", "rest_second"]].head(80)
    cells = _inputs(cohort[1:], 80)
    given = solve(cells, [PlanInput("p", plan, "plan.csv")], with_design=False)
    follows = solve(cells, [PlanInput("p", plan, "plan.csv")], with_design=False,
                    plan_clock="follows_capacity")
    assert given.document["plans"][0]["clock"] == "given"
    assert follows.document["plans"][0]["clock"] == "follows_capacity"
    h0, h1 = given.plans[0], follows.plans[0]
    np.testing.assert_allclose(h1.rest_hour, h0.rest_hour)
    theta = follows.posterior.mean[None, :len(law.SHARED)]
    frac = law.capacity_fraction(h1, theta, 0.0)[0]  # the law on the shortened clock
    frac = np.minimum(frac, 1.0)  # above the reference capacity: never lengthened
    c = h0.c_rate
    np.testing.assert_allclose(h1.operating_hour, h0.operating_hour - 2 * (1 - frac) / c,
                               atol=0.02)  # a 4-step fixed point: within ~1 min per cycle
    np.testing.assert_allclose(np.diff(h1.hours), h1.operating_hour[1:] + h1.rest_hour[1:])
    assert h1.hours[0] == pytest.approx(h1.operating_hour[0] + h1.rest_hour[0])
    # faded by cycle 80, so the clock runs behind the given one and the rows say so
    t_given = given.document["plans"][0]["forecast"][-1]["test_time_second"]
    t_follows = follows.document["plans"][0]["forecast"][-1]["test_time_second"]
    saved_h = (t_given - t_follows) / 3600
    assert saved_h == pytest.approx(float(np.sum(2 * (1 - frac) / c)), rel=0.02) and \
        saved_h > 20
    # a shorter clock means less time-driven loss: capacity no lower than on the given clock
    assert follows.document["plans"][0]["forecast"][-1]["capacity_ah"]["p50"] >= \
        given.document["plans"][0]["forecast"][-1]["capacity_ah"]["p50"] - 1e-9


@pytest.mark.parametrize("plan_cols, clock, code, column", [
    (["cycle_index", "test_time_second"], "follows_capacity", "missing_column", "c_rate"),
    (["cycle_index", "test_time_second", "c_rate"], "recorded", "bad_option", "plan_clock"),
])
def test_plan_clock_bad_input_names_the_field(cohort, plan_cols, clock, code, column):
    plan = cohort[3].cycles[plan_cols].head(10)
    with pytest.raises(FadecastError) as e:
        solve(_inputs(cohort[:3], 40), [PlanInput("p", plan, "plans[0]")], with_design=False,
              plan_clock=clock)
    assert e.value.code == code and e.value.column == column, e.value


def test_binomial_interval_of_a_coverage_count():
    """Clopper–Pearson by hand: 16/16 → lower bound 0.025^(1/16) = 0.7941; 0/10 → upper
    1 − 0.025^(1/10) = 0.3085; a 44/48 interval contains 44/48 and 0.90."""
    from ml.evaluation.cohorts import binomial_interval

    assert binomial_interval(16, 16) == (pytest.approx(0.025 ** (1 / 16), abs=1e-6), 1.0)
    assert binomial_interval(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-6))
    lo, hi = binomial_interval(44, 48)
    assert lo < 0.90 < 44 / 48 < hi < 1.0


def test_a_sibling_without_measurable_fade_gets_an_unknown_share(cohort):
    """A fresh sibling whose capacity has not moved beyond its noise: the split of a loss that
    cannot be told from zero is unknown — the single-cell rule (share mixed with Uniform(0, 1)),
    never a confident value; its faded siblings keep their own intervals."""
    cells = _inputs(cohort, 80)
    fresh = cohort[0].cycles[COLS].head(12).copy()
    q0 = float(fresh["discharge_capacity_ah"].iloc[0])
    fresh["discharge_capacity_ah"] = q0 * (1.0 + 1e-4 * np.sin(np.arange(len(fresh))))
    cells.append(CellInput("fresh", fresh, "fresh"))
    doc = solve(cells, with_design=False).document
    by_id = {c["cell_id"]: c["attribution"] for c in doc["cells"]}
    new = by_id["fresh"]
    assert new["identifiable"] is False
    assert new["time_share"]["p05"] <= 0.1 and new["time_share"]["p95"] >= 0.9, new
    assert all(by_id[r.cell_id]["identifiable"] for r in cohort)
