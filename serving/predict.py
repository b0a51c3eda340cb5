"""What a forecast or an advice request does, shared by the HTTP routes and the CLI.

Both paths call these functions with a loaded :class:`serving.runtime.OnnxForecaster`, so the
command line and the API produce byte-identical forecasts for the same history.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError
from ml.advice import AdvicePolicy, advise, observed_eol_cycle, update_from_forecast
from ml.domain import verdict_failures
from ml.windows import trend_subset
from serving.history import loss_so_far_fraction, recent_hours_per_cycle, reference_capacity_ah
from serving.runtime import OnnxForecaster

__all__ = ["advice_document", "clean_json", "forecast_document"]


_PLAIN = frozenset({int, str, bool, type(None)})


def _clean_dict(value: dict) -> dict:
    """:func:`clean_json` of a plain dict, its plain leaves handled inline (a forecast has
    hundreds of small dicts: one call per dict, not one per value)."""
    out = {}
    for k, v in value.items():
        kind = type(v)
        if kind is float:
            out[k] = v if math.isfinite(v) else None
        elif kind in _PLAIN:
            out[k] = v
        elif kind is dict:
            out[k] = _clean_dict(v)
        else:
            out[k] = clean_json(v)
    return out


def clean_json(value: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python ones (strict JSON)."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return _clean_dict(value)
    if kind is list or kind is tuple:
        return [_clean_dict(v) if type(v) is dict else clean_json(v) for v in value]
    if kind is int or kind is str or kind is bool or value is None:
        return value
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def forecast_document(model: OnnxForecaster, frame: pd.DataFrame | Mapping[str, Any], *,
                      horizon_cycles: int,
                      hours_per_cycle: float | None = None, eol_fraction: float = 0.8,
                      nominal_capacity_ah: float | None = None, cell_id: str | None = None,
                      meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CONTRACTS forecast JSON for one cell's raw per-cycle rows.

    Parameters
    ----------
    frame:
        Observed cycles (CONTRACTS per-cycle columns, cycle_index increasing): a DataFrame or
        a mapping of column → array (``serving.history.columns_from_rows``).
    horizon_cycles:
        Number of future cycles to forecast (rows in ``forecast``).
    hours_per_cycle:
        Planned hours per future cycle (what-if); None = median of the last 10 observed cycles.
    eol_fraction:
        End-of-life threshold as a fraction of the reference capacity.
    nominal_capacity_ah:
        Reference capacity (Ah) if known.
    cell_id, meta:
        Reported cell id; further metadata (unused by the forecast itself).
    """
    chemistry = (meta or {}).get("chemistry")
    # the stated chemistry is judged against the training domain (passed only when given)
    extra = {"chemistry": str(chemistry)} if chemistry else {}
    doc = model.forecast(frame, horizon_cycles=horizon_cycles, hours_per_cycle=hours_per_cycle,
                         eol_fraction=eol_fraction, nominal_capacity_ah=nominal_capacity_ah,
                         cell_id=cell_id, **extra)
    _check_finite(doc, frame, nominal_capacity_ah)
    return clean_json(doc)


def _check_finite(doc: dict[str, Any], frame: pd.DataFrame | Mapping[str, Any],
                  nominal_capacity_ah: float | None) -> None:
    """A forecast with NaN/inf capacities is no answer: refuse it as bad input (422), naming
    what usually causes it, instead of sending nulls a client would misread."""
    values = [v for row in doc.get("forecast", [])
              for v in (row.get("capacity_ah") or {}).values()]
    if all(type(v) is float for v in values) and bool(np.isfinite(values).all()):
        return  # the usual case, judged at once (the same verdict as the check below)
    if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return
    q = np.asarray(frame["discharge_capacity_ah"], dtype=float)
    ref = reference_capacity_ah(q, nominal_capacity_ah)
    raise ValidationError(
        "the model cannot forecast this history (its output is not finite): retention "
        f"ranges {np.nanmin(q) / ref:.3g}–{np.nanmax(q) / ref:.3g} of the reference capacity "
        f"{ref:.4g} Ah", code="forecast_not_finite", column="history",
        expected="retention within about 0–1.2 of the reference (nominal_capacity_ah, else "
                 "max of the first 3 cycles) and increasing test times",
        found=f"max retention {np.nanmax(q) / ref:.3g}")


def _trained_max_cycle(domain: dict[str, Any] | None) -> float | None:
    """The longest trained trajectory (cycles): the max of the card domain's ``cycle_index``
    (``[lo, hi]`` or ``{"min", "max"}``), None when the card does not state it."""
    rule = (domain or {}).get("cycle_index")
    if isinstance(rule, dict):
        hi = rule.get("max")
    elif isinstance(rule, (list, tuple)) and len(rule) == 2:
        hi = rule[1]
    else:
        return None
    try:
        return None if hi is None else float(hi)
    except (TypeError, ValueError):
        return None


def _min_rows(model: OnnxForecaster) -> int:
    """Fewest history rows the model forecasts from (its card's window, at least 2)."""
    try:
        return max(2, int(model.card.window_spec().min_history))
    except AttributeError:  # a card without a window (older exports)
        return 2


