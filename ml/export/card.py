"""Build the model card: the serving contract written beside the ONNX graph."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from ml.inference import LEVELS, ModelCard
from ml.models.fade_net import FadeNet
from ml.scaling import FeatureScaler
from ml.training.dataset import PreparedCell
from ml.windows import FEATURES, WindowSpec

__all__ = ["training_domain", "build_card"]


def _range(values: list[float]) -> list[float] | None:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    return [float(v.min()), float(v.max())] if v.size else None


#: the share's fade-rate bound: this percentile of the training cells' values (not their max:
#: one extreme cell should not stretch it)
SHARE_FADE_PERCENTILE = 95.0


def _fade_rates(cells: list[PreparedCell], cut_range: tuple[float, float]) -> list[float] | None:
    """``[min, p95]`` of :func:`ml.domain.share_fade_rate` over the training cells whose
    time/cycle split is known (the cells the share is learnt from), at cuts 0.2, 0.3 … 0.8 of
    each (the training cut range); None without such cells."""
    from ml.domain import share_fade_rate

    values = []
    for c in cells:
        if not np.isfinite(np.asarray(c.loss_time, dtype=float)).any() or \
                not {"retention", "elapsed_hour"} <= set(c.table.columns):
            continue
        r = c.table["retention"].to_numpy(dtype=float)
        h = c.table["elapsed_hour"].to_numpy(dtype=float)
        for f in np.arange(cut_range[0], cut_range[1] + 1e-9, 0.1):
            n = max(3, int(round(f * len(r))))
            v = share_fade_rate(r[:n], h[:n])
            if v is not None:
                values.append(v)
    if not values:
        return None
    return [float(np.min(values)), float(np.percentile(values, SHARE_FADE_PERCENTILE))]


def training_domain(cells: list[PreparedCell], cut_range: tuple[float, float] = (0.2, 0.8)
                    ) -> dict:
    """Ranges the model was trained on, for the domain judgement of every forecast (and so of
    the advice built on it).

    ``c_rate`` (1/h), ``hours_per_cycle`` (h), ``cycles_seen`` (per cell), ``cycle_index``
    (its max = the longest trained trajectory, cycles), ``temperature_celsius``, ``retention``
    (fraction of the reference capacity), ``reference_capacity_ah`` (capacity scale, Ah),
    ``history_cycles`` (shortest and longest training window), ``share_fade_rate`` (min and
    95th percentile of :func:`ml.domain.share_fade_rate` over cells with a known time/cycle
    split, cut at 0.2 … 0.8: the time share's own domain), ``chemistry`` (distinct values
    where the cell or its source's provenance states it), ``sources``, ``n_cells``.
    ``ml.domain.judge_domain`` judges a request against it.
    """
    def col(name: str) -> list[float]:
        return [float(x) for c in cells for x in c.table[name].to_numpy(dtype=float)]

    from ml.sources.provenance import provenance

    chem = sorted({str(c.meta["chemistry"]) for c in cells if c.meta.get("chemistry")} |
                  {str(provenance(str(c.meta.get("source", "?"))).chemistry) for c in cells
                   if provenance(str(c.meta.get("source", "?"))).chemistry})
    refs = [float(c.table["reference_capacity_ah"].iloc[0]) for c in cells
            if "reference_capacity_ah" in c.table.columns and len(c.table)]
    # the history lengths the training windows had: cut at cut_range of each cell (>= 3 rows)
    shortest = [max(3, int(round(cut_range[0] * len(c.table)))) for c in cells]
    longest = [max(3, int(round(cut_range[1] * len(c.table)))) for c in cells]
    return {"c_rate": _range(col("c_rate")), "hours_per_cycle": _range(col("cycle_duration_hour")),
            "share_fade_rate": _fade_rates(cells, cut_range),
            "cycles_seen": _range([float(len(c.table)) for c in cells]),
            "cycle_index": _range(col("cycle_index")),
            "temperature_celsius": _range(col("temperature_celsius")),
            "retention": _range(col("retention")),
            "reference_capacity_ah": _range(refs),
            "history_cycles": ([float(min(shortest)), float(max(longest))] if cells else None),
            "chemistry": chem, "sources": sorted({str(c.meta.get("source", "?")) for c in cells}),
            "n_cells": len(cells)}


def build_card(model: FadeNet, scaler: FeatureScaler, spec: WindowSpec, *,
               train_cells: list[PreparedCell], conformal: dict, dataset_hash: str,
               metrics: dict | None = None, name: str = "fadecast-forecaster",
               version: str = "0") -> ModelCard:
    """A :class:`~ml.inference.ModelCard` for a fitted ``model``; ``conformal`` is
    :func:`ml.training.calibration.calibrate`'s output (its ``history_weighting`` becomes the
    card's own field)."""
    conformal = dict(conformal)
    weighting = dict(conformal.pop("history_weighting", None) or {})
    return ModelCard(
        name=name, version=str(version),
        features=[{"name": n, "unit": u, "transform": t} for n, u, t in FEATURES],
        scaler=scaler.to_dict(), window=spec.to_dict(), quantile_levels=list(LEVELS),
        n_samples=model.n_samples, conformal=conformal, history_weighting=weighting,
        training_domain=training_domain(train_cells), dataset_hash=dataset_hash,
        metrics=dict(metrics or {}), model={"class": "FadeNet", **model.config()},
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"))
