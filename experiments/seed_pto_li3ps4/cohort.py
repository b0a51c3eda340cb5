"""The seed study as a COHORT: the cryomilled C/10 and 0.3C cells fitted jointly by the cohort
law (``ml.cohort``), the way the study's authors argued (same cycles, ~3× less time).

    python experiments/seed_pto_li3ps4/cohort.py [--json]   # standalone, prints the figures

``analyse(tables, truths)`` is what ``run.py`` calls with the pipeline's per-cycle tables
(ingested raw files → ``build_cycle_table``). Three questions:

1. Joint fit of both cells: the C/10 time share at cycle 100 (target ≥ 0.85, truth inside the
   90 % interval).
2. The C/10 cell ALONE: how wide is its interval, and which sibling does the design advise?
3. The 0.3C cell's trajectory predicted as a PLAN (its clock and C-rate only) from the C/10
   history alone: mean |error| in % of the reference, 90 % band coverage.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent.parent))

from ml.cohort.document import CellInput, PlanInput, solve  # noqa: E402

C10, C03 = "pto_cryo_c10", "pto_cryo_c03"
COLUMNS = ("cycle_index", "test_time_second", "discharge_capacity_ah", "cycle_duration_second",
           "rest_second", "c_rate", "temperature_celsius")


def _input(cid: str, table: pd.DataFrame) -> CellInput:
    return CellInput(cid, table[[c for c in COLUMNS if c in table.columns]].reset_index(
        drop=True), cid)


def _truth_share(truth: pd.DataFrame, cycle: int) -> float:
    row = truth[truth["cycle_index"] == cycle].iloc[0]
    return float(row["loss_time_frac"] / (row["loss_time_frac"] + row["loss_cycle_frac"]))


def analyse(tables: dict[str, pd.DataFrame], truths: dict[str, pd.DataFrame]) -> dict:
    """The three cohort figures (see the module docstring) as a JSON-safe dict."""
    c10, c03 = tables[C10], tables[C03]
    last = int(c10["cycle_index"].iloc[-1])
    joint = solve([_input(C10, c10), _input(C03, c03)], cohort_name="pto_cryomilled")
    alone = solve([_input(C10, c10)], cohort_name="pto_cryo_c10_alone")
    plan = c03[["cycle_index", "test_time_second", "c_rate"]].copy()
    whatif = solve([_input(C10, c10)], [PlanInput("c03_plan", plan, "plan")],
                   with_design=False)
    out = {"cycle": last}
    for name, res in (("joint", joint), ("alone", alone)):
        q = res.document["cells"][0]["attribution"]["time_share"]
        out[name] = {**q, "truth": _truth_share(truths[C10], last),
                     "width": q["p95"] - q["p05"],
                     "advice": res.document["identifiability"]["advice"],
                     "next_protocol": res.document["identifiability"]["next_protocol"]["label"]}
    q03 = joint.document["cells"][1]["attribution"]["time_share"]
    out["joint_c03"] = {**q03, "truth": _truth_share(truths[C03], int(c03["cycle_index"]
                                                                      .iloc[-1]))}
    fc = whatif.document["plans"][0]["forecast"]
    ref = float(whatif.document["cohort"]["reference_capacity_ah"])
    meas = c03["discharge_capacity_ah"].to_numpy(float)
    p50 = np.array([r["capacity_ah"]["p50"] for r in fc])
    lo = np.array([r["capacity_ah"]["p05"] for r in fc])
    hi = np.array([r["capacity_ah"]["p95"] for r in fc])
    out["plan_c03"] = {"mae_pct_of_reference": float(np.mean(np.abs(p50 - meas)) / ref * 100),
                       "coverage_pct": float(np.mean((meas >= lo) & (meas <= hi)) * 100),
                       "retention_p50_last": float(p50[-1] / ref),
                       "retention_measured_last": float(meas[-1] / ref),
                       "cycles": int(meas.size)}
    out["_curves"] = {"cycle": c03["cycle_index"].tolist(), "p05": lo.tolist(),
                      "p50": p50.tolist(), "p95": hi.tolist(), "measured": meas.tolist(),
                      "reference_ah": ref}
    return out


def figure(res: dict, tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """The 0.3C plan forecast from the C/10 history, against both cells' measurements."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ml.training.plots import save_png

    cur = res["_curves"]
    ref = cur["reference_ah"]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    x = np.asarray(cur["cycle"])
    ax.fill_between(x, np.asarray(cur["p05"]) / ref, np.asarray(cur["p95"]) / ref,
                    color="tab:orange", alpha=0.25, label="0.3C plan, 90 % band")
    ax.plot(x, np.asarray(cur["p50"]) / ref, color="tab:orange", label="0.3C plan, p50")
    ax.plot(x, np.asarray(cur["measured"]) / ref, ".", ms=3, color="k", label="0.3C measured")
    c10 = tables[C10]
    ax.plot(c10["cycle_index"], c10["discharge_capacity_ah"] / ref, ".", ms=3,
            color="tab:blue", label="C/10 measured (the only history used)")
    ax.set_xlabel("cycle")
    ax.set_ylabel("retention (of the C/10 reference)")
    ax.set_title("cohort law: 0.3C sibling predicted from the C/10 cell alone")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, path)


def _standalone_tables() -> tuple[dict, dict]:
    import cells

    k = cells.rates()
    tables, truths = {}, {}
    for cell in cells.CELLS[:2]:
        s = cells.schedule(cell, k[cell.cathode])
        tables[cell.cell_id] = pd.DataFrame({
            "cycle_index": s["cycle_index"], "test_time_second": s["end_hour"] * 3600.0,
            "discharge_capacity_ah": s["capacity_ah"], "c_rate": cell.c_rate,
            "rest_second": 2 * cells.REST_S, "temperature_celsius": cells.TEMPERATURE_C})
        truths[cell.cell_id] = s
    return tables, truths


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true",
                    help="the figures as ONE JSON line (what experiments/run_all.py reads)")
    args = ap.parse_args()
    t, tr = _standalone_tables()
    r = analyse(t, tr)
    r.pop("_curves")
    print(json.dumps(r, indent=None if args.json else 1))
