"""Calibration of the end-of-life interval (ml.training.eol_calibration) and its serving
(ml.uncertainty.widen_end_of_life, ml.inference.forecast), on hand-computed cases."""
from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import ml.inference
from ml.inference import forecast
from ml.training import eol_calibration as ec
from ml.uncertainty import end_of_life_scales, fade_progress, widen_end_of_life


def _eol(p05: int, p50: int, p95: int, *, censored95: bool = False) -> dict:
    keys = ("p05", "p50", "p95")
    cyc = dict(zip(keys, (p05, p50, p95)))
    return {"threshold_fraction": 0.8, "cycle_index": cyc,
            "test_time_second": {k: v * 7200.0 for k, v in cyc.items()},
            "censored": {"p05": False, "p50": False, "p95": censored95}}


def test_widening_scales_the_remaining_cycles_and_censors_beyond_the_horizon():
    cycles = np.arange(101, 401, dtype=float)  # the forecast schedule after cycle 100, 2 h each
    hours = cycles * 2.0
    # both scales ln 2: remaining to p05 50 → 25 (cycle 125), to p95 200 → 400 (cycle 500:
    # past the schedule's 400, clamped there and censored); the median stays
    both = {"scale_p05": math.log(2.0), "scale_p95": math.log(2.0)}
    out = widen_end_of_life(_eol(150, 200, 300), both, 100.0, cycles, hours)
    assert out["cycle_index"] == {"p05": 125, "p50": 200, "p95": 400}
    assert out["test_time_second"]["p05"] == pytest.approx(125 * 7200.0)
    assert out["censored"] == {"p05": False, "p50": False, "p95": True}
    assert out["calibrated_widening"] == pytest.approx({"p05": math.log(2.0),
                                                        "p95": math.log(2.0)})
    # ln 1.5 on each side: p05 100 + 50/1.5 = 133.3 → cycle 133 (rounded DOWN: the early end
    # moves early), p95 100 + 200·1.5 = 400 (inside: not censored)
    out = widen_end_of_life(_eol(150, 200, 300), {"scale_p05": math.log(1.5),
                                                  "scale_p95": math.log(1.5)}, 100.0, cycles,
                            hours)
    assert out["cycle_index"] == {"p05": 133, "p50": 200, "p95": 400}
    assert out["censored"]["p95"] is False
    # one side only: p95 kept, and a p05 2 cycles ahead still moves (101 + 1/2 → 101)
    out = widen_end_of_life(_eol(103, 200, 300), {"scale_p05": math.log(2.0)}, 101.0,
                            cycles, hours)
    assert out["cycle_index"] == {"p05": 102, "p50": 200, "p95": 300}
    assert out["calibrated_widening"] == {"p05": pytest.approx(math.log(2.0)), "p95": 0.0}


def test_widening_leaves_what_it_must_alone():
    cycles = np.arange(101, 401, dtype=float)
    eol = _eol(150, 200, 300)
    for conformal in (None, {}, {"scale_p05": None, "scale_p95": None},
                      {"scale_p05": 0.0, "scale_p95": -0.3}, {"scale_p95": float("-inf")}):
        assert widen_end_of_life(eol, conformal, 100.0, cycles, cycles) == eol  # never narrows
    one = {"scale_p05": 1.0, "scale_p95": 1.0}
    assert widen_end_of_life(None, one, 100.0, cycles, cycles) is None
    observed = {**eol, "observed": True}
    assert widen_end_of_life(observed, one, 100.0, cycles, cycles) == observed
    # a p95 already censored at the horizon stays where it is (a lower bound)
    out = widen_end_of_life(_eol(150, 200, 400, censored95=True), one, 100.0, cycles, cycles)
    assert out["cycle_index"]["p95"] == 400 and out["censored"]["p95"] is True
    assert eol["cycle_index"]["p05"] == 150  # the input is not modified


def _cell(cell_id: str, source: str, slope: float, n: int = 300) -> SimpleNamespace:
    N = np.arange(1, n + 1, dtype=float)
    cycles = pd.DataFrame({"cycle_index": N, "test_time_second": N * 3600.0,
                           "discharge_capacity_ah": 1.0 - slope * N})
    return SimpleNamespace(cell_id=cell_id, cycles=cycles,
                           meta={"source": source, "nominal_capacity_ah": 1.0})


