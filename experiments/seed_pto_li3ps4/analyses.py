"""The three questions of the seed study, each answered through the running API.

1. ``attribution``: is the C/10 fade attributed to time? ``time_share`` (p05/p50/p95) from
   ``POST /v1/forecast`` at several cut points, against the simulator's truth.
2. ``what_if``: the C/10 cell's history with the future at 0.3C pace
   (``future_hours_per_cycle``), against the simulator's counterfactual (the same cell switched
   to 0.3C at the cut) and against the real 0.3C cell.
3. ``advice_replay``: what ``POST /v1/advice`` would have said, and when, during the
   1,000-cycle hand-milled test.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pipeline import history_rows, post


def truth_share(truth: pd.DataFrame, cycle: int) -> float:
    """lt / (lt + lc) of the simulator at ``cycle`` (NaN when there is no loss yet)."""
    row = truth.loc[truth["cycle_index"] == cycle].iloc[0]
    tot = row["loss_time_frac"] + row["loss_cycle_frac"]
    return float(row["loss_time_frac"] / tot) if tot > 0 else math.nan


def attribution(client: Any, cell_id: str, table: pd.DataFrame, truth: pd.DataFrame,
                cuts: list[int]) -> pd.DataFrame:
    """Time share with its interval at each cut (one forecast per cut)."""
    rows = []
    for cut in cuts:
        doc = post(client, "/v1/forecast", {"cell": {"cell_id": cell_id},
                                             "history": history_rows(table, cut),
                                             "horizon_cycles": 1})
        ts = doc["attribution"]["time_share"]
        rows.append({"cycle": cut, "hour": float(table.loc[table["cycle_index"] == cut,
                                                            "test_time_second"].iloc[0]) / 3600,
                     "p05": ts["p05"], "p50": ts["p50"], "p95": ts["p95"],
                     "truth": truth_share(truth, cut)})
    return pd.DataFrame(rows)


def _forecast_frame(doc: dict, reference_ah: float) -> pd.DataFrame:
    return pd.DataFrame([{"cycle": r["cycle_index"], "hour": r["test_time_second"] / 3600,
                          "p05": r["capacity_ah"]["p05"] / reference_ah,
                          "p50": r["capacity_ah"]["p50"] / reference_ah,
                          "p95": r["capacity_ah"]["p95"] / reference_ah,
                          "loss_time": r["loss_time_fraction"],
                          "loss_cycle": r["loss_cycle_fraction"]} for r in doc["forecast"]])


def reference_ah(table: pd.DataFrame) -> float:
    """CONTRACTS reference capacity: max discharge capacity of the first 3 cycles (Ah)."""
    return float(table["discharge_capacity_ah"].iloc[:3].max())


def what_if(client: Any, cell_id: str, table: pd.DataFrame, cut: int, horizon: int,
            hours_per_cycle: dict[str, float]) -> dict[str, pd.DataFrame]:
    """One forecast per named pace (h per future cycle) from the history up to ``cut``."""
    ref = reference_ah(table)
    out = {}
    for name, pace in hours_per_cycle.items():
        doc = post(client, "/v1/forecast", {"cell": {"cell_id": cell_id},
                                             "history": history_rows(table, cut),
                                             "horizon_cycles": horizon,
                                             "future_hours_per_cycle": pace})
        frame = _forecast_frame(doc, ref)
        frame.attrs["time_share"] = doc["attribution"]["time_share"]
        out[name] = frame
    return out


def band_errors(pred: pd.DataFrame, truth_cycles: np.ndarray, truth_ret: np.ndarray) -> dict:
    """Mean |p50 − truth| (% of reference), coverage of [p05, p95] (%), and the error at the
    last common cycle (% of reference)."""
    merged = pd.DataFrame({"cycle": truth_cycles, "truth": truth_ret}).merge(pred, on="cycle")
    if merged.empty:
        return {"mae_pct": math.nan, "coverage_pct": math.nan, "last_error_pct": math.nan,
                "last_p50": math.nan, "last_cycle": 0, "n": 0}
    err = (merged["p50"] - merged["truth"]) * 100
    inside = (merged["truth"] >= merged["p05"]) & (merged["truth"] <= merged["p95"])
    return {"mae_pct": float(err.abs().mean()), "coverage_pct": float(inside.mean() * 100),
            "last_error_pct": float(err.iloc[-1]), "last_p50": float(merged["p50"].iloc[-1]),
            "last_cycle": int(merged["cycle"].iloc[-1]), "n": int(len(merged))}


def advice_replay(client: Any, cell_id: str, table: pd.DataFrame, *, cuts: list[int],
                  planned_cycles: int, tolerance_cycles: float, eol_fraction: float,
                  spec_min_cycles: float | None, cell_info: dict) -> pd.DataFrame:
    """One ``POST /v1/advice`` per cut; the decision, reason, EOL band and P(pass)."""
    rows = []
    for cut in cuts:
        body = {"cell": {"cell_id": cell_id, **cell_info}, "history": history_rows(table, cut),
                "eol_fraction": eol_fraction, "planned_cycles": planned_cycles,
                "tolerance_cycles": tolerance_cycles}
        if spec_min_cycles is not None:
            body["spec"] = {"min_cycles_to_eol": spec_min_cycles}
        doc = post(client, "/v1/advice", body)
        eol = doc["end_of_life"]["cycle_index"]
        rows.append({"cycle": cut, "decision": doc["decision"], "reason": doc["reason"],
                     "eol_p05": eol["p05"], "eol_p50": eol["p50"], "eol_p95": eol["p95"],
                     "pass_probability": doc.get("pass_probability"),
                     "hours_saved_if_stopped": doc["hours_saved_if_stopped"],
                     **{f"check_{k}": v for k, v in doc["checks"].items()}})
    return pd.DataFrame(rows)


def policy_replay(client: Any, cell_id: str, table: pd.DataFrame, *, spec_min_cycles: float,
                  eol_fraction: float) -> dict:
    """``ml.backtest.replay_cell`` with forecasts from ``POST /v1/forecast`` and NO domain guard:
    what the stop rule alone would have said (its default cadence: every spec/25 cycles)."""
    from dataclasses import asdict

    from ml.backtest import BacktestConfig, replay_cell

    def forecast_fn(history: pd.DataFrame, horizon: int, nominal: float | None,
                    eol: float) -> dict:
        doc = post(client, "/v1/forecast", {"cell": {"cell_id": cell_id},
                                             "history": history_rows(history),
                                             "horizon_cycles": int(horizon),
                                             "eol_fraction": eol})
        doc.pop("domain", None)  # the replay gates on the forecast's domain answer: drop it
        return doc

    out = replay_cell(cell_id, table, forecast_fn, spec_min_cycles=spec_min_cycles,
                      config=BacktestConfig(eol_fraction=eol_fraction))
    return {} if out is None else asdict(out)


def first_stop(replay: pd.DataFrame) -> dict:
    """The first cut where the advice said stop (empty dict if never)."""
    stops = replay[replay["decision"] == "stop"]
    return {} if stops.empty else stops.iloc[0].to_dict()
