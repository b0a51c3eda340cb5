"""``report.md`` of the public benchmarks, from one run's figures (cited by MLflow run id)."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

# Literature figures quoted for comparison (NOT measured here).
LITERATURE = [
    ("Severson et al. 2019, cycle life from the first 100 cycles", "9.1 % test error "
     "(their headline figure, as given in ../shared/data/MANIFEST.md)"),
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


def observations(res: dict) -> list[str]:
    """Findings as sentences computed from the figures (so text and numbers cannot drift)."""
    s, out = res["sections"], []
    sev = s.get("severson", {}).get("figures", {})
    if sev:
        m = sev.get("cycles_to_80pct_mape_pct_at_100.model")
        e = sev.get("cycles_to_80pct_mape_pct_at_100.elastic_net_capacity")
        q = sev.get("cycles_to_80pct_mape_pct_at_100_qdlin.elastic_net_capacity_delta_q")
        cov = sev.get("trajectory_from_100.model.coverage_90_pct")
        out.append(
            f"**Severson:** from 100 cycles the forecaster's cycle-life error is {_f(m, 0)} % "
            f"(MAPE) against {_f(e, 1)} % for the capacity elastic net and {_f(q, 1)} % for "
            "capacity + ΔQ(V) (Severson's headline: 9.1 %). The population regressions learn "
            "the early-cycle signature of the later knee; the per-cell extrapolations "
            "(forecaster included) mostly never reach 0.88 Ah within 3,000 cycles (censored, see "
            f"notes), so the forecaster is no cycle-life predictor for these LFP cells. The 90 % band covers {_f(cov, 1)} % of the unseen trajectory points: the "
            "knee is not in the first 100 cycles and the model does not invent it.")
    pb = s.get("pybamm-dev", {}).get("figures", {})
    if pb:
        out.append(
            f"**pybamm-dev (held-out cells):** median |time-share error| {_f(pb.get('time_share_abs_error_median.model'))}"
            f" vs {_f(pb.get('time_share_abs_error_median.naive_sqrt'))} for the naive √t + N "
            f"fit; capacity error {_f(pb.get('capacity_error_pct_of_reference.model'))} % vs "
            f"{_f(pb.get('capacity_error_pct_of_reference.naive_sqrt'))} %; 90 % coverage "
            f"{_f(pb.get('coverage_90_pct.model'), 1)} % — the one set where the model is on home "
            "ground (its training data include other pybamm-dev cells).")
    ge = s.get("geslin2024", {}).get("figures", {})
    if ge:
        rho = ge.get("model.spearman_time_share_vs_c_rate")
        out.append(
            f"**Geslin:** Spearman ρ(time share, average C-rate) = {_f(rho)} for the model "
            f"({'the expected sign' if rho is not None and rho < 0 else 'NOT the expected sign'}"
            f") and {_f(ge.get('naive_sqrt.spearman_time_share_vs_c_rate'))} for the naive fit; "
            f"median time share with storage {_f(ge.get('model.time_share_median_storage'))} vs "
            f"{_f(ge.get('model.time_share_median_no_storage'))} without. Cycles to 90 % SOH: "
            f"MAPE {_f(ge.get('model.cycles_to_90_mape_pct'), 1)} % (model) vs "
            f"{_f(ge.get('naive_sqrt.cycles_to_90_mape_pct'), 1)} % (naive), EFC to 90 % "
            f"{_f(ge.get('model.efc_to_90_mape_pct'), 1)} % vs "
            f"{_f(ge.get('naive_sqrt.efc_to_90_mape_pct'), 1)} %.")
    zh = s.get("zhang2020", {})
    if zh:
        rhos = [r["spearman_aw_vs_capacity"] for r in zh.get("rows", [])]
        f = zh.get("figures", {})
        cells = sorted({k.split(".")[0] for k in f if ".forecast_with_aw" in k})
        better = [c for c in cells if f[f"{c}.forecast_with_aw.capacity_error_pct"]
                  < f[f"{c}.forecast_without_aw.capacity_error_pct"]]
        gap = max((abs(f[f"{c}.forecast_with_aw.capacity_error_pct"]
                       - f[f"{c}.forecast_without_aw.capacity_error_pct"]) for c in cells),
                  default=math.nan)
        if rhos:
            out.append(
                f"**Zhang:** A_w rises as capacity falls in every cell (Spearman ρ between "
                f"{_f(min(rhos))} and {_f(max(rhos))} over the cells and BOTH EIS↔cycle "
                f"readings: insensitive to the offset). Adding A_w lowered the forecast error in "
                f"{len(better)} of {len(cells)} cells (largest change {gap:.2f} points of "
                "retention error, either way): no evidence that A_w helps this model on these "
                "cells." if len(better) <= len(cells) / 2 else
                f"**Zhang:** A_w rises as capacity falls (Spearman ρ between {_f(min(rhos))} and "
                f"{_f(max(rhos))}, both readings); adding A_w lowered the error in {len(better)} "
                f"of {len(cells)} cells.")
    na = s.get("nasa-pcoe", {}).get("figures", {})
    if na:
        out.append(
            f"**NASA:** after {int(na['rests'] - na['rests_implausible_excluded'])} rests "
            f"(median {_f(na['median_rest_hour'], 0)} h; {int(na['rests_implausible_excluded'])}"
            " points with junk capacities excluded) the cells recovered "
            f"{_f(na['mean_recovery_pct'], 1)} % of capacity on average (median "
            f"{_f(na['median_recovery_pct'], 1)} %); the "
            f"model's time term moved its forecast by {_f(na.get('model.mean_rest_effect_pct'), 2)}"
            " % (more loss), so it does NOT handle recovery: mean error "
            f"{_f(na.get('model.mean_error_pct'), 1)} % vs {_f(na.get('persistence.mean_error_pct'), 1)}"
            " % for persistence (mean |error| "
            f"{_f(na.get('model.mean_abs_error_pct'), 1)} vs "
            f"{_f(na.get('persistence.mean_abs_error_pct'), 1)} %).")
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


def _seen_line(res: dict, section: str) -> list[str]:
    """Whether the model trained on this section's sources, READ from its card (recorded in
    ``res['model']['training_sources']`` by run.py); nothing when unknown."""
    from ml.evaluation.by_source import seen_label

    trained = (res.get("model") or {}).get("training_sources")
    needs = (res.get("section_sources") or {}).get(section)
    if trained is None or not needs:
        return []
    labels = {src: seen_label(src, set(trained)) for src in needs}
    text = "; ".join(f"`{src}`: {lab}" for src, lab in labels.items())
    return [f"In the model's training data (from its card): {text}.", ""]


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
    lines += ["", "## Findings (computed from the figures below)", ""]
    lines += [f"- {o}" for o in observations(res)]
    lines += ["", "Metric names in MLflow are `<section>.<figure>`, with `@` in the suite tables "
              "written `_at_` (MLflow refuses `@`)."]
    for name, got in s.items():
        lines += ["", f"## {name}", "", f"_{got['seconds']:.0f} s; run `{run}`._", ""]
        lines += _seen_line(res, name)
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
        png = {"geslin2024": "geslin_time_share.png", "zhang2020": "zhang_aw.png",
               "nasa-pcoe": "nasa_rests.png"}.get(name)
        if png and png in res.get("plots", []):
            lines += ["", f"![{name}]({png})"]
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
