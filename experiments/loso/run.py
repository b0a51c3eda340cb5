"""Leave-one-source-out by RETRAINING: the production recipe without one source, scored on it.

    OMP_NUM_THREADS=1 python experiments/loso/run.py [--sources pybamm-dev severson-train synthetic]
        [--home DIR] [--tracking-uri URI] [--epochs N] [--json]

``fadecast evaluate --model models/production`` can only score held-out CELLS of sources the
production model trained on (interpolation across cells). Here, for each trajectory source the
production config (``experiments/default/config.toml``) trains on, a temporary copy of that
config with the source removed is trained (``fadecast train --config <tmp>``, same model and
training settings: 30 epochs × 3 members unless ``--epochs`` says otherwise, which is printed),
then ``fadecast evaluate --model <that model's folder> --suite <the source's suite> --json``
scores the source the model never saw, next to the per-cell √t + N fit of the same run.

Removal per source:
- ``pybamm-dev``: dropped from ``data.sources`` (suite ``pybamm-dev``: every cell but the
  val cells that calibrate the baseline bands — the card names no pybamm-dev training, so
  ``ml.evaluation.suites.trajectory_cells`` scores them all, not only the 9 test cells).
- ``severson-train``: dropped from ``data.sources`` AND every Severson source from
  ``data.cycle_life_sources`` (the early-life heads trained on the same cells' family; keeping
  them would not leave the source out). Suite ``severson`` (its test1 cells, a sibling split
  never used in training): cycles-to-80 % error only — that suite has no capacity, coverage or
  time-share figures.
- ``synthetic``: ``data.synthetic_cells = 0`` and ``data.calibration_synthetic_cells = 0``
  (supported by ``ml.training.pipeline.load_splits``);
  suite ``synthetic`` (a held-out fleet, seed 1000, never trained on).

Nothing overwrites the shipped model or a champion: every copy has ``ship_to = ""`` and
``register = false``; the children run with ``FADECAST_HOME=--home`` (default: a new temporary
folder, kept and printed, so the run ids stay traceable) and ``--tracking-uri`` (default: the
SQLite store in that home). "in training" of each row is read back from the trained model's
card by ``fadecast evaluate`` (it must say ``no``; anything else is flagged).

Prints a table and, as the last line, one JSON document (``--json``: only the JSON on stdout).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "experiments" / "default" / "config.toml"

#: held-out source -> the ``fadecast evaluate`` suite that scores it
SUITE_OF = {"pybamm-dev": "pybamm-dev", "severson-train": "severson", "synthetic": "synthetic"}
#: the figures of ``ml.evaluation.by_source.source_rows`` carried into each row
FIGURES = ("capacity_error_pct", "eol_error_pct", "coverage_90_pct", "width_90_pct",
           "time_share_error_median", "time_share_error_p90")


# ------------------------------------------------------------------------------ pure parts
def trained_sources(raw: dict) -> list[str]:
    """The trajectory sources a study config trains on: ``synthetic`` (when
    ``synthetic_cells > 0``) and every ``data.sources`` entry."""
    data = raw.get("data", {})
    out = ["synthetic"] if int(data.get("synthetic_cells", 160)) > 0 else []
    return out + [str(s) for s in data.get("sources", ["pybamm-dev"])]


def without_source(raw: dict, source: str, epochs: int | None = None) -> dict:
    """A copy of the study config ``raw`` (parsed TOML) that never sees ``source``: not
    shipped, not registered, named ``loso-without-<source>``; ``epochs`` overrides
    ``train.epochs`` when given."""
    cfg = json.loads(json.dumps(raw))  # deep copy of plain TOML values
    data = cfg.setdefault("data", {})
    if source == "synthetic":
        data["synthetic_cells"] = 0
        data["calibration_synthetic_cells"] = 0  # nor its calibration-only cells
    else:
        if source not in data.get("sources", []):
            raise ValueError(f"source {source!r} is not in data.sources {data.get('sources')}")
        data["sources"] = [s for s in data["sources"] if s != source]
        family = source.split("-")[0]
        data["cycle_life_sources"] = [s for s in data.get("cycle_life_sources", [])
                                      if s.split("-")[0] != family]
    if epochs is not None:
        cfg.setdefault("train", {})["epochs"] = int(epochs)
    cfg["name"] = f"loso-without-{source}"
    cfg["ship_to"] = ""
    cfg["register"] = False
    return cfg


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to a study config")


def dump_toml(cfg: dict) -> str:
    """A study config (top-level keys, then ``[table]`` of scalars/lists) as TOML text."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for table, body in cfg.items():
        if isinstance(body, dict):
            lines += ["", f"[{table}]"] + [f"{k} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def source_row(source: str, evaluation: dict | None) -> dict:
    """The held-out source's figures from ``fadecast evaluate --json`` (its ``by_source``
    row for the source's suite): ``model_*`` and ``naive_*`` of :data:`FIGURES`."""
    from ml.evaluation.by_source import SUITE_SOURCES

    row: dict[str, Any] = {"source": source, "suite": SUITE_OF[source]}
    want = SUITE_SOURCES.get(SUITE_OF[source], SUITE_OF[source])
    found = [r for r in (evaluation or {}).get("by_source", []) if r.get("source") == want]
    if found:
        got = found[0]
        row["scored_on"] = want  # severson-train is left out, its test1 cells are scored
        row["in_training"] = got.get("in_training")
        row["cells"] = got.get("cells")
        for fig in FIGURES:
            for method in ("model", "naive"):
                row[f"{method}_{fig}"] = got.get(f"{method}_{fig}")
        if "model_eol_error_pct_with_delta_q" in got:
            row["model_eol_error_pct_with_delta_q"] = got["model_eol_error_pct_with_delta_q"]
    return row


COLUMNS = (("source", "held out"), ("status", "status"), ("in_training", "in training"),
           ("cells", "cells"), ("model_capacity_error_pct", "cap err % model"),
           ("naive_capacity_error_pct", "√t+N"), ("model_coverage_90_pct", "cover90 % model"),
           ("naive_coverage_90_pct", "√t+N"), ("model_width_90_pct", "width90 % model"),
           ("naive_width_90_pct", "√t+N"), ("model_eol_error_pct", "EOL err % model"),
           ("naive_eol_error_pct", "√t+N"),
           ("model_time_share_error_median", "share p50 model"),
           ("naive_time_share_error_median", "√t+N"),
           ("model_time_share_error_p90", "share p90 model"),
           ("naive_time_share_error_p90", "√t+N"), ("train_run_id", "train run"),
           ("eval_run_id", "eval run"))


def format_table(rows: list[dict]) -> str:
    """Plain-text table of the rows (``-`` where a figure does not apply)."""
    from ml.evaluation.by_source import plain_table

    return plain_table(
        rows, COLUMNS, "== leave-one-source-out by retraining (model trained WITHOUT the "
        "held-out source, vs the per-cell √t + N fit of the same evaluation run)",
        "targets: 90 % coverage 85-95 %; model below √t+N on capacity error and time-share "
        "p90. severson = test1 cells, cycles to 80 % from 100 cycles (MAPE); its suite has no "
        "capacity/coverage/time-share figures.")


# ------------------------------------------------------------------------------ I/O
def _run(cmd: list[str], env: dict, timeout: float) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=timeout)
        code, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        code, out, err = -1, "", f"timed out after {timeout:.0f} s"
    return code, out, err, time.perf_counter() - start


