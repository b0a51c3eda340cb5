"""Forecast one cell from its per-cycle history with an exported model (numpy only).

The model card (``model_card.json`` beside ``model.onnx``) drives everything: feature list and
scaler state, window spec, quantile levels, split-conformal constants and the reference-capacity
rule. ``run`` maps the ONNX input dict to the output dict — an onnxruntime session in serving and
the CLI (``intra_op_num_threads=1``), or a torch wrapper in training.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from data_registry.errors import FadecastError, NotFoundError, ValidationError
from ml.scaling import FeatureScaler
from ml.history_likelihood import (backcast_indices, effective_samples, median_shift,
                                   sample_log_likelihood)
from ml.features.timing import PACE_CYCLES, cycle_clock_hours
from ml.windows import (WindowSpec, column_values, future_schedule, make_windows, model_columns,
                        planned_hours_per_cycle)

__all__ = ["ModelCard", "load_model_dir", "open_session", "forecast", "losses_within_level",
           "band", "apply_conformal",
           "first_below",
           "OUTPUTS", "INPUTS", "CARD_FILE", "MODEL_FILE"]

INPUTS = ("history", "history_mask", "query_cycle", "query_hour")
OUTPUTS = ("capacity_fraction", "loss_time_fraction", "loss_cycle_fraction")
CARD_FILE = "model_card.json"
MODEL_FILE = "model.onnx"
LEVELS = (0.05, 0.5, 0.95)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


@dataclass
class ModelCard:
    """Everything inference needs besides the ONNX graph (JSON beside it).

    ``scaler``: ``{feature: {transform, mean, std}}`` in model order; ``features``: list of
    ``{name, unit, transform}``; ``conformal``: ``{"capacity": {"scale", "eps"}, "time_share":
    {"scale", "eps"}}`` — the band [q05, q95] is widened by ``scale * (q95 - q05 + eps)`` on
    each side (negative scale narrows, never past the median).
    """

    name: str
    version: str
    features: list[dict]
    scaler: dict
    window: dict
    quantile_levels: list[float] = field(default_factory=lambda: list(LEVELS))
    n_samples: int = 32
    conformal: dict = field(default_factory=dict)
    reference_capacity: dict = field(default_factory=lambda: {
        "rule": "nominal_capacity_ah when given, else max discharge_capacity_ah of the first 3 "
                "cycles", "first_cycles": 3})
    training_domain: dict = field(default_factory=dict)
    #: early-life cycle-life heads applied by :func:`forecast` (``ml.models.cycle_life_head``)
    cycle_life: dict = field(default_factory=dict)
    #: ``{"tempering": τ, ...}``: posterior samples weighed by their backcast of the recent
    #: history (``ml.history_likelihood``); absent or τ = 0: samples served unweighted
    history_weighting: dict = field(default_factory=dict)
    #: every training source with its licence and cell counts (``ml.sources.provenance``)
    training_data: list = field(default_factory=list)
    dataset_hash: str = ""
    metrics: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    onnx: dict = field(default_factory=dict)
    created_utc: str = ""

    def feature_scaler(self) -> FeatureScaler:
        """The fitted input scaler stored in the card."""
        return FeatureScaler.from_dict(self.scaler)

    def tempering(self) -> float:
        """τ of the history weighting (0.0 when the card has none)."""
        return float((self.history_weighting or {}).get("tempering", 0.0) or 0.0)

    def window_spec(self) -> WindowSpec:
        """The window spec stored in the card."""
        return WindowSpec(max_history=int(self.window["max_history"]),
                          min_history=int(self.window.get("min_history", 3)))

    def to_json(self) -> str:
        """Pretty, strict JSON text of the card (non-finite numbers become null)."""
        return json.dumps(_finite(asdict(self)), indent=2, sort_keys=False, allow_nan=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temp file + ``os.replace``); returns the path."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".card-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "ModelCard":
        """Read a card; raises ``FadecastError`` naming the file when it is absent or malformed."""
        path = Path(path)
        if not path.is_file():
            raise NotFoundError("model card not found", code="model_card_missing", file=str(path),
                                expected=f"a {CARD_FILE} beside the ONNX model", found="nothing")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {f for f in cls.__dataclass_fields__}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (json.JSONDecodeError, TypeError) as exc:
            raise FadecastError(f"unreadable model card: {exc}", code="bad_model_card",
                                file=str(path)) from exc


def open_session(model_path: str | os.PathLike[str]) -> Callable[[dict], dict]:
    """An onnxruntime session (one intra-op thread) wrapped as ``run(inputs) -> outputs``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model_path), sess_options=opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]

    def run(inputs: dict) -> dict:
        return dict(zip(names, sess.run(None, inputs)))

    return run


