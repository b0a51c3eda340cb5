"""``report.md`` of the public benchmarks, from one run's figures (cited by MLflow run id)."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

# Literature figures quoted for comparison (NOT measured here).
LITERATURE = [
    ("Severson et al. 2019, 'variance' model, test (primary test set)", "MAPE 9.1 % "
     "(14.1 % / 7.3 % with / without the anomalous cell in their other splits)"),
    ("BatteryML (Zhang et al. 2023) MATR1 / MATR2, PCR", "RMSE 90 cycles (table, as quoted in "
     "the issue)"),
    ("BatteryML MATR1 / MATR2, 'Discharge' model", "RMSE 149 cycles (as quoted in the issue)"),
]


def _f(v, nd: int = 3) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v) if v is not None else "–"
    if not math.isfinite(x):
        return "–"
    return f"{x:.{nd}f}" if abs(x) < 100 else f"{x:.0f}"


def headline(res: dict) -> dict:
    """A few figures for run_all's summary table."""
    s = res["sections"]
    out: dict = {}
    sev = s.get("severson", {}).get("figures", {})
    out["severson_mape_model_100"] = sev.get("cycles_to_80pct_mape_pct_at_100.model")
    out["severson_mape_elastic_net_100"] = sev.get(
        "cycles_to_80pct_mape_pct_at_100.elastic_net_capacity")
    pb = s.get("pybamm-dev", {}).get("figures", {})
    out["pybamm_time_share_err_model"] = pb.get("time_share_abs_error_median.model")
    out["pybamm_capacity_err_model"] = pb.get("capacity_error_pct_of_reference.model")
    out["pybamm_coverage_model"] = pb.get("coverage_90_pct.model")
    ge = s.get("geslin2024", {}).get("figures", {})
    out["geslin_cycles_to_90_mape_model"] = ge.get("model.cycles_to_90_mape_pct")
    out["geslin_rho_share_vs_rate_model"] = ge.get("model.spearman_time_share_vs_c_rate")
    na = s.get("nasa-pcoe", {}).get("figures", {})
    out["nasa_rest_error_model"] = na.get("model.mean_error_pct")
    return out


def _figure_table(figures: dict) -> list[str]:
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| `{k}` | {_f(v)} |" for k, v in figures.items()]
    return lines


def _suite_table(suite: dict) -> list[str]:
    methods: list[str] = []
    for row in suite["figures"]:
        methods += [m for m in row["values"] if m not in methods]
    lines = ["| figure | unit | " + " | ".join(methods) + " | model / naive |",
             "|---|---|" + "---|" * (len(methods) + 1)]
    for row in suite["figures"]:
        lines.append(f"| {row['figure']} | {row['unit']} | "
                     + " | ".join(_f(row["values"].get(m)) for m in methods)
                     + f" | {_f(row['model_vs_naive'])} |")
    return lines


def _rows_table(rows: list[dict], columns: list[str]) -> list[str]:
    if not rows:
        return []
    df = pd.DataFrame(rows)
    cols = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rec in df[cols].to_dict(orient="records"):
        lines.append("| " + " | ".join(_f(rec[c]) if not isinstance(rec[c], str) else rec[c]
                                       for c in cols) + " |")
    return lines


def write(res: dict, path: Path) -> Path:
    """Write the report atomically; every figure comes from ``res`` (run ``res['run_id']``)."""
    run = res["run_id"]
    s = res["sections"]
    model = res.get("model") or {"name": "none (baselines only)", "version": "–"}
    lines = [
        "# Public-data benchmarks",
        "",
        f"Every number below is a metric of MLflow run `{run}` (experiment `public_benchmarks`,"
        " FADECAST_HOME's tracking store; metric names `<section>.<figure>`) unless marked as "
        f"literature. Model: `{model['name']}` version `{model['version']}` "
        f"(URI `{res['model_uri']}`). Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        "Data are read in place from `../shared/data`; cite the originals: Severson et al., "
        "Nat. Energy 4, 383 (2019) (CC-BY-4.0); Attia et al. 2021 Q(V) re-analysis (MIT); Geslin "
        "et al., Nat. Energy (2024) (Stanford Digital Repository); Zhang et al., Nat. Commun. "
        "11, 1706 (2020) (CC-BY-4.0); Saha & Goebel, NASA Ames PCoE (2007, US-government public "
        "data); pybamm-dev (simulated with PyBaMM for this project).",
        "",
    ]
    for name, why in res.get("skipped", {}).items():
        lines.append(f"- **skipped {name}**: {why}")
    text_path = Path(__file__).with_name("report_text.md")
    commentary = _sections(text_path.read_text(encoding="utf-8")) if text_path.is_file() else {}
    for name, got in s.items():
        lines += ["", f"## {name}", "", f"_{got['seconds']:.0f} s; run `{run}`._", ""]
        lines += commentary.get(name, [])
        if name == "severson":
            lines += ["Literature (not measured here):", ""]
            lines += [f"- {a}: {b}" for a, b in LITERATURE]
            lines += ["", "Measured (cycles to 80 % of 1.1 Ah, test1):", ""]
            lines += _suite_table(got["table"])
            lines += ["", "Full trajectory from the first 100 cycles (test1):", ""]
            lines += _figure_table({k: v for k, v in got["figures"].items()
                                    if k.startswith("trajectory_from_100")})
        elif name == "pybamm-dev":
            lines += _suite_table(got["table"])
        else:
            lines += _figure_table(got["figures"])
        if name == "zhang2020":
            lines += ["", *_rows_table(got["rows"], ["cell_id", "offset", "fits_ok", "aw_first",
                                                     "aw_last", "cap_first_mah", "cap_last_mah",
                                                     "spearman_aw_vs_capacity"])]
        lines += [""] + [f"- note: {n}" for n in got.get("notes", [])]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _sections(text: str) -> dict[str, list[str]]:
    """``## name`` blocks of the hand-written commentary (interpretation, no new numbers)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out
