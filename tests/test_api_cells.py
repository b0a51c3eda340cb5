"""Raw uploads through the registry, forecasts of registered cells, and hot model reload."""
from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from data_registry.store import Registry
from serving.app import create_app
from serving.settings import Settings
from test_serving_model import forecaster, history_rows, serving_model_dir  # noqa: F401

COLUMNS = ("cycle_index", "test_time_second", "discharge_capacity_ah", "charge_capacity_ah")


def _csv(rows, bad_row=None):
    lines = [",".join(COLUMNS)]
    for i, r in enumerate(rows):
        vals = [str(r[c]) for c in COLUMNS]
        if i == bad_row:
            vals[2] = "n/a"
        lines.append(",".join(vals))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def client(forecaster, serving_model_dir):  # noqa: F811
    settings = Settings(model_uri=str(serving_model_dir), admin_token="tok", write_token="wtok")
    with TestClient(create_app(settings, forecaster=forecaster),
                    headers={"Authorization": "Bearer wtok"}) as c:
        yield c


def test_upload_then_forecast_the_cell(client):
    rows = history_rows(40)
    r = client.post("/v1/cells/U1/samples?filename=u1_cycles.csv", content=_csv(rows))
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["cell_id"] == "U1" and info["bytes"] == len(_csv(rows))
    assert info["report"]["rows"] == 40
    r = client.post("/v1/cells/U1/forecast", json={"horizon_cycles": 10})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["cell_id"] == "U1"
    assert [x["cycle_index"] for x in doc["forecast"]] == list(range(41, 51))
    # the same rows posted as a history give the same forecast numbers
    direct = client.post("/v1/forecast", json={
        "history": [{c: row[c] for c in COLUMNS} for row in rows], "horizon_cycles": 10,
        "cell": {"cell_id": "U1"}}).json()
    assert direct == doc


def test_advice_for_a_registered_cell_equals_advice_on_its_history(client):
    rows = history_rows(60)
    assert client.post("/v1/cells/U4/samples?filename=u4.csv",
                       content=_csv(rows)).status_code == 201
    ask = {"planned_cycles": 300, "tolerance_cycles": 20, "spec": {"min_cycles_to_eol": 150}}
    r = client.post("/v1/cells/U4/advice", json=ask)
    assert r.status_code == 200, r.text
    direct = client.post("/v1/advice", json={
        **ask, "history": [{c: row[c] for c in COLUMNS} for row in rows],
        "cell": {"cell_id": "U4"}}).json()
    assert r.json() == direct and r.json()["decision"] in {"stop", "continue"}
    assert client.post("/v1/cells/ghost/advice", json=ask).status_code == 404


def test_failed_upload_leaves_the_cell_unchanged(client):
    rows = history_rows(40)
    assert client.post("/v1/cells/U2/samples?filename=a.csv",
                       content=_csv(rows[:30])).status_code == 201
    before = client.post("/v1/cells/U2/forecast", json={"horizon_cycles": 5}).json()
    r = client.post("/v1/cells/U2/samples?filename=b.csv", content=_csv(rows[30:], bad_row=4))
    assert 400 <= r.status_code < 500, r.text
    body = r.json()
    assert {"code", "message", "field"} <= set(body)
    assert body["field"] == "discharge_capacity_ah" and "b.csv" in body["message"]
    registry = Registry()
    try:
        assert len(registry.load_cycles("U2")) == 30
    finally:
        registry.close()
    assert client.post("/v1/cells/U2/forecast", json={"horizon_cycles": 5}).json() == before


def test_unknown_cell_and_bad_ids(client):
    r = client.post("/v1/cells/nope/forecast", json={"horizon_cycles": 5})
    assert r.status_code == 404 and "nope" in r.json()["message"]
    r = client.post("/v1/cells/bad%20id/forecast", json={"horizon_cycles": 5})
    assert r.status_code == 422 and r.json()["field"] == "cell_id"
    r = client.post("/v1/cells/U3/samples?filename=x.csv", content=b"")
    assert r.status_code == 422 and r.json()["code"] == "empty_upload"


def test_reload_swaps_model_without_failing_in_flight_requests(
        client, serving_model_dir):  # noqa: F811
    body = {"history": history_rows(60), "horizon_cycles": 20}
    statuses: list[int] = []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            statuses.append(client.post("/v1/forecast", json=body).status_code)

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        before = client.get("/v1/models").json()["models"][0]["loaded_at_unix"]
        for _ in range(2):
            r = client.post("/v1/admin/reload", headers={"Authorization": "Bearer tok"},
                            json={"model_uri": str(serving_model_dir)})
            assert r.status_code == 200, r.text
    finally:
        stop.set()
        for w in workers:
            w.join()
    after = client.get("/v1/models").json()["models"][0]["loaded_at_unix"]
    assert after > before
    assert len(statuses) >= 3 and set(statuses) == {200}


def test_upload_takes_a_stated_eis_cycle_and_an_active_mass(client):
    import numpy as np

    f = np.logspace(4, -1, 30)
    z = 0.05 + 0.2 * (1 - 1j) / np.sqrt(2 * np.pi * f)
    zview = ["ZPLOT2 ASCII", "  Freq(Hz)\tAmpl\tBias\tTime(Sec)\tZ'(a)\tZ''(b)\tGD\tErr\tRange",
             "End Comments"] + [f"{a:.6E}\t0.01\t0\t{k}\t{b.real:.6E}\t{b.imag:.6E}\t0\t0\t3"
                                for k, (a, b) in enumerate(zip(f, z))]
    r = client.post("/v1/cells/E1/samples?filename=E1_c50.z&eis_cycle=50",
                    content=("\n".join(zview) + "\n").encode())
    assert r.status_code == 201, r.text
    assert "eis_cycle_count_unknown" not in {w["code"] for w in r.json()["warnings"]}
    table = ["Cycle,Discharge capacity (mAh/g),Time (h)"] + [
        f"{n},{400 - n},{20 * n}" for n in range(1, 31)]
    body = ("\n".join(table) + "\n").encode()
    r = client.post("/v1/cells/M1/samples?filename=m1.csv", content=body)
    assert r.status_code == 422 and r.json()["code"] == "needs_active_mass"
    r = client.post("/v1/cells/M1/samples?filename=m1.csv&active_mass_g=0.005", content=body)
    assert r.status_code == 201, r.text
    assert r.json()["report"]["rows"] == 30
