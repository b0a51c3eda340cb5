"""The pages' JSON and assets without a browser: the same numbers as the API, caching per cell
version, the read token, the vendored plotly.js bundle, the page shell's headers."""
from __future__ import annotations

import gzip
import json

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings
from test_serving_model import forecaster, history_rows, serving_model_dir  # noqa: F401

COLUMNS = ("cycle_index", "test_time_second", "discharge_capacity_ah", "charge_capacity_ah")
WRITE = {"Authorization": "Bearer w"}


def _csv(rows) -> bytes:
    lines = [",".join(COLUMNS)] + [",".join(str(r[c]) for c in COLUMNS) for r in rows]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def client(forecaster, serving_model_dir):  # noqa: F811
    settings = Settings(model_uri=str(serving_model_dir), write_token="w")
    with TestClient(create_app(settings, forecaster=forecaster)) as c:
        yield c


def test_listing_and_cell_view_match_the_cell_forecast_route(client):
    rows = history_rows(60)
    assert client.post("/v1/cells/V1/samples?filename=v1_cycles.csv", content=_csv(rows),
                       headers=WRITE).status_code == 201
    listing = client.get("/v1/cells").json()
    row = next(r for r in listing["cells"] if r["cell_id"] == "V1")
    assert row["last_cycle_index"] == 60 and row["cycles"] == 60
    ref = max(r["discharge_capacity_ah"] for r in rows[:3])
    tail = sorted(r["discharge_capacity_ah"] for r in rows[-3:])[1]
    assert row["retention"] == pytest.approx(tail / ref)
    assert row["advice"]["decision"] in {"stop", "continue"} and row["advice"]["reason"]
    view = client.get("/v1/views/cells/V1").json()
    assert view["history"]["cycle_index"] == list(range(1, 61))
    horizon = view["horizon_cycles"]
    api = client.post("/v1/cells/V1/forecast", json={"horizon_cycles": horizon}).json()
    assert view["forecast"]["capacity_ah"]["p50"] == [r["capacity_ah"]["p50"] for r in api["forecast"]]
    assert view["forecast"]["end_of_life"] == api["end_of_life"] == row["end_of_life"]
    # loss parts: the last observed cycle, then the horizon; bands ordered
    loss = view["forecast"]["loss"]
    assert loss["cycle_index"] == [60] + list(range(61, 61 + horizon))
    for part in ("time_driven", "cycle_driven"):
        q = loss[part]
        assert len(q["p50"]) == len(loss["cycle_index"])  # no backcast row of the weighting
        assert all(a <= b <= c for a, b, c in zip(q["p05"], q["p50"], q["p95"]))
    plan = view["plan"]
    advice = client.post("/v1/cells/V1/advice", json={
        "planned_cycles": plan["planned_cycles"], "tolerance_cycles": plan["tolerance_cycles"]})
    assert {k: v for k, v in advice.json().items()} == view["advice"]


def test_whatif_changes_with_the_pace_and_the_cache_follows_new_data(client):
    rows = history_rows(80)
    client.post("/v1/cells/V2/samples?filename=v2.csv", content=_csv(rows[:50]), headers=WRITE)
    first = client.get("/v1/cells").json()["cells"][0]
    assert first["last_cycle_index"] == 50
    slow = client.get("/v1/views/cells/V2/whatif?hours_per_cycle=40").json()
    fast = client.get("/v1/views/cells/V2/whatif?hours_per_cycle=2").json()
    assert slow["hours_per_cycle"] == 40 and fast["hours_per_cycle"] == 2
    assert slow["test_time_hour"][0] > fast["test_time_hour"][0]
    assert slow["capacity_ah"]["p50"] != fast["capacity_ah"]["p50"]
    # an append is a new cell version: the listing and the view are recomputed
    client.post("/v1/cells/V2/samples?filename=v2b.csv", content=_csv(rows), headers=WRITE)
    assert client.get("/v1/cells").json()["cells"][0]["last_cycle_index"] == 80
    assert client.get("/v1/views/cells/V2").json()["history"]["cycle_index"][-1] == 80


def test_errors_keep_the_api_shape(client):
    r = client.get("/v1/views/cells/nope")
    assert r.status_code == 404 and r.json()["code"] in {"unknown_cell", "unknown_cell_id",
                                                          "not_found"}
    r = client.get("/v1/views/cells/nope/whatif?hours_per_cycle=-1")
    assert r.status_code == 422 and r.json()["field"] == "hours_per_cycle"
    r = client.get("/v1/views/cohorts/none")
    assert r.status_code == 404 and r.json()["code"] == "unknown_cohort"
    assert client.get("/static/../settings.py").status_code == 404
    assert client.get("/static/nope.js").status_code == 404


