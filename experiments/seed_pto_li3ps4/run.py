"""Seed study: simulated Li / β-Li3PS4 / PTO cells through the whole fadecast pipeline.

    OMP_NUM_THREADS=1 python experiments/seed_pto_li3ps4/run.py [--model URI] [--tracking-uri U]

Cells (raw time series + EIS, ``cells.py``) → ``Registry.ingest`` → ``build_cycle_table`` (A_w
included) → the champion model (or one trained from ``train.toml`` when there is none) → the
FastAPI service in process → attribution, what-if and advice replay; and the cohort law
(``ml.cohort``, ``cohort.py``) on the two cryomilled siblings. Everything is logged as
one MLflow run (metrics + plots + tables) in FADECAST_HOME's tracking store; ``report.md`` and
the PNGs beside it are rewritten from the run's figures and cite its run id.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import analyses  # noqa: E402
import cells  # noqa: E402
import cohort as cohort_study  # noqa: E402
import plots  # noqa: E402
import report  # noqa: E402
from data_registry.home import fadecast_home, mlflow_tracking_uri  # noqa: E402
from data_registry.store import Registry  # noqa: E402
from pipeline import ingest_and_featurize, resolve_study_model, service  # noqa: E402


def _retention(truth: pd.DataFrame) -> pd.DataFrame:
    q = truth["capacity_true_ah"].to_numpy()
    return pd.DataFrame({"cycle": truth["cycle_index"], "retention": q / q[:3].max()})


def run(cfg: dict, model_uri: str, tracking_uri: str, out_dir: Path) -> dict:
    """The whole study; returns the figures dict written to ``results.json``."""
    from ml.training import tracking

    start = time.perf_counter()
    work = fadecast_home() / "studies" / cfg["name"]
    made = cells.write_cells(work / "cells")
    truths = {cid: pd.read_csv(info["truth"]) for cid, info in made.items()}
    registry = Registry()
    tables = ingest_and_featurize(made, registry)
    # the cohort law (ml.cohort) needs no trained model: the two cryomilled siblings jointly
    coh = cohort_study.analyse(tables, truths)
    model_dir, model_info = resolve_study_model(model_uri, HERE / cfg["train_config"],
                                                tracking_uri)
    k = cells.rates()
    res: dict = {"model_dir": str(model_dir), **model_info,
                 "k_time_per_hour": k, "cells": {}}
    for cid, t in tables.items():
        res["cells"][cid] = {
            "cycles": int(len(t)), "hours": float(t["test_time_second"].iloc[-1] / 3600),
            "first_mah_per_g": float(t["discharge_capacity_ah"].iloc[0] / cells.MASS_G * 1e3),
            "last_mah_per_g": float(t["discharge_capacity_ah"].iloc[-1] / cells.MASS_G * 1e3),
            "retention_last": float(t["retention"].iloc[-1]),
            "aw_first": float(t["aw_ohm_per_sqrt_s"].iloc[0]),
            "aw_last": float(t["aw_ohm_per_sqrt_s"].iloc[-1]),
            "aw_top_first": float(t["aw_top_of_charge_ohm_per_sqrt_s"].iloc[0]),
            "aw_top_last": float(t["aw_top_of_charge_ohm_per_sqrt_s"].iloc[-1]),
            "polarization_first": float(t["polarization_volt"].iloc[1]),
            "polarization_last": float(t["polarization_volt"].iloc[-1])}

    with service(model_dir) as client:
        a = cfg["attribution"]
        att = analyses.attribution(client, a["cell"], tables[a["cell"]], truths[a["cell"]],
                                   a["cuts"])
        w = cfg["what_if"]
        c10, c03 = tables[w["cell"]], tables[w["compare_cell"]]
        whatif_rows, main, pace = [], None, {}
        cell = made[w["cell"]]["cell"]
        for cut in w["cuts"]:
            # the TRUE future schedule is given (the evaluation protocol): the mean hours per
            # cycle after the cut of the truth each forecast is compared with
            switched = cells.schedule(cell, k[cell.cathode], noise=False, switch=(cut, 0.3))
            own_s = truths[w["cell"]]
            pace[cut] = {name: float((s["end_hour"] - s["start_hour"])[
                s["cycle_index"] > cut].mean()) for name, s in (("c10", own_s),
                                                                 ("c03", switched))}
            preds = analyses.what_if(client, w["cell"], c10, cut, w["horizon_cycles"],
                                     pace[cut])
            counter = _retention(switched)
            counter = counter[counter["cycle"] > cut]
            own = _retention(truths[w["cell"]])
            own = own[own["cycle"] > cut]
            for pace_name, truth_name, truth in (("c10", "C/10 truth", own),
                                                 ("c03", "switched-to-0.3C truth", counter)):
                e = analyses.band_errors(preds[pace_name], truth["cycle"].to_numpy(),
                                         truth["retention"].to_numpy())
                observed = float(c10.loc[c10["cycle_index"] == cut, "retention"].iloc[0])
                whatif_rows.append({"cut": cut, "pace": pace_name, "truth": truth_name,
                                    "hours_per_cycle": pace[cut][pace_name],
                                    "jump_pct": (float(preds[pace_name]["p50"].iloc[0])
                                                 - observed) * 100,
                                    "time_share_p50": preds[pace_name].attrs["time_share"]["p50"],
                                    **e})
            if cut == w["main_cut"]:
                main = (preds, {"C/10 cell (truth)": _retention(truths[w["cell"]]),
                                f"C/10 cell switched to 0.3C at {cut} (truth)": counter,
                                "0.3C cell (truth)": _retention(truths[w["compare_cell"]])})
        v = cfg["advice"]
        tab = tables[v["cell"]]
        cuts = list(range(v["first_cycle"], int(tab["cycle_index"].iloc[-1]) + 1,
                          v["every_cycles"]))
        kw = dict(cuts=cuts, planned_cycles=v["planned_cycles"],
                  tolerance_cycles=v["tolerance_cycles"], eol_fraction=v["eol_fraction"],
                  spec_min_cycles=v["spec_min_cycles"])
        replay_full = analyses.advice_replay(client, v["cell"], tab, **kw, cell_info={
            "chemistry": made[v["cell"]]["meta"]["chemistry"],
            "active_mass_g": cells.MASS_G})
        policy = analyses.policy_replay(client, v["cell"], tab,
                                        spec_min_cycles=v["spec_min_cycles"],
                                        eol_fraction=v["eol_fraction"])

    # The 0.3C cell from the C/10 attribution: at equal cycle count the cycle-driven part of
    # the C/10 loss, (1 - time share) x loss, is what a time-free 0.3C cell would have lost.
    last = att.iloc[-1]
    loss_c10 = float(1.0 - c10["retention"].iloc[-1])
    loss_c03 = float(1.0 - c03["retention"].iloc[-1])
    res["implied_c03"] = {"cycle": int(last["cycle"]), "loss_c10": loss_c10,
                          "loss_c03_measured": loss_c03,
                          "loss_c03_cycle_truth": float(truths[w["compare_cell"]]
                                                        ["loss_cycle_frac"].iloc[-1]),
                          **{f"cycle_loss_{q}": (1.0 - float(last[p])) * loss_c10
                             for q, p in (("lo", "p95"), ("mid", "p50"), ("hi", "p05"))}}
    # Why 10 points/decade: the library's KK check on NOISE-FREE Randles + Warburg spectra at 8
    from ml.features.kramers_kronig import KK_RMS_LIMIT, kk_test
    f8 = np.logspace(6, -2, 8 * 8 + 1)
    res["kk_probe"] = {"limit": KK_RMS_LIMIT, **{
        f"rct{int(r)}_{n}": kk_test(f, cells.randles_warburg(f, cells.SIGMA_BASE, r)).rms_residual
        for r in (100.0, 150.0, 250.0, 400.0) for n, f in (("8pd", f8),
                                                             ("10pd", cells.FREQUENCIES_HZ))}}
    ret = tab["retention"].to_numpy()
    true_eol = int(tab["cycle_index"].to_numpy()[np.flatnonzero(ret < v["eol_fraction"])[0]])
    hours_at = dict(zip(tab["cycle_index"], tab["test_time_second"] / 3600))
    res.update(attribution=att.to_dict(orient="records"), what_if=whatif_rows, pace=pace,
               advice={"true_eol_cycle": true_eol, "true_pass": true_eol >= v["spec_min_cycles"],
                       "planned_hours": float(hours_at[v["planned_cycles"]]),
                       "full": replay_full.to_dict(orient="records"),
                       "first_stop_full": analyses.first_stop(replay_full),
                       "policy_replay": policy})
    stop = res["advice"]["first_stop_full"]
    if stop:
        stop["hours_at_stop"] = float(hours_at[int(stop["cycle"])])
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = [plots.cells_figure(tables, out_dir / "cells.png"),
            plots.attribution_figure(att, out_dir / "attribution.png")]
    hist = pd.DataFrame({"cycle": c10["cycle_index"], "retention": c10["retention"]})
    pngs.append(plots.what_if_figure(hist, main[0], main[1], w["main_cut"],
                                     out_dir / "what_if.png"))
    pngs.append(plots.advice_figure(replay_full, true_eol, tab, out_dir / "advice.png"))
    pngs.append(cohort_study.figure(coh, tables, out_dir / "cohort.png"))
    coh.pop("_curves", None)
    res["cohort"] = coh
    res["seconds"] = time.perf_counter() - start

    params = {"model": model_uri, "model_dir": str(model_dir), **model_info,
              "config": json.dumps(cfg, sort_keys=True)[:5000]}
    with tracking.training_run(cfg["name"], params, tracking_uri=tracking_uri) as run_id:
        tracking.log_metrics(report.metrics(res))
        import mlflow

        for png in pngs:
            mlflow.log_artifact(str(png), artifact_path="plots")
        for cid, t in tables.items():
            mlflow.log_text(t.to_csv(index=False), f"tables/{cid}_cycles.csv")
        mlflow.log_text(json.dumps(res, indent=1, default=str), "results.json")
    res["run_id"] = run_id
    res["tracking_uri"] = tracking_uri
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(HERE / "config.toml"))
    ap.add_argument("--model", default=None, help="model URI (default: the config's)")
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--out", default=str(HERE), help="folder for report.md and PNGs")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite report.md from the existing results.json (no new run)")
    args = ap.parse_args(argv)
    cfg = tomllib.loads(Path(args.config).read_text(encoding="utf-8"))
    if args.report_only:
        res = json.loads((Path(args.out) / "results.json").read_text())
        report.write(res, cfg, Path(args.out) / "report.md")
        return 0
    uri = args.tracking_uri or mlflow_tracking_uri()
    res = run(cfg, args.model or cfg["model"], uri, Path(args.out))
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    report.write(res, cfg, out / "report.md")
    print(json.dumps({"study": cfg["name"], "run_id": res["run_id"],
                      **report.headline(res)}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