def load_model_dir(path: str | os.PathLike[str]) -> tuple[ModelCard, Callable[[dict], dict]]:
    """``(card, run)`` of a folder holding ``model.onnx`` and ``model_card.json``."""
    folder = Path(path)
    onnx_path = folder / MODEL_FILE
    if not onnx_path.is_file():
        raise NotFoundError("ONNX model not found", code="model_missing", file=str(onnx_path),
                            expected=f"{MODEL_FILE} in the model folder", found="nothing")
    return ModelCard.load(folder / CARD_FILE), open_session(onnx_path)


def band(samples: np.ndarray, conformal: Mapping[str, float] | None,
         lo: float = 0.0, hi: float = np.inf) -> np.ndarray:
    """(p05, p50, p95) of ``samples`` [..., K] along the last axis, widened by a split-conformal
    constant and clipped to [lo, hi]; returns [..., 3]."""
    q = np.quantile(np.asarray(samples, dtype=np.float64), LEVELS, axis=-1)
    q = np.moveaxis(q, 0, -1)
    return apply_conformal(q, conformal, lo, hi)


def apply_conformal(q: np.ndarray, conformal: Mapping[str, float] | None,
                    lo: float = 0.0, hi: float = np.inf) -> np.ndarray:
    """Widen raw quantiles ``q`` [..., 3] by ``scale * (q95 - q05 + eps)`` per side (cards of
    the ``"additive"`` method; ``"quadrature"`` cards are applied by
    :func:`ml.uncertainty.compose_band` with the per-cell floor instead)."""
    q = np.array(q, dtype=np.float64)
    if conformal and conformal.get("method") == "quadrature":
        return np.clip(q, lo, hi)
    if conformal:
        pad = float(conformal.get("scale", 0.0)) * (q[..., 2] - q[..., 0] +
                                                    float(conformal.get("eps", 0.0)))
        q[..., 0] = np.minimum(q[..., 0] - pad, q[..., 1])
        q[..., 2] = np.maximum(q[..., 2] + pad, q[..., 1])
    return np.clip(q, lo, hi)


def _as_run(run: Any) -> Callable[[dict], dict]:
    if hasattr(run, "get_outputs") and hasattr(run, "run"):  # a raw onnxruntime session
        names = [o.name for o in run.get_outputs()]
        return lambda inputs: dict(zip(names, run.run(None, inputs)))
    if callable(run):
        return run
    raise FadecastError("run must be an onnxruntime session or a callable", code="bad_runner",
                        expected="InferenceSession | callable", found=type(run).__name__)


def first_below(curve: np.ndarray, threshold: float) -> int | None:
    """Index of the first value of ``curve`` below ``threshold``; None when none is."""
    below = np.flatnonzero(curve < threshold)
    return int(below[0]) if below.size else None


def _eol(q_cap: np.ndarray, cycles: np.ndarray, hours: np.ndarray, threshold: float,
         fraction: float) -> dict | None:
    """End of life from the widened band: p05 cycle = where the LOW curve crosses first.

    None when the median curve stays above the threshold over the whole horizon. An upper
    quantile (p95, or p05 of an inverted band) that is not reached is clamped to the horizon's
    last cycle/time and flagged ``True`` in ``censored`` (``{"p05", "p50", "p95"}`` → bool), so
    the reported value is a lower bound for it.
    """
    return _eol_at([first_below(q_cap[:, j], threshold) for j in (0, 1, 2)], cycles, hours,
                   fraction)


