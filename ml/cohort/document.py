"""The one entry point of cohort attribution: inputs → validated histories → joint posterior →
the CONTRACTS "Cohorts" answer. The CLI (``fadecast attribute``) and the HTTP service
(``POST /v1/cohorts/attribution``) both call :func:`attribute`; nothing here imports torch.

Contract notes (beyond CONTRACTS.md):

* One cell is accepted: it is answered from the population prior plus its own curve, with a
  wide interval, ``identifiability.run_a_sibling = true`` and the advice to run a sibling.
* Reference capacity: ``nominal_capacity_ah`` when given; else the cells' common stored
  nominal capacity; else the largest of the cells' first-3-cycle maxima. Cells whose stored
  nominal capacities differ, or whose first cycles differ by more than 30 %, are refused
  without an explicit nominal capacity (they are not one design).
* ``cohort.reference_fit`` carries the plain joint least-squares reference's time shares.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import ValidationError
from ml.cohort import law
from ml.cohort.design import rank_candidates
from ml.cohort.histories import CellHistory, history_from_frame
from ml.cohort.plans import PLAN_CLOCKS, cell_forecast, plan_forecast, with_plan_clock
from ml.cohort.posterior import CohortPosterior, fit_cohort
from ml.cohort.prior import PopulationPrior, load_prior
from ml.cohort.reference import reference_time_shares

__all__ = ["CellInput", "PlanInput", "Attribution", "attribute", "solve", "MAX_CELLS",
           "MAX_PLANS", "MAX_CYCLES", "MAX_HORIZON", "MODEL_NAME"]

MODEL_NAME = "fadecast-cohort-law"
MAX_CELLS = 50
MAX_PLANS = 10
MAX_CYCLES = 20_000
MAX_HORIZON = 5_000
MIN_CYCLES = 3
CAPACITY_SPREAD = 1.30


@dataclass(frozen=True)
class CellInput:
    """One sibling's per-cycle table; ``where`` names it in errors (file or API field)."""

    cell_id: str
    frame: pd.DataFrame
    where: str
    nominal_capacity_ah: float | None = None


@dataclass(frozen=True)
class PlanInput:
    """A planned sibling (clock and protocol per cycle, no capacities)."""

    name: str
    frame: pd.DataFrame
    where: str


@dataclass
class Attribution:
    """The answer plus what the CLI logs to MLflow."""

    document: dict[str, Any]
    posterior: CohortPosterior
    draws: np.ndarray
    plans: list[CellHistory] = field(default_factory=list)


def _bad(message: str, column: str, expected: str, found: str, code: str = "bad_cohort",
         file: str | None = None) -> ValidationError:
    return ValidationError(message, code=code, column=column, expected=expected, found=found,
                           file=file)


def model_ref(prior: PopulationPrior) -> dict[str, str]:
    """``{"name", "version"}``: version = prior name + 12 hex of its JSON."""
    digest = hashlib.sha256(json.dumps(prior.to_dict(), sort_keys=True).encode()).hexdigest()
    return {"name": MODEL_NAME, "version": f"{prior.name}-{digest[:12]}"}


def _reference_ah(cells: list[CellInput], hist: list[CellHistory],
                  nominal: float | None) -> float:
    if nominal is not None:
        if not (math.isfinite(nominal) and nominal > 0):
            raise _bad("nominal capacity must be a positive number", "nominal_capacity_ah",
                       "Ah > 0", repr(nominal), code="bad_value")
        return float(nominal)
    stored = {c.cell_id: c.nominal_capacity_ah for c in cells
              if c.nominal_capacity_ah is not None}
    if len(set(stored.values())) > 1:
        raise _bad("cells have different nominal capacities; give --nominal-capacity-ah "
                   "(nominal_capacity_ah) if they are one design", "nominal_capacity_ah",
                   "one nominal capacity for the cohort",
                   ", ".join(f"{k}={v:g} Ah" for k, v in stored.items()),
                   code="mixed_nominal_capacity")
    first = {h.cell_id: float(np.max(h.capacity_ah[:3])) for h in hist}
    lo, hi = min(first.values()), max(first.values())
    if hi > CAPACITY_SPREAD * lo:
        raise _bad("cells' first capacities differ by more than 30 %; give "
                   "--nominal-capacity-ah (nominal_capacity_ah) if they are one design",
                   "nominal_capacity_ah", "siblings of one design",
                   f"{min(first, key=first.get)}={lo:.4g} Ah, "
                   f"{max(first, key=first.get)}={hi:.4g} Ah", code="mixed_nominal_capacity")
    if stored:
        return float(next(iter(stored.values())))
    return hi