def _fake_forecast(p05_ahead: int | None, p95_ahead: int | None, head: bool = False):
    """A stand-in forecast whose p05 / p95 curves drop below any threshold that many cycles
    after the cut (None: never within the horizon)."""
    def fake(history, *, card, run, horizon_cycles, eol_fraction, nominal_capacity_ah):
        last = float(history["cycle_index"].iloc[-1])

        def q(ahead, k):
            return 0.0 if ahead is not None and k >= ahead else 1.0

        rows = [{"cycle_index": last + k, "capacity_ah": {"p05": q(p05_ahead, k), "p50": 1.0,
                                                           "p95": q(p95_ahead, k)}}
                for k in range(1, horizon_cycles + 1)]
        return {"forecast": rows, "uncertainty": {"cycle_life_head": "h" if head else None}}
    return fake


def test_scores_compare_the_crossings_with_the_true_remaining_life(monkeypatch):
    # the cell r = 1 - 0.001 N reaches 0.8 at N = 201 (the first of three rows below), 0.85 at
    # 151; the stand-in's p05 crosses 40 cycles after the cut, its p95 160 cycles after
    monkeypatch.setattr(ml.inference, "forecast", _fake_forecast(40, 160))
    rows = ec.eol_scores([_cell("a", "s1", 0.001)], None, None, thresholds=(0.8,),
                         fractions=(0.5,))
    # cut at 0.5 · 201 = 100.5 → the history ends at N = 100: 101 cycles remain
    assert len(rows) == 1
    r = rows[0]
    assert (r["remaining_true"], r["remaining_p05"], r["remaining_p95"]) == (101.0, 40.0, 160.0)
    # inside [40, 160] with room on both sides: both one-sided scores negative
    assert r["score_p05"] == pytest.approx(math.log(40 / 101))
    assert r["score_p95"] == pytest.approx(math.log(101 / 160))
    # at 0.9 of the 0.85 life (151): the history ends at N = 135, 16 cycles remain, and the
    # p05 crossing (40 cycles ahead) is too late by ln 2.5
    rows = ec.eol_scores([_cell("a", "s1", 0.001)], None, None, thresholds=(0.85,),
                         fractions=(0.9,))
    assert rows[0]["remaining_true"] == 16.0
    assert rows[0]["score_p05"] == pytest.approx(math.log(40 / 16))
    # a p05 that never crosses counts as the horizon (5 × 101 = 505 cycles, a lower bound) and
    # is flagged; a p95 that never crosses is open above (score -inf)
    monkeypatch.setattr(ml.inference, "forecast", _fake_forecast(None, None))
    r = ec.eol_scores([_cell("a", "s1", 0.001)], None, None, thresholds=(0.8,),
                      fractions=(0.5,))[0]
    assert r["p05_censored"] and r["remaining_p05"] == 505.0
    assert r["score_p05"] == pytest.approx(math.log(5.0)) and r["score_p95"] == -math.inf
    # histories whose forecast used a cycle-life head are not scored; nor cells that never
    # reach the threshold
    monkeypatch.setattr(ml.inference, "forecast", _fake_forecast(40, 160, head=True))
    assert ec.eol_scores([_cell("a", "s1", 0.001)], None, None) == []
    monkeypatch.setattr(ml.inference, "forecast", _fake_forecast(40, 160))
    assert ec.eol_scores([_cell("b", "s1", 1e-5)], None, None) == []


def test_a_refused_history_is_listed_not_fatal(monkeypatch):
    from data_registry.errors import ValidationError

    def refuse(history, **kwargs):
        raise ValidationError("too few cycles", code="bad_value")

    monkeypatch.setattr(ml.inference, "forecast", refuse)
    out = ec.calibrate_end_of_life([_cell("a", "s1", 0.001)], None, None)
    assert out["n"] == 0 and out["scale_p05"] is None and out["scale_p95"] is None
    assert out["failed"][0].startswith("a at 0.2 of its life to 0.8: too few cycles")


