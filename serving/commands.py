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

from data_registry.errors import FadecastError, InputFormatError

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
    c_rate = getattr(args, "c_rate", None)
    if c_rate is not None and not (math.isfinite(c_rate) and c_rate > 0):
        raise bad("--c-rate", "a finite C-rate > 0 (1/h)", c_rate)
    if not (math.isfinite(args.eol) and 0 < args.eol < 1):
        raise bad("--eol", "a fraction in (0, 1)", args.eol)
    if args.nominal_capacity_ah is not None and not (math.isfinite(args.nominal_capacity_ah)
                                                     and args.nominal_capacity_ah > 0):
        raise bad("--nominal-capacity-ah", "a capacity in Ah > 0", args.nominal_capacity_ah)


def _load_history(args: Namespace, registry: Any = None
                  ) -> tuple[Any, str | None, dict[str, Any]]:
    """(raw per-cycle frame, cell id, metadata) from --cycles FILE.csv or --cell ID."""
    from serving.history import cycles_csv_cell_id, read_cycles_csv

    if args.cycles:
        try:
            frame, ignored = read_cycles_csv(args.cycles)
        except FadecastError as exc:
            if exc.code not in ("missing_column", "unreadable_csv"):
                raise
            # not the canonical layout (or no CSV: a workbook): any per-cycle table the
            # registry's readers accept (aliases, units, a capacity table, a workbook's cycle
            # sheet; a missing clock estimated from the flags)
            frame, ignored = _read_any_cycles(args, exc)
        if ignored:
            _note(f"note: ignored columns not used by the model: {', '.join(ignored)}")
        # the file's own cell_id column when it has one, else the file name without extension
        try:
            cell_id = cycles_csv_cell_id(args.cycles) or Path(args.cycles).stem
        except FadecastError as exc:  # not a CSV (a workbook): the file name
            if exc.code != "unreadable_csv":
                raise
            cell_id = Path(args.cycles).stem
        return frame, cell_id, {}
    from data_registry.store import Registry
    from serving.history import cell_history

    own = registry is None
    registry = Registry() if registry is None else registry
    try:
        frame, meta = cell_history(registry, args.cell)
        try:
            stored = registry.load_cycles(args.cell, columns=["test_time_estimated"])
            if len(stored) and (stored["test_time_estimated"].fillna(0) == 1).any():
                frame.attrs["test_time_estimated"] = True
        except Exception:  # noqa: BLE001 - a cell of samples only has no per-cycle rows
            pass
    finally:
        if own:
            registry.close()
    return frame, args.cell, meta


def _read_any_cycles(args: Namespace, first: FadecastError) -> tuple[Any, list[str]]:
    """A per-cycle table through ``data_registry.readers`` (kind ``cycles``), the clock
    estimated from ``--hours-per-cycle`` / ``--c-rate`` where the file has none."""
    from data_registry.readers import open_source
    from serving.history import LABEL_COLUMN, OPTIONAL_COLUMNS, REQUIRED_COLUMNS

    try:
        source = open_source(args.cycles, protocol_hours_per_cycle=args.hours_per_cycle,
                             c_rate=getattr(args, "c_rate", None),
                             capacity_column=getattr(args, "capacity_column", None),
                             capacity_unit=getattr(args, "capacity_unit", None),
                             active_mass_g=getattr(args, "active_mass_g", None))
    except FadecastError as exc:
        from data_registry.readers.formats import MATRIX_MESSAGE

        if exc.code in ("unknown_format", "ambiguous_format") \
                and not exc.message.startswith(MATRIX_MESSAGE):
            raise first from exc  # the canonical layout's error says what is missing
        raise
    if source.kind != "cycles":  # a per-sample export (or spectra): the registry builds cycles
        raise InputFormatError(
            f"this is a {source.format_name} file of {source.kind}, not a per-cycle table",
            code="not_per_cycle", file=Path(args.cycles).name,
            expected="a per-cycle table (cycle_index, test_time_second, discharge_capacity_ah) "
                     "— or ingest the export first: fadecast ingest "
                     f"{Path(args.cycles).name} --cell-id ID, then fadecast forecast --cell ID",
            found=f"{source.format_name} ({source.kind})") from first
    table = source.read()
    for w in source.warnings:
        _note(w.line())
    keep = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, LABEL_COLUMN)
            if c in table.columns]
    frame = table[keep].reset_index(drop=True)
    if "test_time_estimated" in table and (table["test_time_estimated"] == 1).any():
        frame.attrs["test_time_estimated"] = True
    ignored = [c for c in table.columns
               if c not in keep and c not in ("source_row", "test_time_estimated")
               and table[c].notna().any()]
    return frame, ignored


