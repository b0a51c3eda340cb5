"""Calibration of the end-of-life interval (ml.training.eol_calibration) and its serving
(ml.uncertainty.widen_end_of_life, ml.inference.forecast), on hand-computed cases."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import ml.inference
from ml.inference import forecast, load_model_dir
from ml.training import eol_calibration as ec
from ml.uncertainty import widen_end_of_life

PRODUCTION = Path(__file__).resolve().parents[1] / "models" / "production"


def _eol(p05: int, p50: int, p95: int, *, censored95: bool = False) -> dict:
    keys = ("p05", "p50", "p95")
    cyc = dict(zip(keys, (p05, p50, p95)))
    return {"threshold_fraction": 0.8, "cycle_index": cyc,
            "test_time_second": {k: v * 7200.0 for k, v in cyc.items()},
            "censored": {"p05": False, "p50": False, "p95": censored95}}


def test_widening_scales_the_remaining_cycles_and_censors_beyond_the_horizon():
    cycles = np.arange(101, 401, dtype=float)  # the forecast schedule after cycle 100, 2 h each
    hours = cycles * 2.0
    # scale ln 2: remaining to p05 50 → 25 (cycle 125), to p95 200 → 400 (cycle 500: past the
    # schedule's 400, clamped there and censored); the median stays
    out = widen_end_of_life(_eol(150, 200, 300), {"scale": math.log(2.0)}, 100.0, cycles,
                            hours)
    assert out["cycle_index"] == {"p05": 125, "p50": 200, "p95": 400}
    assert out["test_time_second"]["p05"] == pytest.approx(125 * 7200.0)
    assert out["censored"] == {"p05": False, "p50": False, "p95": True}
    assert out["calibrated_widening"] == pytest.approx(math.log(2.0))
    # scale ln 1.5: p95 remaining 200 → 300 (cycle 400, inside: not censored)
    out = widen_end_of_life(_eol(150, 200, 300), {"scale": math.log(1.5)}, 100.0, cycles,
                            hours)
    assert out["cycle_index"] == {"p05": 134, "p50": 200, "p95": 400}  # 100 + 50/1.5 → 134
    assert out["censored"]["p95"] is False


def test_widening_leaves_what_it_must_alone():
    cycles = np.arange(101, 401, dtype=float)
    eol = _eol(150, 200, 300)
    for conformal in (None, {}, {"scale": None}, {"scale": 0.0}, {"scale": -0.3}):
        assert widen_end_of_life(eol, conformal, 100.0, cycles, cycles) == eol  # never narrows
    assert widen_end_of_life(None, {"scale": 1.0}, 100.0, cycles, cycles) is None
    observed = {**eol, "observed": True}
    assert widen_end_of_life(observed, {"scale": 1.0}, 100.0, cycles, cycles) == observed
    # a p95 already censored at the horizon stays where it is (a lower bound)
    out = widen_end_of_life(_eol(150, 200, 400, censored95=True), {"scale": 0.5}, 100.0,
                            cycles, cycles)
    assert out["cycle_index"]["p95"] == 400 and out["censored"]["p95"] is True
    assert eol["cycle_index"]["p05"] == 150  # the input is not modified


def _cell(cell_id: str, source: str, slope: float, n: int = 300) -> SimpleNamespace:
    N = np.arange(1, n + 1, dtype=float)
    cycles = pd.DataFrame({"cycle_index": N, "test_time_second": N * 3600.0,
                           "discharge_capacity_ah": 1.0 - slope * N})
    return SimpleNamespace(cell_id=cell_id, cycles=cycles,
                           meta={"source": source, "nominal_capacity_ah": 1.0})


def test_scores_compare_the_crossings_with_the_true_remaining_life(monkeypatch):
    # a stand-in forecast whose p05 crosses the threshold 40 cycles after the cut and whose p95
    # crosses 160 cycles after it; the cell r = 1 - 0.001 N reaches 0.8 at N = 201 (the first of
    # three rows below), 0.85 at 151, 0.9 at 101
    def fake(history, *, card, run, horizon_cycles, eol_fraction, nominal_capacity_ah):
        last = float(history["cycle_index"].iloc[-1])
        rows = [{"cycle_index": last + k,
                 "capacity_ah": {"p05": 0.0 if k >= 40 else 1.0, "p50": 1.0,
                                 "p95": 0.0 if k >= 160 else 1.0}}
                for k in range(1, horizon_cycles + 1)]
        return {"forecast": rows, "uncertainty": {"cycle_life_head": None,
                                                  "level_basis": "robust"}}

    monkeypatch.setattr(ml.inference, "forecast", fake)
    rows = ec.eol_scores([_cell("a", "s1", 0.001)], None, None, thresholds=(0.8,),
                         fractions=(0.5,))
    # cut at 0.5 · 201 = 100.5 → the history ends at N = 100: 101 cycles remain
    assert len(rows) == 1
    r = rows[0]
    assert (r["remaining_true"], r["remaining_p05"], r["remaining_p95"]) == (101.0, 40.0, 160.0)
    # inside [40, 160] with room: max(ln(40 / 101), ln(101 / 160)) = ln(101 / 160) < 0
    assert r["score"] == pytest.approx(math.log(101 / 160))
    # at 0.9 of the 0.85 life (151): the history ends at N = 135, 16 cycles remain, and the p05
    # crossing (40 cycles ahead) is too late: max(ln(40 / 16), ln(16 / 160)) = ln 2.5
    rows = ec.eol_scores([_cell("a", "s1", 0.001)], None, None, thresholds=(0.85,),
                         fractions=(0.9,))
    assert rows[0]["remaining_true"] == 16.0
    assert rows[0]["score"] == pytest.approx(math.log(40 / 16))
    # a cell that never reaches the threshold gives no score
    assert ec.eol_scores([_cell("b", "s1", 1e-5)], None, None) == []


def test_the_scale_weighs_every_source_and_every_cell_the_same(monkeypatch):
    # source s1: one cell with scores 0.1 (x9) — source s2: two cells, 0.5 (x1) and 1.0 (x1).
    # Weights: s1's points 1/18 each (half the total); s2's cells 1/4 each. Sorted: 0.1 (cum
    # 0.5), 0.5 (0.75), 1.0 (1.0): the 90 % quantile is 1.0; s1 alone 0.1, s2 alone 1.0
    scores = [{"source": "s1", "cell_id": "a", "score": 0.1}] * 9 + [
        {"source": "s2", "cell_id": "b", "score": 0.5},
        {"source": "s2", "cell_id": "c", "score": 1.0}]
    monkeypatch.setattr(ec, "eol_scores", lambda records, card, run: scores)
    out = ec.calibrate_end_of_life([], None, None)
    assert out["scale"] == pytest.approx(1.0)
    assert out["by_source"]["s1"]["scale"] == pytest.approx(0.1)
    assert out["by_source"]["s2"]["scale"] == pytest.approx(1.0)
    assert (out["n"], out["n_cells"], out["method"]) == (11, 3, "log_remaining")
    monkeypatch.setattr(ec, "eol_scores", lambda records, card, run: [])
    assert ec.calibrate_end_of_life([], None, None)["scale"] is None


@pytest.mark.skipif(not (PRODUCTION / "model_card.json").is_file(),
                    reason="models/production (the shipped model card) is absent")
def test_the_served_end_of_life_carries_the_cards_widening():
    # the shipped model on a cell fading linearly from 1.0 to 0.85 Ah over 150 cycles (2 h
    # each): the end of life with the card's calibration is the band's crossing widened by
    # exp(±scale) in remaining cycles; without it, the crossing itself
    card, run = load_model_dir(PRODUCTION)
    card = dataclasses.replace(card, cycle_life={})
    n = np.arange(1, 151, dtype=float)
    hist = pd.DataFrame({"cycle_index": n, "test_time_second": n * 7200.0,
                         "discharge_capacity_ah": 1.0 - 0.001 * n})
    bare = dataclasses.replace(card, conformal={k: v for k, v in card.conformal.items()
                                                if k != "end_of_life"})
    plain = forecast(hist, card=bare, run=run, horizon_cycles=600, nominal_capacity_ah=1.0)
    scale = 0.4
    wide = forecast(hist, card=dataclasses.replace(
        card, conformal={**bare.conformal, "end_of_life": {"scale": scale}}), run=run,
        horizon_cycles=600, nominal_capacity_ah=1.0)
    assert plain["forecast"] == wide["forecast"]  # the capacity band is not touched
    p, w = plain["end_of_life"]["cycle_index"], wide["end_of_life"]["cycle_index"]
    assert w["p50"] == p["p50"]
    assert w["p05"] == math.ceil(150 + (p["p05"] - 150) * math.exp(-scale))
    assert w["p05"] < p["p05"]
    if not plain["end_of_life"]["censored"]["p95"]:
        assert w["p95"] == min(math.ceil(150 + (p["p95"] - 150) * math.exp(scale)), 750)
