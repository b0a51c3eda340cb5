"""Severson suite: cycles to 80 % of 1.1 Ah (0.88 Ah) for the test1 cells, trained on train.

Methods, each scored by MAPE (%) and RMSE (cycles) against the ``y`` labels:

- elastic net (Severson 2019 recipe, log10 target) on the capacity-curve features of the first
  100 or 300 cycles (``severson-train`` → ``severson-test1``);
- elastic net on log10 var ΔQ100−10(V) alone (Severson's "variance model"), on the four ΔQ(V)
  summaries, and on capacity + ΔQ(V), from the first 100
  cycles (``severson-qdlin-train`` → ``severson-qdlin-test1``: same cells, other cleaning);
- per-cell extrapolation of the naive √t + N fit and the power law to 0.88 Ah;
- the production model (its ``end_of_life.cycle_index.p50``) given the same 100 / 300 cycles
  of capacity only (every method reads the same capacity histories: the source's
  ``charge_policy_c_rate`` column is dropped), (``model@100_charge_policy``) the same 100
  cycles WITH the charge policy's rate, which its ``capacity_charge_policy`` head reads, and
  (``model@100_qdlin``) the qdlin cells' cycles 2…100 WITH their ΔQ(V) summaries, so its
  cycle-life head can read them (clock estimated from the protocol).

Every figure is also given without the test cells whose life is below
:data:`ANOMALOUS_LIFE_CYCLES` (Severson's one anomalous test1 cell, 148 cycles, which the paper's
parenthetical figures exclude): ``mape_pct_excl_anomalous``.

Extrapolations that never reach 0.88 Ah within :data:`MAX_CYCLES` are censored at it (counted
in the output): a prediction of "at least MAX_CYCLES" is scored as MAX_CYCLES.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ml.evaluation.forecasters import BaselineForecaster
from ml.evaluation.metrics import mape, rmse
from ml.models.cycle_life_head import POLICY_COLUMN
from ml.models.baselines import (CAPACITY_FEATURES, DELTA_Q_FEATURES, ElasticNetCycleLife,
                                 early_cycle_features)
from ml.sources import CellRecord

NOMINAL_AH = 1.1
EOL_AH = 0.88
MAX_CYCLES = 3000
WINDOWS = (100, 300)
ANOMALOUS_LIFE_CYCLES = 200


def feature_table(cells: Sequence[CellRecord], n_cycles: int) -> pd.DataFrame:
    """One row of :func:`early_cycle_features` per cell (index = cell id)."""
    return pd.DataFrame([early_cycle_features(c.cycles, n_cycles=n_cycles) for c in cells],
                        index=[c.cell_id for c in cells])


def _labels(cells: Sequence[CellRecord]) -> np.ndarray:
    return np.array([c.meta["cycle_life"] for c in cells], dtype="float64")


def _score(pred: np.ndarray, y: np.ndarray, **extra: float) -> dict:
    usual = y >= ANOMALOUS_LIFE_CYCLES
    return {"mape_pct": mape(y, pred), "rmse_cycles": rmse(y, pred), "cells": int(len(y)),
            "mape_pct_excl_anomalous": mape(y[usual], pred[usual]) if usual.any() else None,
            "rmse_cycles_excl_anomalous": rmse(y[usual], pred[usual]) if usual.any() else None,
            **extra}


def elastic_net_scores(train: Sequence[CellRecord], test: Sequence[CellRecord],
                       n_cycles: int, features: Sequence[str]) -> dict:
    """Fit on ``train`` cells' features, score on ``test`` cells; adds ``l1_ratio``/``alpha``."""
    model = ElasticNetCycleLife(features=tuple(features))
    model.fit(feature_table(train, n_cycles), _labels(train))
    pred = model.predict(feature_table(test, n_cycles))
    return _score(pred, _labels(test), alpha=model.alpha_, l1_ratio=model.l1_ratio_)


