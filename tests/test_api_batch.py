"""``POST /v1/forecast/batch`` and stored-cell answers reused until the cell changes."""
from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings
from test_serving_model import forecaster, history_rows, serving_model_dir  # noqa: F401

RAW = Path(__file__).resolve().parent.parent / "examples" / "pto_c10_raw.csv"


@pytest.fixture
def client(forecaster, serving_model_dir):  # noqa: F811
    app = create_app(Settings(model_uri=str(serving_model_dir), write_token="w",
                              max_batch_cells=5), forecaster=forecaster)
    with TestClient(app, headers={"Authorization": "Bearer w"}) as c:
        yield c


def test_batch_equals_one_by_one_and_isolates_a_bad_item(client):
    items = [{"history": history_rows(30 + 5 * k, seed=k), "horizon_cycles": 4,
              "cell": {"cell_id": f"b{k}"}} for k in range(3)]
    items.insert(1, {"history": history_rows(2), "horizon_cycles": 4})  # too short
    r = client.post("/v1/forecast/batch", json={"items": items})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3]
    assert [x["ok"] for x in results] == [True, False, True, True]
    assert results[1]["error"]["code"] == "history_too_short"
    for x, item in zip(results, items):
        if x["ok"]:
            assert x["forecast"] == client.post("/v1/forecast", json=item).json()
    assert r.json()["cells_per_second"] > 0


def test_batch_limits_are_checked_before_validation(client):
    junk = [{"history": [{"x": 1}], "horizon_cycles": 1}] * 6
    r = client.post("/v1/forecast/batch", json={"items": junk})
    assert r.status_code == 422 and r.json()["code"] == "batch_too_large"


def test_stored_cell_answer_is_reused_until_the_cell_changes(client):
    lines = RAW.read_bytes().splitlines(keepends=True)
    assert client.post("/v1/cells/S/samples?filename=s.csv",
                       content=b"".join(lines[:2000])).status_code == 201
    ask = {"horizon_cycles": 5}
    first = client.post("/v1/cells/S/forecast", json=ask)
    cache = client.app.state.cell_responses
    n = len(cache._items)
    assert client.post("/v1/cells/S/forecast", json=ask).content == first.content
    assert len(cache._items) == n  # answered from the cache
    assert client.post("/v1/cells/S/samples?filename=s.csv",
                       content=b"".join(lines)).status_code == 201
    later = client.post("/v1/cells/S/forecast", json=ask).json()
    assert later["forecast"][0]["cycle_index"] > first.json()["forecast"][0]["cycle_index"]
