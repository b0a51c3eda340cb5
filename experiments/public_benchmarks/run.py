"""Public-data benchmarks of the production model (or ``--model``) against the baselines.

    OMP_NUM_THREADS=1 python experiments/public_benchmarks/run.py [--model URI] [--only NAME ...]

Reads ``../shared/data`` in place (``data_registry.home.shared_data_dir()``); a section whose
data are absent is skipped with a note. One MLflow run holds every figure as a metric (names
``<section>.<figure>``) plus the per-cell tables; ``report.md`` cites it.
"""
from __future__ import annotations

import argparse
import json
import math
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

import sections  # noqa: E402
import report  # noqa: E402
from data_registry.errors import NotFoundError  # noqa: E402
from data_registry.home import mlflow_tracking_uri, shared_data_dir  # noqa: E402
from ml.sources import available_sources  # noqa: E402

#: section -> (sources it needs, function)
SECTIONS = {
    "severson": (("severson-train", "severson-test1"), sections.severson),
    "geslin2024": (("geslin2024",), sections.geslin),
    "pybamm-dev": (("pybamm-dev",), sections.pybamm_dev),
    "zhang2020": (("zhang2020",), sections.zhang),
    "nasa-pcoe": (("nasa-pcoe",), sections.nasa),
}


def _model(uri: str | None, tracking_uri: str):
    from ml.evaluation.forecasters import ModelForecaster

    try:
        return ModelForecaster.from_uri(uri, tracking_uri=tracking_uri)
    except NotFoundError as exc:
        if uri not in (None, "champion"):
            raise
        print(f"note: no champion ({exc.message}); baselines only", file=sys.stderr)
        return None


def make_plots(res: dict, out: Path) -> list[Path]:
    """The sections' PNGs (only for sections that ran)."""
    import plots

    s, made = res["sections"], []
    if "geslin2024" in s and "model_time_share" in (s["geslin2024"]["rows"] or [{}])[0]:
        made.append(plots.geslin_figure(s["geslin2024"]["rows"], out / "geslin_time_share.png"))
    if "zhang2020" in s and s["zhang2020"].get("series"):
        made.append(plots.zhang_figure(s["zhang2020"]["series"], out / "zhang_aw.png"))
    if "nasa-pcoe" in s and s["nasa-pcoe"]["rows"] and \
            "model_error_pct" in s["nasa-pcoe"]["rows"][0]:
        made.append(plots.nasa_figure(s["nasa-pcoe"]["rows"], out / "nasa_rests.png"))
    return made


def _finite(d: dict) -> dict[str, float]:
    out = {}
    for k, v in d.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[k] = f
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(HERE / "config.toml"))
    ap.add_argument("--model", default=None, help="model URI (default: the config's)")
    ap.add_argument("--only", nargs="*", default=None, help="run these sections only")
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite report.md from the existing results.json (no new run)")
    args = ap.parse_args(argv)
    cfg = tomllib.loads(Path(args.config).read_text(encoding="utf-8"))
    if args.report_only:
        res = json.loads((Path(args.out) / "results.json").read_text())
        report.write(res, Path(args.out) / "report.md")
        return 0
    uri = args.tracking_uri or mlflow_tracking_uri()
    model_uri = args.model or cfg.get("model", "champion")
    out = Path(args.out)
    res: dict = {"shared_data": str(shared_data_dir()), "model_uri": model_uri,
                 "sections": {}, "skipped": {}}
    if shared_data_dir() is None:
        res["skipped"]["all"] = "../shared/data is absent (set FADECAST_SHARED_DATA)"
    have = set(available_sources())
    model = _model(model_uri, uri)
    from ml.evaluation.by_source import card_sources

    # which sources trained the model is READ from its card, never written by hand
    res["model"] = None if model is None else {
        "name": model.card.name, "version": model.card.version,
        "training_sources": sorted(card_sources(model.card))}
    res["section_sources"] = {name: list(needs) for name, (needs, _) in SECTIONS.items()}
    for name, (needs, func) in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        missing = [s for s in needs if s not in have]
        if missing:
            res["skipped"][name] = f"data absent: {missing}"
            print(f"note: {name} skipped: data absent {missing}", file=sys.stderr)
            continue
        start = time.perf_counter()
        print(f"note: running {name} ...", file=sys.stderr)
        kwargs = cfg.get(name, {})
        got = func(model, **kwargs)
        got["seconds"] = time.perf_counter() - start
        res["sections"][name] = got
    from ml.training import tracking

    out.mkdir(parents=True, exist_ok=True)
    pngs = make_plots(res, out)

    metrics = {f"{sec}.{k}": v for sec, got in res["sections"].items()
               for k, v in _finite(got["figures"]).items()}
    with tracking.training_run(cfg["name"], {"model": model_uri, **{
            f"cfg.{k}": json.dumps(v) for k, v in cfg.items()}}, tracking_uri=uri) as run_id:
        tracking.log_metrics(metrics)
        import mlflow

        mlflow.log_text(json.dumps(res, indent=1, default=str), "results.json")
        for png in pngs:
            mlflow.log_artifact(str(png), artifact_path="plots")
    res["run_id"] = run_id
    res["plots"] = [p.name for p in pngs]
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(res, indent=1, default=str) + "\n")
    tmp.replace(out / "results.json")
    report.write(res, out / "report.md")
    print(json.dumps({"study": cfg["name"], "run_id": run_id, **report.headline(res)},
                     default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
