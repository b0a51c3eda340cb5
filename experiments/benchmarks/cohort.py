"""Cohort attribution speed: a cohort of 5 sibling cells × 300 cycles, answered in process.

    OMP_NUM_THREADS=1 python experiments/benchmarks/cohort.py [--repeats 5]

Times :func:`ml.cohort.document.attribute` (joint MAP + Laplace posterior, the joint
least-squares reference, per-cell attribution and the next-protocol design over 20
candidates) and the same body through ``POST /v1/cohorts/attribution`` (in-process
``TestClient``). Goal: ≤ 2 s per answer on this machine. Prints one JSON line of figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ml.cohort.document import CellInput, attribute, solve  # noqa: E402

PROTOCOLS = ((0.2, 0.0, 1), (1.0, 0.0, 1), (1.0, 8.0, 1), (0.3, 48.0, 5), (0.5, 4.0, 1))
COLUMNS = ["cycle_index", "test_time_second", "discharge_capacity_ah", "c_rate", "rest_second",
           "temperature_celsius"]


def cohort(n_cycles: int = 300) -> list:
    """5 synthetic siblings (one shared law) with exactly ``n_cycles`` cycles each."""
    from ml.synthetic import CellParams, simulate_cell

    out = []
    for j, (c, rest, every) in enumerate(PROTOCOLS):
        p = CellParams(cell_id=f"bench_{j}", c_rate=c, rest_hour=rest, rest_every_n_cycles=every,
                       time_scale=0.06, cycle_scale=0.03 * (c / 0.5) ** 0.5,
                       n_cycles=n_cycles, stop_retention=0.0, noise_frac=0.001)
        r = simulate_cell(p, seed=j)
        assert len(r.cycles) == n_cycles
        out.append(CellInput(r.cell_id, r.cycles[COLUMNS], r.cell_id))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    cells = cohort()
    sizes = [len(c.frame) for c in cells]
    attribute(cells)  # warm-up (imports, caches)
    times, parts = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        attribute(cells)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        solve(cells, with_design=False, with_reference=False)
        parts.append(time.perf_counter() - t0)
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import Settings

    body = {"cells": [{"cell_id": c.cell_id, "history": [
        {k: (int(v) if k == "cycle_index" else float(v)) for k, v in row.items()}
        for row in c.frame.to_dict(orient="records")]} for c in cells]}
    http = []
    with TestClient(create_app(Settings(model_uri="/nonexistent"))) as client:
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            r = client.post("/v1/cohorts/attribution", json=body)
            http.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text[:300]
    fig = {"cells": len(cells), "cycles_per_cell": sizes, "repeats": args.repeats,
           "attribute_s_median": statistics.median(times), "attribute_s_max": max(times),
           "fit_only_s_median": statistics.median(parts),
           "http_s_median": statistics.median(http), "goal_s": 2.0,
           "goal_met": statistics.median(http) <= 2.0 and statistics.median(times) <= 2.0}
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in fig.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