def test_each_side_is_the_largest_per_source_95_pct_quantile_cells_weighing_the_same(
        monkeypatch):
    # source s1: one cell, 19 scores of 0.1 → its 95 % quantile 0.1; source s2: two cells,
    # 0.5 and 1.0, each half its weight → 1.0 (0.5 reaches only 50 %). The served scale is the
    # larger, 1.0: every source held at the level. The p95 side: every score -inf (p95 never
    # crossed) → no finite scale, that side is not widened
    def row(src, cell, s05):
        return {"source": src, "cell_id": cell, "score_p05": s05, "score_p95": -math.inf,
                "p05_censored": False}

    scores = [row("s1", "a", 0.1)] * 19 + [row("s2", "b", 0.5), row("s2", "c", 1.0)]
    monkeypatch.setattr(ec, "_scores", lambda *a: (scores, []))
    monkeypatch.setattr(ec, "MIN_SOURCE_CELLS", 1)
    out = ec.calibrate_end_of_life([], None, None)
    assert out["scale_p05"] == pytest.approx(1.0) and out["scale_p95"] is None
    assert out["by_source"]["s1"]["scale_p05"] == pytest.approx(0.1)
    assert out["by_source"]["s2"]["scale_p05"] == pytest.approx(1.0)
    assert (out["n"], out["n_cells"], out["method"]) == (21, 3, "log_remaining_one_sided")
    monkeypatch.setattr(ec, "_scores", lambda *a: ([], []))
    assert ec.calibrate_end_of_life([], None, None)["scale_p05"] is None
    # a source that needs less never holds one that needs more below its level: s1's 20
    # cells at 0.1; s2's 10 cells at 0.0 but one at 1.0 (a tenth of s2 → its 95 % quantile
    # is 1.0). The sources' mixture (each half) reaches 95 % at 0.1 — s2 would hold 90 %
    many = ([row("s1", f"a{i}", 0.1) for i in range(20)]
            + [row("s2", f"b{i}", 0.0) for i in range(9)] + [row("s2", "b9", 1.0)])
    monkeypatch.setattr(ec, "_scores", lambda *a: (many, []))
    assert ec.calibrate_end_of_life([], None, None)["scale_p05"] == pytest.approx(1.0)


def test_a_source_of_too_few_cells_is_reported_but_does_not_set_the_widening(monkeypatch):
    # s1: 5 cells scoring 0.1 each; s2: 2 cells scoring 2.0 — each of s2's cells would hold a
    # quarter of the weight and set the 95 % quantile at 2.0; below MIN_SOURCE_CELLS (5) it
    # is listed with its own scale and left out of the pooled and binned ones
    def row(src, cell, s05):
        return {"source": src, "cell_id": cell, "score_p05": s05, "score_p95": -math.inf,
                "p05_censored": False, "fade_progress": 0.1}

    scores = ([row("s1", f"a{i}", 0.1) for i in range(5)]
              + [row("s2", "b", 2.0), row("s2", "c", 2.0)])
    monkeypatch.setattr(ec, "_scores", lambda *a: (scores, []))
    out = ec.calibrate_end_of_life([], None, None)
    assert ec.MIN_SOURCE_CELLS == 5 and out["min_source_cells"] == 5
    assert out["scale_p05"] == pytest.approx(0.1) and (out["n"], out["n_cells"]) == (5, 5)
    assert out["by_source"]["s2"] == {"scale_p05": pytest.approx(2.0), "scale_p95": None,
                                      "n": 2, "n_cells": 2, "pooled": False}
    assert out["by_source"]["s1"]["pooled"] is True
    first = out["by_progress"]["bins"][0]
    assert (first["n_cells"], first["used"]) == (5, False)  # 5 < MIN_BIN_CELLS: pooled serves


