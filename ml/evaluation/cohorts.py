"""The ``pybamm-cohorts`` evaluation suite and the scores the cohort calibration reuses.

Protocol (``fadecast evaluate --suite pybamm-cohorts``):

* **Attribution.** On each held-aside cohort, the first 40 % of every sibling's cycles are
  seen; the cohort law (:mod:`ml.cohort`) and the plain joint least-squares reference are fitted
  to them in the same run; the time share at each sibling's last seen cycle is compared with
  the truth (``<cell>.truth.csv``). Figures: |error| median and p90, 90 % interval coverage
  and width (the reference has no interval).
* **What-if.** Each sibling in turn is held out; the others are seen to 60 % of their cycles;
  the held-out sibling is forecast as a PLAN from its protocol alone — C-rate, the extra rests,
  and a clock computed from the protocol (2 h / C-rate + 1 h of the protocol's base rests +
  the extra rest per cycle), not its recorded clock, each cycle shortened by the
  constant-current time that the LAW'S OWN predicted fade saves (plan clock
  ``follows_capacity``, :mod:`ml.cohort.plans`; still no future measurement is read).
  Figure: mean |p50 − measured| capacity in % of the 5 Ah nominal over all its cycles;
  coverage of the 90 % band. The reference
  forecasts with its fitted law at the protocol clock (its intercept: the mean of the seen
  cells'), and, as a second figure, at the cohort law's follows-capacity clock.
* **Coverage, pooled.** The 90 % time-share interval coverage is also reported pooled over
  cuts at 30, 40 and 50 % seen (3 × the cells; cuts of one cell are correlated), each coverage
  with its exact (Clopper–Pearson) 95 % binomial interval: 16 cells cannot tell 90 % from 100 %.

Cohorts scored: the ``evaluation`` part of :data:`ml.sources.pybamm_cohorts.COHORT_SPLIT`
(the prior never saw them; the interval scale was set on the ``calibration`` part), plus the
synthetic cohorts of :data:`ml.cohort.training.EVALUATION_SEEDS` (a separate table).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.cohort.document import share_interval
from ml.cohort.histories import CellHistory
from ml.cohort.plans import plan_forecast, with_plan_clock
from ml.cohort.posterior import fit_cohort
from ml.cohort.prior import PopulationPrior, load_prior
from ml.cohort.reference import reference_fit, reference_time_shares
from ml.cohort.training import cut_cohort, grouped_cohorts, truth_share
from ml.sources import CellRecord

__all__ = ["attribution_scores", "what_if_scores", "plan_from_protocol", "run_cohort_suite"]

WHAT_IF_SEEN = 0.6
# the plan clock of the what-if: the protocol clock shortened by the constant-current time the
# law's own predicted fade saves (ml.cohort.plans; chosen on cd1–cd8: 1.63 % → 1.11 %)
WHAT_IF_CLOCK = "follows_capacity"
BASE_REST_HOUR = 1.0


def plan_from_protocol(record: CellRecord) -> CellHistory:
    """The planned schedule of a sibling from its protocol fields only (see module doc)."""
    meta = record.meta
    n = int(len(record.cycles))
    c = float(meta.get("c_rate") or 0.5)
    rest_h = float(meta.get("rest_h", meta.get("rest_hour", 0.0)) or 0.0)
    every = int(meta.get("rest_every_n_cycles") or (1 if rest_h else 0))
    idx = np.arange(1, n + 1)
    extra = np.where((every > 0) & (idx % max(every, 1) == 0), rest_h, 0.0)
    op = np.full(n, 2.0 / c)
    rest = BASE_REST_HOUR + extra
    temp = float(record.cycles["temperature_celsius"].iloc[0]) \
        if "temperature_celsius" in record.cycles else 25.0
    return CellHistory(f"plan_{record.cell_id}", idx.astype(np.int64), np.cumsum(op + rest), op,
                       rest, np.full(n, c), np.full(n, temp))


def _nominal(records: list[CellRecord]) -> float:
    return float(records[0].meta.get("nominal_capacity_ah") or 1.0)


def attribution_scores(cohorts: list[list[CellRecord]], prior: PopulationPrior,
                       seen: float = 0.4) -> pd.DataFrame:
    """One row per sibling: truth, model p05/p50/p95, reference share."""
    rows = []
    for records in cohorts:
        cells = cut_cohort(records, seen)
        q_ref = _nominal(records)
        post = fit_cohort(cells, prior, q_ref)
        shares = post.time_share_draws(post.draws())
        ref = reference_time_shares(cells, q_ref)
        for i, (r, c) in enumerate(zip(records, cells)):
            q, _ = share_interval(shares[:, i], c, post.noise[i], q_ref)  # as served
            rows.append({"cohort": str(r.meta.get("cohort")), "cell_id": r.cell_id,
                         "cycles_seen": c.n, "truth": truth_share(r, c.n), "p05": q["p05"],
                         "p50": q["p50"], "p95": q["p95"], "reference": ref[c.cell_id]})
    return pd.DataFrame(rows)


def what_if_scores(cohorts: list[list[CellRecord]], prior: PopulationPrior,
                   seen: float = WHAT_IF_SEEN, plan_clock: str = WHAT_IF_CLOCK) -> pd.DataFrame:
    """One row per held-out sibling: mean |error| (% of nominal), band coverage, reference
    (on the protocol clock, and on the same clock as the cohort law's plan)."""
    rows = []
    for records in cohorts:
        q_ref = _nominal(records)
        for j, target in enumerate(records):
            others = [r for k, r in enumerate(records) if k != j]
            if not others:
                continue
            cells = cut_cohort(others, seen)
            post = fit_cohort(cells, prior, q_ref)
            protocol = plan_from_protocol(target)
            plan = with_plan_clock(post, protocol, plan_clock)
            fc = plan_forecast(post, plan, post.draws(scale=prior.capacity_interval_scale))
            meas = target.cycles["discharge_capacity_ah"].to_numpy(float)
            p50 = np.array([r["capacity_ah"]["p50"] for r in fc])
            lo = np.array([r["capacity_ah"]["p05"] for r in fc])
            hi = np.array([r["capacity_ah"]["p95"] for r in fc])
            rfit = reference_fit(cells, q_ref)
            ref = rfit.predict(protocol) * q_ref
            ref_same = rfit.predict(plan) * q_ref
            rows.append({"cohort": str(target.meta.get("cohort")), "cell_id": target.cell_id,
                         "cycles": int(meas.size),
                         "error_pct": float(np.mean(np.abs(p50 - meas)) / q_ref * 100),
                         "coverage": float(np.mean((meas >= lo) & (meas <= hi))),
                         "reference_error_pct":
                             float(np.mean(np.abs(ref - meas)) / q_ref * 100),
                         "reference_error_pct_same_clock":
                             float(np.mean(np.abs(ref_same - meas)) / q_ref * 100)})
    return pd.DataFrame(rows)


POOLED_CUTS = (0.3, 0.4, 0.5)


def binomial_interval(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval of a proportion ``hits / n`` (fractions)."""
    from scipy.stats import beta

    a = (1.0 - level) / 2.0
    lo = 0.0 if hits == 0 else float(beta.ppf(a, hits, n - hits + 1))
    hi = 1.0 if hits == n else float(beta.ppf(1.0 - a, hits + 1, n - hits))
    return lo, hi


def _covered(att: pd.DataFrame) -> pd.Series:
    return (att["truth"] >= att["p05"]) & (att["truth"] <= att["p95"])


def _figures(att: pd.DataFrame, wif: pd.DataFrame,
             pooled: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    err = (att["p50"] - att["truth"]).abs()
    rerr = (att["reference"] - att["truth"]).abs()
    hits = _covered(att)
    cover = hits.mean() * 100
    ci = [100 * v for v in binomial_interval(int(hits.sum()), int(hits.size))]
    rows = [
        ("time_share_abs_error_median", "share", err.median(), rerr.median(), "<= 0.02"),
        ("time_share_abs_error_p90", "share", err.quantile(0.9), rerr.quantile(0.9), "<= 0.04"),
        ("time_share_coverage_90_pct", "%", cover, None, "85-95"),
        ("time_share_coverage_90_pct_ci95_low", "%", ci[0], None, ""),
        ("time_share_coverage_90_pct_ci95_high", "%", ci[1], None, ""),
        ("time_share_interval_width_90", "share", (att["p95"] - att["p05"]).median(), None, ""),
        ("what_if_capacity_error_pct_of_nominal", "%", wif["error_pct"].mean(),
         wif["reference_error_pct"].mean(), "<= 1"),
        ("what_if_capacity_error_pct_reference_same_clock", "%", wif["error_pct"].mean(),
         wif["reference_error_pct_same_clock"].mean(), ""),
        ("what_if_band_coverage_90_pct", "%", wif["coverage"].mean() * 100, None, ""),
        ("cells_scored", "cells", float(len(att)), float(len(att)), ""),
    ]
    if pooled is not None and len(pooled):
        ph = _covered(pooled)
        pci = [100 * v for v in binomial_interval(int(ph.sum()), int(ph.size))]
        rows += [("time_share_coverage_90_pct_pooled_cuts", "%", ph.mean() * 100, None,
                  "85-95"),
                 ("time_share_coverage_90_pct_pooled_cuts_ci95_low", "%", pci[0], None, ""),
                 ("time_share_coverage_90_pct_pooled_cuts_ci95_high", "%", pci[1], None, ""),
                 ("time_share_abs_error_median_pooled_cuts", "share",
                  (pooled["p50"] - pooled["truth"]).abs().median(),
                  (pooled["reference"] - pooled["truth"]).abs().median(), ""),
                 ("intervals_pooled_cuts", "intervals", float(len(pooled)), None, "")]
    out = []
    for fig, unit, model, ref, target in rows:
        ratio = None if ref in (None, 0) or not np.isfinite(ref) else float(model) / float(ref)
        out.append({"figure": fig, "unit": unit, "target": target,
                    "values": {"cohort_law": float(model),
                               "joint_lsq_reference": None if ref is None else float(ref)},
                    "model_vs_naive": ratio})
    return out


def run_cohort_suite(root: Any = None, prior: PopulationPrior | None = None) -> dict:
    """The suite's result dict (``figures`` for the dev evaluation cohorts, ``synthetic``
    figures for the synthetic evaluation cohorts, per-cell tables)."""
    from ml.cohort.training import EVALUATION_SEEDS
    from ml.sources import load_source
    from ml.synthetic import make_cohort

    prior = prior or load_prior()
    recs = load_source("pybamm-cohorts-dev", root=root)
    groups = [g for g in grouped_cohorts(recs).values()
              if g[0].meta["cohort_part"] == "evaluation"]
    att, wif = attribution_scores(groups, prior), what_if_scores(groups, prior)
    pooled = pd.concat([att if f == 0.4 else attribution_scores(groups, prior, seen=f)
                        for f in POOLED_CUTS], ignore_index=True)
    syn = [make_cohort(f"syneval{s}", s) for s in EVALUATION_SEEDS]
    # the synthetic generator runs every cycle for a FIXED duration (its clock does not
    # shrink as capacity fades, unlike a CC-CV cycler): its plans keep the given clock
    # (checked on synthetic calibration/training seeds: 1.04 % given, 1.14 % follows_capacity)
    satt, swif = attribution_scores(syn, prior), what_if_scores(syn, prior, plan_clock="given")
    spooled = pd.concat([satt if f == 0.4 else attribution_scores(syn, prior, seen=f)
                         for f in POOLED_CUTS], ignore_index=True)
    notes = [f"dev evaluation cohorts {sorted({g[0].meta['cohort'] for g in groups})} "
             "(COHORT_SPLIT; never used for the prior or the interval scale); 40 % of each "
             "sibling seen for attribution (coverage also pooled over 30/40/50 % cuts, with "
             "exact 95 % binomial intervals); what-if: one sibling from the others at 60 %, "
             "planned clock from its protocol, shortened as the law's predicted capacity "
             "fades (follows_capacity); synthetic cohorts (fixed-duration cycles): the "
             "given protocol clock",
             f"prior {prior.name}, interval scale {prior.interval_scale:g}, capacity band "
             f"scale {prior.capacity_interval_scale:g}",
             "these cohorts use the same four protocols as the training cohorts: the figures "
             "are interpolation in protocol, not in mechanism strengths"]
    synthetic = _figures(satt, swif, spooled)
    for row in synthetic:
        row["figure"] = f"synthetic:{row['figure']}"
    return {"cells": att["cell_id"].tolist(), "figures": _figures(att, wif, pooled) + synthetic,
            "per_cell": att.to_dict(orient="records"),
            "synthetic_per_cell": satt.to_dict(orient="records"),
            "what_if": wif.to_dict(orient="records"), "notes": notes}
