"""FadeNet -> ONNX (named I/O, dynamic batch/history/horizon axes, metadata), checked and
compared with torch, then written atomically beside its model card."""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from data_registry.errors import FadecastError
from ml.inference import CARD_FILE, INPUTS, MODEL_FILE, OUTPUTS, ModelCard, open_session
from ml.models.fade_net import FadeNet

__all__ = ["export_onnx", "export_model_dir", "parity_check", "example_inputs", "OPSET"]

OPSET = 18


def example_inputs(n_features: int, *, batch: int = 2, history: int = 12, horizon: int = 5,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Random valid model inputs (increasing cycles and hours; some masked values)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (batch, history, n_features)).astype(np.float32)
    m = (rng.random((batch, history, n_features)) > 0.2).astype(np.float32)
    m[:, :, :3] = 1.0  # anchors (retention, hours, cycles) always observed
    x = x * m
    last_cycle = rng.uniform(20, 200, (batch, 1))
    qc = (last_cycle + np.arange(0, horizon)[None]).astype(np.float32)
    qh = (qc * rng.uniform(2, 30, (batch, 1))).astype(np.float32)
    return {"history": x, "history_mask": m, "query_cycle": qc, "query_hour": qh}


def _check_fitted(model: FadeNet) -> None:
    if not getattr(model, "is_fitted_", False):
        raise FadecastError("cannot export an unfitted FadeNet; train it first (fit)",
                            code="not_fitted", expected="a fitted model", found="an unfitted one")


def export_onnx(model: FadeNet, path: str | os.PathLike[str],
                metadata: dict[str, str] | None = None) -> Path:
    """Export ``model`` to ONNX at ``path`` (atomic), weights inside the one file.

    Inputs/outputs are named per docs/interfaces.md, with dynamic batch (B), history (T) and
    horizon (H) axes; ``metadata`` becomes ONNX metadata props. ``onnx.checker`` runs on the
    result.

    Raises
    ------
    FadecastError
        The model is not fitted.
    """
    import onnx

    _check_fitted(model)
    path = Path(path)
    model.eval()
    ex = example_inputs(len(model.feature_names))
    args = tuple(torch.from_numpy(ex[k]) for k in INPUTS)
    b, t, h = (torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("history", min=3,
               max=4096), torch.export.Dim("horizon", min=1, max=100000))
    shapes = {"history": {0: b, 1: t}, "history_mask": {0: b, 1: t},
              "query_cycle": {0: b, 1: h}, "query_hour": {0: b, 1: h}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".export-", suffix=".onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, args, tmp, input_names=list(INPUTS),
                              output_names=list(OUTPUTS), dynamic_shapes=shapes, dynamo=True,
                              external_data=False, opset_version=OPSET, verbose=False)
        proto = onnx.load(tmp)
        for key, value in (metadata or {}).items():
            prop = proto.metadata_props.add()
            prop.key, prop.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def parity_check(model: FadeNet, onnx_path: str | os.PathLike[str],
                 inputs: dict[str, np.ndarray]) -> float:
    """Max abs difference between torch and onnxruntime outputs on ``inputs``."""
    run = open_session(onnx_path)
    got = run(inputs)
    model.eval()
    with torch.no_grad():
        ref = model(*(torch.from_numpy(inputs[k]) for k in INPUTS))
    return max(float(np.max(np.abs(got[name] - r.numpy()))) for name, r in zip(OUTPUTS, ref))


def _metadata(card: ModelCard) -> dict[str, str]:
    return {"fadecast.features": json.dumps(card.features),
            "fadecast.window": json.dumps(card.window),
            "fadecast.scaler": json.dumps(card.scaler),
            "fadecast.conformal": json.dumps(card.conformal),
            "fadecast.dataset_hash": card.dataset_hash,
            "fadecast.model": json.dumps({"name": card.name, "version": card.version})}


def export_model_dir(model: FadeNet, card: ModelCard, out_dir: str | os.PathLike[str], *,
                     check_parity: bool = True, tolerance: float = 1e-4) -> Path:
    """Write ``model.onnx`` + ``model_card.json`` into ``out_dir`` (each atomically, card last).

    Raises
    ------
    FadecastError
        Unfitted model, or torch/onnxruntime outputs differ by more than ``tolerance``.
    """
    _check_fitted(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(model, out / MODEL_FILE, _metadata(card))
    if check_parity:
        diffs = [parity_check(model, onnx_path, example_inputs(len(model.feature_names),
                                                               history=t, horizon=hz, seed=t))
                 for t, hz in ((5, 1), (23, 7))]
        if max(diffs) > tolerance:
            raise FadecastError("ONNX export differs from torch", code="export_parity",
                                file=str(onnx_path), expected=f"max abs diff <= {tolerance}",
                                found=f"{max(diffs):.3g}")
        card.onnx = {**card.onnx, "parity_max_abs_diff": max(diffs)}
    card.onnx = {**card.onnx, "opset": OPSET, "inputs": list(INPUTS), "outputs": list(OUTPUTS),
                 "file": MODEL_FILE}
    card.save(out / CARD_FILE)
    return out
