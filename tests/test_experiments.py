"""Smoke tests of the experiments (fast: no training, no shared data, no MLflow).

The seed study's simulator must reproduce the figures it claims (hand-checked targets), and
run_all's README block must keep the hand-written part of the README and cite run ids.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "experiments" / "seed_pto_li3ps4"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cells():
    return _load("seed_cells", SEED / "cells.py")


def test_simulated_cells_hit_the_reported_figures(cells):
    k = cells.rates()
    c10, c03, hand = cells.CELLS
    mah = lambda ah: ah / cells.MASS_G * 1e3  # noqa: E731  (Ah per 1 mg -> mAh/g)
    t10 = cells.schedule(c10, k["cryomilled"], noise=False)
    # 99.5 % of 409 mAh/g at cycle 1, less the 1e-4 cycle loss: 409 * 0.995 * 0.9999 = 406.9
    assert mah(t10["capacity_true_ah"].iloc[0]) == pytest.approx(406.9, abs=0.05)
    # 288 mAh/g at cycle 100 (the bisection target is 288/407 of the first cycle)
    assert mah(t10["capacity_true_ah"].iloc[99]) == pytest.approx(
        288 / 407 * 406.9, abs=0.2)
    # flat for ~30 cycles: < 1 % lost by cycle 30
    assert t10["capacity_true_ah"].iloc[29] / t10["capacity_true_ah"].iloc[0] > 0.99
    # C/10: 2 * 0.995 * 0.9999 / 0.1 h + 1/3 h = 20.23 h for cycle 1
    assert t10["end_hour"].iloc[0] == pytest.approx(2 * 0.995 * 0.9999 / 0.1 + 1 / 3, rel=1e-6)
    # the same time law at 0.3C keeps > 95 % of its maximum after 100 cycles
    t03 = cells.schedule(c03, k["cryomilled"], noise=False)
    assert t03["capacity_true_ah"].iloc[99] / t03["capacity_true_ah"].max() > 0.95
    th = cells.schedule(hand, k["hand-milled"], noise=False)
    assert mah(th["capacity_true_ah"].iloc[0]) == pytest.approx(318 * 0.9999, abs=0.05)
    assert th["capacity_true_ah"].iloc[999] / th["capacity_true_ah"].iloc[0] == pytest.approx(
        0.61, abs=0.002)
    assert th["capacity_true_ah"].iloc[199] / th["capacity_true_ah"].iloc[0] > 0.97


def test_switch_schedule_only_changes_the_pace_after_the_switch(cells):
    k = cells.rates()["cryomilled"]
    base = cells.schedule(cells.CELLS[0], k, noise=False)
    sw = cells.schedule(cells.CELLS[0], k, noise=False, switch=(60, 0.3))
    pd.testing.assert_frame_equal(base.iloc[:60], sw.iloc[:60])
    # after the switch a cycle lasts a third as long in CC time (+ the same 1/3 h rest)
    dur = (sw["end_hour"] - sw["start_hour"]).iloc[60] - 1 / 3
    q = sw["capacity_true_ah"].iloc[60] / cells.I_1C_A
    assert dur == pytest.approx(2 * q / 0.3, rel=1e-9)
    # fewer hours -> less time-driven loss at the same cycle
    assert sw["loss_time_frac"].iloc[99] < base["loss_time_frac"].iloc[99]


def test_spectra_give_back_the_warburg_coefficient(cells):
    from ml.features import warburg_table

    k = cells.rates()["cryomilled"]
    truth = cells.schedule(cells.CELLS[0], k).iloc[:1]
    fits = warburg_table(cells.spectra(cells.CELLS[0], truth))
    assert fits["ok"].all(), fits["reason"].tolist()
    by = dict(zip(fits["measurement_id"].str[6:], fits["aw_ohm_per_sqrt_s"]))
    lt = truth["loss_time_frac"].iloc[0]
    assert by["discharge_half"] == pytest.approx(40 * (1 + 2 * lt), rel=0.03)
    assert by["top_of_charge"] == pytest.approx(1200 * (1 + lt), rel=0.03)
    volts = cells.spectra(cells.CELLS[0], truth).groupby("measurement_id")["voltage_volt"].first()
    assert volts.filter(like="top_of_charge").iloc[0] > 2.9
    assert (volts.filter(like="half") < 2.9).all()


def test_run_all_readme_block_keeps_the_hand_written_part(tmp_path, monkeypatch):
    run_all = _load("exp_run_all", ROOT / "experiments" / "run_all.py")
    readme = tmp_path / "README.md"
    readme.write_text(f"# exp\n\nhand text\n\n{run_all.BEGIN}\nold\n{run_all.END}\n\ntail\n")
    monkeypatch.setattr(run_all, "README", readme)
    results = [{"name": "study: x", "cmd": ["py", "x.py"], "code": 0, "seconds": 1.0,
                "stdout": "", "stderr_tail": "",
                "json": {"study": "x", "run_id": "abc123", "figure_a": 0.25}},
               {"name": "bench:ingest", "cmd": ["py", "i.py", "--rows", "5"], "code": 0,
                "seconds": 2.0, "stdout": "ingest 1.00 s\n", "stderr_tail": "", "json": None}]
    info = {"date": "d", "nproc": "2", "cpu": "c", "memory": "1 GiB", "os": "o",
            "python": "3", "threads": "t"}
    run_all.write_readme(run_all.render(results, info, False))
    text = readme.read_text()
    assert text.startswith("# exp\n\nhand text\n\n")
    assert text.rstrip().endswith("tail")
    assert "old" not in text
    assert "| x | figure_a | 0.25 | `abc123` |" in text
    assert "ingest 1.00 s" in text