def forecast_command(args: Namespace) -> int:
    """``fadecast forecast (--cycles FILE.csv | --cell ID) --horizon-cycles N ... [--json]``."""
    from serving.runtime import load_forecaster

    if getattr(args, "all", False):
        from serving.fleet_forecast import forecast_all_command
        return forecast_all_command(args)
    _check_options(args)
    doc = forecast_doc(args, lambda: load_forecaster(args.model))
    if doc.get("test_time_estimated"):
        _note("note: test_time_estimated: the history has no clock of its own; elapsed "
              "time was estimated from the protocol (hours per cycle / C-rate), so the "
              "time-driven share and every time in this forecast rest on that estimate")
    pace_note = ((doc.get("domain") or {}).get("pace") or {}).get("note")
    if pace_note:
        _note(f"note: pace: {pace_note}")
    rows_note = history_note(doc.get("history"))
    if rows_note:
        _note(f"note: history: {rows_note}")
    if args.json:
        sys.stdout.write(json.dumps(doc, allow_nan=False) + "\n")
        return 0
    print(_human_forecast(doc))
    return 0


def history_note(history: dict[str, Any] | None) -> str | None:
    """One line on the rows a forecast used when it left any out (the answer's ``history``),
    else None."""
    if not history or history.get("rows_used") == history.get("rows"):
        return None
    dropped = ", ".join(f"{why}: {n}" for why, n in (history.get("dropped") or {}).items())
    if history.get("basis") == "capacity checks":
        return (f"the capacity trend is the {history['rows_used']} labelled capacity checks "
                f"of {history['rows']} cycles (left out — {dropped}; the cycle count and the "
                "clock still run through every cycle)")
    return f"{history['rows_used']} of {history['rows']} cycles used (left out — {dropped})"


def forecast_doc(args: Namespace, model: Any, registry: Any = None) -> dict[str, Any]:
    """The forecast document of one cell (``args.cycles`` or ``args.cell``) by ``model()``
    (called once the history is read, so a bad cell is reported before a missing model) —
    the per-cell code of ``fadecast forecast`` and of ``fadecast forecast --all``."""
    from serving.predict import forecast_document

    frame, cell_id, meta = _load_history(args, registry)
    nominal = args.nominal_capacity_ah
    if nominal is None and meta.get("nominal_capacity_ah") is not None:
        nominal = float(meta["nominal_capacity_ah"])
    estimated = bool(frame.attrs.get("test_time_estimated"))
    hours = args.hours_per_cycle
    if hours is None and getattr(args, "c_rate", None):
        hours = 2.0 / float(args.c_rate)
    doc = forecast_document(model(), frame, horizon_cycles=args.horizon_cycles,
                            hours_per_cycle=hours, eol_fraction=args.eol,
                            nominal_capacity_ah=nominal, cell_id=cell_id,
                            meta={k: v for k, v in meta.items() if k != "cell_id"})
    if estimated:
        # optional extension of the forecast document: the history's clock was estimated
        doc["test_time_estimated"] = True
    return doc


def advice_command(args: Namespace) -> int:
    """``fadecast advice (--cycles FILE | --cell ID) --planned-cycles N --tolerance-cycles T``:
    the ``POST /v1/advice`` answer (same code path) on stdout."""
    from serving.predict import advice_document
    from serving.runtime import load_forecaster

    args.horizon_cycles = 1  # the shared option check
    _check_options(args)
    if args.planned_cycles < 1 or not (math.isfinite(args.tolerance_cycles)
                                       and args.tolerance_cycles > 0):
        raise FadecastError("option out of range", code="bad_option",
                            column="--planned-cycles/--tolerance-cycles",
                            expected="planned cycles >= 1 and tolerance > 0",
                            found=f"{args.planned_cycles}, {args.tolerance_cycles}")
    frame, cell_id, meta = _load_history(args)
    nominal = args.nominal_capacity_ah
    if nominal is None and meta.get("nominal_capacity_ah") is not None:
        nominal = float(meta["nominal_capacity_ah"])
    hours = args.hours_per_cycle
    if hours is None and getattr(args, "c_rate", None):
        hours = 2.0 / float(args.c_rate)
    model = load_forecaster(args.model)
    doc = advice_document(model, frame, planned_cycles=args.planned_cycles,
                          tolerance_cycles=args.tolerance_cycles, eol_fraction=args.eol,
                          hours_per_cycle=hours, nominal_capacity_ah=nominal,
                          spec_min_cycles=args.min_cycles_to_eol, cell_id=cell_id,
                          meta={k: v for k, v in meta.items() if k != "cell_id"})
    if frame.attrs.get("test_time_estimated"):
        doc["test_time_estimated"] = True
        _note("note: test_time_estimated: the history's clock was estimated from the "
              "protocol; hours saved and the time-driven share rest on that estimate")
    if args.json:
        from serving.predict import clean_json

        sys.stdout.write(json.dumps(clean_json(doc), allow_nan=False) + "\n")
        return 0
    reason = str(doc.get("reason") or "")
    # the reason already opens with the decision ("continue: …", "stop now: …")
    print(reason if reason.startswith(doc["decision"]) else f"{doc['decision']}: {reason}")
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
                     f"{_fmt_q(last['capacity_ah'], '{:.4g}')} Ah (p50 [p05, p95])")
    if eol and eol.get("observed"):
        lines.append(f"end of life ({100 * eol['threshold_fraction']:.0f} %): already reached "
                     f"at cycle {eol['cycle_index']['p50']} "
                     f"({eol['test_time_second']['p50'] / 3600:.0f} h), observed in the history")
    elif eol:
        hours = {k: (v / 3600 if v is not None else None)
                 for k, v in eol["test_time_second"].items()}
        text = (f"end of life ({100 * eol['threshold_fraction']:.0f} %): cycle "
                f"{_fmt_q(eol['cycle_index'])}, {_fmt_q(hours)} h")
        if (eol.get("censored") or {}).get("p95"):
            text += "; p95 beyond the horizon (a lower bound)"
        wide = eol.get("calibrated_widening") or {}
        if any(wide.get(k) for k in ("p05", "p95")):
            text += (f"; interval widened by the model's end-of-life calibration (remaining "
                     f"cycles to p05 x{math.exp(-wide.get('p05', 0.0)):.2f}, to p95 "
                     f"x{math.exp(wide.get('p95', 0.0)):.2f}"
                     + (f"; calibrated on {', '.join(eol['calibrated_on'])} cells"
                        if eol.get("calibrated_on") else "") + ")")
        lines.append(text)
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


