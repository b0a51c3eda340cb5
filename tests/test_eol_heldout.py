"""experiments/eol_calibration/heldout.py: whether a served end-of-life interval holds the
truth, and the per-third summary, on hand-made answers."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments" / "eol_calibration"))
import heldout  # noqa: E402


def _eol(p05: int, p95: int, censored95: bool = False) -> dict:
    return {"cycle_index": {"p05": p05, "p50": (p05 + p95) // 2, "p95": p95},
            "censored": {"p05": False, "p50": False, "p95": censored95}}


def test_an_interval_holds_the_truth_between_its_ends_or_above_a_censored_p95():
    assert heldout._holds(_eol(100, 200), 150.0) == (True, 100.0)
    assert heldout._holds(_eol(100, 200), 100.0) == (True, 100.0)  # ends included
    assert heldout._holds(_eol(100, 200), 201.0) == (False, 100.0)
    assert heldout._holds(_eol(100, 200), 99.0) == (False, 100.0)
    assert heldout._holds(_eol(100, 200, censored95=True), 900.0) == (True, math.inf)
    assert heldout._holds(None, 150.0) == (False, math.inf)  # no end of life: holds nothing


def test_the_summary_splits_cuts_by_third_of_progress_and_weighs_cuts():
    def row(src, cell, progress, bins, pooled, wb=0.5, wp=0.8):
        return {"source": src, "cell_id": cell, "fade_progress": progress,
                "holds_bins": bins, "holds_pooled": pooled, "width_bins": wb,
                "width_pooled": wp}

    rows = [row("a", "a1", 0.1, True, True), row("a", "a1", 0.2, False, False),
            row("a", "a2", 0.9, True, True, 0.3, 0.6), row("b", "b1", 0.5, False, True),
            {"source": "b", "cell_id": "b2", "error": "refused"},
            row("b", "b3", None, True, True)]  # no progress: in no third
    out = {(r["source"], r["third"]): r for r in heldout.summarise(rows, [1 / 3, 2 / 3])}
    first = out[("a", "first third")]
    assert (first["cuts"], first["cells"], first["holds_bins_pct"]) == (2, 1, 50.0)
    assert out[("a", "last third")]["width_bins_median"] == pytest.approx(0.3)
    middle = out[("b", "middle third")]
    assert (middle["holds_bins_pct"], middle["holds_pooled_pct"]) == (0.0, 100.0)
    everything = out[("all", "first third")]
    assert (everything["cuts"], everything["cells"]) == (2, 1)
    assert ("b", "first third") not in out and ("all", "middle third") in out
    assert sum(r["cuts"] for r in out.values() if r["source"] == "all") == 4


def test_cuts_a_head_answered_are_summarised_apart():
    def head(src, cell, held, width):
        return {"source": src, "cell_id": cell, "threshold": 0.8, "fraction": 0.3,
                "head": "capacity", "holds_head": held, "width_head": width}

    rows = [head("s", "s1", True, 0.4), head("s", "s1", False, 0.2), head("s", "s2", True, 0.6),
            {"source": "t", "cell_id": "t1", "fade_progress": 0.1, "holds_bins": True,
             "holds_pooled": True, "width_bins": 0.5, "width_pooled": 0.8}]
    # the head cuts are not in the per-third table ...
    assert all(r["source"] == "t" or r["source"] == "all" for r in heldout.summarise(
        rows, [1 / 3, 2 / 3]))
    # ... but in their own rows: 2 of 3 hold, median width 0.4; one source: no 'all' row
    (only,) = heldout.summarise_heads(rows)
    assert only == {"source": "s", "cuts": 3, "cells": 2,
                    "holds_pct": pytest.approx(200 / 3), "width_median": pytest.approx(0.4)}
    two = heldout.summarise_heads(rows + [head("u", "u1", True, 1.0)])
    assert [r["source"] for r in two] == ["s", "u", "all"] and two[-1]["cuts"] == 4
    assert heldout.summarise_heads(rows[3:]) == []