def _eol_at(idx: list[int | None], cycles: np.ndarray, hours: np.ndarray,
            fraction: float) -> dict | None:
    """The ``end_of_life`` of schedule rows ``idx`` (p05, p50, p95; None = beyond the horizon:
    clamped to its last row and flagged ``censored``); None when the p50 is beyond it."""
    if idx[1] is None:
        return None
    keys = ("p05", "p50", "p95")
    last = len(cycles) - 1
    pos = [last if i is None else i for i in idx]
    return {"threshold_fraction": fraction,
            "cycle_index": {k: int(cycles[i]) for k, i in zip(keys, pos)},
            "test_time_second": {k: float(hours[i] * 3600.0) for k, i in zip(keys, pos)},
            "censored": {k: i is None for k, i in zip(keys, idx)}}


def _head_eol(draws: np.ndarray, cycles: np.ndarray, hours: np.ndarray,
              fraction: float) -> dict | None:
    """End of life from a cycle-life head's own draws (its cross-validated log-normal,
    truncated at the last observed cycle): their p05 / p50 / p95, each at the first scheduled
    cycle at or after it (beyond the horizon: its last cycle, flagged ``censored``); None when
    the median lies beyond the horizon (as for a band whose p50 never crosses). The
    crossings of the capacity band are not used: that band is widened for capacity POINTS (the
    trend check's gap to a √t + N fit that never bends down, the noise floor), which made the
    head's end-of-life interval wider than the head's own spread (measured: it held the true
    life for every Severson test cell at 80 % of life)."""
    values = np.quantile(np.asarray(draws, dtype=float), [0.05, 0.5, 0.95])
    idx = np.searchsorted(cycles, values, side="left").tolist()
    return _eol_at([i if i < len(cycles) else None for i in idx], cycles, hours, fraction)


def _observed_eol(table: Any, fraction: float) -> dict | None:
    """The end of life the history already shows (:func:`ml.advice.observed_eol_row`: three
    consecutive retentions below ``fraction``); all three quantiles are that cycle and its
    time, ``observed`` True. None when not yet reached."""
    from ml.advice import observed_eol_row

    i = observed_eol_row(np.asarray(column_values(table, "retention"), dtype=float), fraction)
    if i is None:
        return None
    cycle = int(column_values(table, "cycle_index")[i])
    second = float(column_values(table, "elapsed_hour")[i]) * 3600.0
    keys = ("p05", "p50", "p95")
    return {"threshold_fraction": fraction, "cycle_index": dict.fromkeys(keys, cycle),
            "test_time_second": dict.fromkeys(keys, second),
            "censored": dict.fromkeys(keys, False), "observed": True}


def _check_finite(arrays: Mapping[str, np.ndarray], *, n_rows: int, ref: float) -> None:
    """Refuse non-finite model output (422 ``forecast_not_finite``) instead of returning NaN."""
    bad = [name for name, a in arrays.items() if not np.all(np.isfinite(a))]
    if bad:
        raise FadecastError(
            f"the model output is not finite ({', '.join(bad)}) for this history of {n_rows} "
            f"cycles (reference capacity {ref:.4g} Ah)", code="forecast_not_finite",
            column="history", expected="finite model output (retention about 0-1.2 of the "
            "reference capacity, increasing test times)", found="NaN or inf")


def _q(values: np.ndarray) -> dict[str, float]:
    return {"p05": float(values[0]), "p50": float(values[1]), "p95": float(values[2])}