#: uvicorn logging: one line per server event and one access line per request, on stderr,
#: each with a UTC timestamp (``fadecast serve`` runs under systemd, docker or a terminal)
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"()": "uvicorn.logging.DefaultFormatter",
                    "fmt": "%(asctime)s %(levelprefix)s %(message)s", "use_colors": False},
        "access": {"()": "uvicorn.logging.AccessFormatter", "use_colors": False,
                   "fmt": '%(asctime)s access: %(client_addr)s "%(request_line)s" '
                          '%(status_code)s'},
    },
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler",
                   "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


def _model_line(uri: str | None) -> str:
    """``model NAME vVERSION (where)`` of the model the service will load (or why not)."""
    from data_registry.home import fadecast_home

    try:
        from ml.model_store import resolve_model

        folder = Path(resolve_model(uri))
        card = json.loads((folder / "model_card.json").read_text())
        return (f"model {card.get('name', '?')} v{card.get('version', '?')} "
                f"({uri or 'champion'}; {folder})")
    except FadecastError as exc:
        return (f"no model loaded yet ({exc.message}); FADECAST_HOME={fadecast_home()} — "
                "train one (`fadecast train` or `make demo`), then POST /v1/admin/reload")
    except Exception as exc:  # noqa: BLE001 - the service itself reports load errors too
        return f"model {uri or 'champion'} not resolved here ({type(exc).__name__}: {exc})"


def serve_command(args: Namespace) -> int:
    """``fadecast serve [--host 127.0.0.1] [--port 8000] [--model URI] [--workers N]``: logs
    its address, the model it serves and one access line per request on stderr."""
    import uvicorn

    if args.model:
        os.environ["FADECAST_SERVE_MODEL_URI"] = args.model
    _note(f"fadecast serve: listening on http://{args.host}:{args.port} "
          f"({max(1, int(args.workers))} worker(s)); web pages at /, docs at /docs, health "
          f"at /healthz")
    _note(f"fadecast serve: {_model_line(args.model)}")
    uvicorn.run("serving.app:create_app", factory=True, host=args.host, port=args.port,
                workers=max(1, int(args.workers)), loop="uvloop", http="httptools",
                log_level="info", access_log=True, log_config=LOG_CONFIG)
    return 0


def ui_command(args: Namespace) -> int:
    """``fadecast ui [--host 127.0.0.1] [--port 5000] [--print-only]``: the MLflow UI on
    this home's tracking store and artifacts (runs, metrics, the registry's champion)."""
    import shutil
    import subprocess

    from data_registry.home import mlflow_artifact_root, mlflow_tracking_uri

    tracking = mlflow_tracking_uri()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking,
           "--default-artifact-root", mlflow_artifact_root().as_uri(),
           "--host", str(args.host), "--port", str(int(args.port))]
    url = f"http://{args.host}:{int(args.port)}"
    _note("fadecast ui: " + " ".join(shlex_quote(c) for c in cmd))
    print(url)
    if getattr(args, "print_only", False):
        return 0
    if shutil.which(sys.executable) is None:  # pragma: no cover - the interpreter runs us
        return 1
    _note(f"fadecast ui: open {url} in a browser (Ctrl-C stops it)")
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
