"""``make bench``'s README figures: recorded step outputs → the generated block of README.md.

Fast, no subprocesses: the steps' printed JSON (recorded from real runs — ``fadecast evaluate
--suite synthetic`` / ``--suite pybamm-cohorts`` and ``benchmarks/cohort.py`` on 2026-12-06,
the other sources' rows as printed for the README of that day) goes through
``experiments/readme_figures.py`` and ``experiments/run_all.main`` with the subprocess runner
replaced, and the block is checked figure by figure: values, commands, run ids, "missed" marks.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = "/venv/bin/python"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


rf = _load("readme_figures", ROOT / "experiments" / "readme_figures.py")
run_all = _load("exp_run_all_figures", ROOT / "experiments" / "run_all.py")

INFO = {"date": "2026-12-06 23:40 UTC", "nproc": "2", "cpu": "AMD EPYC", "memory": "23.5 GiB",
        "os": "Linux 6", "python": "3.11.7", "threads": "OMP_NUM_THREADS=1", "python_exe": PY}
URI = "sqlite:////home/u/fadecast-data/mlflow/mlflow.db"

EVAL_CMD = [PY, "-m", "serving.cli", "evaluate", "--model", "models/production",
            "--tracking-uri", URI, "--suite", "pybamm-dev", "--suite", "synthetic", "--suite",
            "nasa-pcoe", "--suite", "severson", "--json"]
EVALUATE = {"model": {"name": "fadecast-forecaster", "version": "2+0d178e41"},
            "mlflow_run_id": "18d71fd87f03407eb5e79d56a9d2afa7", "suites": [],
            "by_source": [
                {"source": "pybamm-dev", "in_training": "yes", "cells": 9,
                 "model_capacity_error_pct": 0.58, "naive_capacity_error_pct": 0.73,
                 "model_coverage_90_pct": 95.7, "model_eol_error_pct": 3.1,
                 "naive_eol_error_pct": 4.0, "model_time_share_error_median": 0.025,
                 "naive_time_share_error_median": 0.060, "model_time_share_error_p90": 0.041,
                 "naive_time_share_error_p90": 0.152},
                {"source": "synthetic", "in_training": "yes", "cells": 24,
                 "model_capacity_error_pct": 1.1462031646281516,
                 "model_eol_error_pct": 5.046372299250058,
                 "model_coverage_90_pct": 91.11952861952862,
                 "model_time_share_error_median": 0.05647946737166104,
                 "model_time_share_error_p90": 0.11628225154567078,
                 "naive_capacity_error_pct": 1.298229335094546,
                 "naive_eol_error_pct": 4.610606275731521,
                 "naive_coverage_90_pct": 81.73400673400674,
                 "naive_time_share_error_median": 0.2167783343627107,
                 "naive_time_share_error_p90": 0.5278155971360837,
                 "model_eol_coverage_90_pct": 87.5, "eol_interval_cells": 8},
                {"source": "nasa-pcoe", "in_training": "no", "cells": 3,
                 "model_capacity_error_pct": 7.7, "naive_capacity_error_pct": 4.1,
                 "model_coverage_90_pct": 15.0, "model_eol_error_pct": None,
                 "naive_eol_error_pct": None, "model_time_share_error_median": None,
                 "naive_time_share_error_median": None, "model_time_share_error_p90": None,
                 "naive_time_share_error_p90": None},
                {"source": "severson-test1", "in_training": "sibling (severson-train)",
                 "cells": 43, "model_eol_error_pct": 13.4, "naive_eol_error_pct": 30.2,
                 "model_eol_error_pct_with_delta_q": 11.6,
                 "model_eol_error_pct_from_300": 10.4, "naive_eol_error_pct_from_300": 273.2}]}


def _fig(name: str, model: float, ref: float | None, target: str = "") -> dict:
    return {"figure": name, "unit": "", "target": target,
            "values": {"cohort_law": model, "joint_lsq_reference": ref}}


COHORTS = {"model": {"name": "fadecast-forecaster", "version": "2+0d178e41"},
           "mlflow_run_id": "c902133ccbdf442581ec5cfe0cb9594e", "by_source": [],
           "suites": [{"suite": "pybamm-cohorts", "figures": [
               _fig("time_share_abs_error_median", 0.01021983581149602, 0.017311283366939767),
               _fig("time_share_abs_error_p90", 0.021605484465288427, 0.031499797129482254),
               _fig("time_share_coverage_90_pct", 100.0, None),
               _fig("time_share_coverage_90_pct_ci95_low", 79.40927857921774, None),
               _fig("time_share_coverage_90_pct_ci95_high", 100.0, None),
               _fig("what_if_capacity_error_pct_of_nominal", 0.8692814476471578,
                    1.8932941652961206),
               dict(_fig("cells_scored", 16.0, 16.0), unit="cells"),
               _fig("time_share_coverage_90_pct_pooled_cuts", 93.75, None),
               _fig("synthetic:time_share_abs_error_median", 0.044, 0.131)]}]}
SEVERSON = {"summary": {"split": "test1", "cells": 43, "failed": 0, "delta_q_given": True,
                        "mape_pct": 11.6, "mape_pct_excl_life_below_200": 10.9,
                        "coverage_90_pct": 79.07, "heads": ["ridge"], "model": "2+0d178e41"},
            "cells": []}
BACKTEST = {"model": {"name": "fadecast-forecaster", "version": "2+0d178e41"},
            "interval_scale": 1.2, "suites": {
                "synthetic": {"n_cells": 12, "n_stopped_early": 10, "correct_call_share": 1.0,
                              "median_hours_saved_fraction": 0.42,
                              "median_eol_error_fraction_at_stop": 0.042,
                              "p90_eol_error_fraction_at_stop": 0.09},
                "pybamm-dev": {"skipped": "pybamm-dev is not in ../shared/data"}}}
LOAD = {"model": "models/production", "p99_goal_ms": 20.0,
        "forecast_body": {"rate": 200.0, "p50_ms": 4.1, "p99_ms": 15.8, "errors": 0},
        "forecast_stored_cell": {"rate": 700.0, "p50_ms": 2.0, "p99_ms": 19.3, "errors": 0},
        "batch": {"items": 100, "cells_per_second_wall": 208.0},
        "follow": {"cycles": 5, "answered": 5, "p50_s": 0.23, "max_s": 0.34,
                   "history_cycles": 120}}
COHORT_BENCH = {"cells": 5, "cycles_per_cell": [300] * 5, "repeats": 3,
                "attribute_s_median": 0.741, "http_s_median": 0.776, "goal_s": 2.0,
                "goal_met": True}
FEATURIZE_OUT = ("per_cycle_descriptors_s                 0.21\n"
                 "build_cycle_table_mrows_per_s            18.3\n"
                 "build_basic_vs_plain_groupby             0.47\n")


MIDLIFE_CMD = [PY, "experiments/severson_early_life/midlife.py", "--split", "test1",
               "--fractions", "0.5", "0.8", "--with-charge-policy", "--model",
               "models/production", "--tracking-uri", URI, "--json"]
# printed by that command on 2026-12-07 (production model 2+fd4b25a5, before the end-of-life
# calibration; the figures of the shipped model are in README.md)
MIDLIFE = {"model": {"name": "fadecast-forecaster", "version": "2+fd4b25a5"}, "split": "test1",
           "cuts": [{"fraction_of_life": 0.5, "cells": 21,
                     "median_signed_error_pct": 29.132231404958674,
                     "mape_pct": 28.78634711788785,
                     "interval_holds_truth_pct": 47.61904761904761,
                     "no_end_of_life_in_horizon": 0, "cycle_life_head_used": 1},
                    {"fraction_of_life": 0.8, "cells": 21, "median_signed_error_pct": 15.234375,
                     "mape_pct": 13.901949740747895, "interval_holds_truth_pct": 38.095238095238095,
                     "no_end_of_life_in_horizon": 0, "cycle_life_head_used": 0},
                    # a row of the --with-charge-policy pass (figures made up for the layout)
                    {"fraction_of_life": 0.5, "given": "capacity + charge policy", "cells": 21,
                     "median_signed_error_pct": -3.5, "mape_pct": 12.25,
                     "interval_holds_truth_pct": 90.5,
                     "no_end_of_life_in_horizon": 0, "cycle_life_head_used": 20}],
           "mlflow_run_id": "8603a1c0373c4ae1be3659fe1eeee0f9"}


EOL_HELDOUT_CMD = [PY, "experiments/eol_calibration/heldout.py", "--model", "models/production",
                   "--tracking-uri", URI, "--json"]
# the shape that command prints (two of its rows, figures of a prototype card on 2026-12-07)
EOL_HELDOUT = {"model": {"name": "fadecast-forecaster", "version": "2+1227d9ed"},
               "config": "config.toml", "edges": [1 / 3, 2 / 3], "card_has_bins": True,
               "test_cells": 51, "failed_cuts": 0, "mlflow_run_id": "0e1f" * 8,
               "rows": [{"source": "all", "third": "first third", "cuts": 159, "cells": 45,
                         "holds_bins_pct": 77.35849056603774,
                         "holds_pooled_pct": 76.72955974842768,
                         "width_bins_median": float("inf"), "width_pooled_median": float("inf")},
                        {"source": "all", "third": "last third", "cuts": 326, "cells": 47,
                         "holds_bins_pct": 94.78527607361963,
                         "holds_pooled_pct": 97.54601226993866,
                         "width_bins_median": 0.4, "width_pooled_median": 0.65}],
               "head_rows": [{"source": "severson-train", "cuts": 105, "cells": 8,
                              "holds_pct": 97.14285714285714, "width_median": 1.2}]}


def _step(name: str, cmd: list[str], doc: dict | None, code: int = 0, stdout: str = "",
          seconds: float = 12.0) -> dict:
    return {"name": name, "cmd": cmd, "code": code, "seconds": seconds, "stdout": stdout,
            "stderr_tail": "Traceback ...\nFadecastError: boom" if code else "", "json": doc}


RESULTS = [
    _step("evaluate", EVAL_CMD, EVALUATE),
    _step("evaluate-cohorts", [PY, "-m", "serving.cli", "evaluate", "--model",
                               "models/production", "--tracking-uri", URI, "--suite",
                               "pybamm-cohorts", "--json"], COHORTS),
    _step("severson", [PY, "experiments/severson_early_life/run.py", "--split", "test1",
                       "--model", "models/production", "--json"], SEVERSON),
    _step("severson-midlife", MIDLIFE_CMD, MIDLIFE),
    _step("eol-heldout", EOL_HELDOUT_CMD, EOL_HELDOUT),
    _step("backtest", [PY, "-m", "serving.cli", "backtest", "--model", "models/production",
                       "--suite", "synthetic", "--json"], BACKTEST),
    _step("load", [PY, "experiments/benchmarks/load.py", "--quick", "--model",
                   "models/production"], LOAD),
    _step("cohort", [PY, "experiments/benchmarks/cohort.py", "--repeats", "3"], COHORT_BENCH),
    _step("featurize", [PY, "experiments/benchmarks/featurize.py", "--rows", "1000000"], None,
          stdout=FEATURIZE_OUT),
]


def _section(block: str, name: str) -> str:
    return rf.old_sections(block)[name] and "\n".join(rf.old_sections(block)[name])


def _row(text: str, source: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {source} |"))
    return [c.strip() for c in line.strip("|").split("|")]


@pytest.fixture()
def block() -> str:
    return rf.render_block(RESULTS, INFO, list(run_all.STEPS), previous="",
                           skipped=["seed", "public", "ingest", "serving"])


def test_per_source_table_values_commands_run_id_and_misses(block):
    text = _section(block, "evaluate")
    assert ("`fadecast evaluate --model models/production --tracking-uri "
            f"{URI} --suite pybamm-dev --suite synthetic --suite nasa-pcoe --suite severson "
            "--json`") in text
    assert "MLflow run `18d71fd87f03407eb5e79d56a9d2afa7`" in text
    assert "2026-12-06 23:40 UTC, 2 CPU(s) (AMD EPYC)" in text
    # in training comes verbatim from evaluate's card-derived rows
    syn = _row(text, "synthetic")
    assert syn[1:3] == ["yes", "24"]
    assert syn[3] == "**1.15** / 1.30"          # model beats √t+N: bold, no miss
    assert syn[4] == "91.1 %"                   # inside 85–95
    assert syn[7] == "**0.116** / 0.528"
    assert syn[5].endswith("; 90 % interval holds 87.5 % of 8")  # one point per cell: no mark
    assert "missed" not in " ".join(syn)
    pyb = _row(text, "pybamm-dev")
    assert pyb[4] == "95.7 % **missed**"        # above 95
    nasa = _row(text, "nasa-pcoe")
    assert nasa[1] == "no"
    assert nasa[3] == "7.70 / **4.10** **missed**"  # √t+N wins
    assert nasa[4] == "15.0 % **missed**"
    assert nasa[7] == "–"                       # no time/cycle truth: not a miss
    sev = _row(text, "severson-test1")
    assert sev[1] == "sibling (severson-train)"
    # the ≤ 12 % target applies to histories with the ΔQ(V) summaries (11.6 here: met)
    assert sev[5] == ("capacity only **13.4** / 30.2; with ΔQ(V) 11.6; "
                      "from 300 cycles **10.4** / 273")


def test_cohort_section_targets(block):
    text = _section(block, "evaluate-cohorts")
    assert "MLflow run `c902133ccbdf442581ec5cfe0cb9594e`" in text
    assert "--suite pybamm-cohorts --json`" in text
    assert "| time_share_abs_error_median () | 0.0102 | 0.0173 | ≤ 0.02 |" in text
    assert "| time_share_abs_error_p90 () | 0.0216 | 0.0315 | ≤ 0.04 |" in text
    assert ("| time_share_coverage_90_pct () | 100 (95 % CI 79.4–100) **missed** | – "
            "| 85–95 % |") in text
    assert "| time_share_coverage_90_pct_pooled_cuts () | 93.8 | – | 85–95 % |" in text
    assert "| what_if_capacity_error_pct_of_nominal () | 0.869 | 1.89 | ≤ 1 |" in text
    assert "| cells_scored (cells) | 16 | 16 | – |" in text
    assert "synthetic:" not in text


def test_severson_backtest_load_and_cohort_bench(block):
    sev = _section(block, "severson")
    assert "`python experiments/severson_early_life/run.py --split test1 --model " \
           "models/production --json`; no MLflow run" in sev
    assert "MAPE: 11.6 % (target ≤ 12 % met; goal ≤ 10 % **missed**)" in sev
    assert "for 79.1 % of cells" in sev
    bt = _section(block, "backtest")
    assert "| synthetic | 12 | 10 | 100.0 % | 42.0 % | 4.2 % / 9.0 % |" in bt
    assert "| pybamm-dev | skipped: pybamm-dev is not in ../shared/data |" in bt
    load = _section(block, "load")
    assert "`python experiments/benchmarks/load.py --quick --model models/production`" in load
    assert ("200 req/s (p50 4.10 ms, p99 15.8 ms) **missed** (target ≥ 500 req/s at p99 ≤ 20 ms)"
            in load)
    assert "stored cell): 700 req/s (p50 2.00 ms, p99 19.3 ms)\n" in load  # no target there
    assert "208 cells/s wall **missed** (target ≥ 5,000)" in load
    assert "p50 0.23 s, max 0.34 s (target ≤ 1 s; 5/5 cycles advised)" in load
    coh = _section(block, "cohort")
    assert "5 cells × 300 cycles, 3 repeats: in process median 0.741 s, through the API " \
           "median 0.776 s (target ≤ 2 s)" in coh
    feat = _section(block, "featurize")
    assert "build_cycle_table_mrows_per_s            18.3" in feat
    assert "per_cycle_descriptors_s" not in feat


def test_misses_flip_with_the_figures():
    fast = dict(LOAD, forecast_body={"rate": 700.0, "p50_ms": 3.0, "p99_ms": 12.0, "errors": 0},
                batch={"cells_per_second_wall": 6000.0}, follow={"answered": 0, "cycles": 5})
    text = "\n".join(rf.load_section(_step("load", ["x"], fast), INFO))
    assert "700 req/s (p50 3.00 ms, p99 12.0 ms) (target met; goal ≥ 1000 **missed**)" in text
    assert "6,000 cells/s wall (target" in text
    assert "`fadecast follow`: no advice seen **missed**" in text
    worse = dict(SEVERSON, summary=dict(SEVERSON["summary"], mape_pct=12.5))
    text = "\n".join(rf.severson_section(_step("severson", ["x"], worse), INFO))
    assert "12.5 % **missed** (target ≤ 12 %)" in text
    assert rf.check(85.0, "85-95") and rf.check(95.0, "85–95 %") and not rf.check(84.9, "85-95")
    assert rf.check(None, "<= 1") is None and rf.check(0.5, "") is None


def test_failed_and_skipped_steps(block):
    failed = "\n".join(rf.section(_step("severson", ["x"], None, code=1), INFO))
    assert "**failed** (exit 1): `Traceback ... / FadecastError: boom`" in failed
    # skipped with no previous block: says so
    assert "**Seed study (PTO / β-Li3PS4 cells)**: not run yet (skipped)." in block
    # a later run that skips 'evaluate' keeps its section verbatim (with its own date/run id)
    later = rf.render_block([_step("cohort", ["x"], dict(COHORT_BENCH, http_s_median=3.0))],
                            dict(INFO, date="2026-12-07 01:00 UTC"), list(run_all.STEPS),
                            previous=f"# R\n{block}\n",
                            skipped=[s for s in run_all.STEPS if s != "cohort"])
    assert _section(later, "evaluate") == _section(block, "evaluate")
    assert "MLflow run `18d71fd87f03407eb5e79d56a9d2afa7`" in later
    assert "through the API median 3.00 s **missed**" in _section(later, "cohort")


def test_replace_block_keeps_the_rest_and_refuses_without_markers(tmp_path):
    text = f"# R\n\n## Measured figures\n\n{rf.BEGIN}\nold\n{rf.END}\n\n## Why\nkeep\n"
    out = rf.replace_block(text, f"{rf.BEGIN}\nnew\n{rf.END}")
    assert out == f"# R\n\n## Measured figures\n\n{rf.BEGIN}\nnew\n{rf.END}\n\n## Why\nkeep\n"
    for bad in ("# R\nno markers\n", f"{rf.END}\n{rf.BEGIN}\n", f"{rf.BEGIN}\n{rf.BEGIN}\n{rf.END}"):
        with pytest.raises(rf.MarkersMissing, match="BEGIN GENERATED FIGURES"):
            rf.replace_block(bad, "x")
    path = tmp_path / "README.md"
    path.write_text("# R\n")
    with pytest.raises(rf.MarkersMissing, match=str(path)):
        rf.write_readme(path, "x")
    assert path.read_text() == "# R\n"          # nothing written


def test_command_text():
    assert rf.command_text([PY, "-m", "serving.cli", "backtest", "--json"], PY) == \
        "fadecast backtest --json"
    assert rf.command_text([PY, "experiments/x.py", "--a", "b c"], PY) == \
        "python experiments/x.py --a 'b c'"


# ------------------------------------------------------------------------------ run_all.main
@pytest.fixture()
def recorded(monkeypatch, tmp_path):
    """run_all with the subprocess runner and the model-step planner replaced by recordings."""
    by_name = {r["name"]: r for r in RESULTS}
    calls: list[str] = []

    def fake_run(name, cmd, timeout):
        calls.append(name)
        return dict(by_name.get(name) or _step(name, cmd, None, stdout="x"), cmd=cmd)

    def fake_model_steps(py, model, uri):
        return [("evaluate", EVAL_CMD, ""), ("evaluate-cohorts", None, "no cohorts here"),
                ("severson", RESULTS[2]["cmd"], ""), ("backtest", RESULTS[3]["cmd"], "")]

    monkeypatch.setattr(run_all, "run", fake_run)
    monkeypatch.setattr(run_all, "model_steps", fake_model_steps)
    readme = tmp_path / "README.md"
    readme.write_text(f"# R\n\n## Measured figures\n\n{rf.BEGIN}\n{rf.END}\n\n## Why\n")
    exp = tmp_path / "EXP.md"
    exp.write_text(f"# exp\n\n{run_all.BEGIN}\n{run_all.END}\n")
    return calls, readme, exp


def test_main_runs_only_the_chosen_steps_and_writes_both_blocks(recorded):
    calls, readme, exp = recorded
    code = run_all.main(["--only", "evaluate", "evaluate-cohorts", "load", "--readme",
                         str(readme), "--experiments-readme", str(exp), "--tracking-uri", URI])
    assert calls == ["evaluate", "load"]        # the cohort suite had no data: not run
    assert code == 0                             # ... reported as not run, not a failure
    text = readme.read_text()
    assert text.startswith("# R\n\n## Measured figures\n\n") and text.endswith("\n\n## Why\n")
    assert "MLflow run `18d71fd87f03407eb5e79d56a9d2afa7`" in text
    assert "**not run**: no cohorts here" in text
    assert "--model models/production`" in text  # load.py gets the evaluated model
    assert "**Seed study (PTO / β-Li3PS4 cells)**: not run yet (skipped)." in text
    assert "| load |" in exp.read_text()


def test_main_refuses_before_running_when_markers_are_absent(recorded, capsys):
    calls, readme, exp = recorded
    readme.write_text("# R\n")
    assert run_all.main(["--readme", str(readme), "--experiments-readme", str(exp)]) == 2
    assert calls == []
    assert "BEGIN GENERATED FIGURES" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_all.main(["--skip", "nope", "--readme", str(readme)])


def test_main_exits_1_when_a_step_fails(recorded, monkeypatch):
    calls, readme, exp = recorded
    monkeypatch.setattr(run_all, "run", lambda name, cmd, timeout: _step(name, cmd, None, code=1))
    assert run_all.main(["--only", "backtest", "--readme", str(readme),
                         "--experiments-readme", str(exp), "--tracking-uri", URI]) == 1
    assert "**failed** (exit 1): `Traceback ... / FadecastError: boom`" in readme.read_text()


# ------------------------------------------------------------------ fleet, web, seed cohort
#: experiments/benchmarks/fleet.py --cells 20 --rows-per-cell 250000 --big-cell-rows 2000000
#: --json, as printed on 2026-12-06 (nice -n 19, this machine)
FLEET = {"load_before": [2.47509765625, 2.69189453125, 2.34423828125], "rows": 7000000,
         "cells": 21, "generate_s": 2.7, "voltage_curves": True, "parquet_mib": 63.8,
         "one_process": {"wall_s": 4.54, "cpu_s": 1.98, "mrows_per_s": 1.54,
                         "mrows_per_cpu_s": 3.53, "peak_rss_mib": 769.1, "cycles": 10800},
         "workers_1": {"cluster_start_s": 6.3, "wall_s": 6.87, "worker_cpu_s": 2.51,
                       "mrows_per_s": 1.02, "mrows_per_worker_cpu_s": 2.79,
                       "peak_rss_mib_per_worker": [599.0], "memory_limit_mib": 1024,
                       "cells_in_cycle_blocks": 1, "max_cell_rows_in_memory": 1277952,
                       "equal_to_one_process": True},
         "workers_2": {"cluster_start_s": 2.8, "wall_s": 3.42, "worker_cpu_s": 2.96,
                       "mrows_per_s": 2.05, "mrows_per_worker_cpu_s": 2.36,
                       "peak_rss_mib_per_worker": [599.1, 465.3], "memory_limit_mib": 1024,
                       "cells_in_cycle_blocks": 1, "max_cell_rows_in_memory": 1277952,
                       "equal_to_one_process": True},
         "load_after": [4.2783203125, 3.13818359375, 2.51025390625]}
FLEET_CMD = [PY, "experiments/benchmarks/fleet.py", *run_all.BENCHMARKS["fleet"][1]]
#: experiments/seed_pto_li3ps4/cohort.py --json, as printed on 2026-12-06
SEED_COHORT = {
    "cycle": 100,
    "joint": {"p05": 0.9614172787095618, "p50": 0.9781942918574522, "p95": 0.9897685812735114,
              "truth": 0.9658076388203257, "width": 0.028351302563949576,
              "advice": "the split is poorly pinned (90 % width 0.19); run a sibling at 1C, no "
                        "extra rest for 1806 h (expected width 0.16)",
              "next_protocol": "1C, no extra rest"},
    "alone": {"p05": 0.8000149123058022, "p50": 0.9177969977586369, "p95": 0.9709309640073108,
              "truth": 0.9658076388203257, "width": 0.1709160517015086,
              "advice": "one cell cannot separate time from cycles (90 % time-share width "
                        "0.19); run a sibling at 0.2C, no extra rest for 1808 h (expected "
                        "width 0.07)", "next_protocol": "0.2C, no extra rest"},
    "joint_c03": {"p05": 0.5618792692630152, "p50": 0.7149162050400298,
                  "p95": 0.9006106801233449, "truth": 0.6802433671168586},
    "plan_c03": {"mae_pct_of_reference": 4.1276748877645, "coverage_pct": 100.0,
                 "retention_p50_last": 0.8849703706084531,
                 "retention_measured_last": 0.9673379512060986, "cycles": 100}}
SEED_COHORT_CMD = [PY, "experiments/seed_pto_li3ps4/cohort.py", "--json"]
WEB_CMD = [PY, "-m", "pytest", "-s", "-p", "no:cacheprovider", "tests/test_web_pages.py"]
#: what `pytest -s tests/test_web_pages.py` printed on 2026-12-06 (its two timing lines verbatim)
WEB_OUT = (
    ".\nweb: 500-cycle cell page interactive (ms from navigation start): load 1: 1471 (request "
    "152, plotlyStart 73, dataMs 1206, plotlyMs 1211, readyMs 1471); load 2: 495 (request 6, "
    "plotlyStart 48, dataMs 304, plotlyMs 306, readyMs 495); load 3: 300 (request 6, "
    "plotlyStart 38, dataMs 129, plotlyMs 133, readyMs 300)\n"
    "web: what-if updates 90, 80, 61 ms (input to redrawn plot: request + redraw; not "
    "asserted)\n...\n5 passed in 36.20s\n")
#: ... and with no Chromium on PATH (every test skipped, exit 0)
WEB_SKIPPED = (
    "sssss\n=========================== short test summary info "
    "============================\n"
    "SKIPPED [1] tests/test_web_pages.py:240: no Chromium on this machine (apt-get install "
    "chromium; `make test` and .ci/run install it when they can)\n"
    "SKIPPED [1] tests/test_web_pages.py:297: no Chromium on this machine (apt-get install "
    "chromium; `make test` and .ci/run install it when they can)\n5 skipped in 0.45s\n")
FEATURIZE_FULL_OUT = FEATURIZE_OUT + ("curves_part_mrows_per_s                  11.8\n"
                                      "plain_groupby_mrows_per_s                38.9\n")


def _new_steps() -> list[dict]:
    return [_step("seed-cohort", SEED_COHORT_CMD, SEED_COHORT, seconds=1.4),
            _step("fleet", FLEET_CMD, FLEET, seconds=33.0),
            _step("web", WEB_CMD, rf.parse_web(WEB_OUT), stdout=WEB_OUT, seconds=38.0)]


def test_fleet_section_values_command_and_targets():
    block = rf.render_block(_new_steps(), INFO, list(run_all.STEPS))
    text = _section(block, "fleet")
    assert ("`python experiments/benchmarks/fleet.py --cells 20 --rows-per-cell 500000 "
            "--big-cell-rows 2000000 --json`; no MLflow run; 33 s; 2026-12-06 23:40 UTC") in text
    assert "- 7,000,000 sample rows, 21 cells (one big cell), 63.8 MiB of Parquet" in text
    assert "voltage-curve descriptors on; 1-min load average 2.48 before, 4.28 after" in text
    assert "| one process | 4.54 | 1.54 | 3.53 | 769 | – (whole cells) | reference |" in text
    assert "| 1 Dask worker (1,024 MiB each) | 6.87 | 1.02 | 2.79 | 599 | 1 | yes |" in text
    assert "| 2 Dask workers (1,024 MiB each) | 3.42 | 2.05 | 2.36 | 599 / 465 | 1 | yes |" in text
    assert "missed" not in text          # no fleet target applies to a run with the curves on
    assert "checked in the Features section" in text
    # the basic path (curves off) is held to ≥ 20 M rows per CPU-second; a mismatch is a miss
    basic = dict(FLEET, voltage_curves=False,
                 workers_2=dict(FLEET["workers_2"], equal_to_one_process=False,
                                mrows_per_worker_cpu_s=21.0))
    text = "\n".join(rf.fleet_section(_step("fleet", FLEET_CMD, basic), INFO))
    assert "| one process | 4.54 | 1.54 | 3.53 **missed** | 769 |" in text
    assert "| 2.05 | 21.0 | 599 / 465 | 1 | no **missed** |" in text
    assert "off (basic path)" in text
    # the full size is today's 55 M-row default; the moderate size stays small
    assert run_all.BENCHMARKS["fleet"][2] == ["--json"]


def test_web_timings_parsed_from_pytest_output_and_marked():
    doc = rf.parse_web(WEB_OUT)
    assert doc["first_visit_ms"] == 1471.0 and doc["later_visit_ms"] == [495.0, 300.0]
    assert doc["whatif_ms"] == [90.0, 80.0, 61.0]
    assert doc["load_marks"][1] == ("request 6, plotlyStart 48, dataMs 304, plotlyMs 306, "
                                    "readyMs 495")
    text = _section(rf.render_block(_new_steps(), INFO, list(run_all.STEPS)), "web")
    assert ("`python -m pytest -s -p no:cacheprovider tests/test_web_pages.py`; no MLflow run; "
            "38 s") in text
    assert "(plotly.js compiled from scratch): 1,471 ms **missed** (target ≤ 1,000 ms)" in text
    assert "- later visits: 495, 300 ms (target ≤ 1,000 ms)" in text
    assert "- what-if redraw (input to redrawn plot): 90, 80, 61 ms (target ≤ 300 ms)" in text
    assert "web: what-if updates 90, 80, 61 ms (input to redrawn plot" in text  # verbatim
    slow = dict(doc, first_visit_ms=900.0, whatif_ms=[120.0, 301.0])
    text = "\n".join(rf.web_section(_step("web", WEB_CMD, slow), INFO))
    assert "scratch): 900 ms (target" in text
    assert "120, 301 ms **missed** (target ≤ 300 ms)" in text
    assert rf.parse_web("5 passed\n") is None and rf.web_skip_reason(WEB_OUT) is None
    assert rf.web_skip_reason(WEB_SKIPPED).startswith("no Chromium on this machine (apt-get")


def test_seed_cohort_section_and_its_targets():
    text = _section(rf.render_block(_new_steps(), INFO, list(run_all.STEPS)), "seed-cohort")
    assert "`python experiments/seed_pto_li3ps4/cohort.py --json`; no MLflow run; 1 s" in text
    assert ("- C/10 time share at cycle 100, both cells fitted jointly: 0.978 (90 % interval "
            "0.961–0.99), truth 0.966 (target ≥ 0.85, truth inside the 90 % interval)") in text
    assert "- the C/10 cell alone: 0.918 (90 % interval 0.8–0.971), truth 0.966; advice: one " \
           "cell cannot separate" in text
    assert "0.715 (90 % interval 0.562–0.901), truth 0.68" in text
    assert "mean |error| 4.13 % of reference, its 90 % band holds 100 % of 100 measured" in text
    assert "missed" not in text
    bad = dict(SEED_COHORT, joint=dict(SEED_COHORT["joint"], p50=0.80, p05=0.70, p95=0.90))
    text = "\n".join(rf.seed_cohort_section(_step("seed-cohort", ["x"], bad), INFO))
    assert "jointly: 0.8 **missed** (90 % interval 0.7–0.9), truth 0.966 outside the " \
           "interval **missed**" in text


def test_featurize_section_marks_the_basic_path_targets():
    r = _step("featurize", [PY, "experiments/benchmarks/featurize.py"], None,
              stdout=FEATURIZE_FULL_OUT)
    text = "\n".join(rf.section(r, INFO))
    assert ("Targets: basic path 18.3 M rows/s **missed** (target ≥ 20 M rows/s); basic path "
            "vs a plain pandas groupby 0.47× **missed** (target ≥ 3×); voltage-curve part "
            "11.8 M rows/s (target ≥ 10 M rows/s).") in text


def test_main_runs_the_new_steps_and_reports_a_skipped_browser(recorded, monkeypatch):
    calls, readme, exp = recorded
    out = {s["name"]: s for s in _new_steps()}
    seen: dict[str, list[str]] = {}

    def fake_run(name, cmd, timeout):
        seen[name] = cmd
        r = dict(out[name], cmd=cmd)
        return dict(r, json=None) if name == "web" else r  # web: run_all parses stdout

    monkeypatch.setattr(run_all, "run", fake_run)
    argv = ["--only", "fleet", "web", "seed-cohort", "--readme", str(readme),
            "--experiments-readme", str(exp), "--tracking-uri", URI]
    assert run_all.main(argv) == 0
    assert list(seen) == ["seed-cohort", "fleet", "web"]
    assert seen["web"][1:] == WEB_CMD[1:] and seen["seed-cohort"][1:] == SEED_COHORT_CMD[1:]
    assert seen["fleet"][1:] == FLEET_CMD[1:]
    text = readme.read_text()
    assert "1,471 ms **missed**" in text and "| one process | 4.54 |" in text
    assert "0.978 (90 % interval 0.961–0.99)" in text
    # no Chromium: every browser test skipped → "not run" with pytest's reason, exit 0
    out["web"] = _step("web", WEB_CMD, None, stdout=WEB_SKIPPED)
    assert run_all.main(["--only", "web", *argv[4:]]) == 0
    web = _section(readme.read_text(), "web")
    assert "**not run**: pytest skipped the browser tests: no Chromium on this machine" in web
    assert "| one process | 4.54 |" in readme.read_text()  # the skipped fleet kept its section
    # a browser test failing without timings is a failure
    out["web"] = _step("web", WEB_CMD, None, code=1, stdout="F....\n1 failed\n")
    assert run_all.main(["--only", "web", *argv[4:]]) == 1


def test_severson_target_is_judged_on_the_delta_q_figure():
    """Capacity-only early life carries no ≤ 12 % target; the ΔQ(V) figure does."""
    row = {"source": "severson-test1", "in_training": "sibling (severson-train)", "cells": 42,
           "model_eol_error_pct": 29.3, "naive_eol_error_pct": 355.0,
           "model_eol_error_pct_with_delta_q": 12.4}
    r = {"name": "evaluate", "cmd": EVAL_CMD, "returncode": 0, "seconds": 1.0,
         "json": {"model": EVALUATE["model"], "by_source": [row]}}
    text = "\n".join(rf.evaluate_section(r, INFO))
    assert _row(text, "severson-test1")[5] == \
        "capacity only **29.3** / 355; with ΔQ(V) 12.4 (≤ 12 % **missed**)"
    row["model_eol_error_pct_with_delta_q"] = 11.6
    text = "\n".join(rf.evaluate_section(r, INFO))
    assert "missed" not in _row(text, "severson-test1")[5]


# ------------------------------------------------------------------ leave-one-source-out
loso = _load("exp_loso_run", ROOT / "experiments" / "loso" / "run.py")
LOSO_CMD = [PY, "experiments/loso/run.py", "--home", "/home/u/fadecast-data/loso", "--json"]
#: experiments/loso/run.py --home /tmp/loso-real/home --json as printed on 2026-12-07 (real
#: ../shared/data, 30 epochs × 3 members, nice -n 10; config/model_dir/seconds keys trimmed)
LOSO = {"study": "loso", "home": "/tmp/loso-real/home",
        "tracking_uri": "sqlite:////tmp/loso-real/home/mlflow/mlflow.db", "epochs": 30,
        "epochs_overridden": False, "ensemble": 3, "absent_sources": [], "seconds": 376.9,
        "rows": [
            {"source": "pybamm-dev", "suite": "pybamm-dev", "epochs": 30, "ensemble": 3,
             "train_run_id": "7961572dcab34f93a13d115a264fc19e", "in_training": "no",
             "cells": 9, "model_capacity_error_pct": 1.013772376217375,
             "naive_capacity_error_pct": 0.7255138806758576,
             "model_eol_error_pct": 1.002767170168746, "naive_eol_error_pct": 0.7208482681971041,
             "model_coverage_90_pct": 79.51002227171492,
             "naive_coverage_90_pct": 85.30066815144765,
             "model_width_90_pct": 3.216198243475695, "naive_width_90_pct": 2.428547227459824,
             "model_time_share_error_median": 0.07157231010776233,
             "naive_time_share_error_median": 0.05988598128201894,
             "model_time_share_error_p90": 0.20347445620403778,
             "naive_time_share_error_p90": 0.1520729848877241,
             "eval_run_id": "773aafd403d640cc870a5bf567128436", "model_version": "2+7961572d",
             "status": "ok"},
            {"source": "severson-train", "suite": "severson", "epochs": 30, "ensemble": 3,
             "train_run_id": "bc1dd571f2684a44a5c8d58819d0a2cf", "in_training": "no",
             "cells": 42, "model_capacity_error_pct": None, "naive_capacity_error_pct": None,
             "model_eol_error_pct": 317.1238973754368, "naive_eol_error_pct": 355.4841388990045,
             "model_coverage_90_pct": None, "naive_coverage_90_pct": None,
             "model_width_90_pct": None, "naive_width_90_pct": None,
             "model_time_share_error_median": None, "naive_time_share_error_median": None,
             "model_time_share_error_p90": None, "naive_time_share_error_p90": None,
             "model_eol_error_pct_with_delta_q": 76.27892181125608,
             "eval_run_id": "054ba4942fbe4294af33ecccfd0cf607", "model_version": "2+bc1dd571",
             "status": "ok"},
            {"source": "synthetic", "suite": "synthetic", "epochs": 30, "ensemble": 3,
             "train_run_id": "d8586fe99ac84034b8264dbc463a4673", "in_training": "no",
             "cells": 24, "model_capacity_error_pct": 1.0650731091415093,
             "naive_capacity_error_pct": 1.298229335094546,
             "model_eol_error_pct": 4.499908120401948, "naive_eol_error_pct": 4.610606275731521,
             "model_coverage_90_pct": 93.98148148148148,
             "naive_coverage_90_pct": 81.73400673400674,
             "model_width_90_pct": 7.344679874127339, "naive_width_90_pct": 4.074070289839331,
             "model_time_share_error_median": 0.1987830751296263,
             "naive_time_share_error_median": 0.2167783343627107,
             "model_time_share_error_p90": 0.38449693551690317,
             "naive_time_share_error_p90": 0.5278155971360837,
             "eval_run_id": "de1eb51e0a9c430d8e8ae715b499a9ed", "model_version": "2+d8586fe9",
             "status": "ok"}]}
for _row_doc in LOSO["rows"]:  # what source_row adds now (the run predates the key)
    _row_doc["scored_on"] = {"severson-train": "severson-test1"}.get(_row_doc["source"],
                                                                     _row_doc["source"])


def test_loso_config_leaves_the_source_out_and_never_ships():
    raw = {"name": "default", "register": True, "ship_to": "models/production",
           "data": {"synthetic_cells": 160, "sources": ["pybamm-dev", "severson-train"],
                    "cycle_life_sources": ["severson-train", "severson-qdlin-train"]},
           "model": {"ensemble": 3}, "train": {"epochs": 30, "learning_rate": 0.003}}
    assert loso.trained_sources(raw) == ["synthetic", "pybamm-dev", "severson-train"]
    sev = loso.without_source(raw, "severson-train")
    assert sev["data"]["sources"] == ["pybamm-dev"] and sev["data"]["cycle_life_sources"] == []
    assert sev["ship_to"] == "" and sev["register"] is False
    assert sev["name"] == "loso-without-severson-train" and sev["train"]["epochs"] == 30
    pyb = loso.without_source(raw, "pybamm-dev", epochs=5)
    assert pyb["data"]["sources"] == ["severson-train"] and pyb["train"]["epochs"] == 5
    assert pyb["data"]["cycle_life_sources"] == ["severson-train", "severson-qdlin-train"]
    assert loso.without_source(raw, "synthetic")["data"]["synthetic_cells"] == 0
    assert loso.without_source(raw, "synthetic")["data"]["calibration_synthetic_cells"] == 0
    assert raw["data"]["sources"] == ["pybamm-dev", "severson-train"]  # input untouched
    with pytest.raises(ValueError):
        loso.without_source(raw, "geslin2024")


def test_loso_config_text_loads_as_a_study(tmp_path):
    from ml.training.config import load_config

    raw = loso.tomllib.loads((ROOT / "experiments" / "default" / "config.toml").read_text())
    path = tmp_path / "c.toml"
    path.write_text(loso.dump_toml(loso.without_source(raw, "pybamm-dev")))
    cfg = load_config(path)
    assert cfg.ship_to == "" and cfg.register is False and "pybamm-dev" not in cfg.data.sources
    assert cfg.train.epochs == raw["train"]["epochs"]
    assert cfg.model.ensemble == raw["model"]["ensemble"]


def test_loso_row_read_from_the_evaluation_by_source():
    ev = {"by_source": [{"source": "severson-test1", "in_training": "no", "cells": 42,
                         "model_eol_error_pct": 30.0, "naive_eol_error_pct": 355.0,
                         "model_eol_error_pct_with_delta_q": 40.0},
                        {"source": "synthetic", "in_training": "yes", "cells": 24}]}
    row = loso.source_row("severson-train", ev)
    assert row["in_training"] == "no" and row["cells"] == 42
    assert row["scored_on"] == "severson-test1" and row["suite"] == "severson"
    assert row["model_eol_error_pct"] == 30.0 and row["model_eol_error_pct_with_delta_q"] == 40.0
    assert row["model_coverage_90_pct"] is None
    assert "cells" not in loso.source_row("pybamm-dev", ev)  # its suite row is absent


def test_loso_section_marks_misses_and_cites_both_runs():
    text = "\n".join(rf.loso_section(_step("loso", LOSO_CMD, LOSO, seconds=377.0), INFO))
    assert "`python experiments/loso/run.py --home /home/u/fadecast-data/loso --json`" in text
    assert "store `sqlite:////tmp/loso-real/home/mlflow/mlflow.db`" in text
    pyb = _row(text, "pybamm-dev")
    assert pyb[1] == "no" and pyb[2] == "9"
    assert pyb[3] == "1.01 / **0.726** **missed**"          # loses on capacity error
    assert pyb[4] == "79.5 % **missed**"                    # outside 85–95 %
    assert pyb[5] == "3.22 / **2.43**"                      # width: no target
    assert pyb[8] == "0.203 / **0.152** **missed**"         # time-share p90 is a target
    assert "missed" not in pyb[7]                           # p50 is not
    assert pyb[9] == "`7961572dcab34f93a13d115a264fc19e`"
    assert pyb[10] == "`773aafd403d640cc870a5bf567128436`"
    sev = _row(text, "severson-train (scored: severson-test1)")
    assert sev[3] == "–" and sev[4] == "–" and sev[6] == "**317** / 355; with ΔQ(V) 76.3"
    syn = _row(text, "synthetic")
    assert syn[3] == "**1.07** / 1.30" and syn[4] == "94.0 %" and syn[8] == "**0.384** / 0.528"
    assert "30 epochs × 3 members" in text and "not like for like" not in text
    # fewer epochs is said; a failed training is shown with its error, no figures
    failed = {"source": "synthetic", "suite": "synthetic", "status": "train failed (exit 1)",
              "error": "FadecastError: boom", "train_run_id": None}
    doc = dict(LOSO, epochs=10, epochs_overridden=True, rows=[*LOSO["rows"][:2], failed])
    text = "\n".join(rf.loso_section(_step("loso", LOSO_CMD, doc), INFO))
    assert "10 epochs × 3 members (**fewer than the production model's**" in text
    assert "train failed (exit 1): FadecastError: boom" in _row(text, "synthetic")[1]
    # the misses flip when the figures meet the targets
    pyb_ok = dict(LOSO["rows"][0], model_coverage_90_pct=90.0, model_capacity_error_pct=0.7,
                  model_time_share_error_p90=0.1)
    text = "\n".join(rf.loso_section(_step("loso", LOSO_CMD, dict(LOSO, rows=[pyb_ok])), INFO))
    assert "missed" not in "".join(_row(text, "pybamm-dev"))


def test_main_runs_loso_or_reports_it_not_run_without_shared_data(recorded, monkeypatch):
    calls, readme, exp = recorded
    seen: dict[str, tuple] = {}

    def fake_run(name, cmd, timeout):
        seen[name] = (cmd, timeout)
        return _step(name, cmd, LOSO, seconds=900.0)

    monkeypatch.setattr(run_all, "run", fake_run)
    monkeypatch.setattr(run_all, "loso_step", lambda py: (LOSO_CMD, ""))
    argv = ["--only", "loso", "--readme", str(readme), "--experiments-readme", str(exp),
            "--tracking-uri", URI, "--timeout", "100"]
    assert run_all.main(argv) == 0
    assert seen["loso"] == (LOSO_CMD, 200.0)
    assert "| pybamm-dev | no | 9 |" in readme.read_text()
    monkeypatch.setattr(run_all, "loso_step",
                        lambda py: (None, "needs ../shared/data: pybamm-dev and "
                                          "severson-train are absent"))
    seen.clear()
    assert run_all.main(argv) == 0 and seen == {}
    assert "**not run**: needs ../shared/data: pybamm-dev and severson-train are absent" \
        in _section(readme.read_text(), "loso")


def test_loso_step_not_run_without_shared_data(monkeypatch):
    import ml.sources

    monkeypatch.setattr(ml.sources, "available_sources", lambda root=None: [])
    cmd, why = run_all.loso_step(PY)
    assert cmd is None and "needs ../shared/data" in why
    monkeypatch.setattr(ml.sources, "available_sources", lambda root=None: ["pybamm-dev"])
    cmd, _ = run_all.loso_step(PY)
    assert cmd[:2] == [PY, "experiments/loso/run.py"] and cmd[-1] == "--json"


def test_in_domain_row_under_a_source_with_cells_out_of_domain():
    row = {"source": "nasa-pcoe", "in_training": "no", "cells": 23,
           "model_capacity_error_pct": 11.9, "naive_capacity_error_pct": 9.3,
           "model_coverage_90_pct": 78.9, "cells_in_domain": 10,
           "model_capacity_error_pct_in_domain": 2.26, "naive_capacity_error_pct_in_domain": 2.36,
           "model_coverage_90_pct_in_domain": 84.4}
    r = {"name": "evaluate", "cmd": EVAL_CMD, "returncode": 0, "seconds": 1.0,
         "json": {"model": EVALUATE["model"], "by_source": [row]}}
    text = "\n".join(rf.evaluate_section(r, INFO))
    assert _row(text, "nasa-pcoe")[3] == "11.9 / **9.30** **missed**"
    sub = _row(text, "↳ nasa-pcoe, in domain")
    assert sub[2:5] == ["10 of 23", "**2.26** / 2.36", "84.4 % **missed**"]
    # every cell in domain: no second line
    row["cells_in_domain"] = 23
    lines = rf.evaluate_section(r, INFO)
    assert not [ln for ln in lines if ln.startswith("| ↳")]


def test_an_only_run_keeps_the_other_steps_in_the_run_log(recorded):
    calls, readme, exp = recorded
    args = ["--readme", str(readme), "--experiments-readme", str(exp), "--tracking-uri", URI]
    assert run_all.main(["--only", "evaluate", "load", *args]) == 0
    first = exp.read_text()
    assert "| load |" in first and "### load (printed figures)" in first
    assert run_all.main(["--only", "backtest", *args]) == 0
    text = exp.read_text()
    # the backtest's row is added; evaluate's and load's rows and load's printed figures stay,
    # in the run order of the steps
    rows = [line.split("|")[1].strip() for line in text.split("### Runs")[1].splitlines()
            if line.startswith("| ") and not line.startswith("| step |")]
    assert rows == ["evaluate", "backtest", "load"]
    assert "### load (printed figures)" in text
    assert text.count(run_all.BEGIN) == 1 and text.count(run_all.END) == 1


def test_severson_midlife_rows_command_run_and_misses(block):
    text = _section(block, "severson-midlife")
    assert ("`python experiments/severson_early_life/midlife.py --split test1 --fractions 0.5 "
            f"0.8 --with-charge-policy --model models/production --tracking-uri {URI} --json`"
            ) in text
    assert "MLflow run `8603a1c0373c4ae1be3659fe1eeee0f9`" in text
    # rows of an older JSON without "given" read as capacity histories
    assert "| 50 % | capacity | 21 | +29.1 % | 28.8 % | 47.6 % **missed** |" in text
    assert "| 80 % | capacity | 21 | +15.2 % | 13.9 % | 38.1 % **missed** |" in text
    assert "| 50 % | capacity + charge policy | 21 | -3.50 % | 12.2 % | 90.5 % |" in text
    assert "head set 21 of these 63 forecasts" in text
    # an interval that holds the truth for 90 % of the cells is no miss
    good = dict(MIDLIFE, cuts=[dict(MIDLIFE["cuts"][0], interval_holds_truth_pct=90.0)])
    ok = rf.severson_midlife_section(_step("severson-midlife", MIDLIFE_CMD, good), INFO)
    assert "missed" not in "\n".join(ok)


def test_eol_heldout_rows_command_run_and_misses(block):
    text = _section(block, "eol-heldout")
    assert ("`python experiments/eol_calibration/heldout.py --model models/production "
            f"--tracking-uri {URI} --json`") in text
    assert f"MLflow run `{'0e1f' * 8}`" in text
    # 77.4 % misses the 85-95 % target; 94.8 % meets it; open-ended widths print as '–'
    assert "| all | first third | 159 / 45 | 77.4 % **missed** | 76.7 % | – / – |" in text
    assert "| all | last third | 326 / 47 | 94.8 % | 97.5 % | 0.4 / 0.65 |" in text
    assert "Edges of the thirds: 0.333, 0.667." in text
    assert ("Cuts a cycle-life head answered (its own interval, which this calibration does "
            "not touch; not in the table): severson-train 105 cuts / 8 cells, interval holds "
            "97.1 %.") in text
    plain = dict(EOL_HELDOUT, card_has_bins=False)
    lines = rf.eol_heldout_section(_step("eol-heldout", EOL_HELDOUT_CMD, plain), INFO)
    assert "this card has no bins" in "\n".join(lines)
