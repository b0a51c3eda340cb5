"""Service behaviour that needs no model: health, readiness, auth, size limits, the OpenAPI
snapshot and the no-torch rule."""
from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "openapi.json"


@pytest.fixture
def no_model_client(tmp_path):
    settings = Settings(model_uri=str(tmp_path / "nowhere"), admin_token="s3cret",
                        max_body_bytes=2_000, max_upload_bytes=5_000)
    with TestClient(create_app(settings)) as client:
        yield client


def test_health_and_not_ready_without_model(no_model_client):
    assert no_model_client.get("/healthz").json() == {"status": "ok"}
    r = no_model_client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["code"] == "model_not_loaded" and "model_not_found" in r.json()["message"]
    assert "nowhere" not in r.text and "/tmp" not in r.text  # no server path
    body = {"history": [{"cycle_index": 1, "test_time_second": 1, "discharge_capacity_ah": 1}],
            "horizon_cycles": 5}
    r = no_model_client.post("/v1/forecast", json=body)
    assert r.status_code == 503 and r.json()["code"] == "model_not_loaded"
    assert no_model_client.get("/v1/models").json() == {"models": []}


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic s3cret", "Bearer", "s3cret"])
def test_admin_reload_refuses_missing_or_wrong_token(no_model_client, header):
    headers = {"Authorization": header} if header else {}
    r = no_model_client.post("/v1/admin/reload", headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


def test_admin_reload_with_token_reports_missing_model(no_model_client, tmp_path):
    r = no_model_client.post("/v1/admin/reload", headers={"Authorization": "Bearer s3cret"},
                             json={"model_uri": str(tmp_path / "missing-model")})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "model_not_found" and "missing-model" in r.json()["message"]


def test_admin_disabled_without_configured_token(tmp_path):
    with TestClient(create_app(Settings(model_uri=str(tmp_path / "x")))) as client:
        r = client.post("/v1/admin/reload", headers={"Authorization": "Bearer "})
    assert r.status_code == 401 and "disabled" in r.json()["message"]


def test_body_over_limit_is_413_before_parsing(no_model_client):
    big = b'{"history": [' + b" " * 3_000 + b"]}"
    r = no_model_client.post("/v1/forecast", content=big,
                             headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json() == {"code": "body_too_large",
                        "message": "request body larger than the limit of 2000 bytes",
                        "field": None}


def test_streamed_body_over_limit_without_length_is_413(no_model_client):
    def chunks():
        for _ in range(10):
            yield b"x" * 1_000

    r = no_model_client.post("/v1/cells/c1/samples?filename=a.csv", content=chunks(),
                             headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"
    assert "5000 bytes" in r.json()["message"]
    staging = Path(os.environ["FADECAST_HOME"]) / "tmp"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_unknown_route_keeps_error_shape(no_model_client):
    r = no_model_client.get("/v1/nope")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_openapi_snapshot():
    """Fails with a diff when the API description changes; FADECAST_UPDATE_SNAPSHOTS=1 rewrites."""
    doc = json.dumps(create_app(Settings()).openapi(), indent=1, sort_keys=True) + "\n"
    if os.environ.get("FADECAST_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(doc, encoding="utf-8")
    assert SNAPSHOT.exists(), f"{SNAPSHOT} missing (FADECAST_UPDATE_SNAPSHOTS=1 writes it)"
    old = SNAPSHOT.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(old.splitlines(True), doc.splitlines(True),
                                        "snapshot", "current", n=2))
    assert not diff, "OpenAPI changed (FADECAST_UPDATE_SNAPSHOTS=1 to accept):\n" + diff[:6000]


def test_openapi_declares_error_bodies_and_versions():
    doc = create_app(Settings()).openapi()
    paths = doc["paths"]
    assert {"/v1/forecast", "/v1/advice", "/v1/cells/{cell_id}/samples",
            "/v1/cells/{cell_id}/forecast", "/v1/cells/{cell_id}/advice", "/v1/models",
            "/v1/admin/reload", "/healthz",
            "/readyz"} <= set(paths)
    assert "422" in paths["/v1/forecast"]["post"]["responses"]
    upload = paths["/v1/cells/{cell_id}/samples"]["post"]["requestBody"]["content"]
    assert "application/octet-stream" in upload


def test_app_never_imports_torch_or_mlflow():
    code = ("import sys; from serving.app import create_app; from serving import commands; "
            "create_app(); print('torch' in sys.modules, 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "FADECAST_SERVE_MODEL_URI": "/nonexistent"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False False"


def test_startup_objects_leave_the_cyclic_gc_and_come_back_at_shutdown(tmp_path):
    """The service freezes what is alive after start-up (modules, model, schemas) so a full
    collection does not scan ~10⁵ objects mid-request; an app stopped inside a longer-lived
    process (tests) gives them back."""
    import gc

    gc.unfreeze()
    with TestClient(create_app(Settings(model_uri=str(tmp_path / "none")))):
        assert gc.get_freeze_count() > 1000
    assert gc.get_freeze_count() == 0
