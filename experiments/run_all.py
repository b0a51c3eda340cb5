"""``make bench``: run every study, model-quality command and benchmark; write their figures.

    OMP_NUM_THREADS=1 python experiments/run_all.py [--full] [--skip NAME ...] [--only NAME ...]
        [--readme README.md] [--experiments-readme experiments/README.md]
        [--model models/production] [--tracking-uri URI]

Steps, in order (each a subprocess run from the repository root; ``--skip``/``--only`` take
these names): ``seed`` (seed study), ``public`` (public benchmarks), ``evaluate`` (``fadecast
evaluate`` on every available per-source suite, ``--json``), ``evaluate-cohorts`` (``fadecast
evaluate --suite pybamm-cohorts``), ``severson`` (``experiments/severson_early_life/run.py``),
``severson-midlife`` (``experiments/severson_early_life/midlife.py``: end of life from 50 % / 80 %
of each cell's life), ``eol-heldout`` (``experiments/eol_calibration/heldout.py``: the served
end-of-life interval on the training split's test cells, per third of fade progress),
``backtest`` (``fadecast backtest``), ``loso`` (``experiments/loso/run.py --json``: the
production recipe retrained without each of its trajectory sources and scored on it — a true
leave-one-source-out; 3 trainings, FADECAST_HOME ``$FADECAST_HOME/loso``, its own MLflow store
there; never ships or registers), then ``experiments/benchmarks/{ingest,featurize,serving,
load,cohort,fleet}.py`` at moderate sizes (``--full``: the 10 M-row figures and the 55 M-row
fleet), then ``web`` (``pytest -s tests/test_web_pages.py``: the page and what-if timings the
browser tests print; "not run" where Chromium or Playwright is absent). ``seed-cohort``
(``experiments/seed_pto_li3ps4/cohort.py --json``) runs right after ``seed``. Model-quality
steps use ``--model`` (default: the shipped ``models/production`` that ``make train`` writes)
and log to ``--tracking-uri`` (default: the project's store,
``sqlite:///$FADECAST_HOME/mlflow/mlflow.db``).

Two generated blocks are rewritten from what the steps printed (their last JSON line): the
figures section of README.md between ``<!-- BEGIN GENERATED FIGURES (make bench) -->`` and
``<!-- END GENERATED FIGURES -->`` (see ``experiments/readme_figures.py``; the run stops before
any step if those markers are missing) and the run log of experiments/README.md. A skipped
step keeps its previous section in README.md. Exit code 1 if any step failed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT)):  # readme_figures beside this file; the project's packages
    if _p not in sys.path:
        sys.path.insert(0, _p)
README = HERE / "README.md"
BEGIN, END = "<!-- BEGIN GENERATED (run_all.py) -->", "<!-- END GENERATED -->"

#: name -> (script, moderate args, full args)
BENCHMARKS = {
    "ingest": ("benchmarks/ingest.py", ["--rows", "1000000", "--repeat", "1"],
               ["--rows", "10000000"]),
    "featurize": ("benchmarks/featurize.py", ["--rows", "1000000", "--repeat", "1"],
                  ["--rows", "10000000"]),
    "serving": ("benchmarks/serving.py", ["--quick"], []),
    "load": ("benchmarks/load.py", ["--quick"], []),
    # the same load with the tests' light model (trained inside, ~15 s): what the service
    # itself holds when the network is cheap — the shipped ensemble's cost is the difference
    "load-light": ("benchmarks/load.py", ["--quick"], []),
    "cohort": ("benchmarks/cohort.py", ["--repeats", "3"], ["--repeats", "5"]),
    # 12 M rows (20 cells × 500 k + one 2 M-row cell, above the 1 GiB worker's in-memory
    # budget, so it still goes in cycle blocks); --full: the README's 55 M rows
    "fleet": ("benchmarks/fleet.py", ["--cells", "20", "--rows-per-cell", "500000",
                                      "--big-cell-rows", "2000000", "--json"], ["--json"]),
}
#: the browser tests whose printed timings the ``web`` step reads
WEB_TESTS = "tests/test_web_pages.py"


def machine() -> dict[str, str]:
    """nproc, memory, CPU model, OS, Python and the date (UTC)."""
    cpu, mem = platform.processor() or "?", "?"
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"model name\s*:\s*(.+)", text)
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    try:
        m = re.search(r"MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
        mem = f"{int(m.group(1)) / 2**20:.1f} GiB" if m else mem
    except OSError:
        pass
    aff = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": str(aff), "memory": mem, "cpu": cpu,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "threads": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"}


def run(name: str, cmd: list[str], timeout: float) -> dict:
    """Run one child; returns its exit code, seconds, stdout and the last JSON line printed."""
    print(f"== {name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -1, exc.stdout or "", f"timed out after {timeout:.0f} s"
        out = out.decode() if isinstance(out, bytes) else out
        err = err if isinstance(err, str) else str(err)
    seconds = time.perf_counter() - start
    last_json = None
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            try:
                last_json = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    status = "ok" if code == 0 else f"FAILED (exit {code})"
    print(f"   {status} in {seconds:.0f} s", file=sys.stderr, flush=True)
    if code != 0:
        print("\n".join(err.strip().splitlines()[-15:]), file=sys.stderr)
    return {"name": name, "cmd": cmd, "code": code, "seconds": seconds, "stdout": out,
            "stderr_tail": "\n".join(err.strip().splitlines()[-8:]), "json": last_json}


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def summary(results: list[dict]) -> list[str]:
    """The README's top table: the studies' headline figures with their MLflow run ids."""
    lines = ["| study | figure | value | MLflow run |", "|---|---|---|---|"]
    for r in results:
        doc = r.get("json")
        if not doc or "run_id" not in doc:
            continue
        for key, value in doc.items():
            if key in ("study", "run_id"):
                continue
            lines.append(f"| {doc['study']} | {key} | {_fmt(value)} | `{doc['run_id']}` |")
    return lines


def render(results: list[dict], info: dict, full: bool) -> str:
    """The generated block of the README."""
    lines = [BEGIN, "", f"_Generated by `experiments/run_all.py`{' --full' if full else ''} on "
             f"{info['date']}: {info['nproc']} CPU(s) ({info['cpu']}), {info['memory']} RAM, "
             f"{info['os']}, Python {info['python']}, {info['threads']}._", "",
             "### Summary (headline figures; each row cites the MLflow run that logged it)", ""]
    lines += summary(results)
    lines += ["", "### Runs", "", "| step | status | seconds | command |", "|---|---|---|---|"]
    for r in results:
        status = "ok" if r["code"] == 0 else f"failed ({r['code']})"
        cmd = " ".join(os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c
                       for c in r["cmd"][1:])
        lines.append(f"| {r['name']} | {status} | {r['seconds']:.0f} | `{cmd}` |")
    for r in results:
        if not (r["name"].startswith("bench:") or r["name"] in BENCHMARKS):
            continue
        lines += ["", f"### {r['name']} (printed figures)", "", "```"]
        lines += r["stdout"].strip().splitlines()[-40:] or ["(no output)"]
        if r["code"] != 0:
            lines += ["--- stderr (tail) ---", *r["stderr_tail"].splitlines()]
        lines += ["```"]
    lines += ["", END]
    return "\n".join(lines)


def kept_from_previous(old_block: str, new_block: str) -> str:
    """``new_block`` with the rows and sections of ``old_block`` whose step (or study) this run
    did not redo: a ``--only``/``--skip`` run rewrites its own steps' summary rows, run rows
    and printed figures and keeps every other step's as they were (with their own run ids)."""
    def parts(block: str) -> tuple[list[str], list[str], dict[str, list[str]]]:
        summary, runs, sections, where, name = [], [], {}, None, None
        for line in block.splitlines():
            if line.startswith("### Summary"):
                where = "summary"
            elif line.startswith("### Runs"):
                where = "runs"
            elif line.startswith("### ") and line.endswith(" (printed figures)"):
                where, name = "section", line[4:-len(" (printed figures)")]
                sections[name] = []
            elif line.startswith(END):
                where = None
            if where == "summary" and line.startswith("| ") and not line.startswith(
                    "| study |"):
                summary.append(line)
            elif where == "runs" and line.startswith("| ") and not line.startswith("| step |"):
                runs.append(line)
            elif where == "section":
                sections[name].append(line)
        return summary, runs, sections

    def key(row: str) -> str:
        return row.split("|")[1].strip()

    old_summary, old_runs, old_sections = parts(old_block)
    new_summary, new_runs, new_sections = parts(new_block)
    studies, steps = {key(r) for r in new_summary}, {key(r) for r in new_runs}
    summary = [r for r in old_summary if key(r) not in studies] + new_summary
    def order(name: str) -> int:  # the run order of STEPS; others (bench:…) after them
        return STEPS.index(name) if name in STEPS else len(STEPS)

    runs = sorted([r for r in old_runs if key(r) not in steps] + new_runs,
                  key=lambda r: order(key(r)))
    sections = {n: v for n, v in old_sections.items() if n not in new_sections}
    sections.update(new_sections)
    sections = dict(sorted(sections.items(), key=lambda item: order(item[0])))
    head = new_block.split("### Summary", 1)[0]
    ran = ", ".join(sorted(steps, key=order))
    lines = [head.rstrip("\n"), "", f"_Steps run this time: {ran}; the other rows and sections "
             "are kept from earlier runs (each row cites its own MLflow run)._", "",
             "### Summary (headline figures; each row cites the MLflow run that logged it)", "",
             "| study | figure | value | MLflow run |",
             "|---|---|---|---|", *summary, "", "### Runs", "",
             "| step | status | seconds | command |", "|---|---|---|---|", *runs]
    for body in sections.values():
        while body and not body[-1].strip():
            body = body[:-1]
        lines += ["", *body]
    return "\n".join([*lines, "", END])


