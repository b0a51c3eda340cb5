"""The main README's generated figures: from what ``make bench``'s steps printed to ONE block.

``experiments/run_all.py`` runs each model-quality command and benchmark as a subprocess and hands
the results here (``{"name", "cmd", "code", "seconds", "stdout", "json", ...}`` per step; ``json``
is the last JSON line the step printed). :func:`render_block` turns them into the Markdown between
:data:`BEGIN` and :data:`END` — per figure the value, the exact command, the MLflow run id (where
the command makes one), the date and machine, and **missed** against the issue's target — and
:func:`replace_block` swaps it into README.md. Pure functions on dicts and strings; no I/O but
:func:`write_readme`.

"In training" comes from ``fadecast evaluate``'s own per-source rows
(``ml.evaluation.by_source.source_rows``, which reads the model card): never computed here.
A step that was skipped keeps its section from the previous block (it says when it was made).
"""
from __future__ import annotations

import math
import os
import re
import shlex
from pathlib import Path
from typing import Any, Iterable

BEGIN = "<!-- BEGIN GENERATED FIGURES (make bench) -->"
END = "<!-- END GENERATED FIGURES -->"
SECTION = "<!-- figures: {name} -->"
_SECTION_RE = re.compile(r"^<!-- figures: ([\w\-]+) -->$", re.M)

#: targets of issue 10 (and the serving / cohort issues) the block checks
COVERAGE_RANGE = (85.0, 95.0)
SEVERSON_MAPE_TARGET, SEVERSON_MAPE_GOAL = 12.0, 10.0
FORECAST_RPS_TARGET, FORECAST_RPS_GOAL, P99_MS = 500.0, 1000.0, 20.0
BATCH_CELLS_PER_S = 5000.0
FOLLOW_MAX_S = 1.0
COHORT_BENCH_S = 2.0
#: Features: basic path M rows/s per core, × a plain pandas groupby, voltage-curve part M rows/s
BASIC_MROWS_PER_S, BASIC_VS_GROUPBY, CURVES_MROWS_PER_S = 20.0, 3.0, 10.0
#: web pages: a cell page interactive (ms from navigation start), a what-if redraw (ms)
WEB_PAGE_MS, WEB_WHATIF_MS = 1000.0, 300.0
#: seed cohort: the C/10 cell's time share at its last cycle (p50)
SEED_TIME_SHARE_MIN = 0.85
MISSED = "**missed**"
#: the exit code run_all records for a step whose data are absent
NO_DATA = -3


class MarkersMissing(ValueError):
    """The README lacks the generated-figures markers (or holds them twice / out of order)."""


# ------------------------------------------------------------------------------ formatting
def fmt(v: Any, digits: int = 3) -> str:
    """A figure for the table: ``–`` for none/NaN; integers and values ≥ 100 without decimals,
    ≥ 10 with one, ≥ 1 with two, below 1 with ``digits`` significant digits."""
    if v is None or isinstance(v, bool):
        return "–" if v is None else str(v)
    if isinstance(v, (int, float)):
        f = float(v)
        if not math.isfinite(f):
            return "–"
        if isinstance(v, int) or abs(f) >= 100:
            return f"{f:,.0f}"
        if abs(f) >= 10:
            return f"{f:.1f}"
        return f"{f:.2f}" if abs(f) >= 1 else f"{f:.{digits}g}"
    return str(v)


def command_text(cmd: list[str], python: str | None = None) -> str:
    """The command as a user types it from the repository root: the interpreter as ``python``,
    ``python -m serving.cli`` as ``fadecast``."""
    parts = list(cmd)
    if parts and (parts[0] == python or Path(parts[0]).name.startswith("python")):
        parts[0] = "python"
    if parts[:3] == ["python", "-m", "serving.cli"]:
        parts = ["fadecast", *parts[3:]]
    return " ".join(shlex.quote(p) for p in parts)


def machine_line(info: dict) -> str:
    """``<date>, <nproc> CPU(s) (<cpu>), <memory> RAM, <os>, Python <v>, <threads>``."""
    return (f"{info['date']}, {info['nproc']} CPU(s) ({info['cpu']}), {info['memory']} RAM, "
            f"{info['os']}, Python {info['python']}, {info['threads']}")


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def check(value: Any, target: str) -> bool | None:
    """Does ``value`` meet ``target`` (``"<= 0.02"``, ``">= 500"``, ``"85-95"``)? None when
    either is missing or the target is not one of those forms."""
    x = _num(value)
    if x is None or not target:
        return None
    t = target.replace("≤", "<=").replace("≥", ">=").replace("–", "-").replace("%", "").strip()
    m = re.fullmatch(r"(<=|>=)\s*([\d.]+)", t)
    if m:
        return x <= float(m.group(2)) if m.group(1) == "<=" else x >= float(m.group(2))
    m = re.fullmatch(r"([\d.]+)\s*-\s*([\d.]+)", t)
    if m:
        return float(m.group(1)) <= x <= float(m.group(2))
    return None


def mark(value: Any, target: str, text: str | None = None) -> str:
    """``text`` (default: the formatted value) followed by **missed** if it misses ``target``."""
    shown = fmt(value) if text is None else text
    return f"{shown} {MISSED}" if check(value, target) is False else shown


def _beats(model: Any, naive: Any) -> bool | None:
    m, n = _num(model), _num(naive)
    return None if m is None or n is None else m <= n


def _pair(model: Any, naive: Any, target: bool = True) -> str:
    """``model / naive`` (lower is better) with the better one in bold; **missed** when the
    model loses and beating the √t + N fit is a ``target``."""
    m, n = _num(model), _num(naive)
    if m is None and n is None:
        return "–"
    won = _beats(model, naive)
    left, right = fmt(model), fmt(naive)
    if won is True:
        left = f"**{left}**"
    elif won is False:
        right = f"**{right}**" + (f" {MISSED}" if target else "")
    return f"{left} / {right}"


