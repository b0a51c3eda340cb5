"""Replay finished cells cycle by cycle through the early-stopping policy (``ml.advice``).

For each cell that reached end of life (EOL) in its data, the history is cut every few cycles;
at each cut one forecast is made (through the caller's ``forecast_fn`` — the service passes its
onnxruntime path) and the policy decides stop / continue from the last few cuts. The test would
otherwise have run to the true EOL, so the planned test hours are those up to the true EOL.

Figures (:func:`summarize`): median fraction of planned test hours saved, the EOL prediction
error at the moment of stopping, and the share of correct pass/fail calls against a spec
(``min_cycles_to_eol`` = median true EOL of the training cells).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml.advice import AdvicePolicy, EolEstimate, advise, observed_eol_cycle, update_from_forecast
from ml.domain import verdict_failures

__all__ = ["BacktestConfig", "CellOutcome", "ForecastFn", "median_true_eol", "replay_cell",
           "run_backtest", "summarize", "true_end_of_life"]

#: (history rows, horizon_cycles, nominal_capacity_ah, eol_fraction) -> CONTRACTS forecast JSON
#: (with its ``domain`` answer, :mod:`ml.domain`, which gates a stop as in the API's advice)
ForecastFn = Callable[[pd.DataFrame, int, "float | None", float], dict]


@dataclass(frozen=True)
class BacktestConfig:
    """How the replay runs (cycles are counts; fractions are of the spec's EOL cycle)."""

    eol_fraction: float = 0.8
    tolerance_fraction: float = 0.05  # tolerance_cycles = this × spec
    updates_per_spec: int = 25  # a new forecast every spec / this cycles (at least 1)
    first_cut_fraction: float = 0.1  # first decision after this share of the spec
    horizon_factor: float = 2.0  # forecast out to max(factor × last cycle, 1.5 × spec)
    policy: AdvicePolicy = field(default_factory=AdvicePolicy)


@dataclass(frozen=True)
class CellOutcome:
    """What happened to one replayed cell."""

    cell_id: str
    true_eol_cycle: int
    true_pass: bool
    stopped: bool
    stop_cycle: int
    hours_saved_fraction: float
    predicted_eol_cycle: float
    eol_error_fraction: float
    called_pass: bool
    correct_call: bool
    reason: str
    n_forecasts: int
    stop_kind: str = "ran_to_end"  # eol_known | spec_pass | spec_fail | ran_to_end


def true_end_of_life(cycles: pd.DataFrame, *, eol_fraction: float = 0.8,
                     nominal_capacity_ah: float | None = None) -> tuple[int, float] | None:
    """(cycle index, test_time_second) of the first cycle below ``eol_fraction`` × reference.

    The reference is ``nominal_capacity_ah`` when given, else the maximum discharge capacity of
    the first 3 cycles (CONTRACTS). None when the cell never got there.
    """
    q = cycles["discharge_capacity_ah"].to_numpy(float)
    ref = float(nominal_capacity_ah) if nominal_capacity_ah else float(np.nanmax(q[:3]))
    hit = observed_eol_cycle(cycles["cycle_index"].to_numpy(), q / ref, eol_fraction)
    if hit is None:
        return None
    row = cycles.loc[cycles["cycle_index"] == hit].iloc[0]
    return int(hit), float(row["test_time_second"])


def replay_cell(cell_id: str, cycles: pd.DataFrame, forecast_fn: ForecastFn, *,
                spec_min_cycles: float, nominal_capacity_ah: float | None = None,
                config: BacktestConfig = BacktestConfig()) -> CellOutcome | None:
    """Replay one finished cell; None when it never reached end of life (no truth to score).

    Parameters
    ----------
    cycles:
        The cell's full per-cycle table (cycle_index increasing, test_time_second in s).
    forecast_fn:
        Makes one forecast from a history prefix (see :data:`ForecastFn`); its ``domain``
        answer out of domain keeps the test running (:func:`ml.domain.verdict_failures`).
    spec_min_cycles:
        The pass/fail spec: pass when the EOL cycle ≥ this.
    """
    cycles = cycles.sort_values("cycle_index").reset_index(drop=True)
    truth = true_end_of_life(cycles, eol_fraction=config.eol_fraction,
                             nominal_capacity_ah=nominal_capacity_ah)
    if truth is None:
        return None
    eol_cycle, eol_seconds = truth
    idx = cycles["cycle_index"].to_numpy(np.int64)
    q = cycles["discharge_capacity_ah"].to_numpy(float)
    t = cycles["test_time_second"].to_numpy(float)
    ref = float(nominal_capacity_ah) if nominal_capacity_ah else float(np.nanmax(q[:3]))
    tolerance = max(1.0, config.tolerance_fraction * spec_min_cycles)
    every = max(1, int(round(spec_min_cycles / config.updates_per_spec)))  # = 0.8 x tolerance
    first = max(int(idx[0]) + 2, int(math.ceil(config.first_cut_fraction * spec_min_cycles)))
    start_seconds = float(t[0]) - (float(t[1] - t[0]) if len(t) > 1 else 0.0)
    planned_seconds = eol_seconds - max(start_seconds, 0.0)
    true_pass = eol_cycle >= spec_min_cycles

    updates: list[EolEstimate] = []
    cut = first
    n_forecasts = 0
    decision = None
    while cut < eol_cycle:
        n_rows = int(np.searchsorted(idx, cut, side="right"))
        last = int(idx[n_rows - 1])
        end = max(int(config.horizon_factor * last), int(math.ceil(1.5 * spec_min_cycles)),
                  last + 1)
        doc = forecast_fn(cycles.iloc[:n_rows], end - last, nominal_capacity_ah,
                          config.eol_fraction)
        n_forecasts += 1
        updates.append(update_from_forecast(doc, last_cycle=last, reference_capacity_ah=ref,
                                            eol_fraction=config.eol_fraction,
                                            spec_min_cycles=spec_min_cycles,
                                            interval_scale=config.policy.interval_scale))
        loss = float(1.0 - np.median(q[max(0, n_rows - 3):n_rows]) / ref)
        failures = verdict_failures(doc.get("domain"))
        decision = advise(updates[-config.policy.stable_updates:], planned_cycles=eol_cycle,
                          tolerance_cycles=tolerance, hours_per_cycle=0.0,
                          loss_so_far_fraction=loss, domain_failures=failures,
                          spec_min_cycles=spec_min_cycles, policy=config.policy)
        if decision.decision == "stop":
            pred = decision.end_of_life.cycle[1]
            pp = decision.pass_probability
            called = bool(pp >= 0.5) if pp is not None and math.isfinite(pp) else \
                bool(math.isfinite(pred) and pred >= spec_min_cycles)
            saved = (eol_seconds - float(t[n_rows - 1])) / planned_seconds \
                if planned_seconds > 0 else 0.0
            err = abs(pred - eol_cycle) / eol_cycle if math.isfinite(pred) else math.nan
            kind = ("spec_pass" if "passes the spec" in decision.reason else
                    "spec_fail" if "fails the spec" in decision.reason else "eol_known")
            return CellOutcome(cell_id, eol_cycle, true_pass, True, last, float(saved),
                               float(pred), float(err), called, called == true_pass,
                               decision.reason, n_forecasts, kind)
        # the next cut: `every` cycles on, and at least the next recorded row (a history
        # recorded every few hundred cycles — capacity checks only — otherwise made the same
        # cut, and the same forecast, forever)
        cut = max(last + every, int(idx[n_rows])) if n_rows < len(idx) else eol_cycle
    # Never stopped: the test ran to its true end; the call is then made on observed data.
    reason = decision.reason if decision is not None else "history too short to replay"
    return CellOutcome(cell_id, eol_cycle, true_pass, False, eol_cycle, 0.0, math.nan,
                       math.nan, true_pass, True, reason, n_forecasts)


def summarize(outcomes: Sequence[CellOutcome]) -> dict[str, Any]:
    """The backtest figures over replayed cells (fractions in [0, 1]; NaN when undefined)."""
    if not outcomes:
        return {"n_cells": 0}
    stopped = [o for o in outcomes if o.stopped]
    saved = np.array([o.hours_saved_fraction for o in outcomes])
    errs = np.array([o.eol_error_fraction for o in stopped if math.isfinite(o.eol_error_fraction)])
    return {
        "n_cells": len(outcomes),
        "n_stopped_early": len(stopped),
        "median_hours_saved_fraction": float(np.median(saved)),
        "mean_hours_saved_fraction": float(np.mean(saved)),
        "median_eol_error_fraction_at_stop": float(np.median(errs)) if errs.size else math.nan,
        "p90_eol_error_fraction_at_stop": float(np.quantile(errs, 0.9)) if errs.size
        else math.nan,
        "correct_call_share": float(np.mean([o.correct_call for o in outcomes])),
        "correct_call_share_of_stopped": float(np.mean([o.correct_call for o in stopped]))
        if stopped else math.nan,
        "by_stop_kind": {kind: {
            "n_cells": len(group),
            "median_hours_saved_fraction": float(np.median([o.hours_saved_fraction
                                                            for o in group])),
            "median_eol_error_fraction": float(np.nanmedian([o.eol_error_fraction
                                                             for o in group]))
            if any(math.isfinite(o.eol_error_fraction) for o in group) else math.nan,
        } for kind in ("eol_known", "spec_pass", "spec_fail", "ran_to_end")
            if (group := [o for o in outcomes if o.stop_kind == kind])},
    }


def run_backtest(cells: Sequence[Any], forecast_fn: ForecastFn, *, spec_min_cycles: float,
                 config: BacktestConfig = BacktestConfig(),
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Replay ``cells`` (``ml.sources.CellRecord``-like) and return figures plus per-cell rows."""
    outcomes = []
    for rec in cells:
        out = replay_cell(rec.cell_id, rec.cycles, forecast_fn, spec_min_cycles=spec_min_cycles,
                          nominal_capacity_ah=(rec.meta or {}).get("nominal_capacity_ah"),
                          config=config)
        if out is not None:
            outcomes.append(out)
            if progress:
                progress(f"{rec.cell_id}: {'stop' if out.stopped else 'ran to end'} at "
                         f"{out.stop_cycle} (true EOL {out.true_eol_cycle}), saved "
                         f"{100 * out.hours_saved_fraction:.0f} %")
    return {"spec_min_cycles_to_eol": float(spec_min_cycles), **summarize(outcomes),
            "cells": [asdict(o) for o in outcomes]}


def median_true_eol(cells: Sequence[Any], *, eol_fraction: float = 0.8) -> float:
    """Median true EOL cycle of the cells that reached it (the backtest's spec)."""
    eols = [t[0] for rec in cells if (t := true_end_of_life(
        rec.cycles, eol_fraction=eol_fraction,
        nominal_capacity_ah=(rec.meta or {}).get("nominal_capacity_ah"))) is not None]
    return float(np.median(eols)) if eols else math.nan
