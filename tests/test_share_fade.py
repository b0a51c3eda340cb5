"""The time share's own domain: a history fading faster for its age than any cell the share
was learnt from gets the 'unknown' share (identifiable: false), the capacity band untouched."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from ml.domain import share_fade_rate
from ml.export.card import _fade_rates
from ml.inference import forecast, load_model_dir
from ml.synthetic import make_cell
from ml.training.dataset import prepare_cells


def test_fade_rate_is_loss_over_root_hours():
    r = np.array([0.99, 1.0, 0.995, 0.97, 0.96, 0.95, 0.94])
    # loss = max(first 3) − median(last 3) = 1.0 − 0.95 = 0.05 at 400 h → log(0.05 / 20)
    assert share_fade_rate(r, np.linspace(0, 400, 7)) == pytest.approx(math.log(0.05 / 20.0))
    assert share_fade_rate(np.ones(5), np.arange(5.0)) is None  # no fade yet
    assert share_fade_rate(r[:2], np.arange(2.0)) is None  # too short


def test_trained_bound_is_the_95th_percentile_over_cells_with_truth():
    cells = prepare_cells([make_cell(f"c{i}", n_cycles=120, seed=i) for i in range(3)])
    got = _fade_rates(cells, (0.2, 0.8))
    values = []
    for c in cells:
        r, h = c.table["retention"].to_numpy(), c.table["elapsed_hour"].to_numpy()
        for f in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            n = max(3, int(round(f * len(r))))
            v = share_fade_rate(r[:n], h[:n])
            if v is not None:
                values.append(v)
    assert got == pytest.approx([min(values), float(np.percentile(values, 95))])
    for c in cells:  # without a known split the share domain is unknown
        c.loss_time = np.full(len(c.table), np.nan)
    assert _fade_rates(cells, (0.2, 0.8)) is None


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from ml.training.quick import train_quick_model

    return load_model_dir(train_quick_model(tmp_path_factory.getbasetemp() / "quick-model",
                                            n_cells=16, epochs=4, reuse=True))


def test_a_history_fading_faster_than_trained_gets_the_unknown_share(loaded):
    card, run = loaded
    hist = make_cell("fast", n_cycles=200, seed=3).cycles.iloc[:80].reset_index(drop=True)
    base = forecast(hist, card=card, run=run, horizon_cycles=20)
    rate = base["uncertainty"]["time_share_fade_rate"]["value"]
    assert rate is not None
    low = copy.deepcopy(card)
    low.training_domain["share_fade_rate"] = [rate - 5.0, rate - 1.0]  # trained on slower fade
    out = forecast(hist, card=low, run=run, horizon_cycles=20)
    fade = out["uncertainty"]["time_share_fade_rate"]
    assert fade == {"value": pytest.approx(rate), "trained_max": rate - 1.0, "outside": True}
    assert out["uncertainty"]["time_share_unknown_weight"] >= 0.5
    assert out["attribution"]["identifiable"] is False
    share = out["attribution"]["time_share"]
    assert share["p95"] - share["p05"] >= base["attribution"]["time_share"]["p95"] - \
        base["attribution"]["time_share"]["p05"]
    # the capacity band and the domain verdict are the share's business only
    assert out["forecast"] == base["forecast"] and out["domain"] == base["domain"]
    high = copy.deepcopy(card)
    high.training_domain["share_fade_rate"] = [rate - 5.0, rate + 1.0]
    assert forecast(hist, card=high, run=run, horizon_cycles=20)["uncertainty"][
        "time_share_fade_rate"]["outside"] is False
