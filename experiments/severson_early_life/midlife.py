"""End of life of Severson LFP cells forecast from part of their life (capacity histories only).

The early-life study (``run.py``) forecasts from cycle 100, where the ΔQ(V) cycle-life head
applies. This one cuts each cell that reached 80 % of 1.1 Ah at a FRACTION of its true end of life
(a cycle-life head of window W reads histories ending at cycles W…2W, for each window the card
keeps a head at: most cuts;
the figures count the forecasts a head set) and asks the served forecast
(``serving.predict.forecast_document``, the CLI's and API's path) for the cycle to 80 %:

* median signed error of the p50 (positive = predicted later than the truth) and its MAPE;
* the share of cells whose 90 % interval [p05, p95] holds the true cycle.

``--with-charge-policy`` scores every cut a second time with the history's
``charge_policy_c_rate`` (the charge protocol's planned mean charge rate, which the user of a
running test knows) beside the capacities, as the ``capacity_charge_policy`` heads read it.

    OMP_NUM_THREADS=1 python experiments/severson_early_life/midlife.py [--split test1]
        [--fractions 0.5 0.8] [--with-charge-policy] [--model URI] [--tracking-uri URI]
        [--json]

With ``--tracking-uri`` the figures are logged as one MLflow run (experiment
``fadecast-severson-midlife``) whose id the JSON carries (``mlflow_run_id``); ``make bench`` runs it
as the ``severson-midlife`` step.

Reads ../shared/data in place (severson2019); the truth is the first cycle of three in a row
below 80 % of the nominal 1.1 Ah (``ml.backtest.true_end_of_life``).
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


CAPACITY_COLUMNS = ["cycle_index", "test_time_second", "discharge_capacity_ah"]
#: what the history holds -> its columns
GIVEN = {"capacity": CAPACITY_COLUMNS,
         "capacity + charge policy": CAPACITY_COLUMNS + ["charge_policy_c_rate"]}


def scores(cells, model, fraction: float, given: str = "capacity") -> dict:
    """The figures of one cut fraction over ``cells`` (records that reached end of life), the
    histories holding the columns of ``GIVEN[given]``."""
    from ml.backtest import true_end_of_life
    from ml.training.eol_calibration import life_cut
    from serving.predict import forecast_document

    signed, inside, heads = [], [], 0
    for rec in cells:
        nominal = rec.meta.get("nominal_capacity_ah")
        truth = true_end_of_life(rec.cycles, nominal_capacity_ah=nominal)
        if truth is None:
            continue
        eol = truth[0]
        c = rec.cycles
        n = life_cut(c["cycle_index"].to_numpy(), fraction, eol)
        if n is None:
            continue
        doc = forecast_document(
            model, c.iloc[:n][GIVEN[given]],
            horizon_cycles=int(2 * eol), nominal_capacity_ah=nominal)
        heads += doc["uncertainty"].get("cycle_life_head") is not None
        q = (doc.get("end_of_life") or {}).get("cycle_index") or {}
        p50 = q.get("p50")
        signed.append((p50 - eol) / eol if p50 is not None else np.nan)
        inside.append(bool(q) and q["p05"] <= eol <= q["p95"])
    signed_arr = np.asarray(signed, dtype=float)
    return {"fraction_of_life": fraction, "given": given, "cells": len(signed),
            "median_signed_error_pct": float(100 * np.nanmedian(signed_arr)),
            "mape_pct": float(100 * np.nanmean(np.abs(signed_arr))),
            "interval_holds_truth_pct": float(100 * np.mean(inside)) if inside else None,
            "no_end_of_life_in_horizon": int(np.isnan(signed_arr).sum()),
            "cycle_life_head_used": int(heads)}


def _suffix(cut: dict) -> str:
    return "" if cut.get("given", "capacity") == "capacity" else "_charge_policy"


def log_run(doc: dict, tracking_uri: str) -> str:
    """Log the figures of every cut as one MLflow run; returns its id."""
    from ml.training.tracking import log_metrics, training_run

    params = {"model": f"{doc['model']['name']}:{doc['model']['version']}",
              "split": doc["split"],
              "fractions": ",".join(sorted({f"{c['fraction_of_life']:g}"
                                            for c in doc["cuts"]})),
              "given": ",".join(sorted({c.get("given", "capacity") for c in doc["cuts"]}))}
    metrics = {f"cut_{c['fraction_of_life']:g}{_suffix(c)}/{k}": float(v) for c in doc["cuts"]
               for k, v in c.items() if k not in ("fraction_of_life", "given")
               and v is not None and np.isfinite(v)}
    with training_run("fadecast-severson-midlife", params, tracking_uri=tracking_uri,
                      run_name="severson-midlife") as run_id:
        log_metrics(metrics)
    return run_id


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test1", choices=("train", "test1"),
                    help="Severson split (severson-<split>)")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.8],
                    help="cut points as fractions of each cell's true end of life")
    ap.add_argument("--with-charge-policy", action="store_true",
                    help="also score each cut with the history's charge_policy_c_rate given")
    ap.add_argument("--model", default=None, help="model URI (default: champion, else shipped)")
    ap.add_argument("--tracking-uri", default=None,
                    help="log the figures as an MLflow run in this store (default: not logged)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)

    from ml.sources import load_source
    from serving.runtime import load_forecaster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cells = load_source(f"severson-{args.split}")
    model = load_forecaster(args.model)
    doc = {"model": {"name": model.name, "version": model.version}, "split": args.split,
           "cuts": [scores(cells, model, f, given) for given in GIVEN
                    if given == "capacity" or args.with_charge_policy for f in args.fractions],
           "mlflow_run_id": None}
    if args.tracking_uri:
        doc["mlflow_run_id"] = log_run(doc, args.tracking_uri)
    if args.json:
        print(json.dumps(doc))
        return 0
    for cut in doc["cuts"]:
        print(f"cut at {cut['fraction_of_life']:.0%} of life, {cut['given']} given, "
              f"{cut['cells']} cells: p50 "
              f"{cut['median_signed_error_pct']:+.1f} % (median signed), MAPE "
              f"{cut['mape_pct']:.1f} %, 90 % interval holds the truth for "
              f"{cut['interval_holds_truth_pct']:.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
