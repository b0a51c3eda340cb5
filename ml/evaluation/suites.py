"""The evaluation suites behind ``fadecast evaluate``: each returns figures per method, with
the ratio "model vs naive" (model figure / naive √t+N figure; < 1 is better for errors and
widths; for coverage the target is 90 %).

- ``pybamm-dev``: the TEST cells of :func:`ml.sources.split_by_cell` (seed 0, stratified by
  (C-rate, rest)); baseline bands calibrated on the VAL cells.
- ``synthetic``: a held-out fleet ``ml.synthetic.make_fleet(24, seed=HELDOUT_SEED,
  prefix="heldout")``; baseline bands calibrated on a second fleet (seed HELDOUT_SEED + 1).
- ``severson``: cycles to 80 % of 1.1 Ah, Severson train → test1 (see
  :mod:`ml.evaluation.cycle_life`); ``severson-test2``: the same on the secondary test set,
  listed only where the data carry it (``Qn_test2.csv``; not in ``../shared/data``).
- ``geslin2024``, ``nasa-pcoe``: real cells, the same trajectory protocol on the TEST cells of
  ``split_by_cell`` (bands calibrated on the VAL cells). No known time/cycle split here, so
  only the capacity and interval figures are scored. Geslin's clock is estimated (2 × EFC /
  average C-rate) and its capacity is normalised; NASA's clock is real.

A model whose card names no training on a suite's source (nor a sibling of it) is scored on
EVERY cell of it but the calibration cells (:func:`trajectory_cells`): the production model on
geslin2024 and nasa-pcoe, a leave-one-source-out model on its held-out source.
"""
from __future__ import annotations

import difflib
import math
import warnings
from pathlib import Path
from typing import Any

from data_registry.errors import FadecastError

from ml.evaluation.by_source import card_sources, seen_label
from ml.evaluation.cycle_life import evaluate_cycle_life, naive_methods
from ml.evaluation.forecasters import BaselineForecaster
from ml.evaluation.trajectory import calibrate_band, evaluate_trajectories
from ml.sources import available_sources, load_source, split_by_cell

__all__ = ["SUITES", "HELDOUT_SEED", "available_suites", "run_suite", "format_table"]

SUITES = ("pybamm-dev", "severson", "severson-test2", "synthetic", "geslin2024", "nasa-pcoe",
          "pybamm-cohorts",
          "pybamm-cohorts-cells")
HELDOUT_SEED = 90210
NAIVE = "naive_sqrt"
TRAJECTORY_FIGURES = (
    ("time_share_abs_error_median", "share"), ("time_share_abs_error_p90", "share"),
    ("time_share_coverage_90_pct", "%"), ("time_share_interval_width_90", "share"),
    ("capacity_error_pct_of_reference", "%"), ("coverage_90_pct", "%"),
    ("interval_width_90_pct_of_reference", "%"), ("eol_error_pct", "%"),
    ("eol_cells", "cells"), ("eol_coverage_90_pct", "%"),
    ("eol_interval_cells", "cells"), ("cells_scored", "cells"),
    ("capacity_error_pct_in_domain", "%"), ("coverage_90_pct_in_domain", "%"),
    ("cells_in_domain", "cells"))


def available_suites(root: str | Path | None = None) -> list[str]:
    """Suites whose data exist (``synthetic`` needs ``ml.synthetic`` only)."""
    have = set(available_sources(root))
    out = []
    if "pybamm-cohorts-dev" in have:  # cohort attribution (ml.evaluation.cohorts)
        out.append("pybamm-cohorts")
    if "pybamm-dev" in have:
        out.append("pybamm-dev")
    if {"severson-train", "severson-test1"} <= have:
        out.append("severson")
    if {"severson-train", "severson-test2"} <= have:  # the secondary test set, where carried
        out.append("severson-test2")
    out.append("synthetic")
    out += [name for name in ("geslin2024", "nasa-pcoe") if name in have]
    if "pybamm-cohorts-dev" in have:  # its cells one by one, time/cycle truth known
        out.append("pybamm-cohorts-cells")
    return out


def _ratio(model: Any, naive: Any) -> float | None:
    try:
        m, n = float(model), float(naive)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(m) and math.isfinite(n)) or n == 0:
        return None
    return m / n