def forecast(history: pd.DataFrame | Mapping[str, Any] | list[dict], *, card: ModelCard,
             run: Any,
             horizon_cycles: int, hours_per_cycle: float | None = None, eol_fraction: float = 0.8,
             nominal_capacity_ah: float | None = None, cell_id: str | None = None,
             chemistry: str | None = None) -> dict:
    """The CONTRACTS forecast JSON for one cell.

    Parameters
    ----------
    history:
        Per-cycle rows (DataFrame, mapping of column → array, or list of row dicts) with at
        least ``cycle_index``,
        ``test_time_second`` (s) and ``discharge_capacity_ah`` (Ah).
    card, run:
        The model card and ``run(inputs) -> outputs`` (or an onnxruntime session).
    horizon_cycles:
        N: rows ``cycle_index`` = last + 1 … last + N.
    hours_per_cycle:
        Future pace (h per cycle); default the median of the last 10 observed cycles.
    eol_fraction:
        End-of-life threshold, fraction of the reference capacity, in (0, 1).
    nominal_capacity_ah:
        Reference capacity (Ah); default max discharge capacity of the first 3 cycles.
    cell_id:
        Reported ``cell_id`` (e.g. the CSV file stem); default the history's single
        ``cell_id`` value if it has that column, else None (null in JSON).
    chemistry:
        The caller's statement of the chemistry (judged against the training domain).

    Returns
    -------
    dict
        CONTRACTS forecast JSON plus ``domain`` (``{"in_domain", "reasons", "checked"}``,
        :func:`ml.domain.judge_domain`: out of domain widens the bands) and
        ``uncertainty`` (noise floor, identifiability weight of the time share, the history
        weighting of the samples (:mod:`ml.history_likelihood`: τ, backcast rows, whether it
        applied, effective samples), the
        cycle-life head used if any, and where the median's level came from
        (``level_offset_fraction``, ``level_basis``: :mod:`ml.median_anchor`), and how far
        the history has faded toward the threshold (``fade_progress``,
        :func:`ml.uncertainty.fade_progress`)). The ``end_of_life`` p05/p95 are the band's
        crossings widened by the card's end-of-life calibration (``calibrated_widening``,
        :func:`ml.uncertainty.widen_end_of_life`; the calibration of the history's fade-progress
        bin where the card has bins) when it has one, so they may lie outside the rows'
        crossings; where a cycle-life head shaped the forecast (``uncertainty.cycle_life_head``)
        and the threshold is the head's (80 %), all three are the head's own quantiles
        (:func:`_head_eol`). ``end_of_life`` is null only
        when the p50 capacity stays above
        the threshold for the whole horizon; otherwise it holds all three quantiles, and a
        quantile that is not reached within the horizon is clamped to the horizon's last cycle
        (and its time) with ``end_of_life["censored"][key] = True`` (additive field; False for
        reached quantiles), i.e. the true value lies beyond the reported one. When the
        history itself already went below the threshold (three consecutive retentions,
        :func:`ml.advice.observed_eol_row`), ``end_of_life`` is that observed cycle with
        ``observed: True``.

    Raises
    ------
    ValidationError
        Bad history rows, horizon, pace or threshold (the message names the field).
    FadecastError
        ``forecast_not_finite`` (HTTP 422) when the model returns NaN/inf for this history.
    """
    frame = history if isinstance(history, (pd.DataFrame, Mapping)) else pd.DataFrame(history)
    if cell_id is None and "cell_id" in frame:
        ids = pd.Series(frame["cell_id"], copy=False).dropna().astype(str).unique()
        cell_id = str(ids[0]) if len(ids) == 1 else None
    if not (isinstance(eol_fraction, (int, float)) and 0.0 < float(eol_fraction) < 1.0):
        raise ValidationError("end-of-life fraction must lie in (0, 1)", code="bad_value",
                              column="eol_fraction", expected="a float in (0, 1)",
                              found=repr(eol_fraction))
    spec = card.window_spec()
    # the model table's columns as arrays (ml.windows.model_columns: model_table's values
    # without the DataFrame; every read below is a dict lookup, not a pandas column access)
    table = model_columns(frame, nominal_capacity_ah=nominal_capacity_ah,
                          min_history=spec.min_history)
    cycles, hours = future_schedule(table, horizon_cycles, hours_per_cycle,
                                    table.attrs.get("last_observed"))
    last_cycle = float(table["cycle_index"][-1])
    last_hour = float(table["elapsed_hour"][-1])
    tempering = card.tempering()
    back = backcast_indices(table.n_rows, spec.max_history) if tempering > 0 else np.arange(0)
    # queries: the backcast rows (history weighting), then the last observed cycle (where the
    # time share is defined), then the future; each query is evaluated independently
    inputs = make_windows(table, scaler=card.feature_scaler(), spec=spec,
                          query_cycle=np.concatenate([table["cycle_index"][back], [last_cycle],
                                                      cycles]),
                          query_hour=np.concatenate([table["elapsed_hour"][back], [last_hour],
                                                     hours]))
    out = _as_run(run)(inputs)
    missing = [o for o in OUTPUTS if o not in out]
    if missing:
        raise FadecastError(f"model did not return {missing}", code="bad_model_output",
                            expected=str(list(OUTPUTS)), found=str(sorted(out)))
    ref = float(table["reference_capacity_ah"][0])
    arrays = {o: np.asarray(out[o], dtype=np.float64)[0] for o in OUTPUTS}  # [R + H + 1, K]
    _check_finite(arrays, n_rows=table.n_rows, ref=ref)
    nb = len(back)
    cap, lt, lc = (arrays[o][nb:] for o in OUTPUTS)  # [H+1, K]
    from ml.domain import judge_domain, request_conditions
    from ml.uncertainty import (OOD_WIDENING, compose_band, fade_progress,
                                history_checked_band, history_noise, identifiability_weight,
                                physical_band, share_band, widen_end_of_life)

    pace = planned_hours_per_cycle(table, hours_per_cycle)
    domain = judge_domain(request_conditions(table, planned_hours_per_cycle=pace,
                                             chemistry=chemistry), card.training_domain)
    domain["pace"] = planned_pace(table, pace, given=hours_per_cycle is not None)
    knee = _cycle_life_knee(card, frame, table, cycles, cap[1:], last_cycle,
                            nominal_capacity_ah, chemistry)
    retention = np.asarray(table["retention"], dtype=float)
    if knee is not None:
        cap[1:], extra = knee.pop("cap"), knee.pop("extra")
        head_draws = knee.pop("draws")
        lc[1:] = lc[1:] + extra
        ess = float(cap.shape[-1])
    # the time share is NOT weighed: one cell's curve cannot tell time from cycles when both
    # grow in lockstep (measured: weighing it doubled the share error on a never-trained source)
    share = lt[0] / np.maximum(lt[0] + lc[0], 1e-9)  # time share samples at the last cycle
    if knee is None:  # a head's knee lies ahead of the history, which cannot judge it
        cap, lt, lc, ess = _weigh_capacity(cap, lt, lc, arrays["capacity_fraction"][:nb],
                                           retention[back], tempering)
    noise = history_noise(retention)
    conf = card.conformal.get("capacity") or {}
    widen = 1.0 if domain["in_domain"] else OOD_WIDENING
    raw = np.moveaxis(np.quantile(cap[1:], LEVELS, axis=-1), 0, -1)
    # floor, level anchoring (not when a cycle-life head set the median), trend check
    raw, floor, offset, basis = history_checked_band(
        raw, float(np.median(cap[0])), table["cycle_index"], table["elapsed_hour"], retention,
        cycles, hours, anchor=knee is None, noise=noise)
    if conf.get("method") == "quadrature":
        scale = float(conf.get("scale", 0.0))
        if knee is not None:  # the conformal scale was fitted on head-free bands: it may not
            scale = max(scale, 0.0)  # shrink the head's own (cross-validated) EOL spread
        q_cap = compose_band(raw, floor, scale, widen)
    else:  # a card calibrated with the older additive rule: same floor and widening after it
        q_cap = compose_band(apply_conformal(raw, conf, lo=-np.inf), floor, 0.0, widen)
    q_cap = physical_band(q_cap, retention, floor)
    unknown = identifiability_weight(retention, noise)
    if not domain["in_domain"]:
        unknown = max(unknown, 0.5)
    fade = _share_fade(card, retention, table)
    if fade["outside"]:  # faster fade for its age than any cell the share was learnt from
        unknown = max(unknown, 0.5)
    q_share = share_band(share, unknown, card.conformal.get("time_share"))
    domain["widened"] = None if domain["in_domain"] else (
        f"outside the training domain: the model's capacity spread x{OOD_WIDENING:g} and the "
        "time share mixed at least half-and-half with 'unknown'")
    eol = (_observed_eol(table, float(eol_fraction))
           or _eol(q_cap, cycles, hours, float(eol_fraction), float(eol_fraction)))
    progress = fade_progress(retention, float(eol_fraction))
    if knee is None:  # a head's EOL spread is its own; an observed EOL is left as it is
        eol = widen_end_of_life(eol, card.conformal.get("end_of_life"),
                                float(cycles[0]) - 1.0, cycles, hours, progress)
    elif not (eol or {}).get("observed") and math.isclose(
            float(eol_fraction), float((card.cycle_life or {}).get("threshold_fraction", 0.8))):
        eol = _head_eol(head_draws, cycles, hours, float(eol_fraction))
    lt_med, lc_med = (np.median(x, axis=-1) for x in losses_within_level(
        lt[1:], lc[1:], cap[0] + lt[0] + lc[0]))
    # the rows from whole-array products turned into Python numbers at once (the same values
    # as the per-row float()/int() conversions)
    rows = [{"cycle_index": c, "test_time_second": t,
             "capacity_ah": {"p05": q[0], "p50": q[1], "p95": q[2]},
             "loss_time_fraction": a, "loss_cycle_fraction": b}
            for c, t, q, a, b in zip(cycles.astype(np.int64).tolist(), (hours * 3600.0).tolist(),
                                     (q_cap * ref).tolist(), lt_med.tolist(), lc_med.tolist())]
    uncertainty = {"observation_noise_fraction": noise,
                   "floor_fraction_first": float(floor[0]), "floor_fraction_last": float(floor[-1]),
                   "time_share_unknown_weight": unknown, "time_share_fade_rate": fade,
                   "cycle_life_head": knee,
                   "level_offset_fraction": float(offset),
                   "fade_progress": progress,
                   "level_basis": "cycle-life head (not anchored)" if knee is not None
                   else basis,
                   "history_weighting": {"tempering": tempering, "backcast_rows": nb,
                                         "applied": knee is None and nb > 0,
                                         "effective_samples": ess}}
    return {"model": {"name": card.name, "version": card.version},
            "cell_id": cell_id,
            "forecast": rows,
            "end_of_life": eol,
            "attribution": {"time_share": _q(q_share),
                            "identifiable": bool(unknown < 0.5)},
            "domain": domain,
            "uncertainty": uncertainty,
            "history": table.attrs.get("history") or {
                "rows": table.n_rows, "rows_used": table.n_rows, "basis": "all cycles",
                "dropped": {}}}