def write_readme(block: str, path: Path | None = None) -> None:
    """Replace the generated block of experiments/README.md (atomic write)."""
    path = README if path is None else path
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# experiments\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


#: every step, in the order run (names for --skip / --only)
MODEL_STEPS = ("evaluate", "evaluate-cohorts", "severson", "severson-midlife", "eol-heldout",
               "backtest")
STEPS = ("seed", "seed-cohort", "public", *MODEL_STEPS, "loso", *BENCHMARKS, "web")
#: steps whose figures need ../shared/data (without it they are reported as not run)
NEEDS_SHARED = {"public": "yes (sections skip without it)",
                "evaluate": "partly (only the 'synthetic' suite without it)",
                "evaluate-cohorts": "yes", "severson": "yes", "severson-midlife": "yes",
                "eol-heldout": "partly (only the synthetic test cells without it)",
                "backtest": "partly (only the 'synthetic' suite without it)",
                "loso": "yes (pybamm-dev / severson-train to leave out and to train without)"}


#: exit code recorded for a step not run because its data are absent (not a failure)
NO_DATA = -3


def _not_run(name: str, cmd: list[str], why: str, code: int = -2) -> dict:
    return {"name": name, "cmd": cmd, "code": code, "seconds": 0.0, "stdout": why,
            "stderr_tail": why, "json": None}


