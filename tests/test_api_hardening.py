"""The hardened service: token scopes, 500s without text, lengths before work, concurrent and
interrupted uploads, idempotent appends, and a corrupt model on reload."""
from __future__ import annotations

import asyncio
import gzip
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from data_registry.store import Registry
from serving.app import create_app
from serving.settings import Settings
from test_serving_model import forecaster, history_rows, serving_model_dir  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "examples" / "pto_c10_raw.csv"
RAW_OTHER = ROOT / "examples" / "pto_c03_raw.csv"
TOKENS = {"admin_token": "adm", "write_token": "wri", "read_token": "rea"}


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _app(forecaster, model_dir, **settings):  # noqa: F811
    return create_app(Settings(model_uri=str(model_dir), **settings), forecaster=forecaster)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(forecaster, serving_model_dir):  # noqa: F811
    with TestClient(_app(forecaster, serving_model_dir, admin_token="adm", write_token="wri"),
                    headers=_auth("wri")) as c:
        yield c


def test_scopes_read_write_admin(forecaster, serving_model_dir):  # noqa: F811
    body = {"history": history_rows(20), "horizon_cycles": 3}
    csv = b"".join(_lines(RAW)[:200])
    with TestClient(_app(forecaster, serving_model_dir, **TOKENS)) as c:
        assert c.post("/v1/forecast", json=body).status_code == 401
        assert c.get("/v1/models").status_code == 401
        for tok in ("rea", "wri", "adm"):  # a higher scope grants the lower ones
            assert c.post("/v1/forecast", json=body, headers=_auth(tok)).status_code == 200
        r = c.post("/v1/cells/s1/samples?filename=a.csv", content=csv, headers=_auth("rea"))
        assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
        assert c.post("/v1/cells/s1/samples?filename=a.csv", content=csv,
                      headers=_auth("wri")).status_code == 201
        r = c.post("/v1/admin/reload", headers=_auth("wri"))
        assert r.status_code == 403 and "admin" in r.json()["message"]
        assert c.post("/v1/cells/s1/forecast", json={"horizon_cycles": 2},
                      headers=_auth("bogus")).status_code == 401
    # default: reads open (make demo), writes disabled until a write token is configured
    with TestClient(_app(forecaster, serving_model_dir)) as c:
        assert c.post("/v1/forecast", json=body).status_code == 200
        r = c.post("/v1/cells/s2/samples?filename=a.csv", content=csv)
        assert r.status_code == 401 and "FADECAST_SERVE_WRITE_TOKEN" in r.json()["message"]


def test_unexpected_error_is_a_500_with_a_request_id_and_no_text(
        forecaster, serving_model_dir, monkeypatch):  # noqa: F811
    import serving.routes.forecast as route

    def boom(*args, **kwargs):
        raise RuntimeError("secret detail at /srv/fadecast/private/model.onnx")

    monkeypatch.setattr(route, "forecast_document", boom)
    app = _app(forecaster, serving_model_dir)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/v1/forecast", json={"history": history_rows(10), "horizon_cycles": 2},
                   headers={"X-Request-ID": "req-42"})
    assert r.status_code == 500
    body = r.json()
    assert body["code"] == "internal_error" and body["request_id"] == "req-42"
    assert r.headers["x-request-id"] == "req-42"
    assert "secret" not in r.text and "/srv" not in r.text and "RuntimeError" not in r.text


def test_history_length_is_checked_before_any_row_is_validated(
        forecaster, serving_model_dir):  # noqa: F811
    with TestClient(_app(forecaster, serving_model_dir, max_history_cycles=50)) as c:
        junk = [{"not": "a row"}] * 51  # would fail validation row by row
        r = c.post("/v1/forecast", json={"history": junk, "horizon_cycles": 2})
        assert r.status_code == 422 and r.json()["code"] == "history_too_long"
        assert r.json()["field"] == "history"
        r = c.post("/v1/forecast", json={"history": history_rows(50), "horizon_cycles": 2})
        assert r.status_code == 200


def test_models_and_readyz_show_no_server_path(client, serving_model_dir):  # noqa: F811
    for url in ("/v1/models", "/readyz"):
        text = client.get(url).text
        assert str(serving_model_dir) not in text and "/tmp" not in text


def test_concurrent_uploads_same_and_other_cells_lose_and_repeat_nothing(client):
    """Growing snapshots of one export posted at once, in any order, to one cell; another
    cell's file beside it: each cell ends with exactly its file's rows, in order."""
    lines, other = _lines(RAW), _lines(RAW_OTHER)
    cuts = [300, 1200, 1900, 2600, 3300, 4100, len(lines)]
    jobs = [("A", b"".join(lines[:n]), f"a{n}.csv") for n in cuts]
    jobs += [("B", b"".join(other[:n]), f"b{n}.csv") for n in (1000, 2500, len(other))]
    rng = np.random.default_rng(1)
    order = rng.permutation(len(jobs))
    statuses: list[int] = []

    def post(job):
        cell, data, name = job
        r = client.post(f"/v1/cells/{cell}/samples?filename={name}", content=data)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=post, args=(jobs[i],)) for i in order]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * len(jobs)
    import pandas as pd

    reg = Registry()
    try:
        for cell, path in (("A", RAW), ("B", RAW_OTHER)):
            stored = reg.load_samples(cell)
            want = pd.read_csv(path)
            assert len(stored) == len(want)  # no lost rows, none twice
            assert np.array_equal(stored["test_time_second"].to_numpy(),
                                  want["test_time_second"].to_numpy())  # in order
            assert np.array_equal(stored["voltage_volt"].to_numpy(),
                                  want["voltage_volt"].to_numpy())
    finally:
        reg.close()
    # re-sending the whole file adds nothing
    r = client.post("/v1/cells/A/samples?filename=again.csv", content=RAW.read_bytes())
    assert r.status_code == 201 and r.json()["report"]["rows"] == 0
    assert r.json()["report"]["already_present"] is True


