"""Posterior samples weighed by their backcast of the recent history (ml.history_likelihood):
hand-computed weights and resampling, the forecast path, and the calibration's choice of τ."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from ml.history_likelihood import (backcast_indices, effective_samples, resample_indices,
                                   sample_log_likelihood, weigh_samples)


def test_resampling_by_hand():
    # weights 0.1 0.2 0.3 0.4 -> cdf 0.1 0.3 0.6 1.0; positions 0.125 0.375 0.625 0.875
    lw = np.log([0.1, 0.2, 0.3, 0.4])
    assert resample_indices(lw).tolist() == [1, 2, 3, 3]
    assert resample_indices(np.zeros(5)).tolist() == [0, 1, 2, 3, 4]
    assert resample_indices(np.array([0.0, 0.0, 200.0])).tolist() == [2, 2, 2]
    assert effective_samples(np.zeros(8)) == pytest.approx(8.0)
    # Kish: (0.1+0.2+0.3+0.4)^2 / (0.01+0.04+0.09+0.16) = 1 / 0.3
    assert effective_samples(lw) == pytest.approx(1.0 / 0.3)


def test_log_likelihood_by_hand():
    retention = np.array([1.0, 0.99, 0.98])
    back = np.stack([retention, retention + 0.01], axis=1)  # sample 0 exact, sample 1 off 0.01
    ll = sample_log_likelihood(back, retention, tempering=0.5)
    assert ll[0] == pytest.approx(-0.5 * 0.5 * 3 * math.log(1e-8))
    assert ll[1] == pytest.approx(-0.5 * 0.5 * 3 * math.log(1e-4 + 1e-8))
    # no weighting: tempering 0, or fewer than 3 finite rows
    assert not np.any(sample_log_likelihood(back, retention, 0.0))
    assert not np.any(sample_log_likelihood(back, np.array([1.0, np.nan, np.nan]), 1.0))


def test_backcast_rows_are_the_later_half_of_the_rows_the_model_reads():
    assert backcast_indices(10, 64).tolist() == [5, 6, 7, 8, 9]
    rows = backcast_indices(200, 64)
    assert len(rows) == 32 and rows[-1] == 199 and rows[0] > 90


def _two_shapes(n_hist: int, n_future: int, k: int = 8):
    """Samples [rows, K]: half follow a straight line, half bend (√-like) — both start at 1."""
    n = np.arange(1, n_hist + n_future + 1, dtype=float)
    straight = 1.0 - 0.002 * n
    bent = 1.0 - 0.02 * np.sqrt(n) + 0.02
    return n, np.stack([straight] * (k // 2) + [bent] * (k // 2), axis=1)


def test_weighing_keeps_the_shape_the_recent_history_supports():
    n, samples = _two_shapes(40, 60)
    observed = samples[:40, -1]  # the history follows the bent shape
    back = samples[20:40]
    out, ess = weigh_samples({"cap": samples[40:]}, back, observed[20:], tempering=0.5)
    # every resampled sample is a bent one: the median moves onto the bent curve, the spread
    # (straight vs bent) stays: the samples are the unweighted ones moved by that difference
    fut = samples[40:]
    moved = fut + (fut[:, -1] - np.median(fut, axis=1))[:, None]
    np.testing.assert_allclose(out["cap"], moved)
    np.testing.assert_allclose(np.median(out["cap"], axis=1), fut[:, -1])
    assert ess == pytest.approx(4.0, rel=1e-6)  # four equally good samples
    same, k = weigh_samples({"cap": samples[40:]}, back, observed[20:], tempering=0.0)
    assert same["cap"] is not None and k == 8.0
    np.testing.assert_array_equal(same["cap"], samples[40:])


def _history(n: int) -> pd.DataFrame:
    from ml.synthetic import make_cell

    return make_cell("hl", seed=2, n_cycles=n + 5, stop_retention=0.0).cycles.iloc[:n]


@pytest.fixture(scope="module")
def quick_card(tmp_path_factory):
    from ml.inference import load_model_dir
    from ml.training.quick import train_quick_model

    folder = train_quick_model(tmp_path_factory.getbasetemp() / "quick-model", n_cells=16,
                               epochs=4, reuse=True)
    return load_model_dir(folder)[0]


def test_forecast_weighs_samples_when_the_card_says_so(quick_card):
    """forecast(): with τ in the card the samples whose backcast misses the recent history are
    dropped and the answer says how many effective samples remained; τ = 0 serves them as is."""
    from ml.inference import forecast

    card = dataclasses.replace(quick_card, conformal={}, cycle_life={})
    hist = _history(60)
    level = hist["discharge_capacity_ah"].to_numpy() / hist["discharge_capacity_ah"].iloc[:3].max()
    k = 8

    def run(inputs):
        qc = inputs["query_cycle"][0].astype(float)
        # sample j: level at the last cycle, then a slope; the even samples match the history's
        # own slope before the end, the odd ones are 10x too steep
        slope_true = (level[-1] - level[-11]) / 10.0
        slopes = np.array([slope_true if j % 2 == 0 else 10 * slope_true for j in range(k)])
        cap = level[-1] + (qc[:, None] - qc_last) * slopes[None, :]
        zero = np.full_like(cap, 0.01)
        return {"capacity_fraction": cap[None].astype(np.float32),
                "loss_time_fraction": zero[None].astype(np.float32),
                "loss_cycle_fraction": zero[None].astype(np.float32)}

    qc_last = float(hist["cycle_index"].iloc[-1])
    plain = forecast(hist, card=dataclasses.replace(card, history_weighting={}), run=run,
                     horizon_cycles=30)
    weighted = forecast(hist, card=dataclasses.replace(card, history_weighting={
        "tempering": 1.0}), run=run, horizon_cycles=30)
    hw = weighted["uncertainty"]["history_weighting"]
    # 60 rows thinned to max_history evenly spaced rows; the later half judges the samples
    assert hw["tempering"] == 1.0
    assert hw["backcast_rows"] == card.window_spec().max_history // 2 < 30
    assert hw["effective_samples"] == pytest.approx(4.0, rel=1e-3)
    assert plain["uncertainty"]["history_weighting"] == {
        "tempering": 0.0, "backcast_rows": 0, "applied": False, "effective_samples": float(k)}
    assert hw["applied"] is True
    # the time share is never weighed (one cell's curve cannot tell time from cycles)
    assert weighted["attribution"] == plain["attribution"]
    # the weighted median follows the history's own slope (the even samples): higher at the
    # horizon than the unweighted one, which sits between the two slopes; the band keeps the
    # samples' spread (the trend check widens the unweighted one more: its median strays
    # further from the history's trend)
    last_p = plain["forecast"][-1]["capacity_ah"]
    last_w = weighted["forecast"][-1]["capacity_ah"]
    assert last_w["p50"] > last_p["p50"]
    assert 0.5 < (last_w["p95"] - last_w["p05"]) / (last_p["p95"] - last_p["p05"]) <= 1.0


def test_calibration_picks_tempering_on_calibration_cells_only():
    """select_tempering: when the samples disagree in shape and the truth follows one of them,
    a τ > 0 lowers the calibration error and is chosen; identical samples keep τ = 0."""
    from ml.synthetic import make_cell
    from ml.training.calibration import _cut_outputs, select_tempering
    from ml.training.dataset import fit_scaler, prepare_cells

    cells = prepare_cells([make_cell(f"c{i}", n_cycles=120, seed=i) for i in range(3)])
    scaler = fit_scaler(cells)

    def predict_for(spread: float):
        def predict(batch):
            # batch row b is cells[b] (cut_windows keeps the order); sample j: the cell's own
            # retention tilted by j * spread per 100 cycles — sample 0 is the truth, the
            # unweighted median sits between samples 3 and 4; spread 0: eight equal samples
            qc = batch["query_cycle"].astype(float)
            out = np.zeros(qc.shape + (8,), dtype=np.float32)
            for b in range(len(qc)):
                table = cells[b].table
                base = np.interp(qc[b], table["cycle_index"], table["retention"])
                out[b] = base[:, None] - qc[b][:, None] * (np.arange(8) * spread)[None] / 100.0
            zero = np.full_like(out, 0.01)
            return {"capacity_fraction": out, "loss_time_fraction": zero,
                    "loss_cycle_fraction": zero}
        return predict

    cuts = _cut_outputs(predict_for(0.01), cells, scaler, max_history=64)
    pick = select_tempering(cuts)
    assert pick["tempering"] > 0.0
    errors = dict(zip(pick["grid"], pick["capacity_error_pct"]))
    assert errors[pick["tempering"]] < errors[0.0]
    flat = select_tempering(_cut_outputs(predict_for(0.0), cells, scaler, max_history=64))
    assert flat["tempering"] == 0.0


def test_the_answer_says_where_its_pace_came_from_and_flags_periodic_rests(quick_card):
    """domain["pace"]: the CONTRACTS default (median of the last 10 cycle durations) is kept,
    but a history whose recent mean duration is far above that median (rests every few
    cycles) gets a note naming both figures and the option to state the pace."""
    from ml.inference import forecast

    cyc = np.arange(1, 41)
    dur = np.where(cyc % 5 == 0, 8.0 + 48.0, 8.0)
    hist = pd.DataFrame({"cycle_index": cyc, "test_time_second": np.cumsum(dur) * 3600.0,
                         "discharge_capacity_ah": np.linspace(5.0, 4.8, 40)})
    k = 4

    def run(inputs):
        h = inputs["query_cycle"].shape[1]
        cap = np.tile(np.linspace(0.97, 0.99, k, dtype=np.float32), (1, h, 1))
        return {"capacity_fraction": cap, "loss_time_fraction": np.full_like(cap, 0.01),
                "loss_cycle_fraction": np.full_like(cap, 0.01)}

    card = dataclasses.replace(quick_card, conformal={}, cycle_life={}, history_weighting={})
    pace = forecast(hist, card=card, run=run, horizon_cycles=5)["domain"]["pace"]
    # last 10 durations: eight of 8 h and two of 56 h -> median 8, mean 17.6
    assert pace["hours_per_cycle"] == pytest.approx(8.0)
    assert pace["recent_mean_hours_per_cycle"] == pytest.approx(17.6)
    assert "17.6 h on average" in pace["note"] and "--hours-per-cycle" in pace["note"]
    given = forecast(hist, card=card, run=run, horizon_cycles=5, hours_per_cycle=17.6)
    assert given["domain"]["pace"]["source"] == "given" and given["domain"]["pace"]["note"] is None