def _histories(cells: list[CellInput]) -> list[CellHistory]:
    if not cells:
        raise _bad("no cells given", "cells", "at least one cell", "none")
    if len(cells) > MAX_CELLS:
        raise _bad(f"too many cells ({len(cells)})", "cells", f"at most {MAX_CELLS}",
                   str(len(cells)), code="too_many_cells")
    seen: dict[str, str] = {}
    out = []
    for c in cells:
        if c.cell_id in seen:
            raise _bad(f"duplicate cell id {c.cell_id!r} ({seen[c.cell_id]} and {c.where})",
                       "cell_id", "each cell once", repr(c.cell_id), code="duplicate_cell",
                       file=c.where)
        seen[c.cell_id] = c.where
        if len(c.frame) > MAX_CYCLES:
            raise _bad(f"cell {c.cell_id!r} has {len(c.frame)} cycles", "cycles",
                       f"at most {MAX_CYCLES}", str(len(c.frame)), code="history_too_long",
                       file=c.where)
        h = history_from_frame(c.frame, c.cell_id, where=c.where)
        if h.n < MIN_CYCLES:
            raise _bad(f"cell {c.cell_id!r} has {h.n} cycle(s)", "cycle_index",
                       f"at least {MIN_CYCLES} cycles per cell", str(h.n),
                       code="history_too_short", file=c.where)
        _check_clock(h, f"cell {c.cell_id!r}", c.where)
        out.append(h)
    return out


def _plans(plans: list[PlanInput], known: set[str]) -> list[CellHistory]:
    if len(plans) > MAX_PLANS:
        raise _bad(f"too many plans ({len(plans)})", "plans", f"at most {MAX_PLANS}",
                   str(len(plans)), code="too_many_plans")
    out, names = [], set()
    for p in plans:
        if p.name in names or p.name in known:
            raise _bad(f"duplicate plan name {p.name!r}", "plans", "names unique among cells "
                       "and plans", repr(p.name), code="duplicate_cell", file=p.where)
        names.add(p.name)
        if len(p.frame) > MAX_CYCLES:
            raise _bad(f"plan {p.name!r} has {len(p.frame)} cycles", "plans",
                       f"at most {MAX_CYCLES}", str(len(p.frame)), code="plan_too_long",
                       file=p.where)
        plan = history_from_frame(p.frame, p.name, plan=True, where=p.where)
        _check_clock(plan, f"plan {p.name!r}", p.where)
        out.append(plan)
    return out


def _check_clock(h: CellHistory, what: str, where: str | None) -> None:
    """A cell (or plan) whose clock never advances (:func:`ml.windows.stalled_clock`, the
    single-cell rule) carries no time: refused, naming ``test_time_second``."""
    from ml.windows import stalled_clock

    stalled = stalled_clock(h.hours)
    if stalled is not None:
        raise _bad(f"{what}: its test clock never advances (every cycle ends at the same "
                   "elapsed time), so time-driven fade cannot be told apart",
                   "test_time_second", "the elapsed test time (s) at the end of each cycle, "
                   "growing over the cycles", f"{stalled[0]} cycles all ending at "
                   f"{stalled[1] * 3600.0:g} s", code="clock_not_advancing", file=where)


def _quantiles(values: np.ndarray) -> dict[str, float]:
    q = np.quantile(values, [0.05, 0.5, 0.95])
    return {"p05": float(q[0]), "p50": float(q[1]), "p95": float(q[2])}


def share_interval(shares: np.ndarray, cell: CellHistory, noise: float,
                   reference_ah: float) -> tuple[dict[str, float], bool]:
    """``({"p05", "p50", "p95"}, identifiable)`` of one cell's time share from its posterior
    draws, by the single-cell rule (:func:`ml.uncertainty.share_band`): while the cell's
    observed loss is within its noise (``noise``, fraction of the reference capacity
    ``reference_ah``) the split of a loss that cannot be told from zero is unknown, so the
    draws are mixed with Uniform(0, 1) — never a confident 0.00 before any fade. A cell with a
    clearly measured fade keeps the posterior's own quantiles."""
    from ml.uncertainty import identifiability_weight, share_band

    if cell.capacity_ah is None:
        return _quantiles(shares), True
    weight = identifiability_weight(np.asarray(cell.capacity_ah, float) / reference_ah,
                                    float(noise))
    q = share_band(shares, weight, None)
    return {"p05": float(q[0]), "p50": float(q[1]), "p95": float(q[2])}, bool(weight < 0.5)