def test_client_disconnect_mid_upload_leaves_the_cell_unchanged(
        forecaster, serving_model_dir, _isolated_home):  # noqa: F811
    app = _app(forecaster, serving_model_dir, write_token="wri")
    lines = _lines(RAW)
    with TestClient(app, headers=_auth("wri")) as c:
        assert c.post("/v1/cells/D/samples?filename=d.csv",
                      content=b"".join(lines[:1000])).status_code == 201
    sent: list[dict] = []
    incoming = [{"type": "http.request", "body": b"".join(lines[:2000]), "more_body": True},
                {"type": "http.disconnect"}]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/cells/D/samples",
             "raw_path": b"/v1/cells/D/samples", "query_string": b"filename=d2.csv",
             "headers": [(b"authorization", b"Bearer wri"), (b"host", b"test")],
             "client": ("127.0.0.1", 1), "server": ("test", 80), "root_path": "",
             "state": {}, "app": app}
    asyncio.run(app(scope, receive, send))
    reg = Registry()
    try:
        assert len(reg.load_samples("D")) == 999
    finally:
        reg.close()
    staging = _isolated_home / "tmp"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_conflicting_rows_and_unreadable_uploads_name_the_users_file(client, tmp_path):
    lines = _lines(RAW)
    assert client.post("/v1/cells/E/samples?filename=e.csv",
                       content=b"".join(lines[:1500])).status_code == 201
    # the same times with other steps: not this cell's rows
    shifted = [lines[0]] + [ln.replace(b",1,1,", b",1,2,", 1) for ln in lines[1:100]]
    r = client.post("/v1/cells/E/samples?filename=other.csv", content=b"".join(shifted))
    assert r.status_code == 409 and r.json()["code"] == "continuation_overlap", r.text
    assert "other.csv" in r.json()["message"] and "tmp" not in r.text
    truncated = gzip.compress(b"".join(lines))[:5000]
    r = client.post("/v1/cells/F/samples?filename=run.csv.gz", content=truncated)
    assert 400 <= r.status_code < 500, r.text
    assert "run.csv.gz" in r.text and str(tmp_path) not in r.text and "upload-" not in r.text
    reg = Registry()
    try:
        assert len(reg.load_samples("E")) == 1499
    finally:
        reg.close()


def test_corrupt_model_on_reload_is_refused_and_the_old_one_keeps_serving(
        client, serving_model_dir, tmp_path):  # noqa: F811
    before = client.get("/v1/models").json()["models"][0]
    broken = tmp_path / "broken-model"
    shutil.copytree(serving_model_dir, broken)
    (broken / "model.onnx").write_bytes(b"\x08\x07garbage" * 100)
    bad_card = tmp_path / "bad-card"
    shutil.copytree(serving_model_dir, bad_card)
    (bad_card / "model_card.json").write_text("{not json")
    for folder in (broken, bad_card):
        r = client.post("/v1/admin/reload", headers=_auth("adm"),
                        json={"model_uri": str(folder)})
        assert r.status_code == 422, r.text
        assert r.json()["code"] in {"model_invalid", "bad_model_card"}
        assert "the current model is kept" in r.json()["message"]
    assert client.get("/v1/models").json()["models"][0] == before
    r = client.post("/v1/forecast", json={"history": history_rows(20), "horizon_cycles": 3})
    assert r.status_code == 200


def test_eis_uploads_still_go_through_the_ingest_transaction(client, test_data):
    for name in ("eis_m1.csv", "eis_m2.csv"):
        r = client.post(f"/v1/cells/Z/samples?filename={name}",
                        content=(test_data / "store" / name).read_bytes())
        assert r.status_code == 201, r.text
        assert r.json()["report"]["kind"] == "eis" and r.json()["report"]["rows"] > 0
    r = client.post("/v1/cells/Z/samples?filename=again.csv",
                    content=(test_data / "store" / "eis_m1.csv").read_bytes())
    assert r.status_code == 201 and r.json()["report"]["already_present"] is True


def test_upload_takes_the_ingest_options_as_query_parameters(client):
    """A per-cycle table without a clock: ``hours_per_cycle`` estimates it (as ``fadecast
    ingest --hours-per-cycle``); an option value out of range is a 422 naming it."""
    csv = b"cycle_index,discharge_capacity_ah\n" + b"".join(
        f"{i},{1.0 - 0.001 * i:.4f}\n".encode() for i in range(1, 31))
    r = client.post("/v1/cells/H/samples?filename=h.csv&hours_per_cycle=2.5", content=csv)
    assert r.status_code == 201, r.text
    reg = Registry()
    try:
        cycles = reg.load_cycles("H")
    finally:
        reg.close()
    assert cycles["test_time_second"].tolist()[:2] == [9000.0, 18000.0]
    r = client.post("/v1/cells/H2/samples?filename=h.csv&hours_per_cycle=-1", content=csv)
    assert r.status_code == 422 and r.json()["field"] == "hours_per_cycle"
    r = client.post("/v1/cells/H3/samples?filename=h.csv&on_error=ignore", content=csv)
    assert r.status_code == 422 and r.json()["field"] == "on_error"