# ------------------------------------------------------------------------------ sections
def _head(title: str, r: dict, info: dict, run_id: str | None) -> list[str]:
    cmd = command_text(r["cmd"], info.get("python_exe"))
    run = f"MLflow run `{run_id}`" if run_id else "no MLflow run"
    return [SECTION.format(name=r["name"]), f"**{title}** — `{cmd or 'not run'}`; {run}; "
            f"{r.get('seconds', 0):.0f} s; {machine_line(info)}.", ""]


def _failed(r: dict) -> list[str]:
    if r.get("code") == 0 and r.get("json") is not None:
        return []
    if r.get("code") == NO_DATA:
        return [f"**not run**: {(r.get('stdout') or '').strip()}", ""]
    if r.get("code") == 0:
        return [f"**not measured**: the step printed no JSON figures "
                f"(last output: `{(r.get('stdout') or '').strip()[-200:]}`)", ""]
    tail = (r.get("stderr_tail") or r.get("stdout") or "").strip().splitlines()[-3:]
    return [f"**failed** (exit {r.get('code')}): `{' / '.join(tail)[:400]}`", ""]


def evaluate_section(r: dict, info: dict) -> list[str]:
    """Per-source table of ``fadecast evaluate --json`` (its ``by_source`` rows)."""
    doc = r.get("json") or {}
    model = doc.get("model") or {}
    title = (f"Single-cell forecasts by source, model {model.get('name', '?')} "
             f"{model.get('version', '?')} next to the per-cell √t + N fit of the same run")
    lines = _head(title, r, info, doc.get("mlflow_run_id")) + _failed(r)
    rows = doc.get("by_source") or []
    if not rows:
        return lines
    lines += ["| source | in training (model card) | cells | capacity error % (model / √t+N) "
              "| 90 % coverage (model) | EOL error % (model / √t+N) "
              "| time-share error p50 (model / √t+N) | time-share error p90 (model / √t+N) |",
              "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        severson = "model_capacity_error_pct" not in row
        eol = _pair(row.get("model_eol_error_pct"), row.get("naive_eol_error_pct"), False)
        if severson:  # the ≤ 12 % target is for histories WITH the ΔQ(V) summaries
            dq = row.get("model_eol_error_pct_with_delta_q")
            eol = f"capacity only {eol}"
            if _num(dq) is not None:
                eol += f"; with ΔQ(V) {fmt(dq)}"
                if check(dq, f"<= {SEVERSON_MAPE_TARGET}") is False:
                    eol += f" (≤ {SEVERSON_MAPE_TARGET:g} % {MISSED})"
            policy = row.get("model_eol_error_pct_with_charge_policy")
            if _num(policy) is not None:  # the same 100 cycles + the charge policy's rate
                eol += f"; with the charge policy {fmt(policy)}"
            late = row.get("model_eol_error_pct_from_300")
            if _num(late) is not None:  # the same capacity histories, cut at cycle 300
                eol += ("; from 300 cycles "
                        + _pair(late, row.get("naive_eol_error_pct_from_300"), False))
        held, n_eol = row.get("model_eol_coverage_90_pct"), row.get("eol_interval_cells")
        if _num(held) is not None and n_eol:
            eol += f"; 90 % interval holds {fmt(held)} % of {n_eol}"
        cover = row.get("model_coverage_90_pct")
        cover_text = "–" if _num(cover) is None else mark(
            cover, f"{COVERAGE_RANGE[0]:g}-{COVERAGE_RANGE[1]:g}", f"{fmt(cover)} %")
        lines.append(" | ".join([
            f"| {row['source']}", str(row.get("in_training", "-")), str(row.get("cells", "–")),
            _pair(row.get("model_capacity_error_pct"), row.get("naive_capacity_error_pct")),
            cover_text, eol,
            _pair(row.get("model_time_share_error_median"),
                  row.get("naive_time_share_error_median"), False),
            _pair(row.get("model_time_share_error_p90"), row.get("naive_time_share_error_p90")),
        ]) + " |")
        lines += _in_domain_row(row)
    lines += ["", "Targets: 90 % coverage 85–95 % per source; the model beats the √t + N fit on "
              "capacity error and time-share p90 (**missed** marks each miss). 'no' = leave-one-"
              "source-out, scored on every cell of the source but those that calibrate the "
              "√t + N bands; 'yes' = held-out cells of a trained source (interpolation). "
              "'↳ in domain': the same source's cells whose answer said `domain.in_domain: "
              "true` (both methods on those cells), shown where the model called some out of "
              "domain. 'interval holds': the cells whose future crosses 80 % whose served "
              "end-of-life interval [p05, p95] holds the true cycle (one point per cell: a "
              "few cells cannot tell 90 % from 100 %, so no mark).", ""]
    return lines


def _in_domain_row(row: dict) -> list[str]:
    """The ``↳ in domain`` line under a source row when the model called some of its cells out
    of domain (capacity error and coverage on the cells it called in domain)."""
    k, n = _num(row.get("cells_in_domain")), _num(row.get("cells"))
    if k is None or n is None or k >= n:
        return []
    if k == 0:
        return [f"| ↳ {row['source']}: no cell in domain | | 0 | – | – | – | – | – |"]
    cover = row.get("model_coverage_90_pct_in_domain")
    lo, hi = COVERAGE_RANGE
    cover_text = "–" if _num(cover) is None else mark(cover, f"{lo:g}-{hi:g}", f"{fmt(cover)} %")
    return [" | ".join([f"| ↳ {row['source']}, in domain", "", f"{k:g} of {n:g}",
                        _pair(row.get("model_capacity_error_pct_in_domain"),
                              row.get("naive_capacity_error_pct_in_domain")),
                        cover_text, "–", "–", "–"]) + " |"]


def loso_section(r: dict, info: dict) -> list[str]:
    """``experiments/loso/run.py --json``: per held-out source, the production recipe retrained
    WITHOUT it, next to the per-cell √t + N fit of the same evaluation run (targets as in
    :func:`evaluate_section`); each row cites its training and evaluation MLflow runs."""
    doc = r.get("json") or {}
    cmd = command_text(r.get("cmd") or [], info.get("python_exe"))
    lines = [SECTION.format(name=r["name"]),
             f"**{TITLES['loso']}** — `{cmd or 'not run'}`; MLflow runs per row"
             + (f" (store `{doc['tracking_uri']}`)" if doc.get("tracking_uri") else "")
             + f"; {r.get('seconds', 0):.0f} s; {machine_line(info)}.", ""]
    lines += _failed(r)
    rows = doc.get("rows") or []
    if not rows:
        return lines
    lo, hi = COVERAGE_RANGE
    lines += ["| held out | in training (card) | cells | capacity error % (model / √t+N) "
              "| 90 % coverage (model) | 90 % width % (model / √t+N) "
              "| EOL error % (model / √t+N) | time-share error p50 (model / √t+N) "
              "| time-share error p90 (model / √t+N) | training run | evaluation run |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        status = str(row.get("status", "?"))
        if not status.startswith("ok"):
            why = f"{status}: {row['error']}" if row.get("error") else status
            lines.append(f"| {row.get('source')} | {why} | | | | | | | | "
                         f"{_code(row.get('train_run_id'))} | {_code(row.get('eval_run_id'))} |")
            continue
        cover = row.get("model_coverage_90_pct")
        cover_text = "–" if _num(cover) is None else mark(cover, f"{lo:g}-{hi:g}",
                                                          f"{fmt(cover)} %")
        eol = _pair(row.get("model_eol_error_pct"), row.get("naive_eol_error_pct"), False)
        if _num(row.get("model_eol_error_pct_with_delta_q")) is not None:
            eol += f"; with ΔQ(V) {fmt(row['model_eol_error_pct_with_delta_q'])}"
        held = row["source"]
        if row.get("scored_on") and row["scored_on"] != held:
            held += f" (scored: {row['scored_on']})"
        lines.append(" | ".join([
            f"| {held}", str(row.get("in_training", "-")), str(row.get("cells", "–")),
            _pair(row.get("model_capacity_error_pct"), row.get("naive_capacity_error_pct")),
            cover_text, _pair(row.get("model_width_90_pct"), row.get("naive_width_90_pct"),
                              False), eol,
            _pair(row.get("model_time_share_error_median"),
                  row.get("naive_time_share_error_median"), False),
            _pair(row.get("model_time_share_error_p90"), row.get("naive_time_share_error_p90")),
            _code(row.get("train_run_id")), _code(row.get("eval_run_id"))]) + " |")
    epochs = f"{doc.get('epochs')} epochs × {doc.get('ensemble')} members"
    if doc.get("epochs_overridden"):
        epochs += " (**fewer than the production model's**: not like for like)"
    lines += ["", f"Each row: `experiments/default/config.toml` with that source removed "
              f"(severson-train: the Severson cycle-life heads too; synthetic: "
              f"`synthetic_cells = 0`, no calibration-only synthetic cells), not shipped, not "
              f"registered, {epochs}, then `fadecast "
              "evaluate --suite <its suite>`. Targets: 90 % coverage "
              f"{lo:g}–{hi:g} % per source; the model beats the √t + N fit on capacity error and "
              "time-share p90 (**missed** marks each miss). Severson: test1 cells, cycles to "
              "80 % from 100 cycles; that suite has no capacity, band or time-share figures."]
    if doc.get("absent_sources"):
        lines += [f"Absent from ../shared/data (trained without them too): "
                  f"{', '.join(doc['absent_sources'])}."]
    return lines + [""]


def _code(v: Any) -> str:
    return f"`{v}`" if v else "–"


def _target_text(target: str) -> str:
    if not target:
        return "–"
    return target.replace("<=", "≤").replace(">=", "≥").replace("85-95", "85–95 %")


def _cohort_figure(doc: dict, name: str) -> dict:
    for suite in doc.get("suites") or []:
        for row in suite.get("figures") or []:
            if row.get("figure") == name:
                return row
    return {}


def cohorts_section(r: dict, info: dict) -> list[str]:
    """``fadecast evaluate --suite pybamm-cohorts --json``: the cohort law against its targets."""
    doc = r.get("json") or {}
    lines = _head("Cohort attribution (dev evaluation cohorts)", r, info,
                  doc.get("mlflow_run_id")) + _failed(r)
    if not doc.get("suites"):
        return lines
    lines += ["| figure | cohort law | joint least-squares reference, same run | target |",
              "|---|---|---|---|"]
    for name, target in (("time_share_abs_error_median", "<= 0.02"),
                         ("time_share_abs_error_p90", "<= 0.04"),
                         ("time_share_coverage_90_pct", "85-95"),
                         ("time_share_coverage_90_pct_pooled_cuts", "85-95"),
                         ("what_if_capacity_error_pct_of_nominal", "<= 1"),
                         ("cells_scored", "")):
        row = _cohort_figure(doc, name)
        if not row:
            continue
        vals = dict(row.get("values") or {})
        if row.get("unit") == "cells":
            vals = {k: None if _num(v) is None else int(v) for k, v in vals.items()}
        shown = fmt(vals.get("cohort_law"))
        low = (_cohort_figure(doc, name + "_ci95_low").get("values") or {}).get("cohort_law")
        high = (_cohort_figure(doc, name + "_ci95_high").get("values") or {}).get("cohort_law")
        if _num(low) is not None and _num(high) is not None:
            shown += f" (95 % CI {fmt(low)}–{fmt(high)})"
        lines.append(f"| {name} ({row.get('unit', '')}) "
                     f"| {mark(vals.get('cohort_law'), target, shown)} "
                     f"| {fmt(vals.get('joint_lsq_reference'))} | {_target_text(target)} |")
    lines.append("")
    return lines


def severson_section(r: dict, info: dict) -> list[str]:
    """``experiments/severson_early_life/run.py --json``: cycles-to-80 % MAPE from 100 cycles."""
    doc = r.get("json") or {}
    s = doc.get("summary") or {}
    lines = _head("Severson LFP early life through `fadecast forecast` (from 100 cycles)", r,
                  info, None) + _failed(r)
    if not s:
        return lines
    mape = s.get("mape_pct")
    text = f"{fmt(mape)} %"
    if check(mape, f"<= {SEVERSON_MAPE_TARGET}") is False:
        text += f" {MISSED} (target ≤ {SEVERSON_MAPE_TARGET:g} %)"
    elif check(mape, f"<= {SEVERSON_MAPE_GOAL}") is False:
        text += f" (target ≤ {SEVERSON_MAPE_TARGET:g} % met; goal ≤ {SEVERSON_MAPE_GOAL:g} % {MISSED})"
    lines += [f"- split {s.get('split')}: {s.get('cells')} cells ({s.get('failed')} failed), "
              f"ΔQ(V) summaries given: {s.get('delta_q_given')}, model {s.get('model')}",
              f"- cycles-to-80 % MAPE: {text}; cells with life ≥ 200: "
              f"{fmt(s.get('mape_pct_excl_life_below_200'))} %",
              f"- 90 % interval holds the true life for {fmt(s.get('coverage_90_pct'))} % of cells",
              ""]
    return lines


#: the share of cells whose 90 % end-of-life interval holds the truth (issue 10: honest bands)
EOL_INTERVAL_TARGET = "85-95"


def severson_midlife_section(r: dict, info: dict) -> list[str]:
    """``experiments/severson_early_life/midlife.py --json``: end of life forecast from a
    fraction of each cell's life, capacity histories only."""
    doc = r.get("json") or {}
    model = doc.get("model") or {}
    lines = _head(f"Severson LFP mid-life, capacity histories, model "
                  f"{model.get('version', '?')} (split {doc.get('split', '?')})", r, info,
                  doc.get("mlflow_run_id")) + _failed(r)
    cuts = doc.get("cuts") or []
    if not cuts:
        return lines
    lines += ["| cut (fraction of each cell's life) | history given | cells | p50 end of "
              "life, median signed error (+ = late) | MAPE | 90 % interval holds the truth |",
              "|---|---|---|---|---|---|"]
    for c in cuts:
        held, signed = c.get("interval_holds_truth_pct"), c.get("median_signed_error_pct")
        sign = "+" if isinstance(signed, (int, float)) and signed > 0 else ""
        lines.append(f"| {100 * c['fraction_of_life']:g} % | {c.get('given', 'capacity')} "
                     f"| {c.get('cells')} "
                     f"| {sign}{fmt(signed)} % | {fmt(c.get('mape_pct'))} % "
                     f"| {mark(held, EOL_INTERVAL_TARGET, f'{fmt(held)} %')} |")
    heads = sum(int(c.get("cycle_life_head_used") or 0) for c in cuts)
    total = sum(int(c.get("cells") or 0) for c in cuts)
    lines += ["", f"Target for the interval: {EOL_INTERVAL_TARGET} % of cells (a 90 % "
              "interval). 'capacity + charge policy': the same histories with the charge "
              "protocol's planned mean charge rate (`charge_policy_c_rate`), read by the "
              "`capacity_charge_policy` heads where the "
              f"card keeps one. A cycle-life head set {heads} of these {total} forecasts (a head "
              "of window W reads histories ending at cycles W…2W, for each window the card "
              "keeps a head at); the others "
              "are the network, the level anchor, the trend check and the end-of-life "
              "calibration.", ""]
    return lines


def eol_heldout_section(r: dict, info: dict) -> list[str]:
    """``experiments/eol_calibration/heldout.py --json``: the served end-of-life interval on
    the training split's test cells, per third of fade progress, with the card's bins and with
    its pooled scales."""
    doc = r.get("json") or {}
    model = doc.get("model") or {}
    lines = _head(f"End-of-life interval on held-out test cells by fade progress, model "
                  f"{model.get('version', '?')}", r, info, doc.get("mlflow_run_id")) + _failed(r)
    rows = doc.get("rows") or []
    if not rows:
        return lines
    lines += ["| source | fade progress | cuts / cells | interval holds the truth | before: "
              "pooled scales only | median width, × remaining life (now / before) |",
              "|---|---|---|---|---|---|"]
    for x in rows:
        held = f"{fmt(x.get('holds_bins_pct'))} %"
        if x.get("source") == "all":
            held = mark(x.get("holds_bins_pct"), EOL_INTERVAL_TARGET, held)
        lines.append(f"| {x.get('source')} | {x.get('third')} | {x.get('cuts')} / "
                     f"{x.get('cells')} | {held} | {fmt(x.get('holds_pooled_pct'))} % | "
                     f"{fmt(x.get('width_bins_median'))} / {fmt(x.get('width_pooled_median'))} |")
    lines += ["", f"Target: {EOL_INTERVAL_TARGET} % (a 90 % interval), marked on the 'all' rows; "
              "each source's test cells are few and each cell gives several correlated cuts. "
              "Test cells of the production split (never trained on, never used to pick epochs "
              "or calibrate), held out by cell: their protocols also appear in training "
              "(interpolation). '–' width: open-ended (p95 beyond the horizon or no end of "
              "life within it). Edges of the thirds: "
              f"{', '.join(fmt(e) for e in doc.get('edges') or [])}"
              f"{'' if doc.get('card_has_bins') else ' (this card has no bins: both columns are the pooled scales)'}.",
              ""]
    heads = doc.get("head_rows") or []
    if heads:
        lines.insert(-1, "Cuts a cycle-life head answered (its own interval, which this "
                     "calibration does not touch; not in the table): " + "; ".join(
                         f"{h.get('source')} {h.get('cuts')} cuts / {h.get('cells')} cells, "
                         f"interval holds {fmt(h.get('holds_pct'))} %" for h in heads) + ".")
    if doc.get("split_matches_card") is False:
        lines.insert(-1, "**The configuration's cells do not hash to this model's training "
                     "data: its 'test' cells may have been trained on.**")
    return lines


def backtest_section(r: dict, info: dict) -> list[str]:
    """``fadecast backtest --json``: early-stopping advice replayed on held-out cells."""
    doc = r.get("json") or {}
    model = doc.get("model") or {}
    lines = _head(f"Early-stopping advice replay, model {model.get('version', '?')}", r, info,
                  None) + _failed(r)
    suites = doc.get("suites") or {}
    if not suites:
        return lines
    lines += ["| suite | cells | stopped early | correct pass/fail calls | median planned hours "
              "saved | EOL error at stop (median / p90) |", "|---|---|---|---|---|---|"]
    pct = lambda x: "–" if _num(x) is None else f"{100 * float(x):.1f} %"  # noqa: E731
    for name, s in suites.items():
        if "skipped" in s:
            lines.append(f"| {name} | skipped: {s['skipped']} | | | | |")
            continue
        lines.append(f"| {name} | {s.get('n_cells')} | {s.get('n_stopped_early')} | "
                     f"{pct(s.get('correct_call_share'))} | "
                     f"{pct(s.get('median_hours_saved_fraction'))} | "
                     f"{pct(s.get('median_eol_error_fraction_at_stop'))} / "
                     f"{pct(s.get('p90_eol_error_fraction_at_stop'))} |")
    lines.append("")
    return lines


def load_section(r: dict, info: dict) -> list[str]:
    """``experiments/benchmarks/load.py``: open-loop HTTP rates, batch, follow."""
    doc = r.get("json") or {}
    lines = _head(TITLES.get(r.get("name"), TITLES["load"]), r, info, None) + _failed(r)
    if not doc:
        return lines
    body, cell = doc.get("forecast_body"), doc.get("forecast_stored_cell")
    p99 = doc.get("p99_goal_ms", P99_MS)

    def rate(b: dict | None, target: bool) -> str:
        if not b:
            text = f"no step held p99 ≤ {fmt(p99)} ms with 0 errors"
            return f"{text} {MISSED}" if target else text
        text = f"{fmt(int(round(b['rate'])))} req/s (p50 {fmt(b.get('p50_ms'))} ms, p99 {fmt(b.get('p99_ms'))} ms)"
        if not target:
            return text
        if b["rate"] < FORECAST_RPS_TARGET:
            return f"{text} {MISSED} (target ≥ {FORECAST_RPS_TARGET:g} req/s at p99 ≤ {P99_MS:g} ms)"
        if b["rate"] < FORECAST_RPS_GOAL:
            return f"{text} (target met; goal ≥ {FORECAST_RPS_GOAL:g} {MISSED})"
        return text

    batch, follow = doc.get("batch") or {}, doc.get("follow") or {}
    bps = batch.get("cells_per_second_wall")
    lines += [f"- model: `{doc.get('model')}`",
              f"- `POST /v1/forecast` (200-cycle history in the body), highest rate held: "
              f"{rate(body, True)}",
              f"- `POST /v1/cells/{{id}}/forecast` (stored cell): {rate(cell, False)}",
              f"- `POST /v1/forecast/batch`: "
              f"{mark(bps, f'>= {BATCH_CELLS_PER_S}', f'{fmt(bps)} cells/s wall')}"
              f" (target ≥ {BATCH_CELLS_PER_S:,.0f})",
              (f"- `fadecast follow`: row completing a cycle → its advice p50 "
               f"{fmt(follow.get('p50_s'))} s, max "
               f"{mark(follow.get('max_s'), f'<= {FOLLOW_MAX_S}', fmt(follow.get('max_s')) + ' s')}"
               f" (target ≤ {FOLLOW_MAX_S:g} s; {follow.get('answered')}/{follow.get('cycles')} "
               "cycles advised)") if follow.get("answered") else
              f"- `fadecast follow`: no advice seen {MISSED}"]
    steps = doc.get("forecast_body_steps") or []
    if steps:
        last = steps[-1]
        lines.append(
            f"- CPU per `POST /v1/forecast` at its last step ({fmt(int(round(last['rate'])))} "
            f"req/s offered): server {fmt(last.get('server_cpu_ms'))} ms, load generator "
            f"{fmt(last.get('client_cpu_ms'))} ms (both on the same 2 cores)")
    stages = doc.get("cpu_stages_ms") or {}
    if stages:
        lines.append("- in-process CPU per stage of that request (ms): " + "; ".join(
            f"{name.strip()} {fmt(ms)}" for name, ms in stages.items()))
    return lines + [""]


def cohort_bench_section(r: dict, info: dict) -> list[str]:
    """``experiments/benchmarks/cohort.py``: cohort attribution speed."""
    doc = r.get("json") or {}
    lines = _head("Cohort attribution speed", r, info, None) + _failed(r)
    if not doc:
        return lines
    goal = f"<= {COHORT_BENCH_S}"
    sizes = doc.get("cycles_per_cell")
    if isinstance(sizes, list) and len(set(sizes)) == 1:
        sizes = sizes[0]
    lines += [f"- {doc.get('cells')} cells × {sizes} cycles, "
              f"{doc.get('repeats')} repeats: in process median "
              f"{mark(doc.get('attribute_s_median'), goal, fmt(doc.get('attribute_s_median')) + ' s')}"
              f", through the API median "
              f"{mark(doc.get('http_s_median'), goal, fmt(doc.get('http_s_median')) + ' s')}"
              f" (target ≤ {COHORT_BENCH_S:g} s)", ""]
    return lines


def fleet_section(r: dict, info: dict) -> list[str]:
    """``experiments/benchmarks/fleet.py --json``: one process vs Dask workers on a generated
    fleet (every output checked equal to the one-process table by the benchmark itself)."""
    doc = r.get("json") or {}
    lines = _head("Fleet (per-cycle tables of a generated fleet, one process vs Dask)", r, info,
                  None) + _failed(r)
    if not doc.get("one_process"):
        return lines
    curves = bool(doc.get("voltage_curves"))
    load = lambda k: "/".join(fmt(x) for x in (doc.get(k) or [])[:1]) or "–"  # noqa: E731
    lines += [f"- {fmt(doc.get('rows'))} sample rows, {doc.get('cells')} cells (one big cell), "
              f"{fmt(doc.get('parquet_mib'))} MiB of Parquet, generated in "
              f"{fmt(doc.get('generate_s'))} s; voltage-curve descriptors "
              f"{'on' if curves else 'off (basic path)'}; 1-min load average "
              f"{load('load_before')} before, {load('load_after')} after", "",
              "| path | wall s | M rows/s (wall) | M rows per CPU-second | peak RSS MiB "
              "| cells in cycle blocks | equal to one process |", "|---|---|---|---|---|---|---|"]
    per_core = "" if curves else f">= {BASIC_MROWS_PER_S}"

    def row(name: str, d: dict, cpu_key: str, peak: Any, blocks: Any, same: Any) -> str:
        return (f"| {name} | {fmt(d.get('wall_s'))} | {fmt(d.get('mrows_per_s'))} | "
                f"{mark(d.get(cpu_key), per_core)} | {peak} | {blocks} | {same} |")

    one = doc["one_process"]
    lines.append(row("one process", one, "mrows_per_cpu_s", fmt(one.get("peak_rss_mib")),
                     "– (whole cells)", "reference"))
    for key in sorted(k for k in doc if k.startswith("workers_")):
        d = doc[key]
        n = key.split("_", 1)[1]
        peaks = " / ".join(fmt(x) for x in d.get("peak_rss_mib_per_worker") or []) or "–"
        lines.append(row(f"{n} Dask worker{'s' if n != '1' else ''} "
                         f"({fmt(d.get('memory_limit_mib'))} MiB each)", d,
                         "mrows_per_worker_cpu_s", peaks, fmt(d.get("cells_in_cycle_blocks")),
                         "yes" if d.get("equal_to_one_process") else f"no {MISSED}"))
    lines += ["", "Targets: the README sets no speed target for the fleet run itself. The "
              f"basic-path targets (≥ {BASIC_MROWS_PER_S:g} M rows/s per core, "
              f"≥ {BASIC_VS_GROUPBY:g}× a plain pandas groupby) are checked in the Features "
              "section: `featurize.py` times the groupby, this benchmark does not"
              + ("" if curves else "; with the curves off, rows per CPU-second are marked "
                 f"against ≥ {BASIC_MROWS_PER_S:g}") + ".", ""]
    return lines


_WEB_LOAD = re.compile(r"load (\d+): (\d+(?:\.\d+)?) \(([^)]*)\)")
_WEB_WHATIF = re.compile(r"web: what-if updates ([\d., ]+) ms")
_PYTEST_SKIP = re.compile(r"^SKIPPED \[\d+\] [^:]+:\d+: (.+)$", re.M)


def parse_web(stdout: str) -> dict | None:
    """The timings ``pytest -s tests/test_web_pages.py`` printed: ``first_visit_ms`` (load 1,
    plotly.js compiled from scratch), ``later_visit_ms`` (loads 2…), ``whatif_ms`` (each
    what-if, input to redrawn plot), the printed ``lines``; None when it printed none."""
    loads: list[tuple[float, str]] = []
    whatif: list[float] = []
    lines = []
    for ln in (stdout or "").splitlines():
        if "web: 500-cycle cell page interactive" in ln:
            loads = [(float(ms), marks) for _, ms, marks in _WEB_LOAD.findall(ln)]
            lines.append(ln[ln.index("web:"):].strip())
        m = _WEB_WHATIF.search(ln)
        if m:
            whatif = [float(x) for x in m.group(1).split(",") if x.strip()]
            lines.append(ln[ln.index("web:"):].strip())
    if not loads and not whatif:
        return None
    return {"first_visit_ms": loads[0][0] if loads else None,
            "later_visit_ms": [ms for ms, _ in loads[1:]],
            "load_marks": [marks for _, marks in loads], "whatif_ms": whatif, "lines": lines}


def web_skip_reason(stdout: str) -> str | None:
    """Why pytest skipped the web tests (its ``-ra`` summary line), or None."""
    m = _PYTEST_SKIP.search(stdout or "")
    return m.group(1).strip() if m else None


def web_section(r: dict, info: dict) -> list[str]:
    """The web page timings printed by ``pytest -s tests/test_web_pages.py`` (parsed into
    ``json`` by :func:`parse_web`); the test asserts nothing about speed."""
    doc = r.get("json") or {}
    lines = _head("Web pages in headless Chromium (timings printed by the browser tests, "
                  "not asserted)", r, info, None) + _failed(r)
    if not doc:
        return lines
    page, redraw = f"<= {WEB_PAGE_MS}", f"<= {WEB_WHATIF_MS}"
    first, later, whatif = doc.get("first_visit_ms"), doc.get("later_visit_ms") or [], \
        doc.get("whatif_ms") or []
    ms = lambda xs: ", ".join(fmt(int(round(x))) for x in xs) + " ms"  # noqa: E731
    worst_later = max(later) if later else None
    worst_whatif = max(whatif) if whatif else None
    lines += [f"- 500-cycle cell page interactive, first visit (plotly.js compiled from "
              f"scratch): {mark(first, page, ms([first]) if first is not None else '–')} "
              f"(target ≤ {WEB_PAGE_MS:,.0f} ms)",
              f"- later visits: {mark(worst_later, page, ms(later) if later else '–')} "
              f"(target ≤ {WEB_PAGE_MS:,.0f} ms)",
              f"- what-if redraw (input to redrawn plot): "
              f"{mark(worst_whatif, redraw, ms(whatif) if whatif else 'not printed')} "
              f"(target ≤ {WEB_WHATIF_MS:g} ms)", ""]
    if doc.get("lines"):
        lines += ["```", *doc["lines"], "```", ""]
    return lines


def seed_cohort_section(r: dict, info: dict) -> list[str]:
    """``experiments/seed_pto_li3ps4/cohort.py --json``: the two cryomilled PTO cells as one
    cohort (the standalone study logs no MLflow run; the ``seed`` step's run logs the same
    analysis on the pipeline's tables)."""
    doc = r.get("json") or {}
    lines = _head("Seed study as a cohort (C/10 and 0.3C PTO / β-Li3PS4 cells)", r, info,
                  doc.get("run_id")) + _failed(r)
    joint = doc.get("joint") or {}
    if not joint:
        return lines
    def share(q: dict, target: bool) -> str:
        p50, lo, hi, truth = (q.get(k) for k in ("p50", "p05", "p95", "truth"))
        text = mark(p50, f">= {SEED_TIME_SHARE_MIN}" if target else "")
        text += f" (90 % interval {fmt(lo)}–{fmt(hi)}), truth {fmt(truth)}"
        inside = None if None in (_num(lo), _num(hi), _num(truth)) else lo <= truth <= hi
        if inside is False:
            text += f" outside the interval {MISSED}" if target else " outside the interval"
        return text

    alone, c03, plan = doc.get("alone") or {}, doc.get("joint_c03") or {}, doc.get("plan_c03") or {}
    lines += [f"- C/10 time share at cycle {doc.get('cycle')}, both cells fitted jointly: "
              f"{share(joint, True)} (target ≥ {SEED_TIME_SHARE_MIN:g}, truth inside the "
              "90 % interval)",
              f"- the C/10 cell alone: {share(alone, False)}; advice: {alone.get('advice', '–')}",
              f"- 0.3C cell's time share (joint fit): {share(c03, False)}",
              f"- the 0.3C trajectory as a plan from the C/10 history alone: mean |error| "
              f"{fmt(plan.get('mae_pct_of_reference'))} % of reference, its 90 % band holds "
              f"{fmt(plan.get('coverage_pct'))} % of {plan.get('cycles')} measured cycles; "
              f"retention at the last cycle p50 {fmt(plan.get('retention_p50_last'))} vs "
              f"measured {fmt(plan.get('retention_measured_last'))} (no target set)", ""]
    return lines


#: printed lines quoted for the benchmarks that print text (not JSON) figures
QUOTED = {"ingest": re.compile(r"^(ingest / pandas|parquet size|file:)"),
          "featurize": re.compile(r"^(build_cycle_table_mrows_per_s|build_with_curves_mrows_per_s|"
                                  r"build_basic_vs_plain_groupby|plain_groupby_mrows_per_s|"
                                  r"curves_part_mrows_per_s|peak_mib_build_cycle_table)\b"),
          "serving": re.compile(r"^(session\.run|whole forecast|highest rate held|\d worker)")}


def quoted_section(r: dict, info: dict, title: str) -> list[str]:
    """Selected lines the benchmark printed, verbatim."""
    lines = _head(title, r, info, None)
    if r.get("code") != 0:
        return lines + _failed(r)
    pattern = QUOTED.get(r["name"])
    got = [ln.strip() for ln in (r.get("stdout") or "").splitlines()
           if pattern is None or pattern.search(ln.strip())]
    if not got:
        return lines + ["**not measured**: none of the expected figure lines were printed", ""]
    return lines + ["```", *got[-12:], "```", ""] + (
        featurize_targets(got) if r["name"] == "featurize" else [])


#: featurize.py's printed keys with a README target: (what, target, unit)
FEATURIZE_TARGETS = {
    "build_cycle_table_mrows_per_s": ("basic path", f">= {BASIC_MROWS_PER_S:g}", " M rows/s"),
    "build_basic_vs_plain_groupby": ("basic path vs a plain pandas groupby",
                                     f">= {BASIC_VS_GROUPBY:g}", "×"),
    "curves_part_mrows_per_s": ("voltage-curve part", f">= {CURVES_MROWS_PER_S:g}", " M rows/s")}


def featurize_targets(printed: list[str]) -> list[str]:
    """One line marking the quoted featurize figures against their targets."""
    parts = []
    for ln in printed:
        key, _, value = ln.partition(" ")
        if key in FEATURIZE_TARGETS:
            what, target, unit = FEATURIZE_TARGETS[key]
            v = _num(value.strip())
            parts.append(f"{what} {mark(v, target, fmt(v) + unit)} "
                         f"(target {_target_text(target)}{unit})")
    return ["Targets: " + "; ".join(parts) + ".", ""] if parts else []


def study_section(r: dict, info: dict, title: str) -> list[str]:
    """A study printing ``{"study", "run_id", <headline figures>}``."""
    doc = r.get("json") or {}
    lines = _head(title, r, info, doc.get("run_id")) + _failed(r)
    figs = [f"{k} {fmt(v)}" for k, v in doc.items() if k not in ("study", "run_id")]
    if figs:
        lines += ["- " + "; ".join(figs), ""]
    return lines


TITLES = {"seed": "Seed study (PTO / β-Li3PS4 cells)", "public": "Public benchmarks",
          "evaluate": "Single-cell forecasts by source (`fadecast evaluate`)",
          "evaluate-cohorts": "Cohort attribution (`fadecast evaluate --suite pybamm-cohorts`)",
          "severson": "Severson LFP early life",
          "severson-midlife": "Severson LFP mid-life",
          "eol-heldout": "End-of-life interval on held-out test cells by fade progress",
          "loso": "Leave-one-source-out by retraining (production recipe without each source)", "backtest": "Early-stopping advice replay",
          "load": "Serving under load, shipped model (open loop, latency from each "
                  "scheduled send)",
          "load-light": "Serving under load, the tests' light model (the service without "
                        "the ensemble's cost)",
          "cohort": "Cohort attribution speed",
          "ingest": "Ingest (`Registry.ingest` vs `pandas.read_csv`)",
          "featurize": "Features (per-cycle descriptors, one core)",
          "serving": "Serving, in process and HTTP (`serving.py`)",
          "fleet": "Fleet (one process vs Dask workers)",
          "web": "Web pages in headless Chromium", "seed-cohort": "Seed study as a cohort"}
RENDERERS = {"evaluate": evaluate_section, "evaluate-cohorts": cohorts_section,
             "loso": loso_section,
             "severson": severson_section, "severson-midlife": severson_midlife_section,
             "eol-heldout": eol_heldout_section,
             "backtest": backtest_section, "load": load_section,
             "load-light": load_section,
             "cohort": cohort_bench_section, "fleet": fleet_section, "web": web_section,
             "seed-cohort": seed_cohort_section}


def section(r: dict, info: dict) -> list[str]:
    """The Markdown lines of one step's figures."""
    name = r["name"]
    if name in RENDERERS:
        return RENDERERS[name](r, info)
    if name in ("seed", "public"):
        return study_section(r, info, TITLES[name])
    return quoted_section(r, info, TITLES.get(name, name))


def old_sections(text: str) -> dict[str, list[str]]:
    """The per-step sections of an existing generated block (``{}`` when there is none)."""
    if BEGIN not in text or END not in text:
        return {}
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    out: dict[str, list[str]] = {}
    matches = list(_SECTION_RE.finditer(body))
    for i, m in enumerate(matches):
        stop = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        out[m.group(1)] = body[m.start():stop].strip("\n").splitlines() + [""]
    return out


def render_block(results: Iterable[dict], info: dict, order: list[str],
                 previous: str = "", skipped: Iterable[str] = ()) -> str:
    """The whole generated block: one section per step of ``order`` — measured now (from
    ``results``), or, for a ``skipped`` step, its section of the ``previous`` block verbatim
    (it carries its own date), else a line saying it was not run."""
    by_name = {r["name"]: r for r in results}
    old = old_sections(previous)
    skipped = set(skipped)
    lines = [BEGIN, "",
             f"_Generated by `{info.get('invocation', 'python experiments/run_all.py')}` "
             f"(`make bench`) — last run {machine_line(info)}. Each section gives its own "
             "command, MLflow run, date and machine; do not edit by hand._", ""]
    if info.get("model_line"):
        lines += [info["model_line"], ""]
    for name in order:
        if name in by_name:
            lines += section(by_name[name], info)
        elif name in skipped and name in old:
            lines += old[name]
        elif name in skipped:
            lines += [SECTION.format(name=name), f"**{TITLES.get(name, name)}**: not run yet "
                      "(skipped).", ""]
    lines.append(END)
    return "\n".join(lines)


def replace_block(text: str, block: str, where: str = "README.md") -> str:
    """``text`` with its generated block replaced; :class:`MarkersMissing` unless both markers
    are there once each, BEGIN before END."""
    nb, ne = text.count(BEGIN), text.count(END)
    if nb != 1 or ne != 1 or text.index(BEGIN) > text.index(END):
        raise MarkersMissing(
            f"{where}: expected the lines {BEGIN!r} and then {END!r}, once each, where the "
            f"generated figures go; found BEGIN {nb}×, END {ne}×. Add them (e.g. under "
            "'## Measured figures') and run again; nothing was written.")
    head, rest = text.split(BEGIN, 1)
    return head + block + rest.split(END, 1)[1]


def check_markers(path: Path) -> str:
    """The README's text if it holds the markers; :class:`MarkersMissing` otherwise."""
    if not path.is_file():
        raise MarkersMissing(f"{path}: no such file (the README whose figures are generated)")
    text = path.read_text(encoding="utf-8")
    replace_block(text, "", str(path))
    return text


def write_readme(path: Path, block: str) -> None:
    """Swap the block into ``path`` (temp file, then rename)."""
    text = replace_block(check_markers(path), block, str(path))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