def model_steps(py: str, model: str, tracking_uri: str) -> list[tuple[str, list[str] | None, str]]:
    """``(name, command or None, why not)`` of the model-quality steps: the per-source
    evaluation on every suite whose data exist, the cohort suite, Severson early life and the
    advice backtest (suites needing ../shared/data are left out, with the reason)."""
    from ml.evaluation.suites import available_suites
    from ml.sources import available_sources

    fc = [py, "-m", "serving.cli"]
    have = available_suites()
    per_source = [s for s in have if s != "pybamm-cohorts"]
    out: list[tuple[str, list[str] | None, str]] = []
    out.append(("evaluate", [*fc, "evaluate", "--model", model, "--tracking-uri", tracking_uri,
                             *[a for s in per_source for a in ("--suite", s)], "--json"], ""))
    out.append(("evaluate-cohorts",
                [*fc, "evaluate", "--model", model, "--tracking-uri", tracking_uri, "--suite",
                 "pybamm-cohorts", "--json"] if "pybamm-cohorts" in have else None,
                "pybamm-cohorts-dev is not in ../shared/data"))
    sev = "severson-qdlin-test1" in set(available_sources())
    out.append(("severson", [py, "experiments/severson_early_life/run.py", "--split", "test1",
                             "--model", model, "--json"] if sev else None,
                "severson-qdlin-test1 is not in ../shared/data"))
    mid = "severson-test1" in set(available_sources())
    out.append(("severson-midlife",
                [py, "experiments/severson_early_life/midlife.py", "--split", "test1",
                 "--fractions", "0.5", "0.8", "--with-charge-policy", "--model", model,
                 "--tracking-uri", tracking_uri, "--json"] if mid else None,
                "severson-test1 is not in ../shared/data"))
    out.append(("eol-heldout", [py, "experiments/eol_calibration/heldout.py", "--model", model,
                                "--tracking-uri", tracking_uri, "--json"], ""))
    # the replay on real cells too where their data exist (NASA PCoE is left out: its 4 °C cells
    # reach 80 % of their first cycles' capacity within a few cycles, a 6-cycle spec)
    sources = set(available_sources())
    bt = [a for s in ["synthetic", *(x for x in ("pybamm-dev", "severson-test1", "geslin2024")
                                     if x in sources)]
          for a in ("--suite", s)]
    out.append(("backtest", [*fc, "backtest", "--model", model, *bt, "--json"], ""))
    return out


