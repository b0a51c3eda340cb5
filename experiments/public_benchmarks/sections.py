"""One function per public data set; each returns ``{"figures": {...}, "rows": [...], "notes"}``.

Library code does the work: ``ml.sources`` loads the data in place, ``ml.evaluation`` scores
(suites, forecasters, metrics), ``ml.features`` fits A_w. Only the question-specific glue lives
here (which cut, which comparison).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ml.evaluation.forecasters import BaselineForecaster, first_crossing
from ml.evaluation.metrics import interval_coverage, mape
from ml.sources import CellRecord, load_source, split_by_cell

NAIVE = "naive_sqrt"


def _mean(values: list[float]) -> float:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else math.nan


def _retention_future(rec: CellRecord, seen: int, ref: float) -> tuple[np.ndarray, ...]:
    fut = rec.cycles.iloc[seen:]
    return (fut["cycle_index"].to_numpy(float), fut["test_time_second"].to_numpy(float) / 3600,
            fut["discharge_capacity_ah"].to_numpy(float) / ref)


def severson(model: Any) -> dict:
    """Severson suite (cycle life, train → test1) plus the full trajectory from 100 cycles."""
    from ml.evaluation.suites import run_suite

    suite = run_suite("severson", model=model)
    figures = {f"{r['figure'].replace('@', '_at_')}.{m}": v for r in suite["figures"]
               for m, v in r["values"].items() if v is not None}
    test = load_source("severson-test1")
    methods = {"model": model, NAIVE: BaselineForecaster(NAIVE)}
    acc: dict[str, dict[str, list]] = {m: {"err": [], "y": [], "lo": [], "hi": []}
                                       for m in methods}
    for rec in test:
        seen = int((rec.cycles["cycle_index"] <= 100).sum())
        if seen >= len(rec.cycles):
            continue
        hist = rec.cycles.iloc[:seen]
        cyc, hour, y = _retention_future(rec, seen, 1.1)
        for name, method in methods.items():
            if method is None:
                continue
            f = method(hist, cyc, hour, nominal_capacity_ah=1.1)
            acc[name]["err"].append(float(np.mean(np.abs(f.p50 - y)) * 100))
            if f.p05 is not None:
                acc[name]["y"].append(y)
                acc[name]["lo"].append(f.p05)
                acc[name]["hi"].append(f.p95)
    for name, a in acc.items():
        if not a["err"]:
            continue
        figures[f"trajectory_from_100.{name}.capacity_error_pct_of_nominal"] = _mean(a["err"])
        if a["y"]:
            figures[f"trajectory_from_100.{name}.coverage_90_pct"] = 100 * interval_coverage(
                np.concatenate(a["y"]), np.concatenate(a["lo"]), np.concatenate(a["hi"]))
    return {"figures": figures, "table": suite, "notes": suite["notes"]}


def pybamm_dev(model: Any) -> dict:
    """The pybamm-dev suite: held-out TEST cells of ``split_by_cell`` (seed 0)."""
    from ml.evaluation.suites import run_suite

    suite = run_suite("pybamm-dev", model=model)
    figures = {f"{r['figure'].replace('@', '_at_')}.{m}": v for r in suite["figures"]
               for m, v in r["values"].items() if v is not None}
    return {"figures": figures, "table": suite, "notes": suite["notes"]}


def geslin(model: Any, observed_fraction: float = 0.4) -> dict:
    """Time share vs average C-rate / storage; cycles and EFC to 90 % SOH (split by cell)."""
    recs = load_source("geslin2024")
    test_ids = set(split_by_cell(recs)["test"])
    rows, notes = [], []
    for rec in recs:
        n = len(rec.cycles)
        seen = min(max(5, math.ceil(observed_fraction * n)), n - 1)
        hist = rec.cycles.iloc[:seen]
        cyc, hour, y = _retention_future(rec, seen, 1.0)
        row = {"cell_id": rec.cell_id, "test_split": rec.cell_id in test_ids,
               "average_c_rate": rec.meta.get("average_c_rate"),
               "protocol": rec.meta.get("protocol_name"),
               "storage": "storage" in str(rec.meta.get("protocol_variant", "")),
               "true_cycles_to_90": rec.meta.get("cycles_to_soh90"),
               "true_efc_to_90": rec.meta.get("efc_to_soh90"),
               "seen_retention": float(hist["discharge_capacity_ah"].iloc[-1]),
               # EFC per cycle as seen in the history (used to turn cycles into EFC)
               "seen_efc_per_cycle": float(hist["equivalent_full_cycles"].iloc[-1]
                                           / hist["cycle_index"].iloc[-1])}
        # a long horizon so the 90 % crossing can be found beyond the recorded cycles
        grid = np.linspace(cyc[0], cyc[0] + 3 * (cyc[-1] - float(hist["cycle_index"].iloc[-1])),
                           60)
        pace = (hour[-1] - float(hist["test_time_second"].iloc[-1]) / 3600) / max(
            cyc[-1] - float(hist["cycle_index"].iloc[-1]), 1)
        ghour = float(hist["test_time_second"].iloc[-1]) / 3600 + (grid - float(
            hist["cycle_index"].iloc[-1])) * pace
        for name, method in (("model", model), (NAIVE, BaselineForecaster(NAIVE))):
            if method is None:
                continue
            try:
                f = method(hist, cyc, hour, nominal_capacity_ah=1.0)
                g = method(hist, grid, ghour, nominal_capacity_ah=1.0, eol_fraction=0.9)
            except Exception as exc:  # reported, the section goes on
                notes.append(f"{rec.cell_id} {name}: {type(exc).__name__}: {exc}")
                continue
            row[f"{name}_time_share"] = f.time_share
            row[f"{name}_capacity_error_pct"] = float(np.mean(np.abs(f.p50 - y)) * 100)
            pred = first_crossing(grid, g.p50, 0.9)
            row[f"{name}_cycles_to_90"] = pred
        rows.append(row)
    df = pd.DataFrame(rows)
    figures: dict[str, float] = {"cells": float(len(df)), "test_cells": float(df.test_split.sum())}
    for name in ("model", NAIVE):
        if f"{name}_time_share" not in df:
            continue
        ok = df[f"{name}_time_share"].notna() & df["average_c_rate"].notna()
        if ok.sum() > 2:
            rho = spearmanr(df.loc[ok, "average_c_rate"], df.loc[ok, f"{name}_time_share"])
            figures[f"{name}.spearman_time_share_vs_c_rate"] = float(rho.statistic)
        figures[f"{name}.time_share_median_storage"] = float(
            df.loc[df.storage, f"{name}_time_share"].median())
        figures[f"{name}.time_share_median_no_storage"] = float(
            df.loc[~df.storage, f"{name}_time_share"].median())
        figures[f"{name}.capacity_error_pct_all"] = float(df[f"{name}_capacity_error_pct"].mean())
        figures[f"{name}.capacity_error_pct_test"] = float(
            df.loc[df.test_split, f"{name}_capacity_error_pct"].mean())
        # cycles / EFC to 90 %: cells whose observed part has not crossed 90 % yet
        sc = df[(df.seen_retention > 0.9) & df.true_cycles_to_90.notna()
                & df[f"{name}_cycles_to_90"].notna()]
        figures[f"{name}.eol90_scored_cells"] = float(len(sc))
        figures[f"{name}.eol90_not_reached_in_horizon"] = float(
            ((df.seen_retention > 0.9) & df.true_cycles_to_90.notna()
             & df[f"{name}_cycles_to_90"].isna()).sum())
        if len(sc):
            figures[f"{name}.cycles_to_90_mape_pct"] = mape(sc.true_cycles_to_90,
                                                             sc[f"{name}_cycles_to_90"])
            efc_per_cycle = sc.seen_efc_per_cycle
            figures[f"{name}.efc_to_90_mape_pct"] = mape(
                sc.true_efc_to_90, sc[f"{name}_cycles_to_90"] * efc_per_cycle)
    notes.append("elapsed hours are the loader's estimate (2 × EFC / average C-rate); "
                 "EFC to 90 % predicted = predicted cycles × the EFC per cycle seen in the history; "
                 f"history = first {observed_fraction:.0%} of each cell's diagnostic points")
    return {"figures": figures, "rows": df.to_dict(orient="records"), "notes": notes}


def _aw_series(rec: CellRecord) -> pd.DataFrame:
    from ml.features import warburg_table

    fits = warburg_table(rec.meta["eis"])
    fits = fits[fits["ok"].astype(bool)]
    cap = rec.cycles.set_index("cycle_index")["discharge_capacity_ah"]
    fits = fits.assign(capacity_ah=cap.reindex(fits["cycle_count"].astype(int)).to_numpy())
    return fits.dropna(subset=["capacity_ah", "aw_ohm_per_sqrt_s"])


def zhang(model: Any, hours_per_cycle: float = 1.5) -> dict:
    """A_w vs capacity per cell (both EIS↔cycle readings); does A_w help the forecast?"""
    from ml.features.warburg_trend import align_warburg

    figures: dict[str, float] = {}
    rows, notes, series = [], [], []
    for offset in (0, 1):
        recs = [r for r in load_source("zhang2020", eis_cycle_offset=offset,
                                       hours_per_cycle=hours_per_cycle)
                if r.meta.get("eis") is not None]
        for rec in recs:
            s = _aw_series(rec)
            if len(s) < 5:
                notes.append(f"{rec.cell_id}: only {len(s)} usable A_w fits")
                continue
            rho = spearmanr(s["aw_ohm_per_sqrt_s"], s["capacity_ah"]).statistic
            rows.append({"cell_id": rec.cell_id, "offset": offset, "fits_ok": len(s),
                         "aw_first": float(s["aw_ohm_per_sqrt_s"].iloc[:3].median()),
                         "aw_last": float(s["aw_ohm_per_sqrt_s"].iloc[-3:].median()),
                         "cap_first_mah": float(s["capacity_ah"].iloc[:3].median() * 1e3),
                         "cap_last_mah": float(s["capacity_ah"].iloc[-3:].median() * 1e3),
                         "spearman_aw_vs_capacity": float(rho)})
            figures[f"{rec.cell_id}.offset{offset}.spearman_aw_vs_capacity"] = float(rho)
            if offset != 0:
                continue
            series += [{"cell_id": rec.cell_id, "cycle": int(c), "aw": float(a),
                        "capacity_mah": float(q) * 1e3} for c, a, q in zip(
                s["cycle_count"], s["aw_ohm_per_sqrt_s"], s["capacity_ah"])]
            if model is None:
                continue
            table = align_warburg(rec.cycles.assign(cell_id=rec.cell_id), rec.meta["eis"])
            n = len(table)
            seen = min(max(5, math.ceil(0.4 * n)), n - 1)
            cyc, hour, y = _retention_future(rec, seen, float(
                rec.cycles["discharge_capacity_ah"].iloc[:3].max()))
            for label, hist in (("with_aw", table.iloc[:seen]),
                                ("without_aw", rec.cycles.iloc[:seen])):
                f = model(hist, cyc, hour)
                figures[f"{rec.cell_id}.forecast_{label}.capacity_error_pct"] = float(
                    np.mean(np.abs(f.p50 - y)) * 100)
    notes.append(f"no clock in the files: elapsed time estimated at {hours_per_cycle} h per "
                 "cycle (assumption); A_w = fit_warburg on each spectrum (ok fits only)")
    return {"figures": figures, "rows": rows, "notes": notes, "series": series}


def nasa(model: Any, min_rest_hour: float = 24.0, max_change_pct: float = 20.0) -> dict:
    """Forecast the first cycle after each long rest (true rest hours as the pace)."""
    recs = load_source("nasa-pcoe")
    rows = []
    for rec in recs:
        c = rec.cycles.reset_index(drop=True)
        t = c["test_time_second"].to_numpy(float) / 3600
        gaps = np.diff(t)
        typical = float(np.median(gaps)) if len(gaps) else math.nan
        ref = float(c["discharge_capacity_ah"].iloc[:3].max())
        for i in np.flatnonzero(gaps > min_rest_hour):
            seen = i + 1
            if seen < 10:
                continue
            hist = c.iloc[:seen]
            y = float(c["discharge_capacity_ah"].iloc[seen]) / ref
            last = float(hist["discharge_capacity_ah"].iloc[-1]) / ref
            cyc = np.array([float(c["cycle_index"].iloc[seen])])
            row = {"cell_id": rec.cell_id, "cycle": int(cyc[0]), "rest_hour": float(gaps[i]),
                   "recovery_pct": (y - last) * 100, "last_retention": last}
            for name, method in (("model", model), (NAIVE, BaselineForecaster(NAIVE)),
                                 ("persistence", BaselineForecaster("persistence"))):
                if method is None:
                    continue
                with_rest = method(hist, cyc, np.array([t[i] + gaps[i]]))
                no_rest = method(hist, cyc, np.array([t[i] + typical]))
                row[f"{name}_error_pct"] = float((with_rest.p50[0] - y) * 100)
                row[f"{name}_rest_effect_pct"] = float((with_rest.p50[0] - no_rest.p50[0]) * 100)
            rows.append(row)
    df = pd.DataFrame(rows)
    # capacity jumps beyond ±max_change_pct across one rest are the data's junk values (the
    # manifest lists junk capacities), not recovery: counted and left out of the figures
    # and a last retention far from 1 means the reference (max of the first 3 capacities) is
    # itself a junk value, so every method's forecast in retention units is meaningless
    df["plausible"] = (df["recovery_pct"].abs() <= max_change_pct) & \
        df["last_retention"].between(0.5, 1.2)
    ok = df[df["plausible"]]
    figures: dict[str, float] = {"rests": float(len(df)),
                                 "rests_implausible_excluded": float((~df.plausible).sum()),
                                 "median_rest_hour": float(ok.rest_hour.median()),
                                 "mean_recovery_pct": float(ok.recovery_pct.mean()),
                                 "median_recovery_pct": float(ok.recovery_pct.median())}
    for name in ("model", NAIVE, "persistence"):
        if f"{name}_error_pct" in ok:
            figures[f"{name}.mean_error_pct"] = float(ok[f"{name}_error_pct"].mean())
            figures[f"{name}.median_error_pct"] = float(ok[f"{name}_error_pct"].median())
            figures[f"{name}.mean_abs_error_pct"] = float(ok[f"{name}_error_pct"].abs().mean())
            figures[f"{name}.mean_rest_effect_pct"] = float(ok[f"{name}_rest_effect_pct"].mean())
    notes = [f"a rest = a gap > {min_rest_hour:g} h between consecutive discharges; the first "
             "cycle after it is forecast from the history before it, with the true elapsed "
             "hours (rest included) as the pace; error = forecast − truth (% of the max of the "
             "first 3 capacities; negative = predicts more loss than happened); rest effect = "
             "forecast with the rest − forecast at the typical pace",
             f"rests whose measured capacity change exceeds ±{max_change_pct:g} %, or whose "
             "last retention lies outside 0.5–1.2 (a junk reference capacity), are junk "
             "values of the source (see MANIFEST), excluded and counted"]
    return {"figures": figures, "rows": df.to_dict(orient="records"), "notes": notes}
