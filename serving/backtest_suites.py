"""The cells ``fadecast backtest`` replays, and the glue from the service's model to
``ml.backtest`` (which stays free of serving code).

Suites: ``synthetic`` — a fresh ``ml.synthetic`` fleet (its own seed, so no cell was seen in
training), spec and test cells from ``split_by_cell``; ``pybamm-dev`` — the held-out TEST cells
of ``ml.sources.load_source("pybamm-dev")`` when ../shared/data is present, spec = median true
EOL of its TRAIN cells. Real cells (when ../shared/data is present): ``severson-test1`` — the
Severson LFP test cells (capacity histories with the charge policy's planned mean charge rate,
which a user running the test knows; no ΔQ(V) columns), spec = median true EOL of
``severson-train``; ``nasa-pcoe`` and ``geslin2024`` — sources the shipped model never trained
on, split like pybamm-dev (spec from their TRAIN cells, replayed: their TEST cells).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from data_registry.errors import FadecastError

__all__ = ["SUITES", "load_suite", "run_suites"]

SUITES = ("synthetic", "pybamm-dev", "severson-test1", "nasa-pcoe", "geslin2024")
#: suites of real cells whose spec comes from another source's cells (the rest: a cell split)
SPEC_SOURCE = {"severson-test1": "severson-train"}
SYNTHETIC_SEED = 20_261_125
SYNTHETIC_CELLS = 60


def load_suite(name: str) -> tuple[list[Any], list[Any]]:
    """(training cells for the spec, held-out cells to replay) of one suite."""
    from ml.sources.splits import split_by_cell

    if name == "synthetic":
        from ml.synthetic import make_fleet

        cells = make_fleet(SYNTHETIC_CELLS, seed=SYNTHETIC_SEED, prefix="bt")
    elif name in SPEC_SOURCE:
        from ml.sources import load_source

        return load_source(SPEC_SOURCE[name]), load_source(name)
    elif name in SUITES:
        from ml.sources import load_source

        cells = load_source(name)
    else:
        raise FadecastError(f"unknown backtest suite '{name}'", code="unknown_suite",
                            column="--suite", expected=" | ".join(SUITES), found=name)
    split = split_by_cell(cells, seed=0)
    by_id = {c.cell_id: c for c in cells}
    train = [by_id[i] for i in split["train"]]
    test = [by_id[i] for i in split["test"]]
    return train, test


def _forecast_fn(model: Any) -> Callable[[pd.DataFrame, int, float | None, float], dict]:
    from serving.history import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
    from serving.predict import forecast_document

    def run(frame: pd.DataFrame, horizon: int, nominal: float | None, eol: float) -> dict:
        keep = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in frame.columns]
        return forecast_document(model, frame[keep], horizon_cycles=horizon, eol_fraction=eol,
                                 nominal_capacity_ah=nominal)

    return run


def run_suites(model_uri: str | None, suites: Sequence[str] | None,
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Replay every requested suite (default: all available) through the early-stopping policy."""
    from ml.advice import AdvicePolicy
    from ml.backtest import BacktestConfig, median_true_eol, run_backtest
    from serving.runtime import load_forecaster

    model = load_forecaster(model_uri)
    chosen = list(suites) if suites else list(SUITES)
    # the same policy the API applies: bands widened by the card's measured coverage
    config = BacktestConfig(policy=AdvicePolicy(interval_scale=model.interval_scale))
    report: dict[str, Any] = {"model": {"name": model.name, "version": model.version},
                              "interval_scale": model.interval_scale, "suites": {}}
    for name in chosen:
        try:
            train, test = load_suite(name)
        except FadecastError as exc:
            if suites:  # asked for explicitly: a missing source is an error
                raise
            report["suites"][name] = {"skipped": str(exc)}
            continue
        spec = median_true_eol(train)
        report["suites"][name] = run_backtest(test, _forecast_fn(model), spec_min_cycles=spec,
                                              config=config,
                                              progress=progress)
    return report
