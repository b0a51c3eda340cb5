"""Handlers of ``fadecast attribute`` and ``fadecast cohort`` (cohort attribution, registry).

``attribute`` reads the siblings (per-cycle CSVs, a registry cohort, or registered cells) and
any planned siblings, calls :func:`ml.cohort.document.solve` — the SAME numpy path as
``POST /v1/cohorts/attribution`` — and records the fit as an MLflow run (inputs with their
hashes, posterior summaries, the answer, one plot per cell of its time and cycle parts with
bands) in FADECAST_HOME's tracking store (or ``--tracking-uri``). With ``--json`` stdout
holds exactly one JSON document; notes go to stderr.
"""
from __future__ import annotations

import hashlib
import json
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import FadecastError, InputFormatError, ValidationError

__all__ = ["attribute_command", "cohort_command", "read_cycles_file"]


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputFormatError("file not found", code="missing_file", file=str(path),
                               expected="an existing CSV file", found="nothing")
    from serving.history import read_csv_text

    raw = read_csv_text(path)
    for col in raw.columns:
        if col == "cell_id":
            continue
        text = raw[col].astype(str).str.strip()
        low = text.str.lower()
        bad = low.isin(["nan", "inf", "-inf", "+inf", "infinity", "-infinity", "null"])
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValidationError("value is not a finite number", code="bad_value",
                                  file=path.name, row=i + 2, column=col,
                                  expected="a finite float", found=repr(raw[col].iloc[i]))
        raw[col] = text.replace("", None)
    return raw


def read_cycles_file(path: str | Path) -> list[Any]:
    """The cells of one per-cycle CSV (one, or several told apart by ``cell_id``)."""
    from ml.cohort.document import CellInput

    path = Path(path)
    raw = _read_csv(path)
    if "cell_id" in raw.columns and (raw["cell_id"].astype(str).str.strip() != "").any():
        ids = raw["cell_id"].astype(str).str.strip()
        if (ids == "").any():
            i = int(np.flatnonzero((ids == "").to_numpy())[0])
            raise ValidationError("cell_id is empty", code="bad_value", file=path.name,
                                  row=i + 2, column="cell_id", expected="a cell id",
                                  found="''")
        out = []
        for cid in dict.fromkeys(ids):
            part = raw[ids == cid].drop(columns="cell_id").reset_index(drop=True)
            out.append(CellInput(cid, part, f"{path.name} (cell {cid})"))
        return out
    return [CellInput(path.stem, raw.drop(columns=["cell_id"], errors="ignore"), path.name)]


def _registry_cells(ids: list[str]) -> list[Any]:
    from data_registry.store import Registry
    from ml.cohort.document import CellInput
    from serving.history import cell_history

    out = []
    with Registry() as registry:
        for cid in ids:
            frame, meta = cell_history(registry, cid)
            nominal = meta.get("nominal_capacity_ah")
            out.append(CellInput(cid, frame, f"cell {cid}",
                                 float(nominal) if nominal is not None else None))
    return out


def _cohort_ids(name: str) -> list[str]:
    from data_registry.cohorts import cohort_members
    from data_registry.store import Registry

    with Registry() as registry:
        return cohort_members(registry, name)


def _plans(pairs: list[tuple[str, str]]) -> list[Any]:
    from ml.cohort.document import PlanInput

    out = []
    for name, file in pairs:
        raw = _read_csv(Path(file))
        raw = raw.drop(columns=[c for c in ("discharge_capacity_ah", "charge_capacity_ah",
                                            "cell_id") if c in raw.columns])
        out.append(PlanInput(name, raw, Path(file).name))
    return out