def _trajectory_rows(result: dict) -> list[dict]:
    rows = []
    for fig, unit in TRAJECTORY_FIGURES:
        values = {m: figs[fig] for m, figs in result["figures"].items() if fig in figs}
        if not values:
            continue  # the in-domain figures exist only when a model judged its domain
        rows.append({"figure": fig, "unit": unit, "values": values,
                     "model_vs_naive": _ratio(values.get("model"), values.get(NAIVE))})
    return rows


def _trajectory_suite(test: list, calib: list, model: Any) -> dict:
    methods: dict[str, Any] = {}
    if model is not None:
        methods["model"] = model
    for name in ("naive_sqrt", "power_law", "persistence"):
        methods[name] = BaselineForecaster(name, band_scale=calibrate_band(calib, name))
    result = evaluate_trajectories(test, methods)
    notes = [f"{m}: {len(f)} cell(s) failed, e.g. {f[0]}" for m, f in result["failures"].items()
             if f]
    return {"cells": [c.cell_id for c in test], "figures": _trajectory_rows(result),
            "per_cell": result["per_cell"], "notes": notes}


#: the trajectory suites (test cells, calibration cells) of :func:`trajectory_cells`
TRAJECTORY_SUITES = ("pybamm-dev", "synthetic", "geslin2024", "nasa-pcoe", "pybamm-cohorts-cells")