def _last_json(text: str) -> dict | None:
    try:
        return json.loads(text)  # fadecast train prints one indented document
    except json.JSONDecodeError:
        pass
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def _tail(err: str, n: int = 3) -> str:
    return " / ".join(err.strip().splitlines()[-n:])[:400]


def run_source(source: str, raw: dict, home: Path, uri: str, epochs: int | None,
               timeout: float, log) -> dict:
    """Train the config without ``source``, evaluate on its suite; one row."""
    py = sys.executable
    env = {**os.environ, "FADECAST_HOME": str(home), "MLFLOW_TRACKING_URI": uri}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, "1")
    cfg = without_source(raw, source, epochs)
    cfg_path = home / "configs" / f"without-{source}.toml"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(dump_toml(cfg), encoding="utf-8")
    fc = [py, "-m", "serving.cli"]
    train_cmd = [*fc, "train", "--config", str(cfg_path), "--tracking-uri", uri, "--no-progress"]
    log(f"== {source}: training without it: {' '.join(train_cmd[1:])}")
    code, out, err, t_train = _run(train_cmd, env, timeout)
    row = {"source": source, "suite": SUITE_OF[source], "config": str(cfg_path),
           "epochs": cfg.get("train", {}).get("epochs"),
           "ensemble": cfg.get("model", {}).get("ensemble", 1),
           "train_seconds": round(t_train, 1), "train_cmd": train_cmd}
    doc = _last_json(out) if code == 0 else None
    if doc is None or "model_dir" not in doc:
        row.update(status=f"train failed (exit {code})", error=_tail(err))
        log(f"   training failed: {_tail(err)}")
        return row
    row["train_run_id"], row["model_dir"] = doc["run_id"], doc["model_dir"]
    log(f"   trained in {t_train:.0f} s: run {doc['run_id']}, model {doc['model_dir']}")
    eval_cmd = [*fc, "evaluate", "--model", doc["model_dir"], "--suite", SUITE_OF[source],
                "--tracking-uri", uri, "--json"]
    log(f"   evaluating: {' '.join(eval_cmd[1:])}")
    code, out, err, t_eval = _run(eval_cmd, env, timeout)
    row.update(eval_seconds=round(t_eval, 1), eval_cmd=eval_cmd)
    ev = _last_json(out) if code == 0 else None
    if ev is None:
        row.update(status=f"evaluate failed (exit {code})", error=_tail(err))
        log(f"   evaluation failed: {_tail(err)}")
        return row
    row.update({k: v for k, v in source_row(source, ev).items() if k not in row})
    row["eval_run_id"] = ev.get("mlflow_run_id")
    row["model_version"] = (ev.get("model") or {}).get("version")
    row["status"] = "ok" if row.get("in_training") == "no" else \
        f"LEAK: card says in training = {row.get('in_training')!r}"
    log(f"   evaluated in {t_eval:.0f} s: run {row['eval_run_id']}")
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", nargs="*", default=None, metavar="NAME",
                    help="held-out sources (default: every trajectory source the production "
                         "config trains on: " + ", ".join(SUITE_OF) + ")")
    ap.add_argument("--config", type=Path, default=CONFIG,
                    help="the study config to leave sources out of (default: the production one)")
    ap.add_argument("--home", type=Path, default=None,
                    help="FADECAST_HOME of the trainings (default: a new temporary folder, kept)")
    ap.add_argument("--tracking-uri", default=None,
                    help="MLflow store of the training and evaluation runs (default: "
                         "sqlite:///<home>/mlflow/mlflow.db)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="override train.epochs (default: the config's; an override is "
                         "printed, since then the comparison is not like for like)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per child command")
    ap.add_argument("--json", action="store_true", help="stdout holds only the JSON document")
    args = ap.parse_args(argv)

    from ml.sources import available_sources

    raw = tomllib.loads(args.config.read_text(encoding="utf-8"))
    trained = trained_sources(raw)
    sources = args.sources if args.sources is not None else [s for s in SUITE_OF if s in trained]
    bad = [s for s in sources if s not in SUITE_OF or s not in trained]
    if bad:
        ap.error(f"cannot leave out {bad[0]!r}: choose among the config's trajectory sources "
                 f"with a suite: {[s for s in SUITE_OF if s in trained]}")
    home = (args.home or Path(tempfile.mkdtemp(prefix="fadecast-loso-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    uri = args.tracking_uri or f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    (home / "mlflow").mkdir(parents=True, exist_ok=True)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    present = set(available_sources())
    config_sources = [s for s in trained if s != "synthetic"]
    epochs = raw.get("train", {}).get("epochs") if args.epochs is None else args.epochs
    log(f"note: FADECAST_HOME={home}; tracking {uri}; {epochs} epochs × "
        f"{raw.get('model', {}).get('ensemble', 1)} members"
        + (f" (OVERRIDDEN from the config's {raw.get('train', {}).get('epochs')}: not like for "
           "like with the production model)" if args.epochs is not None else ""))
    start = time.perf_counter()
    rows = []
    for source in sources:
        others = [s for s in config_sources if s != source and s in present]
        if source != "synthetic" and source not in present:
            rows.append({"source": source, "suite": SUITE_OF[source],
                         "status": "not run (needs shared data: source absent)"})
        elif source == "synthetic" and not others:
            rows.append({"source": source, "suite": SUITE_OF[source],
                         "status": "not run (needs shared data: without the synthetic fleet "
                                   "no training source is present)"})
        else:
            rows.append(run_source(source, raw, home, uri, args.epochs, args.timeout, log))
    seconds = time.perf_counter() - start
    missing = [s for s in config_sources if s not in present]
    doc = {"study": "loso", "home": str(home), "tracking_uri": uri, "epochs": epochs,
           "epochs_overridden": args.epochs is not None,
           "ensemble": raw.get("model", {}).get("ensemble", 1),
           "absent_sources": missing, "seconds": round(seconds, 1),
           "rows": [{k: v for k, v in r.items() if k not in ("train_cmd", "eval_cmd")}
                    for r in rows]}
    if not args.json:
        print(format_table(rows))
        if missing:
            print(f"note: source(s) {missing} absent from ../shared/data: not left out, and "
                  "any training ran without them")
        print(f"note: {seconds:.0f} s in all; FADECAST_HOME {home}; MLflow {uri}")
    from ml.evaluation.commands import plain

    print(json.dumps(plain(doc), allow_nan=False))
    return 0 if all(r.get("status", "").startswith(("ok", "not run")) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
