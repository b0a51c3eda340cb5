"""ml.model_store.resolve_model: folders, .onnx files, and clear errors (registry: test_mlflow)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from data_registry.errors import FadecastError, NotFoundError
from ml.model_store import resolve_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from ml.training.quick import train_quick_model

    return train_quick_model(tmp_path_factory.getbasetemp() / "quick-model", n_cells=16,
                             epochs=4, reuse=True)


def test_folder_and_onnx_file_resolve_to_the_folder(folder):
    assert resolve_model(folder) == folder.resolve()
    assert resolve_model(str(folder / "model.onnx")) == folder.resolve()


def test_onnx_under_another_name_is_cached_with_standard_names(folder, tmp_path):
    shutil.copy(folder / "model.onnx", tmp_path / "mine.onnx")
    shutil.copy(folder / "model_card.json", tmp_path / "model_card.json")
    got = resolve_model(tmp_path / "mine.onnx")
    assert (got / "model.onnx").read_bytes() == (folder / "model.onnx").read_bytes()
    assert (got / "model_card.json").is_file()


def test_missing_card_and_missing_path_are_named(folder, tmp_path):
    shutil.copy(folder / "model.onnx", tmp_path / "model.onnx")
    with pytest.raises(NotFoundError, match="model_card.json"):
        resolve_model(tmp_path / "model.onnx")
    with pytest.raises(NotFoundError, match="lacks model_card.json"):
        resolve_model(tmp_path)
    with pytest.raises(FadecastError, match="nowhere"):
        resolve_model(tmp_path / "nowhere")


def test_empty_registry_has_no_champion(monkeypatch):
    with pytest.raises(NotFoundError, match="fadecast-forecaster@champion"):
        resolve_model("champion")
    monkeypatch.setenv("FADECAST_SHIPPED_MODEL", "")  # no shipped model either
    with pytest.raises(NotFoundError, match="no shipped model"):
        resolve_model()


def test_without_a_champion_the_shipped_model_answers(folder, monkeypatch):
    monkeypatch.setenv("FADECAST_SHIPPED_MODEL", str(folder))
    assert resolve_model() == folder.resolve()


def test_a_users_champion_overrides_the_shipped_model(folder, tmp_path, monkeypatch):
    import ml.model_store as store
    from data_registry.home import mlflow_tracking_uri

    shipped = tmp_path / "shipped"
    shutil.copytree(folder, shipped)
    monkeypatch.setenv("FADECAST_SHIPPED_MODEL", str(shipped))
    # no registry in this home: the shipped model, without asking mlflow
    monkeypatch.setattr(store, "_from_registry", lambda *a, **k: pytest.fail("asked mlflow"))
    assert resolve_model() == shipped.resolve()
    # a registry with a champion: the champion wins
    db = mlflow_tracking_uri()[len("sqlite:///"):]
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    Path(db).touch()
    monkeypatch.setattr(store, "_from_registry", lambda uri, tracking: folder)
    assert resolve_model() == folder