def extrapolation_scores(test: Sequence[CellRecord], n_cycles: int,
                         method: Callable) -> dict:
    """Per-cell extrapolation of the first ``n_cycles`` to 0.88 Ah (censored at MAX_CYCLES)."""
    preds, censored, failed = [], 0, []
    for cell in test:
        history = cell.cycles[cell.cycles["cycle_index"] <= n_cycles]
        h = float(cell.meta["hours_per_cycle"])
        last = int(history["cycle_index"].iloc[-1])
        grid = np.arange(last + 1, MAX_CYCLES + 1, dtype="float64")
        try:
            f = method(history, grid, grid * h, nominal_capacity_ah=NOMINAL_AH,
                       eol_fraction=EOL_AH / NOMINAL_AH)
        except Exception as exc:  # reported in the output, the suite goes on
            failed.append(f"{cell.cell_id}: {type(exc).__name__}: {exc}")
            preds.append(np.nan)
            continue
        if f.eol_cycle is None:
            censored += 1
        preds.append(MAX_CYCLES if f.eol_cycle is None else f.eol_cycle)
    pred = np.asarray(preds)
    ok = np.isfinite(pred)
    y = _labels(test)
    if not ok.any():
        return {"mape_pct": float("nan"), "rmse_cycles": float("nan"), "cells": 0,
                "censored": censored, "failed": failed}
    return _score(pred[ok], y[ok], censored=censored, failed=failed)


def evaluate_cycle_life(severson: tuple[Sequence[CellRecord], Sequence[CellRecord]] | None,
                        qdlin: tuple[Sequence[CellRecord], Sequence[CellRecord]] | None,
                        methods: dict[str, Callable]) -> dict[str, dict]:
    """All Severson figures: ``{"<method>@<window>": {"mape_pct", "rmse_cycles", …}}``."""
    out: dict[str, dict] = {}
    if severson is not None:
        train, test = severson
        # the charge policy's rate (ml.sources.severson) is read by the model's
        # capacity_charge_policy head: the capacity-only figures drop it
        capacity_only = [dataclasses.replace(c, cycles=c.cycles.drop(
            columns=[POLICY_COLUMN], errors="ignore")) for c in test]
        for n in WINDOWS:
            out[f"elastic_net_capacity@{n}"] = elastic_net_scores(train, test, n,
                                                                  CAPACITY_FEATURES)
            for name, method in methods.items():
                out[f"{name}@{n}"] = extrapolation_scores(capacity_only, n, method)
        if "model" in methods and any(POLICY_COLUMN in c.cycles for c in test):
            out["model@100_charge_policy"] = extrapolation_scores(test, 100, methods["model"])
    if qdlin is not None:
        train, test = qdlin
        out["elastic_net_capacity@100_qdlin"] = elastic_net_scores(train, test, 100,
                                                                   CAPACITY_FEATURES)
        # Severson's "variance model": log10 var ΔQ100-10(V) alone
        out["elastic_net_variance@100_qdlin"] = elastic_net_scores(
            train, test, 100, ("log10_delta_q_v_variance",))
        out["elastic_net_delta_q@100_qdlin"] = elastic_net_scores(train, test, 100,
                                                                  DELTA_Q_FEATURES)
        out["elastic_net_capacity_delta_q@100_qdlin"] = elastic_net_scores(
            train, test, 100, CAPACITY_FEATURES + DELTA_Q_FEATURES)
        # the served forecast itself (ml.inference.forecast, as `fadecast forecast`) given the
        # ΔQ(V) columns: the qdlin tables have no clock, so one is estimated from the protocol
        pace = _median_pace(severson[1] if severson is not None else ())
        clocked = [with_estimated_clock(c, pace) for c in test]
        for name, method in methods.items():
            if name == "model":
                out[f"{name}@100_qdlin"] = extrapolation_scores(clocked, 100, method)
    return out


#: hours per cycle assumed for a clockless qdlin cell when no Severson policy is at hand (the
#: median of the train split's protocol estimates, ``ml.sources.severson.hours_per_cycle``)
DEFAULT_HOURS_PER_CYCLE = 0.65


def _median_pace(cells: Sequence[CellRecord]) -> float:
    paces = [float(c.meta["hours_per_cycle"]) for c in cells if c.meta.get("hours_per_cycle")]
    return float(np.median(paces)) if paces else DEFAULT_HOURS_PER_CYCLE


def with_estimated_clock(cell: CellRecord, hours_per_cycle: float) -> CellRecord:
    """A copy of a clockless cell with ``test_time_second`` = cycle × ``hours_per_cycle``
    (flagged ``test_time_estimated``) and ``meta["hours_per_cycle"]`` set."""
    t = cell.cycles.copy()
    t["test_time_second"] = t["cycle_index"].to_numpy(dtype="float64") * hours_per_cycle * 3600
    t["test_time_estimated"] = 1
    return CellRecord(cell.cell_id, t, cell.truth, {**cell.meta,
                                                    "hours_per_cycle": hours_per_cycle})


def naive_methods() -> dict[str, Callable]:
    """The per-cell extrapolation baselines of this suite."""
    return {"naive_sqrt": BaselineForecaster("naive_sqrt"),
            "power_law": BaselineForecaster("power_law")}