def trajectory_cells(name: str, root: Any = None, *, card: Any = None
                     ) -> tuple[list, list, list[str]]:
    """``(test cells, calibration cells, notes)`` of a trajectory suite: the cells it scores and
    the cells that calibrate the baselines' bands (never the same cells).

    ``card``: the scored model's card. When it names no training on the suite's source nor on
    a sibling of it (:func:`ml.evaluation.by_source.seen_label` is ``"no"``: a leave-one-source-
    out model, or a real source the model never saw), EVERY cell but the calibration cells is
    scored, not only the split's test part: none of them was seen, and 3 NASA cells or 9 PyBaMM
    cells make a p90 or a coverage mostly luck (the test part is still named in the notes)."""
    if name == "synthetic":
        from ml.synthetic import make_fleet

        return (make_fleet(24, seed=HELDOUT_SEED, prefix="heldout"),
                make_fleet(12, seed=HELDOUT_SEED + 1, prefix="calib"),
                [f"held-out fleet make_fleet(24, seed={HELDOUT_SEED}, prefix='heldout')"])
    source = {"pybamm-cohorts-cells": "pybamm-cohorts-dev"}.get(name, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = load_source(source, root=root)
    split = split_by_cell(recs)
    by_id = {r.cell_id: r for r in recs}
    calib = [by_id[c] for c in split["val"]]
    if name == "pybamm-cohorts-cells":
        val = set(split["val"])
        test = [r for r in recs if r.cell_id not in val]
        notes = ["scored: every pybamm-cohorts-dev cell but split_by_cell's val cells "
                 "(they calibrate the baseline bands); first 40 % seen; planned "
                 "schedule; time/cycle truth from the simulator"]
    elif name == "pybamm-dev":
        test = [by_id[c] for c in split["test"]]
        notes = ["test cells = split_by_cell(records, seed=0)['test']; first 40 % of "
                 "each trajectory seen; planned future hours (pace of the last 10 "
                 "observed cycles); baseline bands calibrated on the val cells"]
    else:
        test = [by_id[c] for c in split["test"]]
        notes = [f"test cells = split_by_cell({name} records, seed=0)['test']; first "
                 "40 % seen; no time/cycle truth: capacity and interval figures only"]
        notes += [str(w.message) for w in caught]
    if card is not None and name != "pybamm-cohorts-cells" \
            and seen_label(source, card_sources(card)) == "no":
        val = set(split["val"])
        unseen = [r for r in recs if r.cell_id not in val]
        notes.insert(0, f"the model card names no training on {source}: all {len(unseen)} "
                        f"cells but the {len(val)} that calibrate the baseline bands are scored "
                        f"(the split's test part alone: {len(test)} cells, "
                        f"{', '.join(sorted(c.cell_id for c in test)[:12])})")
        test = unseen
    return test, calib, notes


def _trajectory(name: str, model: Any, root: Any) -> dict:
    test, calib, notes = trajectory_cells(name, root, card=getattr(model, "card", None))
    out = _trajectory_suite(test, calib, model)
    out["notes"] += notes
    return out


def _severson(model: Any, root: Any, split: str = "test1") -> dict:
    have = set(available_sources(root))
    sev = (load_source("severson-train", root=root),
           load_source(f"severson-{split}", root=root))
    qd = None
    if {"severson-qdlin-train", f"severson-qdlin-{split}"} <= have:
        qd = (load_source("severson-qdlin-train", root=root),
              load_source(f"severson-qdlin-{split}", root=root))
    methods = naive_methods()
    if model is not None:
        methods["model"] = model
    scores = evaluate_cycle_life(sev, qd, methods)
    rows = []
    windows = sorted({k.split("@", 1)[1] for k in scores})
    for window in windows:
        for fig, unit in (("mape_pct", "%"), ("mape_pct_excl_anomalous", "%"),
                          ("rmse_cycles", "cycles")):
            values = {k.split("@")[0]: v[fig] for k, v in scores.items()
                      if k.split("@", 1)[1] == window}
            rows.append({"figure": f"cycles_to_80pct_{fig}@{window}", "unit": unit,
                         "values": values,
                         "model_vs_naive": _ratio(values.get("model"), values.get(NAIVE))})
    notes = ["labels: y_<split>.csv cycle life (cycles to 0.88 Ah); '@100_qdlin' rows use the "
             "severson2019_qdlin cells (same cells, other cleaning) with ΔQ100-10(V); "
             "'@100_charge_policy': the model given the same 100 cycles plus the charge "
             "policy's planned mean charge rate (the other rows: capacity only)",
             "excl_anomalous drops test cells with life < 200 cycles (Severson's 148-cycle cell)"]
    for k, v in scores.items():
        if v.get("censored"):
            notes.append(f"{k}: {v['censored']} of {v['cells']} predictions censored at 3000 "
                         "cycles (never reached 0.88 Ah)")
        if v.get("failed"):
            notes.append(f"{k}: {len(v['failed'])} cell(s) failed, e.g. {v['failed'][0]}")
    return {"cells": [c.cell_id for c in sev[1]], "figures": rows, "raw": scores,
            "notes": notes}


def _pybamm_cohorts(model: Any, root: Any) -> dict:
    from ml.evaluation.cohorts import run_cohort_suite  # the cohort law needs no model

    return run_cohort_suite(root)


_RUNNERS = {"severson": _severson,
            "severson-test2": lambda model, root: _severson(model, root, "test2"),
            "pybamm-cohorts": _pybamm_cohorts,
            **{name: (lambda model, root, _n=name: _trajectory(_n, model, root))
               for name in TRAJECTORY_SUITES}}


def run_suite(name: str, *, model: Any = None, root: str | Path | None = None) -> dict:
    """Run one suite; ``model`` is a forecaster (e.g. ``ModelForecaster.from_uri(uri)``) or
    None for baselines only. Returns ``{"suite", "cells", "figures", "notes", …}``."""
    if name not in _RUNNERS:
        near = difflib.get_close_matches(name, SUITES, n=3)
        raise FadecastError(f"suite '{name}' not recognised"
                            + (f"; best matches are {near}" if near else ""),
                            code="unknown_suite", column="suite",
                            expected=f"one of {list(SUITES)}", found=repr(name))
    out = _RUNNERS[name](model, root)
    return {"suite": name, **out}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(f):
        return "nan"
    return f"{f:.3f}" if abs(f) < 10 else f"{f:.1f}"


def format_table(result: dict) -> str:
    """A plain-text table of one suite: figure, unit, one column per method, model/naive."""
    methods: list[str] = []
    for row in result["figures"]:
        methods += [m for m in row["values"] if m not in methods]
    head = ["figure", "unit", *methods, "model/naive"]
    body = [[r["figure"], r["unit"], *(_fmt(r["values"].get(m)) for m in methods),
             _fmt(r["model_vs_naive"])] for r in result["figures"]]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = [f"== suite {result['suite']} ({len(result['cells'])} test cells)",
             "  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths)) for r in body]
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)
