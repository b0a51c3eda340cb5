"""The served end-of-life interval on held-out TEST cells, per third of fade progress.

The card's end-of-life calibration (``ml.training.eol_calibration``) is fitted on the
calibration cells of the production config's split, pooled and per third of FADE PROGRESS (how
far the history has faded toward the threshold, ``ml.uncertainty.fade_progress``). This study
asks whether the served interval holds on the TEST cells of the same split (never trained on,
never used to pick epochs or to calibrate): every test cell that truly reaches 80, 85 or 90 % is
cut at the calibration's fractions of its life (``CUT_FRACTIONS``), forecast through the served
function (``ml.inference.forecast``), and its end-of-life [p05, p95] is checked against the true
cycle (three rows in a row below, ``ml.backtest.true_end_of_life``; a p95 censored at the
horizon, 5 × the remaining life, is open above). The split is checked against the card: the
JSON's ``split_matches_card`` is false (and a warning printed) when the config's cells do not
hash to the model's training data (``dataset_hash``). The same cuts are also served with the card's
POOLED scales only (its ``by_progress`` removed), the rule before session 10.

Cuts a cycle-life head answered are scored apart (``head_rows``: the head's own interval, which
this calibration does not touch). Per third and per source: cuts, cells, the share of cuts whose
interval holds the truth with the
bins and with the pooled scales, and the median width of the interval in remaining cycles
(p95 − p05 over the true remaining life; open-ended, ``inf``, where p95 lies beyond the horizon or
no end of life is forecast within it, which then holds nothing). The cuts of one cell are correlated: read a share over
a handful of cells as a rough figure. The test cells' protocols also appear in training
(interpolation in protocol, held out by cell).

    OMP_NUM_THREADS=1 python experiments/eol_calibration/heldout.py [--model URI]
        [--config experiments/default/config.toml] [--tracking-uri URI] [--json]

Needs ../shared/data for the pybamm-dev and severson-train cells (synthetic cells only without
it). With ``--tracking-uri`` the figures are logged as one MLflow run (experiment
``fadecast-eol-heldout``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

THIRDS = ("first third", "middle third", "last third")


def _holds(eol: dict | None, truth: float) -> tuple[bool, float]:
    """(the interval holds ``truth``, its width in cycles; inf when p95 is censored). No end of
    life within the horizon (the p50 never crosses) is no interval: it holds nothing."""
    if not eol:
        return False, math.inf
    q, censored = eol["cycle_index"], eol.get("censored") or {}
    open_above = bool(censored.get("p95"))
    holds = q["p05"] <= truth and (open_above or truth <= q["p95"])
    return bool(holds), math.inf if open_above else float(q["p95"] - q["p05"])


def cut_rows(cells, card, run) -> list[dict]:
    """One row per (cell, threshold, cut): its source, fade progress, and whether the interval
    served with the card's bins and with its pooled scales holds the truth."""
    from data_registry.errors import FadecastError
    from ml.inference import forecast
    from ml.training.eol_calibration import (CUT_FRACTIONS, HORIZON_MULTIPLE, THRESHOLDS,
                                             life_cuts)

    eol_conf = dict(card.conformal.get("end_of_life") or {})
    pooled = dataclasses.replace(card, conformal={
        **card.conformal, "end_of_life": {k: v for k, v in eol_conf.items()
                                          if k != "by_progress"}})
    rows = []
    for rec, meta, thr, frac, eol, n in life_cuts(cells, THRESHOLDS, CUT_FRACTIONS):
        history = rec.cycles.iloc[:n]
        last = float(history["cycle_index"].iloc[-1])
        horizon = max(int(math.ceil(HORIZON_MULTIPLE * (eol - last))), 10)
        kw = dict(run=run, horizon_cycles=horizon, eol_fraction=thr,
                  nominal_capacity_ah=meta.get("nominal_capacity_ah"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                binned = forecast(history, card=card, **kw)
                plain = forecast(history, card=pooled, **kw)
        except FadecastError as exc:  # a history the service refuses is counted, not fatal
            rows.append({"source": meta.get("source", "?"), "cell_id": rec.cell_id,
                         "error": str(exc)[:200]})
            continue
        head = binned["uncertainty"].get("cycle_life_head")
        if head is not None:  # a head's interval is its own, not the calibration's: apart
            held, width = _holds(binned.get("end_of_life"), eol)
            rows.append({"source": meta.get("source", "?"), "cell_id": rec.cell_id,
                         "threshold": thr, "fraction": frac, "head": head.get("head"),
                         "holds_head": held, "width_head": width / (eol - last)})
            continue
        held_b, width_b = _holds(binned.get("end_of_life"), eol)
        held_p, width_p = _holds(plain.get("end_of_life"), eol)
        rows.append({"source": meta.get("source", "?"), "cell_id": rec.cell_id,
                     "threshold": thr, "fraction": frac,
                     "fade_progress": binned["uncertainty"].get("fade_progress"),
                     "remaining_true": eol - last, "holds_bins": held_b, "holds_pooled": held_p,
                     "width_bins": width_b / (eol - last), "width_pooled": width_p / (eol - last)})
    return rows


def summarise(rows: list[dict], edges: list[float]) -> list[dict]:
    """Per source (and all) × third: cuts, cells, shares holding the truth, median widths."""
    ok = [r for r in rows if "error" not in r and "head" not in r
          and r["fade_progress"] is not None]
    out = []
    for src in [*sorted({r["source"] for r in ok}), "all"]:
        part = ok if src == "all" else [r for r in ok if r["source"] == src]
        third = np.searchsorted(np.asarray(edges), [r["fade_progress"] for r in part],
                                side="right")
        for b, name in enumerate(THIRDS):
            sel = [r for r, t in zip(part, third) if t == b]
            if not sel:
                continue
            out.append({"source": src, "third": name, "cuts": len(sel),
                        "cells": len({r["cell_id"] for r in sel}),
                        "holds_bins_pct": 100.0 * float(np.mean([r["holds_bins"] for r in sel])),
                        "holds_pooled_pct": 100.0 * float(np.mean([r["holds_pooled"]
                                                                   for r in sel])),
                        "width_bins_median": float(np.median([r["width_bins"] for r in sel])),
                        "width_pooled_median": float(np.median([r["width_pooled"]
                                                                for r in sel]))})
    return out


def summarise_heads(rows: list[dict]) -> list[dict]:
    """Per source (and all, where several): the cuts a cycle-life head answered, with the
    share whose interval (the head's own quantiles) holds the truth and its median width."""
    heads = [r for r in rows if "head" in r]
    sources = sorted({r["source"] for r in heads})
    out = []
    for src in [*sources, *(["all"] if len(sources) > 1 else [])]:
        sel = heads if src == "all" else [r for r in heads if r["source"] == src]
        out.append({"source": src, "cuts": len(sel), "cells": len({r["cell_id"] for r in sel}),
                    "holds_pct": 100.0 * float(np.mean([r["holds_head"] for r in sel])),
                    "width_median": float(np.median([r["width_head"] for r in sel]))})
    return out


def log_run(doc: dict, tracking_uri: str) -> str:
    from ml.training.tracking import log_metrics, training_run

    metrics = {}
    for r in doc["rows"]:
        key = f"{r['source']}/{r['third'].replace(' ', '_')}"
        for k in ("cuts", "cells", "holds_bins_pct", "holds_pooled_pct", "width_bins_median",
                  "width_pooled_median"):
            if isinstance(r[k], (int, float)) and math.isfinite(r[k]):
                metrics[f"{key}/{k}"] = float(r[k])
    for r in doc.get("head_rows") or []:
        for k in ("cuts", "cells", "holds_pct", "width_median"):
            if isinstance(r[k], (int, float)) and math.isfinite(r[k]):
                metrics[f"{r['source']}/cycle_life_head/{k}"] = float(r[k])
    params = {"model": f"{doc['model']['name']}:{doc['model']['version']}",
              "config": doc["config"], "edges": ",".join(f"{e:.4g}" for e in doc["edges"])}
    with training_run("fadecast-eol-heldout", params, tracking_uri=tracking_uri,
                      run_name="eol-heldout") as run_id:
        log_metrics(metrics)
    return run_id


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model URI (default: champion, else shipped)")
    ap.add_argument("--config", default=str(ROOT / "experiments" / "default" / "config.toml"),
                    help="training config whose split gives the test cells")
    ap.add_argument("--tracking-uri", default=None,
                    help="log the figures as an MLflow run in this store (default: not logged)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)

    from ml.training.config import load_config
    from ml.training.dataset import dataset_hash
    from ml.training.pipeline import load_splits
    from serving.runtime import load_forecaster

    model = load_forecaster(args.model)
    by = (model.card.conformal.get("end_of_life") or {}).get("by_progress") or {}
    edges = list(by.get("edges") or [1.0 / 3.0, 2.0 / 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = load_splits(load_config(args.config).data)
    # the split is the model's own only when its cells hash to the card's training data: else
    # "test" cells may have been trained on, and the figures would say nothing
    same_split = dataset_hash(splits.unique()) == model.card.dataset_hash
    cells = splits.test
    rows = cut_rows(cells, model.card, model.run)
    failed = [r for r in rows if "error" in r]
    doc = {"model": {"name": model.name, "version": model.version},
           "config": Path(args.config).name, "edges": edges,
           "card_has_bins": any(b.get("used") for b in by.get("bins") or []),
           "split_matches_card": same_split, "test_cells": len(cells),
           "failed_cuts": len(failed), "rows": summarise(rows, edges),
           "head_rows": summarise_heads(rows), "mlflow_run_id": None}
    if args.tracking_uri:
        doc["mlflow_run_id"] = log_run(doc, args.tracking_uri)
    if args.json:
        print(json.dumps(doc))
        return 0
    print(f"model {model.version}: {len(cells)} test cells, {len(failed)} cuts refused")
    if not same_split:
        print("WARNING: this config's cells do not hash to the model card's training data: "
              "its 'test' cells may have been trained on")
    for r in doc["rows"]:
        print(f"  {r['source']:16s} {r['third']:13s} {r['cuts']:4d} cuts / {r['cells']:3d} "
              f"cells: holds {r['holds_bins_pct']:5.1f} % (pooled {r['holds_pooled_pct']:5.1f} "
              f"%), median width x{r['width_bins_median']:.2f} of the remaining life "
              f"(pooled x{r['width_pooled_median']:.2f})")
    for r in doc["head_rows"]:
        print(f"  {r['source']:16s} cycle-life head {r['cuts']:4d} cuts / {r['cells']:3d} "
              f"cells: holds {r['holds_pct']:5.1f} %, median width x{r['width_median']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