def losses_within_level(lt: np.ndarray, lc: np.ndarray, level: np.ndarray, *, axis: int = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The time- and cycle-driven losses (fractions of the reference; time along ``axis``) of
    each posterior sample, bounded by what the sample had to lose: its fresh level ``level``
    (the network's ``c0 = capacity + loss_time + loss_cycle`` at the last observed cycle).

    A sample whose losses outgrow its level far ahead (a steep or accelerating fade over a long
    horizon) would otherwise report losses of many times the cell (measured: 10⁴ × the
    reference at 20,000 cycles). At the first row where a sample's total reaches its level,
    both losses are scaled to sum to it (their split kept) and then held: a cell that has
    lost everything loses nothing more, to either cause. Elsewhere they are unchanged."""
    t = np.moveaxis(np.asarray(lt, dtype=np.float64), axis, 0)
    c = np.moveaxis(np.asarray(lc, dtype=np.float64), axis, 0)
    total = t + c
    room = np.broadcast_to(np.maximum(np.nan_to_num(np.asarray(level, dtype=np.float64),
                                                    nan=np.inf), 0.0), total.shape[1:])
    over = total > room
    n = total.shape[0]
    first = np.where(over.any(axis=0), over.argmax(axis=0), n)
    idx = np.minimum(first, n - 1)[None]
    at_total = np.take_along_axis(total, idx, 0)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_total > 0, room / at_total, 0.0)
    hold = np.arange(n).reshape((n,) + (1,) * (total.ndim - 1)) >= first
    t_out = np.where(hold, np.take_along_axis(t, idx, 0) * factor, t)
    c_out = np.where(hold, np.take_along_axis(c, idx, 0) * factor, c)
    return np.moveaxis(t_out, 0, axis), np.moveaxis(c_out, 0, axis)


def _share_fade(card: ModelCard, retention: np.ndarray, table: Any) -> dict:
    """The history's :func:`ml.domain.share_fade_rate` against the card's trained bound
    (``training_domain["share_fade_rate"]``): ``{"value", "trained_max", "outside"}``; a card
    without the bound judges nothing (``outside`` False)."""
    from ml.domain import domain_bounds, share_fade_rate

    value = share_fade_rate(retention, column_values(table, "elapsed_hour"))
    _, hi = domain_bounds((card.training_domain or {}).get("share_fade_rate"))
    return {"value": value, "trained_max": hi,
            "outside": bool(value is not None and hi is not None and value > hi)}


#: recent mean / median cycle duration above which the default pace is flagged (periodic rests)
PACE_SPREAD_NOTE = 1.5


def planned_pace(table: Any, pace: float, *, given: bool) -> dict:
    """Where the future's hours per cycle came from, for the answer's ``domain["pace"]``.

    The CONTRACTS default is the median duration of the last 10 observed cycles
    (:func:`ml.features.timing.cycle_clock_hours`): right for a steady protocol, but it drops
    rests that come every few cycles. When the mean of those durations exceeds the median by :data:`PACE_SPREAD_NOTE` times, ``note`` says so and how
    to state the protocol's mean pace."""
    # the same per-cycle clock as the default pace (a row after a gap of k cycles counts k)
    dur = cycle_clock_hours(column_values(table, "elapsed_hour"),
                            column_values(table, "cycle_index"))[-PACE_CYCLES:]
    dur = dur[np.isfinite(dur)]
    mean = float(dur.mean()) if dur.size else None
    out = {"hours_per_cycle": float(pace),
           "source": "given" if given else "median duration of the last 10 observed cycles",
           "recent_mean_hours_per_cycle": mean, "note": None}
    if not given and mean is not None and pace > 0 and mean > PACE_SPREAD_NOTE * pace:
        out["note"] = (f"the last {dur.size} cycles took {mean:.3g} h on average but "
                       f"{pace:.3g} h at the median: if the protocol rests every few cycles, "
                       "state its mean pace (--hours-per-cycle / future_hours_per_cycle), or "
                       "the time-driven fade is forecast on too short a clock")
    return out


def _weigh_capacity(cap: np.ndarray, lt: np.ndarray, lc: np.ndarray, backcast: np.ndarray,
                    retention: np.ndarray, tempering: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Capacity samples [H+1, K] moved to their history-weighted median
    (as :func:`ml.history_likelihood.weigh_samples`); the change of loss it implies is split
    between the time and cycle losses in proportion to their medians per row (so capacity +
    losses stay consistent and the row's time share is kept). Returns ``(cap, lt, lc, ess)``."""
    lw = sample_log_likelihood(backcast, retention, tempering)
    if not np.any(lw):
        return cap, lt, lc, float(cap.shape[-1])
    delta = median_shift(cap, lw)  # [H+1]
    lt_m, lc_m = np.median(lt, axis=-1), np.median(lc, axis=-1)
    part = np.where(lt_m + lc_m > 1e-12, lt_m / np.maximum(lt_m + lc_m, 1e-12), 0.5)
    return (np.maximum(cap + delta[:, None], 0.0),
            np.maximum(lt - (delta * part)[:, None], 0.0),
            np.maximum(lc - (delta * (1.0 - part))[:, None], 0.0), effective_samples(lw))


def _cycle_life_knee(card: ModelCard, frame: pd.DataFrame | Mapping[str, Any], table: Any,
                     cycles: np.ndarray, cap: np.ndarray, last_cycle: float,
                     nominal_capacity_ah: float | None, chemistry: str | None) -> dict | None:
    """Apply the card's cycle-life head (if one fits this history) to the samples ``cap``
    [H, K]; returns ``{"head", "window_cycles", "eol_cycle_median", "log10_sd", "cap",
    "extra"}`` or None."""
    head = card.cycle_life or {}
    if not head.get("heads"):
        return None
    from ml.models.cycle_life_head import apply_knee, choose_head, eol_draws

    ref = float(column_values(table, "reference_capacity_ah")[0])
    source = frame if all(c in frame for c in ("cycle_index", "discharge_capacity_ah")) \
        else table
    durations = np.asarray(column_values(table, "cycle_duration_hour"), dtype=float)
    durations = durations[np.isfinite(durations)]
    pace = float(np.median(durations)) if durations.size else None
    chosen = choose_head(head, source, ref, nominal_given=nominal_capacity_ah is not None,
                         hours_per_cycle=pace, chemistry=chemistry)
    if chosen is None:
        return None
    name, mu, sd, window = chosen
    exponent = head["heads"][name].get("knee_exponent", head.get("knee_exponent", 3.0))
    draws = eol_draws(mu, sd, last_cycle, cap.shape[1])
    new, extra = apply_knee(cap, cycles, last_cycle, draws, float(exponent))
    return {"head": name, "window_cycles": window, "eol_cycle_median": float(np.median(draws)),
            "log10_sd": sd, "cap": new, "extra": extra, "draws": draws}
