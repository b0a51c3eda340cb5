"""Handlers of ``fadecast forecast``, ``fadecast backtest`` and ``fadecast serve``.

Each takes the argparse namespace from :mod:`serving.cli` and returns an exit code. ``forecast``
runs the SAME onnxruntime path as ``POST /v1/forecast`` (:func:`serving.predict.forecast_document`);
with ``--json`` stdout holds exactly one JSON document and everything else goes to stderr.
"""
from __future__ import annotations

import json
import math
import os
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from data_registry.errors import FadecastError

__all__ = ["backtest_command", "forecast_command", "serve_command"]


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def _check_options(args: Namespace) -> None:
    def bad(option: str, expected: str, found: Any) -> FadecastError:
        return FadecastError(f"option {option} is out of range", code="bad_option",
                             column=option, expected=expected, found=repr(found))

    if args.horizon_cycles is None or args.horizon_cycles < 1:
        raise bad("--horizon-cycles", "an integer >= 1", args.horizon_cycles)
    if args.hours_per_cycle is not None and not (math.isfinite(args.hours_per_cycle)
                                                 and args.hours_per_cycle > 0):
        raise bad("--hours-per-cycle", "a finite number of hours > 0", args.hours_per_cycle)
    if not (math.isfinite(args.eol) and 0 < args.eol < 1):
        raise bad("--eol", "a fraction in (0, 1)", args.eol)
    if args.nominal_capacity_ah is not None and not (math.isfinite(args.nominal_capacity_ah)
                                                     and args.nominal_capacity_ah > 0):
        raise bad("--nominal-capacity-ah", "a capacity in Ah > 0", args.nominal_capacity_ah)


def _load_history(args: Namespace) -> tuple[Any, str | None, dict[str, Any]]:
    """(raw per-cycle frame, cell id, metadata) from --cycles FILE.csv or --cell ID."""
    from serving.history import cycles_csv_cell_id, read_cycles_csv

    if args.cycles:
        frame, ignored = read_cycles_csv(args.cycles)
        if ignored:
            _note(f"note: ignored columns not used by the model: {', '.join(ignored)}")
        # the file's own cell_id column when it has one, else the file name without extension
        cell_id = cycles_csv_cell_id(args.cycles) or Path(args.cycles).stem
        return frame, cell_id, {}
    from data_registry.store import Registry
    from serving.history import cell_history

    registry = Registry()
    try:
        frame, meta = cell_history(registry, args.cell)
    finally:
        registry.close()
    return frame, args.cell, meta


def forecast_command(args: Namespace) -> int:
    """``fadecast forecast (--cycles FILE.csv | --cell ID) --horizon-cycles N ... [--json]``."""
    from serving.predict import forecast_document
    from serving.runtime import load_forecaster

    _check_options(args)
    frame, cell_id, meta = _load_history(args)
    nominal = args.nominal_capacity_ah
    if nominal is None and meta.get("nominal_capacity_ah") is not None:
        nominal = float(meta["nominal_capacity_ah"])
    model = load_forecaster(args.model)
    doc = forecast_document(model, frame, horizon_cycles=args.horizon_cycles,
                            hours_per_cycle=args.hours_per_cycle, eol_fraction=args.eol,
                            nominal_capacity_ah=nominal, cell_id=cell_id,
                            meta={k: v for k, v in meta.items() if k != "cell_id"})
    if args.json:
        sys.stdout.write(json.dumps(doc, allow_nan=False) + "\n")
        return 0
    print(_human_forecast(doc))
    return 0


def _fmt_q(q: dict[str, Any] | None, fmt: str = "{:.0f}") -> str:
    if not q or q.get("p50") is None:
        return "not reached"
    lo, hi = q.get("p05"), q.get("p95")
    band = f" [{fmt.format(lo) if lo is not None else '?'}, " \
           f"{fmt.format(hi) if hi is not None else '?'}]"
    return fmt.format(q["p50"]) + band


def _human_forecast(doc: dict[str, Any]) -> str:
    rows = doc["forecast"]
    eol = doc.get("end_of_life")
    share = (doc.get("attribution") or {}).get("time_share")
    lines = [f"model {doc['model']['name']} v{doc['model']['version']}, "
             f"cell {doc.get('cell_id') or '-'}, {len(rows)} cycles ahead"]
    if rows:
        last = rows[-1]
        lines.append(f"capacity at cycle {last['cycle_index']}: "
                     f"{_fmt_q(last['capacity_ah'], '{:.4f}')} Ah (p50 [p05, p95])")
    if eol:
        hours = {k: (v / 3600 if v is not None else None)
                 for k, v in eol["test_time_second"].items()}
        lines.append(f"end of life ({100 * eol['threshold_fraction']:.0f} %): cycle "
                     f"{_fmt_q(eol['cycle_index'])}, {_fmt_q(hours)} h")
    else:
        lines.append("end of life: not reached within the horizon")
    if share:
        lines.append(f"time-driven share of the loss so far: {_fmt_q(share, '{:.2f}')}")
    return "\n".join(lines)


def backtest_command(args: Namespace) -> int:
    """``fadecast backtest [--model URI] [--suite synthetic|pybamm-dev] [--json]``."""
    from serving.backtest_suites import run_suites

    report = run_suites(args.model, args.suite, progress=_note)
    if args.json:
        from serving.predict import clean_json

        sys.stdout.write(json.dumps(clean_json(report), allow_nan=False) + "\n")
        return 0
    for name, res in report["suites"].items():
        if "skipped" in res:
            print(f"{name}: skipped ({res['skipped']})")
            continue
        print(f"{name}: {res['n_cells']} cells, spec EOL >= {res['spec_min_cycles_to_eol']:.0f}"
              f" cycles; stopped early {res['n_stopped_early']}/{res['n_cells']}")
        print(f"  median planned test hours saved : {_pct(res['median_hours_saved_fraction'])}")
        print(f"  EOL error at stop (median, p90) : "
              f"{_pct(res['median_eol_error_fraction_at_stop'])}, "
              f"{_pct(res['p90_eol_error_fraction_at_stop'])}")
        print(f"  correct pass/fail calls         : {_pct(res['correct_call_share'])} "
              f"(of cells stopped early: {_pct(res['correct_call_share_of_stopped'])})")
        for kind, grp in res.get("by_stop_kind", {}).items():
            print(f"    {kind:10s}: {grp['n_cells']:3d} cells, median saved "
                  f"{_pct(grp['median_hours_saved_fraction'])}, median EOL error "
                  f"{_pct(grp['median_eol_error_fraction'])}")
    return 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"


def serve_command(args: Namespace) -> int:
    """``fadecast serve [--host 127.0.0.1] [--port 8000] [--model URI] [--workers N]``."""
    import uvicorn

    if args.model:
        os.environ["FADECAST_SERVE_MODEL_URI"] = args.model
    uvicorn.run("serving.app:create_app", factory=True, host=args.host, port=args.port,
                workers=max(1, int(args.workers)), loop="uvloop", http="httptools",
                log_level="warning", access_log=False)
    return 0