def test_read_token_protects_the_page_data(forecaster, serving_model_dir):  # noqa: F811
    settings = Settings(model_uri=str(serving_model_dir), read_token="r")
    with TestClient(create_app(settings, forecaster=forecaster)) as c:
        assert c.get("/v1/cells").status_code == 401
        assert c.get("/v1/cells", headers={"Authorization": "Bearer r"}).json()["cells"] == []
        page = c.get("/").text  # the shell itself is public; it asks for the token
        config = json.loads(page.split('type="application/json">')[1].split("</script>")[0])
        assert config["auth"] == {"write": "disabled", "read": True}


def test_pages_and_their_plotly_bundle(client):
    from serving.web.pages import STATIC, plotly_js_path

    path = plotly_js_path()
    assert path == STATIC / "vendor" / "plotly-basic.min.js"
    head = path.read_bytes()[:200].decode()
    assert "plotly.js (basic - minified) v4.1.1" in head and "MIT license" in head
    assert (STATIC / "vendor" / "LICENSE.plotly.txt").read_text().startswith("MIT License")
    r = client.get("/static/vendor/plotly-basic.min.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.content == path.read_bytes()  # httpx un-gzips
    assert r.headers["content-encoding"] == "gzip" and "max-age" in r.headers["cache-control"]
    again = client.get("/static/vendor/plotly-basic.min.js",
                       headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    raw = client.get("/static/vendor/plotly-basic.min.js",
                     headers={"Accept-Encoding": "identity"})
    assert raw.headers.get("content-encoding") is None and len(raw.content) > 1_000_000
    assert gzip.decompress(gzip.compress(raw.content)) == raw.content
    for url, script in (("/", "cells"), ("/cells/V1", "cell"), ("/cohorts/pto", "cohort"),
                        ("/model", "model")):
        r = client.get(url)
        assert r.status_code == 200 and f"/static/{script}.js" in r.text
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert ("plotly-basic.min.js" in r.text) == (script in ("cell", "cohort"))
        assert "cdn" not in r.text.lower()
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")
    doc = client.get("/openapi.json").json()
    assert "/" not in doc["paths"] and "/v1/cells" in doc["paths"]


def test_model_view_reports_card_and_run(client):
    m = client.get("/v1/views/model").json()
    assert m["version"] == "quick-0" and m["training_domain"]["sources"] == ["synthetic"]
    assert {"capacity", "time_share"} <= set(m["conformal"])
    assert m["mlflow"]["run_id"] is None and "names no MLflow run" in m["mlflow"]["note"]


def test_aw_points_placed_by_cycle_or_time_and_split_by_voltage():
    """One point per fitted spectrum: at its cycle_count, else at the first cycle ending at or
    after its time; top of charge = within 0.05 V of the event's highest voltage when the
    event spans > 0.2 V (ml.features.warburg_trend.top_of_charge)."""
    import numpy as np
    import pandas as pd

    from serving.web.cell_views import aw_points

    table = pd.DataFrame({"cycle_index": [1, 2, 3], "test_time_second": [3600., 7200., 10800.]})
    f = np.logspace(3, -2, 30)
    w = 2 * np.pi * f
    rows = []
    for mid, cyc, t, volt, sigma in (("a", 1, np.nan, 3.0, 0.011), ("b", 1, np.nan, 3.4, 0.05),
                                     ("c", np.nan, 5000.0, 3.0, 0.012)):
        rows += [{"measurement_id": mid, "cycle_count": cyc, "test_time_second": t,
                  "voltage_volt": volt, "frequency_hz": fi,
                  "z_real_ohm": 0.05 + sigma / np.sqrt(wi), "z_imag_ohm": -sigma / np.sqrt(wi)}
                 for fi, wi in zip(f, w)]
    got = aw_points(table, pd.DataFrame(rows), None)
    assert got["baseline"]["cycle_index"] == [1.0, 2.0]  # 5000 s ends in cycle 2 (7200 s)
    assert got["baseline"]["value"] == pytest.approx([0.011, 0.012], rel=1e-3)
    assert got["top_of_charge"]["cycle_index"] == [1.0]
    assert got["top_of_charge"]["value"] == pytest.approx([0.05], rel=1e-3)


def test_listing_answers_at_once_and_fills_in_pending_rows(client):
    for i in range(3):
        r = client.post(f"/v1/cells/P{i}/samples?filename=p{i}.csv",
                        content=_csv(history_rows(30, seed=i)), headers=WRITE)
        assert r.status_code == 201, r.text
    first = client.get("/v1/cells?budget_ms=0").json()
    assert first["pending"] == 3 and all(r["pending"] for r in first["cells"])
    assert [r["cell_id"] for r in first["cells"]] == ["P0", "P1", "P2"]
    seen = 0
    for _ in range(5):  # a tiny budget still computes one row per call
        doc = client.get("/v1/cells?budget_ms=1").json()
        seen += 1
        if doc["pending"] == 0:
            break
    assert doc["pending"] == 0 and seen <= 3
    assert all(r["advice"]["decision"] in {"stop", "continue"} for r in doc["cells"])