def test_a_bin_is_used_only_when_its_scale_setting_sources_hold_enough_cells(monkeypatch):
    # first third: s1's 12 cells (0.3) + s2's 3 (5.0, too few to set a scale) → used, 0.3;
    # middle third: s1's 6 cells + s2's 6 → both set it, used with the larger (s2's 0.8);
    # last third: s1's 6 + s2's 4 → only s1's 6 set it: 10 cells in the bin, 6 scaled, unused
    def row(src, cell, progress, s05):
        return {"source": src, "cell_id": cell, "score_p05": s05, "score_p95": -math.inf,
                "p05_censored": False, "fade_progress": progress}

    scores = ([row("s1", f"a{i}", 0.1, 0.3) for i in range(12)]
              + [row("s2", f"b{i}", 0.1, 5.0) for i in range(3)]
              + [row("s1", f"c{i}", 0.5, 0.2) for i in range(6)]
              + [row("s2", f"d{i}", 0.5, 0.8) for i in range(6)]
              + [row("s1", f"e{i}", 0.9, 0.1) for i in range(6)]
              + [row("s2", f"f{i}", 0.9, 0.9) for i in range(4)])
    monkeypatch.setattr(ec, "_scores", lambda *a: (scores, []))
    first, middle, last = ec.calibrate_end_of_life([], None, None)["by_progress"]["bins"]
    assert (first["scale_p05"], first["n_cells"], first["n_cells_scaled"], first["used"]) == (
        pytest.approx(0.3), 15, 12, True)
    assert (middle["scale_p05"], middle["n_cells_scaled"], middle["used"]) == (
        pytest.approx(0.8), 12, True)
    assert (last["scale_p05"], last["n_cells"], last["n_cells_scaled"], last["used"]) == (
        pytest.approx(0.1), 10, 6, False)
    # each bin says whose cells it holds and which sources set its scale
    assert first["n_cells_by_source"] == {"s1": 12, "s2": 3}
    assert first["scale_sources"] == ["s1"]  # s1 alone: the card says so
    assert middle["scale_sources"] == ["s1", "s2"] and last["scale_sources"] == ["s1"]


def test_the_served_end_of_life_carries_the_cards_widening(shipped_model):
    # the shipped model on a cell fading linearly from 1.0 to 0.85 Ah over 150 cycles (2 h
    # each): the end of life with the card's calibration is the band's crossing widened by
    # exp(±scale) in remaining cycles; without it, the crossing itself
    card, run = shipped_model
    n = np.arange(1, 151, dtype=float)
    hist = pd.DataFrame({"cycle_index": n, "test_time_second": n * 7200.0,
                         "discharge_capacity_ah": 1.0 - 0.001 * n})
    bare = dataclasses.replace(card, conformal={k: v for k, v in card.conformal.items()
                                                if k != "end_of_life"})
    plain = forecast(hist, card=bare, run=run, horizon_cycles=600, nominal_capacity_ah=1.0)
    lo, hi = 0.4, 0.2
    wide = forecast(hist, card=dataclasses.replace(
        card, conformal={**bare.conformal, "end_of_life": {"scale_p05": lo, "scale_p95": hi}}),
        run=run, horizon_cycles=600, nominal_capacity_ah=1.0)
    assert plain["forecast"] == wide["forecast"]  # the capacity band is not touched
    p, w = plain["end_of_life"]["cycle_index"], wide["end_of_life"]["cycle_index"]
    assert w["p50"] == p["p50"]
    assert w["p05"] == math.floor(150 + (p["p05"] - 150) * math.exp(-lo))
    assert w["p05"] < p["p05"]
    if not plain["end_of_life"]["censored"]["p95"]:
        assert w["p95"] == min(math.ceil(150 + (p["p95"] - 150) * math.exp(hi)), 750)
    # rows the capacity trend leaves out at the end (discharges of 0: no measurement) do not
    # move the origin: the widening counts from the last OBSERVED cycle, where the schedule
    # starts (155 here)
    tail = pd.DataFrame({"cycle_index": np.arange(151, 156, dtype=float),
                         "test_time_second": np.arange(151, 156) * 7200.0,
                         "discharge_capacity_ah": 0.0})
    longer = pd.concat([hist, tail], ignore_index=True)
    conf = {**bare.conformal, "end_of_life": {"scale_p05": lo}}
    p = forecast(longer, card=bare, run=run, horizon_cycles=600,
                 nominal_capacity_ah=1.0)["end_of_life"]["cycle_index"]
    w = forecast(longer, card=dataclasses.replace(card, conformal=conf), run=run,
                 horizon_cycles=600, nominal_capacity_ah=1.0)["end_of_life"]["cycle_index"]
    assert w["p05"] == math.floor(155 + (p["p05"] - 155) * math.exp(-lo))


