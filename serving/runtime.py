"""The loaded model: an onnxruntime session + its card, and the slot that swaps it atomically.

The session runs with one intra-op and one inter-op thread (the service scales by processes,
and 2 cores are shared). Requests take a reference to the current forecaster when they start,
so ``ModelSlot.swap`` never pulls a model from under an in-flight request.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_registry.errors import FadecastError, NotFoundError

__all__ = ["ModelSlot", "OnnxForecaster", "load_forecaster"]


def _session(onnx_path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


@dataclass(eq=False)
class OnnxForecaster:
    """A model folder (``model.onnx`` + ``model_card.json``) ready to forecast.

    Use :func:`load_forecaster` to build one. ``run`` maps the named float32 inputs of
    docs/interfaces.md to the named outputs; ``forecast`` is ``ml.inference.forecast`` bound to
    this card and session.
    """

    path: Path
    card: Any
    session: Any
    loaded_at: float

    def __post_init__(self) -> None:
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._outputs = [o.name for o in self.session.get_outputs()]

    @property
    def name(self) -> str:
        return str(_card_get(self.card, "name", "fadecast-forecaster"))

    @property
    def version(self) -> str:
        return str(_card_get(self.card, "version", "0"))

    @property
    def domain(self) -> dict[str, Any]:
        """The card's training-domain summary (feature → range), empty when absent."""
        dom = _card_get(self.card, "domain", None) or _card_get(self.card, "training_domain", None)
        return dict(dom or {})

    @property
    def interval_scale(self) -> float:
        """How much the advice policy widens this model's bands: from the 90 % band coverage
        measured on validation cells and stored in the card (1 when absent or ≥ 90 %)."""
        from ml.advice import interval_scale_for_coverage

        metrics = _card_get(self.card, "metrics", None) or {}
        for key in ("val_model_coverage_90_pct", "coverage_90_pct"):
            value = metrics.get(key)
            if isinstance(value, (int, float)):
                return interval_scale_for_coverage(float(value) / 100.0)
        return 1.0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One onnxruntime call: named float32 arrays in, named arrays out."""
        feed = {name: inputs[name] for name in self._inputs}
        return dict(zip(self._outputs, self.session.run(self._outputs, feed)))

    def forecast(self, table: pd.DataFrame | Mapping[str, Any], *, horizon_cycles: int,
                 hours_per_cycle: float | None = None, eol_fraction: float = 0.8,
                 nominal_capacity_ah: float | None = None,
                 cell_id: str | None = None, chemistry: str | None = None) -> dict[str, Any]:
        """The CONTRACTS forecast JSON for one cell's per-cycle rows (features computed inside,
        through ``ml.features`` — the one feature path)."""
        from ml.inference import forecast

        return forecast(table, card=self.card, run=self.run, horizon_cycles=horizon_cycles,
                        hours_per_cycle=hours_per_cycle, eol_fraction=eol_fraction,
                        nominal_capacity_ah=nominal_capacity_ah, cell_id=cell_id,
                        chemistry=chemistry)

    def warm_up(self) -> None:
        """One throw-away forecast so the first real request pays no import or JIT cost."""
        n = 12
        frame = pd.DataFrame({"cycle_index": np.arange(1, n + 1),
                              "test_time_second": 7200.0 * np.arange(1, n + 1),
                              "discharge_capacity_ah": 1.0 - 0.001 * np.arange(n)})
        self.forecast(frame, horizon_cycles=5)

    def probe(self) -> None:
        """Validate this model before it serves: a forecast of a plain 40-cycle history must
        give finite, ordered quantiles for every requested cycle.

        Raises
        ------
        FadecastError
            ``model_probe_failed`` naming what was wrong (no server path).
        """
        n = 40
        cyc = np.arange(1, n + 1)
        frame = pd.DataFrame({"cycle_index": cyc, "test_time_second": 7200.0 * cyc,
                              "discharge_capacity_ah": 1.0 - 0.002 * cyc})
        doc = self.forecast(frame, horizon_cycles=20)
        rows = doc.get("forecast") or []
        problem = None
        if [r.get("cycle_index") for r in rows] != list(range(n + 1, n + 21)):
            problem = "the forecast rows are not the 20 requested cycles"
        else:
            for r in rows:
                q = r.get("capacity_ah") or {}
                vals = [q.get(k) for k in ("p05", "p50", "p95")]
                if not all(isinstance(v, float) and np.isfinite(v) for v in vals):
                    problem = f"capacity at cycle {r['cycle_index']} is not finite"
                    break
                if not vals[0] <= vals[1] <= vals[2]:
                    problem = f"quantiles at cycle {r['cycle_index']} are not ordered"
                    break
        if problem:
            raise FadecastError(f"the model failed its probe forecast: {problem}",
                                code="model_probe_failed")

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/models`` shows about this model."""
        # no server path: a client learns which model answers, not where it lives
        out: dict[str, Any] = {"name": self.name, "version": self.version,
                               "loaded_at_unix": self.loaded_at}
        for key in ("features", "dataset_hash", "metrics", "quantile_levels", "n_samples"):
            value = _card_get(self.card, key, None)
            if value is not None:
                out[key] = value
        if self.domain:
            out["domain"] = self.domain
        out["advice_interval_scale"] = self.interval_scale
        return out


def _card_get(card: Any, key: str, default: Any) -> Any:
    if isinstance(card, dict):
        return card.get(key, default)
    return getattr(card, key, default)


def load_forecaster(uri: str | None = None) -> OnnxForecaster:
    """Resolve a model URI (None/"champion", a folder, or a ``.onnx`` file) and load it.

    Raises
    ------
    NotFoundError
        Nothing to load at ``uri`` (or no champion registered yet).
    """
    from ml.inference import MODEL_FILE, load_model_dir
    from ml.model_store import resolve_model

    try:
        folder = Path(resolve_model(uri))
    except FadecastError:
        raise
    except FileNotFoundError as exc:
        raise NotFoundError(f"no model at {uri or 'champion'}: {exc}", code="model_not_found",
                            file=str(uri) if uri else None) from exc
    card, _ = load_model_dir(folder)  # validates the folder and reads the card
    # Our own session (same options as ml.inference) so the service can name inputs/outputs
    # once and the benchmark can time session.run alone.
    model = OnnxForecaster(path=folder, card=card, session=_session(folder / MODEL_FILE),
                           loaded_at=time.time())
    model.warm_up()
    return model


class ModelSlot:
    """Holds the current forecaster; ``swap`` replaces it in one assignment under a lock."""

    def __init__(self, forecaster: OnnxForecaster | None = None) -> None:
        self._current = forecaster
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def current(self) -> OnnxForecaster | None:
        return self._current

    def require(self) -> OnnxForecaster:
        """The loaded forecaster, or a 503 ``model_not_loaded`` error."""
        model = self._current
        if model is None:
            from serving.errors import ServiceError

            raise ServiceError("no model is loaded yet" + (f": {self.last_error}"
                                                           if self.last_error else ""),
                               code="model_not_loaded", http_status=503)
        return model

    def swap(self, forecaster: OnnxForecaster) -> OnnxForecaster | None:
        """Install ``forecaster``; returns the previous one (still usable by in-flight calls)."""
        with self._lock:
            old, self._current = self._current, forecaster
            self.last_error = None
        return old
