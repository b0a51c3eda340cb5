"""End of life of Severson LFP cells from their first 100 cycles, through `fadecast forecast`.

For every cell of the chosen split, the per-cycle table a user would hand over — cycles 2…100,
discharge capacity, and the ΔQ₁₀₀₋₁₀(V) summaries on the cycle-100 row (``--no-delta-q`` drops
them) — is written to a CSV and forecast by the REAL command line::

    fadecast forecast --cycles CELL.csv --horizon-cycles 3000 --nominal-capacity-ah 1.1 --json

and the predicted cycle to 80 % of 1.1 Ah (p50) is scored against the label. The qdlin tables
have no clock: elapsed time is estimated at ``--hours-per-cycle`` per cycle (flagged
``test_time_estimated``; the cycle-life head ignores it). Read in place from ../shared/data.

    OMP_NUM_THREADS=1 python experiments/severson_early_life/run.py [--split test1] [--model URI]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HORIZON = 3000
NOMINAL_AH = 1.1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test1", choices=("train", "test1", "test2"),
                    help="test2: Severson's secondary test set, where the data carries it")
    ap.add_argument("--model", default=None, help="model URI (default: champion, else shipped)")
    ap.add_argument("--hours-per-cycle", type=float, default=0.65)
    ap.add_argument("--no-delta-q", action="store_true", help="capacity columns only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from ml.evaluation.cycle_life import with_estimated_clock
    from ml.sources import load_source

    cells = load_source(f"severson-qdlin-{args.split}")
    exe = [sys.executable, "-m", "serving.cli", "forecast"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="severson-early-") as tmp:
        for cell in cells:
            table = with_estimated_clock(cell, args.hours_per_cycle).cycles
            if args.no_delta_q:
                table = table[[c for c in table.columns if not c.startswith("delta_q")]]
            path = Path(tmp) / f"{cell.cell_id}.csv"
            table.to_csv(path, index=False)
            cmd = exe + ["--cycles", str(path), "--horizon-cycles", str(HORIZON),
                         "--nominal-capacity-ah", str(NOMINAL_AH), "--json"]
            if args.model:
                cmd += ["--model", args.model]
            got = subprocess.run(cmd, capture_output=True, text=True)
            if got.returncode != 0:
                rows.append({"cell_id": cell.cell_id, "error": got.stderr.strip()[-300:]})
                continue
            doc = json.loads(got.stdout)
            eol = doc.get("end_of_life")
            life = float(cell.meta["cycle_life"])
            q = eol["cycle_index"] if eol else {"p05": None, "p50": None, "p95": None}
            pred = float(q["p50"]) if q["p50"] is not None else float(HORIZON + 100)
            rows.append({"cell_id": cell.cell_id, "cycle_life": life, "p05": q["p05"],
                         "p50": pred, "p95": q["p95"],
                         "abs_pct_error": abs(pred - life) / life * 100.0,
                         # a censored p95 is a lower bound: the band reaches beyond it
                         "covered": bool(eol and q["p05"] <= life and (
                             life <= q["p95"] or (eol.get("censored") or {}).get("p95"))),
                         "head": ((doc.get("uncertainty") or {}).get("cycle_life_head") or {})
                         .get("head"),
                         "model": doc["model"]["version"]})
    ok = [r for r in rows if "error" not in r]
    err = np.array([r["abs_pct_error"] for r in ok])
    usual = np.array([r["cycle_life"] >= 200 for r in ok])
    summary = {"split": args.split, "cells": len(rows), "failed": len(rows) - len(ok),
               "delta_q_given": not args.no_delta_q,
               "mape_pct": float(err.mean()) if err.size else None,
               "mape_pct_excl_life_below_200": float(err[usual].mean()) if usual.any() else None,
               "coverage_90_pct": float(np.mean([r["covered"] for r in ok]) * 100) if ok else None,
               "heads": sorted({str(r["head"]) for r in ok}),
               "model": ok[0]["model"] if ok else None}
    if args.json:
        print(json.dumps({"summary": summary, "cells": rows}))
    else:
        print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