def test_fade_progress_is_the_share_of_the_way_to_the_threshold_already_lost():
    # the median of the last 5 retentions (0.95, 0.94, 0.93, 0.99 outlier, 0.92) is 0.94: 0.06
    # lost of the 0.2 to 80 % → 0.3; to 90 %, 0.06 of 0.1 → 0.6
    r = np.array([1.0, 0.98, 0.96, 0.95, 0.94, 0.93, 0.99, 0.92])
    assert fade_progress(r, 0.8) == pytest.approx(0.3)
    assert fade_progress(r, 0.9) == pytest.approx(0.6)
    assert fade_progress(np.array([np.nan, 0.9, np.nan]), 0.8) == pytest.approx(0.5)
    assert fade_progress(np.array([np.nan]), 0.8) is None
    assert fade_progress(r, 1.0) is None


BINS = {"scale_p05": 0.25, "scale_p95": 0.1,
        "by_progress": {"edges": [1 / 3, 2 / 3], "bins": [
            {"scale_p05": math.log(2.0), "scale_p95": None, "used": True},
            {"scale_p05": 0.9, "scale_p95": 0.9, "used": False},  # too few cells: pooled
            {"scale_p05": -0.15, "scale_p95": 0.0, "used": True}]}}


def test_a_history_is_served_with_the_scales_of_its_progress_bin():
    assert end_of_life_scales(BINS, 0.1)["scale_p05"] == pytest.approx(math.log(2.0))
    assert end_of_life_scales(BINS, 0.5) is BINS  # unused bin: the pooled scales
    assert end_of_life_scales(BINS, 2 / 3)["scale_p05"] == -0.15  # an edge opens the next bin
    assert end_of_life_scales(BINS, None) is BINS
    assert end_of_life_scales(BINS, float("nan")) is BINS
    pooled = {"scale_p05": 0.25}
    assert end_of_life_scales(pooled, 0.9) is pooled  # a card without bins
    cycles = np.arange(101, 401, dtype=float)
    eol = _eol(150, 200, 300)
    # early bin: remaining to p05 50 → 25 (cycle 125); its p95 side has no scale
    out = widen_end_of_life(eol, BINS, 100.0, cycles, cycles, progress=0.1)
    assert out["cycle_index"] == {"p05": 125, "p50": 200, "p95": 300}
    assert out["calibrated_widening"] == {"p05": pytest.approx(math.log(2.0)), "p95": 0.0,
                                          "fade_progress": 0.1}
    # late bin: nothing positive to apply, the interval is the band's crossings
    assert widen_end_of_life(eol, BINS, 100.0, cycles, cycles, progress=0.8) == eol
    # middle bin unused: the pooled 0.25 / 0.1 (p05 100 + 50·e^-0.25 = 138.9 → 138), and the
    # answer names no bin (the pooled scales served)
    out = widen_end_of_life(eol, BINS, 100.0, cycles, cycles, progress=0.5)
    assert out["cycle_index"]["p05"] == 138
    assert out["calibrated_widening"] == {"p05": 0.25, "p95": 0.1}


def test_the_answer_names_the_sources_that_calibrated_its_widening():
    cycles = np.arange(101, 401, dtype=float)
    eol = _eol(150, 200, 300)
    card = {**BINS, "by_source": {"a": {"pooled": True}, "b": {"pooled": False},
                                  "c": {"pooled": True}},
            "by_progress": {**BINS["by_progress"], "bins": [
                {**BINS["by_progress"]["bins"][0], "scale_sources": ["c"]},
                *BINS["by_progress"]["bins"][1:]]}}
    # the early bin's own scale-setting sources
    assert widen_end_of_life(eol, card, 100.0, cycles, cycles, 0.1)["calibrated_on"] == ["c"]
    # the unused middle bin: the pooled scales, set by the pooled sources (not "b")
    assert widen_end_of_life(eol, card, 100.0, cycles, cycles, 0.5)["calibrated_on"] == [
        "a", "c"]
    # a card that records neither: no claim
    assert "calibrated_on" not in widen_end_of_life(eol, BINS, 100.0, cycles, cycles, 0.1)


