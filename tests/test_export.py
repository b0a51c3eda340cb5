"""ml.export: ONNX graph I/O, metadata, checker, parity with torch, refusal of unfitted models."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from data_registry.errors import FadecastError
from ml.export.onnx import example_inputs, export_onnx, parity_check
from ml.inference import INPUTS, OUTPUTS, ModelCard, load_model_dir
from ml.models.fade_net import FadeNet
from ml.windows import FEATURE_NAMES


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One fitted onset/knee model, exported once per module (exporting takes seconds)."""
    from ml.export.card import build_card
    from ml.export.onnx import export_model_dir
    from ml.synthetic import make_fleet
    from ml.training.dataset import fit_scaler, prepare_cells
    from ml.training.loop import TrainSettings, fit
    from ml.windows import WindowSpec

    cells = prepare_cells(make_fleet(6, seed=7))
    scaler = fit_scaler(cells)
    model = FadeNet(FEATURE_NAMES, time_term="onset", cycle_term="knee", d_model=16, n_heads=2)
    fit(model, cells, [], scaler, TrainSettings(epochs=1, windows_per_cell=2, max_history=16),
        progress=False)
    card = build_card(model, scaler, WindowSpec(16), train_cells=cells, conformal={},
                      dataset_hash="0" * 64)
    folder = export_model_dir(model, card, tmp_path_factory.mktemp("exp") / "m")
    return model, folder


def test_unfitted_model_refuses_export(tmp_path):
    model = FadeNet(FEATURE_NAMES, d_model=16, n_heads=2)
    with pytest.raises(FadecastError, match="unfitted"):
        export_onnx(model, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_graph_io_names_axes_and_metadata(exported):
    _, exported = exported
    proto = onnx.load(exported / "model.onnx")
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == list(INPUTS)
    assert [o.name for o in proto.graph.output] == list(OUTPUTS)
    hist = proto.graph.input[0].type.tensor_type.shape.dim
    assert len(hist) == 3 and hist[0].dim_param and hist[1].dim_param
    assert hist[2].dim_value == len(FEATURE_NAMES)
    out = proto.graph.output[0].type.tensor_type.shape.dim
    assert out[0].dim_param and out[1].dim_param and out[2].dim_value == 32
    meta = {p.key: p.value for p in proto.metadata_props}
    card = ModelCard.load(exported / "model_card.json")
    assert json.loads(meta["fadecast.scaler"]) == card.scaler
    assert meta["fadecast.dataset_hash"] == card.dataset_hash and len(card.dataset_hash) == 64
    assert [f["name"] for f in json.loads(meta["fadecast.features"])] == list(FEATURE_NAMES)
    assert card.onnx["parity_max_abs_diff"] <= 1e-4
    assert card.model["time_term"] == "onset" and card.model["cycle_term"] == "knee"


def test_parity_with_torch_on_several_lengths(exported):
    model, folder = exported
    for t, h, b in ((3, 1, 1), (17, 9, 3), (64, 40, 2), (150, 2, 1)):
        diff = parity_check(model, folder / "model.onnx",
                            example_inputs(len(FEATURE_NAMES), batch=b, history=t, horizon=h,
                                           seed=t))
        assert diff <= 1e-4, (t, h, b, diff)


def test_onnx_outputs_are_samples_of_the_right_shape(exported):
    _, run = load_model_dir(exported[1])
    out = run(example_inputs(len(FEATURE_NAMES), batch=2, history=10, horizon=6))
    for name in OUTPUTS:
        assert out[name].shape == (2, 6, 32) and out[name].dtype == np.float32
    assert np.allclose(out["capacity_fraction"][:, :, :] + out["loss_time_fraction"]
                       + out["loss_cycle_fraction"],
                       (out["capacity_fraction"] + out["loss_time_fraction"]
                        + out["loss_cycle_fraction"])[:, :1, :], atol=1e-5)
    assert (out["loss_time_fraction"] >= 0).all() and (out["loss_cycle_fraction"] >= 0).all()


def test_training_domain_ranges_by_hand():
    import pandas as pd

    from ml.export.card import training_domain
    from ml.training.dataset import PreparedCell

    def cell(ret, cyc, src):
        table = pd.DataFrame({"retention": ret, "cycle_index": cyc, "c_rate": [0.5] * len(cyc),
                              "cycle_duration_hour": [2.0] * len(cyc),
                              "temperature_celsius": [25.0] * len(cyc)})
        return PreparedCell(src, table, np.zeros(len(cyc)), np.zeros(len(cyc)),
                            {"source": src})

    dom = training_domain([cell([1.0, 0.97, 0.93], [1, 2, 3], "a"),
                           cell([0.99, 0.81, np.nan, 0.8], [5, 6, 7, 300], "b")])
    assert dom["retention"] == [0.8, 1.0]
    assert dom["cycle_index"] == [1.0, 300.0] and dom["cycles_seen"] == [3.0, 4.0]
    assert dom["sources"] == ["a", "b"] and dom["n_cells"] == 2
    assert dom["share_fade_rate"] is None  # these tables have no clock