def _inputs(args: Namespace) -> tuple[list[Any], str | None]:
    if args.cycles:
        cells = [c for f in args.cycles for c in read_cycles_file(f)]
        return cells, args.cohort_name
    if args.cohort:
        return _registry_cells(_cohort_ids(args.cohort)), args.cohort
    return _registry_cells(list(args.cells)), args.cohort_name


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def _cell_figure(result: Any, i: int):
    """Time and cycle parts of cell ``i`` (loss, % of reference) with 90 % bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ml.cohort import law

    post, draws = result.posterior, result.draws
    cell = post.cells[i]
    lt, lc = law.split_losses(cell, post.shared(draws))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = cell.cycle_index
    for part, color, label in ((lt, "tab:red", "time-driven"), (lc, "tab:blue", "cycle-driven")):
        q = np.quantile(part * 100, [0.05, 0.5, 0.95], axis=0)
        ax.fill_between(x, q[0], q[2], color=color, alpha=0.2)
        ax.plot(x, q[1], color=color, label=f"{label} (p50, 90 % band)")
    level = post.mean[post.n_shared + i] + law.undegraded_fraction(
        cell.typical_c_rate, post.mean[None, :post.n_shared], 0.0)[0, 0]
    ax.plot(x, (level - cell.capacity_ah / post.reference_ah) * 100, ".", ms=2, color="k",
            label="measured loss (vs fitted level)")
    ax.set_xlabel("cycle")
    ax.set_ylabel("loss, % of reference")
    ax.set_title(f"{cell.cell_id}: cohort-law attribution")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _track(args: Namespace, cells: list[Any], plans: list[Any], result: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    from ml.training import tracking

    doc = result.document
    digests = {c.cell_id: _digest(c.frame) for c in cells}
    params = {"cohort": str(doc["cohort"]["name"]), "cells": ",".join(digests)[:500],
              "model": f"{doc['model']['name']}:{doc['model']['version']}",
              "reference_capacity_ah": f"{doc['cohort']['reference_capacity_ah']:.6g}",
              "horizon_cycles": str(args.horizon_cycles),
              "plans": ",".join(p.name for p in plans) or "-",
              "plan_clock": str(getattr(args, "plan_clock", None) or "given")}
    params.update({f"input_sha256.{k}"[:250]: v[:16] for k, v in digests.items()})
    uri = tracking.resolve_tracking_uri(getattr(args, "tracking_uri", None))
    with tracking.training_run("fadecast-cohorts", params, tracking_uri=uri,
                               run_name=f"attribute-{doc['cohort']['name'] or 'cells'}") as rid:
        all_digest = hashlib.sha256("".join(digests.values()).encode()).hexdigest()
        tracking.log_datasets({c.cell_id: c.frame.assign(cell_id=c.cell_id) for c in cells},
                              all_digest)
        metrics: dict[str, float] = {}
        for c in doc["cells"]:
            for k, v in c["attribution"]["time_share"].items():
                metrics[f"{c['cell_id']}.time_share_{k}"] = v
        ident = doc.get("identifiability") or {}
        if ident:
            metrics["time_share_width"] = ident["time_share_width"]
            metrics["next_protocol_expected_width"] = \
                ident["next_protocol"]["expected_time_share_width"]
        tracking.log_metrics(metrics)
        mlflow.log_text(json.dumps(doc, indent=1), "attribution.json")
        for i in range(len(result.posterior.cells)):
            fig = _cell_figure(result, i)
            tracking.log_figure(fig, f"cell_{result.posterior.cells[i].cell_id}")
            plt.close(fig)
    return rid


def attribute_command(args: Namespace) -> int:
    """``fadecast attribute (--cycles F ... | --cohort NAME | --cells ID ...) [--plan N=F ...]
    [--horizon-cycles N] [--nominal-capacity-ah Q] [--model URI] [--json]``."""
    from ml.cohort.document import solve
    from ml.cohort.prior import load_prior

    if args.horizon_cycles is not None and args.horizon_cycles < 1:
        raise FadecastError("option --horizon-cycles is out of range", code="bad_option",
                            column="--horizon-cycles", expected="an integer >= 1",
                            found=str(args.horizon_cycles))
    prior = load_prior(_prior_path(args.model) if args.model else None)
    cells, name = _inputs(args)
    plans = _plans(list(args.plan or []))
    result = solve(cells, plans, cohort_name=name, nominal_capacity_ah=args.nominal_capacity_ah,
                   horizon_cycles=args.horizon_cycles, prior=prior,
                   plan_clock=str(getattr(args, "plan_clock", None) or "given"
                                  ).replace("-", "_"))
    if len(cells) == 1:
        _note("one cell: answered from the population prior and its own curve; the interval "
              "is wide and the advice says which sibling to run")
    if not args.no_track:
        rid = _track(args, cells, plans, result)
        _note(f"MLflow run {rid} (experiment fadecast-cohorts)")
    doc = result.document
    if args.json:
        sys.stdout.write(json.dumps(doc, allow_nan=False) + "\n")
        return 0
    print(_human(doc))
    return 0


def _prior_path(uri: str) -> Path:
    p = Path(uri)
    return p / "population_prior.json" if p.is_dir() else p


def _human(doc: dict[str, Any]) -> str:
    lines = [f"cohort {doc['cohort']['name'] or '-'}: {len(doc['cells'])} cell(s), reference "
             f"{doc['cohort']['reference_capacity_ah']:.4g} Ah, model {doc['model']['version']}"]
    for c in doc["cells"]:
        q = c["attribution"]["time_share"]
        lines.append(f"  {c['cell_id']}: time share at cycle {c['last_cycle_index']}: "
                     f"{q['p50']:.2f} [{q['p05']:.2f}, {q['p95']:.2f}]"
                     + ("" if c["attribution"].get("identifiable", True) else
                        " (not identifiable yet: its fade so far is within the noise)"))
    for p in doc["plans"]:
        last = p["forecast"][-1]
        q = last["capacity_ah"]
        lines.append(f"  plan {p['name']}: capacity at cycle {last['cycle_index']}: "
                     f"{q['p50']:.4g} Ah [{q['p05']:.4g}, {q['p95']:.4g}]")
    ident = doc.get("identifiability")
    if ident:
        lines.append(f"advice: {ident['advice']}")
    return "\n".join(lines)


def cohort_command(args: Namespace) -> int:
    """``fadecast cohort NAME [--add CELL ...] [--json]``: set or list a cohort's members."""
    from data_registry.cohorts import cohort_members, set_cohort
    from data_registry.store import Registry

    with Registry() as registry:
        members = set_cohort(registry, args.name, list(args.add)) if args.add else \
            cohort_members(registry, args.name)
    if args.json:
        sys.stdout.write(json.dumps({"cohort": args.name, "cells": members}) + "\n")
    else:
        print(f"cohort {args.name}: {', '.join(members)}")
    return 0