def test_the_shipped_answer_names_its_calibration_sources(shipped_model):
    card, run = shipped_model
    # cycles 1-150 losing 0.08 % a cycle from 1.0 Ah, 2 h each: 0.88 at the end, 60 % of the
    # way to 80 % (the middle third, whose scale widens)
    n = np.arange(1, 151)
    hist = pd.DataFrame({"cycle_index": n, "test_time_second": n * 7200.0,
                         "discharge_capacity_ah": 1.0 - 0.0008 * n})
    doc = forecast(hist, card=card, run=run, horizon_cycles=400)
    eol = doc["end_of_life"]
    bins = card.conformal["end_of_life"]["by_progress"]["bins"]
    assert eol and eol.get("calibrated_widening")
    third = int(np.searchsorted([1 / 3, 2 / 3], doc["uncertainty"]["fade_progress"], "right"))
    assert eol["calibrated_on"] == bins[third]["scale_sources"]
    assert "synthetic" in eol["calibrated_on"]


def test_each_progress_bin_is_calibrated_on_its_own_scores(monkeypatch):
    # 12 cells with one early score each (0.5; progress 0.1), 12 with a late one (-0.2; 0.9),
    # and 3 cells in the middle (1.0; 0.5): the middle bin has too few cells to be used
    def row(cell, progress, s05):
        return {"source": "s", "cell_id": cell, "score_p05": s05, "score_p95": -math.inf,
                "p05_censored": False, "fade_progress": progress}

    scores = ([row(f"e{i}", 0.1, 0.5) for i in range(12)]
              + [row(f"l{i}", 0.9, -0.2) for i in range(12)]
              + [row(f"m{i}", 0.5, 1.0) for i in range(3)]
              + [row("x", float("nan"), 5.0)])  # no progress: pooled only
    monkeypatch.setattr(ec, "_scores", lambda *a: (scores, []))
    out = ec.calibrate_end_of_life([], None, None)
    by = out["by_progress"]
    assert by["edges"] == pytest.approx([1 / 3, 2 / 3]) and by["min_cells"] == ec.MIN_BIN_CELLS
    early, middle, late = by["bins"]
    assert (early["scale_p05"], early["n_cells"], early["used"]) == (0.5, 12, True)
    assert (late["scale_p05"], late["n_cells"], late["used"]) == (-0.2, 12, True)
    # 3 cells: fewer than MIN_SOURCE_CELLS of its source, so no scale of its own either
    assert (middle["scale_p05"], middle["n_cells"], middle["used"]) == (None, 3, False)
    assert early["scale_p95"] is None
    # the pooled quantile sees every score, 1/28 per cell: -0.2 (cum 12/28), 0.5 (24/28),
    # 1.0 (27/28 ≥ 0.95) → 1.0
    assert out["n"] == 28 and out["scale_p05"] == pytest.approx(1.0)
    assert sum(b["n"] for b in by["bins"]) == 27  # the row without a progress is in no bin


def test_the_answer_reports_the_fade_progress_that_chose_the_widening(shipped_model):
    card, run = shipped_model
    n = np.arange(1, 151, dtype=float)
    hist = pd.DataFrame({"cycle_index": n, "test_time_second": n * 7200.0,
                         "discharge_capacity_ah": 1.0 - 0.001 * n})
    conf = {**card.conformal, "end_of_life": BINS}
    doc = forecast(hist, card=dataclasses.replace(card, conformal=conf), run=run,
                   horizon_cycles=600, nominal_capacity_ah=1.0)
    # the last 5 retentions 0.854 … 0.850: median 0.852, 0.148 of the 0.2 lost → 0.74 (late)
    assert doc["uncertainty"]["fade_progress"] == pytest.approx(0.74)
    assert "calibrated_widening" not in doc["end_of_life"]  # the late bin widens nothing
    early = dataclasses.replace(card, conformal={**card.conformal, "end_of_life": {
        **BINS, "by_progress": {**BINS["by_progress"], "edges": [0.8, 0.9]}}})
    doc = forecast(hist, card=early, run=run, horizon_cycles=600, nominal_capacity_ah=1.0)
    assert doc["end_of_life"]["calibrated_widening"]["fade_progress"] == pytest.approx(0.74)
    assert doc["end_of_life"]["calibrated_widening"]["p05"] == pytest.approx(math.log(2.0))
