"""The replay loop of ml.backtest against an oracle forecaster whose answers are known.

The oracle is not a model: it returns the cell's true line with a fixed capacity band and an EOL
interval of half-width 200 / last_cycle, so when the policy must stop can be worked out by hand.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.advice import AdvicePolicy
from ml.backtest import (
    BacktestConfig, median_true_eol, replay_cell, run_backtest, summarize, true_end_of_life,
)
from ml.sources import CellRecord

TRUE_EOL = 102  # q = 1.0005 - 0.002 (N - 1) < 0.8 * 1.0005 first at N = 102


def _cell(n=130):
    n_idx = np.arange(1, n + 1)
    return pd.DataFrame({"cycle_index": n_idx, "test_time_second": 3600.0 * n_idx,
                         "discharge_capacity_ah": 1.0005 - 0.002 * (n_idx - 1)})


def _oracle(band_ah, calls):
    def forecast(frame, horizon, nominal, eol):
        calls.append((len(frame), horizon))
        last = int(frame["cycle_index"].iloc[-1])
        w = 200.0 / last
        rows = [{"cycle_index": c, "test_time_second": 3600.0 * c,
                 "capacity_ah": {"p05": m - band_ah, "p50": m, "p95": m + band_ah},
                 "loss_time_fraction": None, "loss_cycle_fraction": None}
                for c in range(last + 1, last + horizon + 1)
                for m in [1.0005 - 0.002 * (c - 1)]]
        return {"model": {"name": "oracle", "version": "0"}, "cell_id": None, "forecast": rows,
                "end_of_life": {"threshold_fraction": eol,
                                "cycle_index": {"p05": TRUE_EOL - w, "p50": TRUE_EOL,
                                                "p95": TRUE_EOL + w},
                                "test_time_second": {"p05": 0, "p50": 0, "p95": 0}},
                "attribution": {}}
    return forecast


def test_true_end_of_life_by_hand():
    assert true_end_of_life(_cell()) == (TRUE_EOL, 3600.0 * TRUE_EOL)
    assert true_end_of_life(_cell(50)) is None
    # with a nominal of 1.2 Ah the threshold is 0.96 Ah: first below at N = 22
    assert true_end_of_life(_cell(), nominal_capacity_ah=1.2)[0] == 22


def test_stops_when_eol_known_and_stable():
    # spec 95: tolerance 4.75 cycles, a forecast every 4 cycles from cycle 10; the interval
    # (± 200/L) is narrow enough from L >= 42.1, i.e. cuts 46, 50, 54 -> stop at 54.
    calls = []
    out = replay_cell("A", _cell(), _oracle(0.05, calls), spec_min_cycles=95)
    assert out.stopped and out.stop_cycle == 54
    assert out.reason.startswith("stop now: 80 % at cycle 102 ±")
    assert out.hours_saved_fraction == pytest.approx(48 / 102)
    assert out.eol_error_fraction == 0.0
    assert out.called_pass and out.true_pass and out.correct_call
    assert out.stop_kind == "eol_known"
    assert [n for n, _ in calls] == list(range(10, 55, 4))
    # horizon reaches max(2 x last, 1.5 x spec): at cycle 10 -> 143 - 10
    assert calls[0][1] == 133


def test_spec_decides_early_when_pass_is_certain():
    # spec 60, tight band -> P(pass) ~ 1 at every update; the cell must first lose 3 %:
    # median of the last 3 cycles -> L >= 17.0075 -> first even cut 18 ...
    loose = BacktestConfig(policy=AdvicePolicy(spec_eol_rel_halfwidth=None))
    out = replay_cell("B", _cell(), _oracle(0.01, []), spec_min_cycles=60, config=loose)
    assert out.stopped and out.stop_cycle == 18
    assert "passes the spec" in out.reason and out.stop_kind == "spec_pass"
    assert out.hours_saved_fraction == pytest.approx(84 / 102)
    # ... and by default the EOL must also be within ± 10 %: 200 / L <= 10.2 -> cut 20
    out = replay_cell("B", _cell(), _oracle(0.01, []), spec_min_cycles=60)
    assert out.stop_cycle == 20 and out.stop_kind == "spec_pass"
    assert out.hours_saved_fraction == pytest.approx(82 / 102)


def test_out_of_domain_cell_runs_to_the_end():
    # the replay reads each forecast's own domain answer (ml.domain), as the API's advice does
    oracle = _oracle(0.05, [])
    reason = "C-rate 3 1/h above the trained range 0.1–1 1/h"

    def out_of_domain(frame, horizon, nominal, eol):
        return {**oracle(frame, horizon, nominal, eol),
                "domain": {"in_domain": False, "reasons": [reason], "checked": ["c_rate"]}}

    out = replay_cell("C", _cell(), out_of_domain, spec_min_cycles=95)
    assert not out.stopped and out.stop_cycle == TRUE_EOL
    assert out.hours_saved_fraction == 0.0 and out.correct_call
    assert out.reason == f"continue: outside the model's training domain ({reason})"

    def in_domain(frame, horizon, nominal, eol):
        return {**oracle(frame, horizon, nominal, eol),
                "domain": {"in_domain": True, "reasons": [], "checked": ["c_rate"]}}

    # the same answers in domain stop where the oracle without a domain answer does
    assert replay_cell("C", _cell(), in_domain, spec_min_cycles=95).stop_cycle == 54


def test_unfinished_cell_is_not_scored():
    assert replay_cell("D", _cell(60), _oracle(0.05, []), spec_min_cycles=95) is None


def test_run_backtest_and_summary():
    cells = [CellRecord("A", _cell()), CellRecord("D", _cell(60)),
             CellRecord("B", _cell(), meta={"nominal_capacity_ah": None})]
    res = run_backtest(cells, _oracle(0.05, []), spec_min_cycles=95)
    assert res["n_cells"] == 2 and res["n_stopped_early"] == 2
    assert res["median_hours_saved_fraction"] == pytest.approx(48 / 102)
    assert res["correct_call_share"] == 1.0
    assert res["by_stop_kind"] == {"eol_known": {"n_cells": 2,
                                                 "median_hours_saved_fraction":
                                                     pytest.approx(48 / 102),
                                                 "median_eol_error_fraction": 0.0}}
    assert median_true_eol(cells) == TRUE_EOL
    assert summarize([]) == {"n_cells": 0}
    assert math.isnan(median_true_eol([CellRecord("D", _cell(60))]))


def test_config_changes_the_schedule():
    calls = []
    replay_cell("A", _cell(), _oracle(0.05, calls), spec_min_cycles=95,
                config=BacktestConfig(updates_per_spec=19, first_cut_fraction=0.2))
    assert [n for n, _ in calls][:3] == [19, 24, 29]


def test_a_history_recorded_every_few_hundred_cycles_is_replayed_row_by_row():
    # capacity checks every 25 cycles (cycle 1, 26, 51, …), a forecast due every 4 (spec 95):
    # each cut must bring a new row (before: cut = last + 4 found no new row and made the
    # same forecast forever)
    full = _cell(200)
    sparse = full[(full["cycle_index"] - 1) % 25 == 0].reset_index(drop=True)
    calls = []
    out = replay_cell("S", sparse, _oracle(0.05, calls), spec_min_cycles=95)
    # 0.8 x 1.0005 = 0.8004: checks at 126, 151, 176 are below (three in a row) -> 126
    assert out is not None and out.true_eol_cycle == 126
    rows = [n for n, _ in calls]
    assert rows == sorted(set(rows)) and len(rows) <= len(sparse)
