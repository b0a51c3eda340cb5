"""The per-source table ``fadecast evaluate`` prints last: one row per data source, the model next
to the per-cell √t + N fit computed in the SAME run, and whether the model saw the source.

"Seen" is read from the model card (``training_domain["sources"]`` and ``training_data``), never
written by hand: ``no`` rows are leave-one-source-out figures (the model never trained on a cell
of that source), ``sibling`` rows are unseen cells of a source whose sibling split trained it
(e.g. Severson test1 vs train: other cells, same protocol family), ``yes`` rows are held-out cells
of a trained source (interpolation across cells, not across sources).
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["SUITE_SOURCES", "card_sources", "seen_label", "source_rows", "format_source_table",
           "plain_table"]

#: the data source(s) each suite's test cells come from
SUITE_SOURCES = {"pybamm-dev": "pybamm-dev", "synthetic": "synthetic",
                 "geslin2024": "geslin2024", "nasa-pcoe": "nasa-pcoe",
                 "severson": "severson-test1", "severson-test2": "severson-test2",
                 "pybamm-cohorts": "pybamm-cohorts-dev",
                 "pybamm-cohorts-cells": "pybamm-cohorts-dev"}
NAIVE = "naive_sqrt"


def card_sources(card: Any) -> set[str]:
    """Every source the card says trained the model (trajectory model or cycle-life head)."""
    if card is None:
        return set()
    dom = getattr(card, "training_domain", None) or {}
    out = {str(s) for s in dom.get("sources", [])}
    out |= {str(d.get("source")) for d in (getattr(card, "training_data", None) or [])
            if isinstance(d, dict) and d.get("source")}
    return out


def seen_label(source: str, seen: set[str]) -> str:
    """``yes`` / ``sibling (<name>)`` / ``no`` for a source against the card's sources."""
    if source in seen:
        return "yes"
    family = source.split("-")[0]
    siblings = sorted(s for s in seen if s != source and s.split("-")[0] == family)
    return f"sibling ({', '.join(siblings)})" if siblings else "no"


def _values(result: dict, figure: str) -> dict:
    for row in result.get("figures", []):
        if row["figure"] == figure:
            return row["values"]
    return {}


def source_rows(results: list[dict], card: Any) -> list[dict]:
    """One row per suite result: ``source``, ``in_training``, ``cells`` and model / naive
    figures (capacity error % of reference, EOL error %, 90 % coverage and mean band width in %
    of reference — a band that covers by being wide shows it —, time-share error) and the share
    of the ``eol_interval_cells`` whose served end-of-life interval holds the true cycle."""
    seen = card_sources(card)
    rows = []
    for res in results:
        suite = res["suite"]
        severson = suite.startswith("severson")
        if not severson and not _values(res, "capacity_error_pct_of_reference"):
            continue  # not a trajectory suite (e.g. the cohort attribution suite)
        source = SUITE_SOURCES.get(suite, suite)
        row = {"source": source, "in_training": seen_label(source, seen) if card else "-",
               "cells": len(res.get("cells", []))}
        if severson:
            for method, key in (("model", "model"), ("naive", NAIVE)):
                row[f"{method}_eol_error_pct"] = _values(
                    res, "cycles_to_80pct_mape_pct@100").get(key)
            row["model_eol_error_pct_with_delta_q"] = _values(
                res, "cycles_to_80pct_mape_pct@100_qdlin").get("model")
            row["model_eol_error_pct_with_charge_policy"] = _values(
                res, "cycles_to_80pct_mape_pct@100_charge_policy").get("model")
            for method, key in (("model", "model"), ("naive", NAIVE)):
                row[f"{method}_eol_error_pct_from_300"] = _values(
                    res, "cycles_to_80pct_mape_pct@300").get(key)
        else:
            for method, key in (("model", "model"), ("naive", NAIVE)):
                row[f"{method}_capacity_error_pct"] = _values(
                    res, "capacity_error_pct_of_reference").get(key)
                row[f"{method}_eol_error_pct"] = _values(res, "eol_error_pct").get(key)
                row[f"{method}_coverage_90_pct"] = _values(res, "coverage_90_pct").get(key)
                row[f"{method}_width_90_pct"] = _values(
                    res, "interval_width_90_pct_of_reference").get(key)
                row[f"{method}_time_share_error_median"] = _values(
                    res, "time_share_abs_error_median").get(key)
                row[f"{method}_time_share_error_p90"] = _values(
                    res, "time_share_abs_error_p90").get(key)
            row["model_eol_coverage_90_pct"] = _values(res, "eol_coverage_90_pct").get("model")
            row["eol_interval_cells"] = _values(res, "eol_interval_cells").get("model")
            if _values(res, "cells_in_domain").get("model") is not None:  # a model judged
                row["cells_in_domain"] = _values(res, "cells_in_domain")["model"]
                for method, key in (("model", "model"), ("naive", NAIVE)):
                    for fig in ("capacity_error_pct", "coverage_90_pct"):
                        row[f"{method}_{fig}_in_domain"] = _values(
                            res, f"{fig}_in_domain").get(key)
        rows.append(row)
    return rows


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


COLUMNS = (("source", "source"), ("in_training", "in training"), ("cells", "cells"),
           ("model_capacity_error_pct", "cap err % model"),
           ("naive_capacity_error_pct", "naive"),
           ("model_eol_error_pct", "EOL err % model"), ("naive_eol_error_pct", "naive"),
           ("model_eol_error_pct_with_delta_q", "EOL err % model+ΔQ"),
           ("model_eol_error_pct_with_charge_policy", "EOL err % model+policy"),
           ("model_eol_coverage_90_pct", "EOL cover90 % model"), ("eol_interval_cells", "EOL cells"),
           ("model_coverage_90_pct", "cover90 % model"), ("naive_coverage_90_pct", "naive"),
           ("model_width_90_pct", "width90 % model"), ("naive_width_90_pct", "naive"),
           ("model_time_share_error_median", "share err p50 model"),
           ("naive_time_share_error_median", "naive"),
           ("model_time_share_error_p90", "share err p90 model"),
           ("naive_time_share_error_p90", "naive"),
           ("cells_in_domain", "cells in domain"),
           ("model_capacity_error_pct_in_domain", "cap err % in domain model"),
           ("naive_capacity_error_pct_in_domain", "naive"),
           ("model_coverage_90_pct_in_domain", "cover90 % in domain model"))


def plain_table(rows: list[dict], columns: tuple[tuple[str, str], ...], title: str,
                note: str) -> str:
    """``title``, a left-aligned text table of ``rows`` (``columns`` = (key, label) pairs;
    ``-`` where a figure does not apply) and ``note`` — the per-source tables' one layout."""
    head = [label for _, label in columns]
    body = [[_fmt(r.get(key)) for key, _ in columns] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in body]
    lines.append(note)
    return "\n".join(lines)


def format_source_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`source_rows` (``-`` where a figure does not apply)."""
    return plain_table(
        rows, COLUMNS, "== by source (model vs the per-cell √t + N fit, same run; 'in "
        "training' read from the model card)",
        "note: 'no' = the model never trained on this source (leave-one-source-out); "
        "'sibling' = unseen cells of a trained source family; 'yes' = held-out cells "
        "of a trained source. EOL error: severson = cycles to 80 % from 100 cycles "
        "(MAPE); others = cells whose future crosses 80 % after the 40 % cut. 'in domain' = "
        "the cells whose model answer said domain.in_domain (both methods on those cells).")