def advice_document(model: OnnxForecaster, frame: pd.DataFrame, *, planned_cycles: int,
                    tolerance_cycles: float, eol_fraction: float = 0.8,
                    hours_per_cycle: float | None = None,
                    nominal_capacity_ah: float | None = None,
                    spec_min_cycles: float | None = None, cell_id: str | None = None,
                    meta: dict[str, Any] | None = None, n_updates: int = 3,
                    update_every_cycles: int | None = None, min_loss_fraction: float = 0.03,
                    max_horizon_cycles: int = 20_000) -> dict[str, Any]:
    """The ``POST /v1/advice`` answer for one cell's raw per-cycle rows.

    The model's bands are widened by its card-derived ``interval_scale`` before any decision.
    The stop rule looks at ``n_updates`` forecasts made from the history cut every
    ``update_every_cycles`` cycles back from the last one (default 0.8 × ``tolerance_cycles``,
    the spacing ``fadecast backtest`` replays with); each forecast runs to the same absolute end
    cycle, at least ``planned_cycles`` and the spec.

    ``domain`` is the latest forecast's own ``domain`` answer (:mod:`ml.domain`), so a forecast
    of the same history reports the same verdict; out of domain the decision is ``continue``
    (unless the end of life is already observed) and the reason names what is outside.
    """
    if update_every_cycles is None:
        update_every_cycles = max(1, int(round(0.8 * tolerance_cycles)))
    if frame.empty:
        raise ValidationError("history is empty", code="empty_history", column="history")
    # the rows that carry the capacity trend (capacity checks when labelled; no pulses or
    # partial cycles): the reference, the loss so far and every cut forecast read the same rows
    n_read = len(frame)
    frame, rows = trend_subset(frame)
    cycles = frame["cycle_index"].to_numpy(np.int64)
    discharge = frame["discharge_capacity_ah"].to_numpy(float)
    last = int(cycles[-1])
    ref = reference_capacity_ah(discharge, nominal_capacity_ah)
    pace = recent_hours_per_cycle(frame["test_time_second"].to_numpy(float), hours_per_cycle,
                                  cycles)
    end = max(planned_cycles, int(math.ceil(1.5 * spec_min_cycles)) if spec_min_cycles else 0,
              2 * last, last + 1)
    end = min(end, last + max_horizon_cycles)
    with np.errstate(divide="ignore", invalid="ignore"):  # a 0 Ah reference: the forecast
        observed = observed_eol_cycle(cycles, discharge / ref, eol_fraction)  # refuses it
    observed_hour = None  # test time (h) at the end of the observed end-of-life cycle
    if observed is not None:
        row = int(np.searchsorted(cycles, observed))
        observed_hour = float(frame["test_time_second"].iloc[row]) / 3600.0
    policy = AdvicePolicy(stable_updates=n_updates, min_loss_fraction=min_loss_fraction,
                          interval_scale=model.interval_scale)

    updates = []
    for k in reversed(range(n_updates)):
        cut = last - k * update_every_cycles
        n_rows = int(np.searchsorted(cycles, cut, side="right"))
        if n_rows < _min_rows(model):  # too short a history to forecast from at that cut
            continue
        part = frame.iloc[:n_rows]
        cut_cycle = int(cycles[n_rows - 1])
        doc = forecast_document(model, part, horizon_cycles=max(1, end - cut_cycle),
                                hours_per_cycle=hours_per_cycle, eol_fraction=eol_fraction,
                                nominal_capacity_ah=nominal_capacity_ah, cell_id=cell_id,
                                meta=meta)
        seen = observed if observed is not None and observed <= cut_cycle else None
        updates.append(update_from_forecast(doc, last_cycle=cut_cycle, reference_capacity_ah=ref,
                                            eol_fraction=eol_fraction,
                                            spec_min_cycles=spec_min_cycles, observed_eol=seen,
                                            interval_scale=policy.interval_scale,
                                            observed_eol_hour=observed_hour if seen is not None
                                            else None))
    if not updates:  # a single-row history: forecast from what there is
        doc = forecast_document(model, frame, horizon_cycles=max(1, end - last),
                                hours_per_cycle=hours_per_cycle, eol_fraction=eol_fraction,
                                nominal_capacity_ah=nominal_capacity_ah, cell_id=cell_id,
                                meta=meta)
        updates.append(update_from_forecast(doc, last_cycle=last, reference_capacity_ah=ref,
                                            eol_fraction=eol_fraction,
                                            spec_min_cycles=spec_min_cycles,
                                            observed_eol=observed,
                                            interval_scale=policy.interval_scale,
                                            observed_eol_hour=observed_hour))
    # the domain verdict is the LATEST forecast's (ml.domain, the one judgement: every
    # conditioning input, retention so far included), reported as it is and gating the stop
    domain = dict(doc.get("domain") or {"in_domain": True, "reasons": [], "checked": []})
    adv = advise(updates, planned_cycles=planned_cycles, tolerance_cycles=tolerance_cycles,
                 hours_per_cycle=pace, loss_so_far_fraction=loss_so_far_fraction(discharge, ref),
                 domain_failures=verdict_failures(domain), spec_min_cycles=spec_min_cycles,
                 policy=policy,
                 trained_max_cycle=_trained_max_cycle(model.domain))
    now = adv.end_of_life
    body: dict[str, Any] = {
        "decision": adv.decision,
        "reason": adv.reason,
        "end_of_life": {
            "threshold_fraction": eol_fraction,
            "cycle_index": dict(zip(("p05", "p50", "p95"), now.cycle)),
            "elapsed_hour": dict(zip(("p05", "p50", "p95"), now.hour)),
        },
        "hours_saved_if_stopped": adv.hours_saved_if_stopped,
        "checks": adv.checks,
        "model": {"name": model.name, "version": model.version},
        "domain": domain,
        "history": rows.note() if rows is not None else {
            "rows": n_read, "rows_used": n_read, "basis": "all cycles", "dropped": {}},
    }
    if spec_min_cycles is not None:
        body["pass_probability"] = adv.pass_probability
    return clean_json(body)
