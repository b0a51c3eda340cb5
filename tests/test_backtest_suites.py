"""``fadecast backtest`` end to end on the synthetic suite with the session's real model."""
from __future__ import annotations

import json

import pytest

from data_registry.errors import FadecastError
from ml.backtest import true_end_of_life
from serving.backtest_suites import load_suite
from serving.cli import main
from test_serving_model import serving_model_dir  # noqa: F401


def test_backtest_cli_replays_every_finished_test_cell(serving_model_dir, capsys):  # noqa: F811
    train, test = load_suite("synthetic")
    assert not {c.cell_id for c in train} & {c.cell_id for c in test}
    finished = [c for c in test if true_end_of_life(
        c.cycles, nominal_capacity_ah=c.meta.get("nominal_capacity_ah")) is not None]
    assert main(["backtest", "--model", str(serving_model_dir), "--suite", "synthetic",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"]["version"] == "quick-0"
    res = doc["suites"]["synthetic"]
    assert res["n_cells"] == len(finished) > 0
    assert {c["cell_id"] for c in res["cells"]} == {c.cell_id for c in finished}
    for key in ("median_hours_saved_fraction", "correct_call_share"):
        assert 0.0 <= res[key] <= 1.0
    for cell in res["cells"]:
        assert cell["stop_cycle"] <= cell["true_eol_cycle"]
        assert cell["correct_call"] == (cell["called_pass"] == cell["true_pass"])
    saved = sorted(c["hours_saved_fraction"] for c in res["cells"])
    mid = len(saved) // 2
    median = saved[mid] if len(saved) % 2 else (saved[mid - 1] + saved[mid]) / 2
    assert res["median_hours_saved_fraction"] == pytest.approx(median)


def test_unknown_suite():
    with pytest.raises(FadecastError, match="unknown backtest suite 'nope'"):
        load_suite("nope")


def test_real_cell_suites_take_their_spec_from_other_cells(shared_data):
    from ml.backtest import median_true_eol

    # Severson: the test1 cells replayed, the spec from the severson-train cells
    train, test = load_suite("severson-test1")
    assert {c.cell_id.split("-")[1] for c in train} == {"train"}
    assert {c.cell_id.split("-")[1] for c in test} == {"test1"}
    assert 300 < median_true_eol(train) < 1500
    # Geslin (never trained on): a cell split of the source, no cell on both sides
    train, test = load_suite("geslin2024")
    assert train and test and not {c.cell_id for c in train} & {c.cell_id for c in test}