def solve(cells: list[CellInput], plans: list[PlanInput] | None = None, *,
          cohort_name: str | None = None, nominal_capacity_ah: float | None = None,
          horizon_cycles: int | None = None, prior: PopulationPrior | None = None,
          with_reference: bool = True, with_design: bool = True,
          plan_clock: str = "given") -> Attribution:
    """Fit the cohort and build the answer (see the module docstring for the contract).

    ``plan_clock``: ``"given"`` (plans' clocks as sent) or ``"follows_capacity"`` (each
    planned cycle shortened by the constant-current time its predicted fade saves, see
    :mod:`ml.cohort.plans`)."""
    if plan_clock not in PLAN_CLOCKS:
        raise _bad("unknown plan clock", "plan_clock", " or ".join(PLAN_CLOCKS),
                   repr(plan_clock), code="bad_option")
    if horizon_cycles is not None and not (1 <= int(horizon_cycles) <= MAX_HORIZON):
        raise _bad("horizon out of range", "horizon_cycles", f"1 … {MAX_HORIZON}",
                   repr(horizon_cycles), code="bad_option")
    prior = prior or load_prior()
    hist = _histories(cells)
    planned = _plans(list(plans or []), {h.cell_id for h in hist})
    ref_ah = _reference_ah(cells, hist, nominal_capacity_ah)
    post = fit_cohort(hist, prior, ref_ah)
    if plan_clock != "given":
        for p, h in zip(plans or [], planned):
            if "c_rate" in h.estimated:
                raise ValidationError(
                    f"plan {p.name!r}: a clock that follows capacity needs the C-rate",
                    code="missing_column", file=p.where, row=2, column="c_rate",
                    expected="c_rate per planned cycle (plan_clock follows_capacity)",
                    found="no c_rate column")
    planned = [with_plan_clock(post, p, plan_clock) for p in planned]
    draws = post.draws()
    cap_draws = post.draws(scale=prior.capacity_interval_scale)
    shares = post.time_share_draws(draws)
    th = post.shared(draws)
    cell_docs = []
    for i, h in enumerate(hist):
        lt, lc = law.split_losses(h, th)
        share, identifiable = share_interval(shares[:, i], h, post.noise[i], ref_ah)
        doc: dict[str, Any] = {
            "cell_id": h.cell_id, "last_cycle_index": int(h.cycle_index[-1]),
            "attribution": {"time_share": share, "identifiable": identifiable,
                            "loss_time_fraction": _quantiles(lt[:, -1]),
                            "loss_cycle_fraction": _quantiles(lc[:, -1])},
            "estimated_inputs": list(h.estimated)}
        if horizon_cycles is not None:
            doc["forecast"] = cell_forecast(post, i, cap_draws, int(horizon_cycles))
        cell_docs.append(doc)
    params = {name: _quantiles(th[:, j]) for j, name in enumerate(law.SHARED)}
    cohort: dict[str, Any] = {
        "name": cohort_name, "cells": [h.cell_id for h in hist],
        "reference_capacity_ah": ref_ah,
        "law": {"parameters": params,
                "noise_fraction": {h.cell_id: float(s) for h, s in zip(hist, post.noise)},
                "form": "c0 + g(rate-0.5) + level_i - A*max(tau-tau_on,0)^p - B*S^q + "
                        "k*Lt*Lc; tau = Arrhenius-weighted kilohours (rests x w), S = sum "
                        "(c/0.5)^beta / 100; shares split the interaction evenly"},
        "prior": {"name": prior.name, "interval_scale": prior.interval_scale,
                  "capacity_interval_scale": prior.capacity_interval_scale}}
    if with_reference:
        try:
            cohort["reference_fit"] = {
                "method": "joint least squares: per-cell intercept, shared a*sqrt(t), shared "
                          "b*(rate/0.5)^beta*N",
                "time_share": reference_time_shares(hist, ref_ah)}
        except (ValueError, np.linalg.LinAlgError):
            cohort["reference_fit"] = None
    ident = rank_candidates(post) if with_design else None
    document = {"model": model_ref(prior), "cohort": cohort, "cells": cell_docs,
                "plans": [{"name": p.cell_id, "forecast": plan_forecast(post, p, cap_draws),
                           "clock": plan_clock,
                           "estimated_inputs": list(p.estimated)} for p in planned],
                "identifiability": ident}
    return Attribution(_finite(document), post, draws, planned)


def attribute(cells: list[CellInput], plans: list[PlanInput] | None = None,
              **kw: Any) -> dict[str, Any]:
    """The CONTRACTS cohort answer (a JSON-safe dict)."""
    return solve(cells, plans, **kw).document


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