def loso_step(py: str) -> tuple[list[str] | None, str]:
    """``(command or None, why not)`` of the leave-one-source-out retraining: not run when
    neither real trajectory source of the production config is in ../shared/data."""
    from data_registry.home import fadecast_home
    from ml.sources import available_sources

    if not {"pybamm-dev", "severson-train"} & set(available_sources()):
        return None, ("needs ../shared/data: pybamm-dev and severson-train are absent, so no "
                      "source of the production model can be left out")
    return [py, "experiments/loso/run.py", "--home", str(fadecast_home() / "loso"),
            "--json"], ""


def web_step(py: str, timeout: float) -> dict:
    """``pytest -s tests/test_web_pages.py``; its printed page / what-if timings become the
    step's ``json``. All tests skipped (no Chromium or Playwright): not run, with pytest's
    reason."""
    from readme_figures import parse_web, web_skip_reason

    r = run("web", [py, "-m", "pytest", "-s", "-p", "no:cacheprovider", WEB_TESTS], timeout)
    r["json"] = parse_web(r["stdout"])
    why = web_skip_reason(r["stdout"])
    if r["json"] is None and why and r["code"] in (0, 5):
        r.update(code=NO_DATA, stdout=f"pytest skipped the browser tests: {why}")
    return r


def _model_line(model: str) -> str:
    """Which model the model-quality figures measure: version and training run from its card."""
    card = ROOT / model / "model_card.json"
    try:
        doc = json.loads(card.read_text())
    except (OSError, ValueError):
        return f"Model: `{model}` (no readable model card at {card})."
    run = (doc.get("model") or {}).get("mlflow_run_id")
    return (f"Model: `{model}`, {doc.get('name')} {doc.get('version')}, created "
            f"{doc.get('created_utc')}" + (f", training run `{run}`" if run else "")
            + " (`make train` = `fadecast train --config experiments/default/config.toml`).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="steps needing ../shared/data: " + "; ".join(
            f"{k}: {v}" for k, v in NEEDS_SHARED.items()) + "; web needs Chromium and Playwright "
            "(not run without them); the others run anywhere.")
    ap.add_argument("--full", action="store_true",
                    help="benchmarks at their full sizes (10 M rows; fleet 55 M rows)")
    ap.add_argument("--skip", nargs="*", default=[], metavar="NAME",
                    help=f"steps to skip: {', '.join(STEPS)}")
    ap.add_argument("--only", nargs="*", default=None, metavar="NAME",
                    help="run only these steps (the others keep their previous README section)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per step")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md",
                    help="README whose generated figures block is rewritten (default README.md)")
    ap.add_argument("--experiments-readme", type=Path, default=None,
                    help="run log README (default experiments/README.md)")
    ap.add_argument("--model", default="models/production",
                    help="model of the model-quality steps (default: the shipped one)")
    ap.add_argument("--tracking-uri", default=None,
                    help="MLflow store of the evaluation runs (default: the project's, "
                         "sqlite:///$FADECAST_HOME/mlflow/mlflow.db)")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.skip) - set(STEPS)) + sorted(set(args.only or ()) - set(STEPS))
    if unknown:
        ap.error(f"unknown step {unknown[0]!r}; steps are {', '.join(STEPS)}")
    chosen = [s for s in STEPS if s not in args.skip and (args.only is None or s in args.only)]
    from readme_figures import MarkersMissing, check_markers, render_block
    from readme_figures import write_readme as write_figures

    try:  # before hours of work: the README must hold the markers
        previous = check_markers(args.readme)
    except MarkersMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    py = sys.executable
    if args.tracking_uri is None:
        from data_registry.home import mlflow_tracking_uri

        args.tracking_uri = mlflow_tracking_uri()
    info = machine()
    info["python_exe"] = py
    info["invocation"] = "python experiments/run_all.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    info["model_line"] = _model_line(args.model)
    results = []
    model_arg: list[str] = []
    if "seed" in chosen:
        seed = run("seed", [py, "experiments/seed_pto_li3ps4/run.py"], args.timeout)
        results.append(seed)
        res_path = HERE / "seed_pto_li3ps4" / "results.json"
        if seed["code"] == 0 and res_path.is_file():
            res = json.loads(res_path.read_text())
            if res.get("model_train_run_id"):  # no champion: reuse the seed's trained model
                model_arg = ["--model", res["model_dir"]]
    if "seed-cohort" in chosen:
        results.append(run("seed-cohort", [py, "experiments/seed_pto_li3ps4/cohort.py",
                                           "--json"], args.timeout))
    if "public" in chosen:
        results.append(run("public", [py, "experiments/public_benchmarks/run.py", *model_arg],
                           args.timeout))
    if any(s in chosen for s in MODEL_STEPS):
        for name, cmd, why in model_steps(py, args.model, args.tracking_uri):
            if name not in chosen:
                continue
            results.append(run(name, cmd, args.timeout) if cmd
                           else _not_run(name, [], why, NO_DATA))
    if "loso" in chosen:  # three trainings in one step: twice the per-step timeout
        cmd, why = loso_step(py)
        results.append(run("loso", cmd, 2 * args.timeout) if cmd
                       else _not_run("loso", [], why, NO_DATA))
    for name, (script, moderate, full) in BENCHMARKS.items():
        if name not in chosen:
            continue
        path = HERE / script
        cmd = [py, f"experiments/{script}", *(full if args.full else moderate)]
        if name == "load":
            cmd += ["--model", args.model]
        if not path.is_file():
            results.append(_not_run(name, cmd, f"{script} not present"))
            continue
        results.append(run(name, cmd, args.timeout))
    if "web" in chosen:
        results.append(web_step(py, args.timeout))
    log = render(results, info, args.full)
    if len(chosen) < len(STEPS):  # the steps not run keep their previous rows and sections
        path = args.experiments_readme or README
        text = path.read_text(encoding="utf-8") if Path(path).is_file() else ""
        if BEGIN in text and END in text:
            log = kept_from_previous(text.split(BEGIN, 1)[1].split(END, 1)[0], log)
    write_readme(log, args.experiments_readme)
    print(f"wrote {args.experiments_readme or README}", file=sys.stderr)
    block = render_block(results, info, list(STEPS), previous,
                         skipped=[s for s in STEPS if s not in chosen])
    write_figures(args.readme, block)
    print(f"wrote the generated figures of {args.readme}", file=sys.stderr)
    return 0 if all(r["code"] in (0, NO_DATA) for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
