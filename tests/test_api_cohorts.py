"""``POST /v1/cohorts/attribution``: the CLI's answer over HTTP, 422s that name the field."""
from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings
from ml.synthetic import make_cohort

COLS = ["cycle_index", "test_time_second", "discharge_capacity_ah", "c_rate", "rest_second",
        "temperature_celsius"]


def _rows(frame, n):
    return [{k: (int(v) if k == "cycle_index" else float(v)) for k, v in r.items()}
            for r in frame[COLS].head(n).to_dict(orient="records")]


@pytest.fixture(scope="module")
def body():
    recs = make_cohort("api", 7304)
    plan = [{k: v for k, v in r.items() if k != "discharge_capacity_ah"}
            for r in _rows(recs[3].cycles, 30)]
    return {"cohort": {"name": "api"},
            "cells": [{"cell_id": r.cell_id, "history": _rows(r.cycles, 60)} for r in recs[:3]],
            "plans": [{"name": "next", "schedule": plan}], "horizon_cycles": 3}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(model_uri=str(tmp_path_factory.mktemp("m") / "none"))
    with TestClient(create_app(settings)) as c:
        yield c


def test_attribution_200_matches_the_library(client, body):
    from ml.cohort.document import CellInput, PlanInput, attribute
    from serving.history import frame_from_rows
    from serving.routes.cohorts import frame_from_rows_plan
    from serving.schemas import HistoryRow
    from serving.cohort_schemas import PlanRow

    r = client.post("/v1/cohorts/attribution", json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["cohort"]["name"] == "api" and [c["cell_id"] for c in doc["cells"]] == \
        ["api_a", "api_b", "api_c"]
    assert len(doc["cells"][0]["forecast"]) == 3 and len(doc["plans"][0]["forecast"]) == 30
    assert doc["identifiability"]["next_protocol"]["label"]
    same = attribute(
        [CellInput(c["cell_id"], frame_from_rows([HistoryRow(**h) for h in c["history"]]),
                   f"cells[{i}]") for i, c in enumerate(body["cells"])],
        [PlanInput("next", frame_from_rows_plan([PlanRow(**p) for p in
                                                 body["plans"][0]["schedule"]]), "plans[0]")],
        cohort_name="api", horizon_cycles=3)
    for key in ("time_share", "loss_time_fraction"):
        assert doc["cells"][1]["attribution"][key] == \
            pytest.approx(same["cells"][1]["attribution"][key])


def test_one_cell_is_answered_with_advice(client, body):
    one = {"cells": body["cells"][:1]}
    r = client.post("/v1/cohorts/attribution", json=one)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["identifiability"]["run_a_sibling"] is True
    assert doc["plans"] == [] and "forecast" not in doc["cells"][0]


def _broken(body, how):
    b = copy.deepcopy(body)
    if how == "duplicate":
        b["cells"][1]["cell_id"] = "api_a"
    elif how == "clock":
        b["cells"][1]["history"][5]["test_time_second"] = 1.0
    elif how == "nominal":
        b["cells"][0]["nominal_capacity_ah"] = 1.1
        b["cells"][1]["nominal_capacity_ah"] = 5.0
    elif how == "plan_clock":
        del b["plans"][0]["schedule"][2]["test_time_second"]
    elif how == "no_cells":
        b["cells"] = []
    elif how == "short":
        b["cells"][2]["history"] = b["cells"][2]["history"][:2]
    return b


@pytest.mark.parametrize("how, field, code", [
    ("duplicate", "cells.1.cell_id", "duplicate_cell"),
    ("clock", "cells.1.history.5.test_time_second", "time_backwards"),
    ("nominal", "nominal_capacity_ah", "mixed_nominal_capacity"),
    ("plan_clock", "plans.0.schedule.2.test_time_second", "invalid_input"),
    ("no_cells", "cells", "invalid_input"),
    ("short", "cells.2.cycle_index", "history_too_short"),
])
def test_bad_input_is_422_naming_the_field(client, body, how, field, code):
    r = client.post("/v1/cohorts/attribution", json=_broken(body, how))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["code"] == code, r.json()


def test_nan_literal_is_422(client):
    raw = (b'{"cells":[{"cell_id":"x","history":[{"cycle_index":1,"test_time_second":NaN,'
           b'"discharge_capacity_ah":1}]}]}')
    r = client.post("/v1/cohorts/attribution", content=raw,
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "cells.0.history.0.test_time_second"


def test_plan_clock_follows_capacity_matches_the_library(client, body):
    from ml.cohort.document import CellInput, PlanInput, attribute
    from serving.cohort_schemas import PlanRow
    from serving.history import frame_from_rows
    from serving.routes.cohorts import frame_from_rows_plan
    from serving.schemas import HistoryRow

    b = copy.deepcopy(body)
    b["plan_clock"] = "follows_capacity"
    r = client.post("/v1/cohorts/attribution", json=b)
    assert r.status_code == 200, r.text
    got = r.json()["plans"][0]
    want = attribute(
        [CellInput(c["cell_id"], frame_from_rows([HistoryRow(**h) for h in c["history"]]),
                   f"cells[{i}]") for i, c in enumerate(b["cells"])],
        [PlanInput("next", frame_from_rows_plan([PlanRow(**p) for p in
                                                 b["plans"][0]["schedule"]]), "plans[0]")],
        cohort_name="api", horizon_cycles=3, plan_clock="follows_capacity")["plans"][0]
    assert got["clock"] == want["clock"] == "follows_capacity"
    assert [x["test_time_second"] for x in got["forecast"]] == \
        pytest.approx([x["test_time_second"] for x in want["forecast"]])
    given = client.post("/v1/cohorts/attribution", json=body).json()["plans"][0]
    assert given["clock"] == "given"
    assert got["forecast"][-1]["test_time_second"] < given["forecast"][-1]["test_time_second"]
    bad = client.post("/v1/cohorts/attribution", json={**b, "plan_clock": "recorded"})
    assert bad.status_code == 422 and bad.json()["field"] == "plan_clock", bad.text
    for row in b["plans"][0]["schedule"]:
        row.pop("c_rate", None)
    r = client.post("/v1/cohorts/attribution", json=b)
    assert r.status_code == 422 and r.json()["field"] == "plans.0.schedule.0.c_rate", r.text


def test_a_cell_or_plan_whose_clock_never_moves_is_refused(client, body):
    """Found by fuzzing (session 14): an all-zero clock was fitted and forecast to a negative
    capacity."""
    b = copy.deepcopy(body)
    for row in b["cells"][1]["history"]:
        row["test_time_second"] = 0.0
    r = client.post("/v1/cohorts/attribution", json=b)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["code"] == "clock_not_advancing"
    assert err["field"] == "cells.1.test_time_second" and "'api_b'" in err["message"]
    b = copy.deepcopy(body)
    for row in b["plans"][0]["schedule"]:
        row["test_time_second"] = 3600.0
    r = client.post("/v1/cohorts/attribution", json=b)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "clock_not_advancing"
    assert r.json()["field"] == "plans.0.test_time_second"


def test_far_ahead_capacity_stays_physical(client, body):
    """5,000 cycles past fast-fading histories: capacity quantiles never below zero, each
    cause's loss within [0, the cell's level]."""
    b = copy.deepcopy(body)
    b["horizon_cycles"] = 5_000
    b.pop("plans")
    for cell in b["cells"]:
        for row in cell["history"]:
            row["discharge_capacity_ah"] *= 1.0 - 0.004 * row["cycle_index"]
    r = client.post("/v1/cohorts/attribution", json=b)
    assert r.status_code == 200, r.text
    rows = [row for c in r.json()["cells"] for row in c["forecast"]]
    assert min(row["capacity_ah"]["p05"] for row in rows) >= 0.0
    assert min(row["capacity_ah"]["p05"] for row in rows) == 0.0  # it does reach zero
    for row in rows:
        for key in ("loss_time_fraction", "loss_cycle_fraction"):
            q = row[key]
            assert 0.0 <= q["p05"] <= q["p50"] <= q["p95"] <= 1.5, (key, q)
    for c in r.json()["cells"]:  # past zero it does not come back (was 29 x the reference)
        p95 = [row["capacity_ah"]["p95"] for row in c["forecast"]]
        assert max(p95[len(p95) // 2:]) <= max(p95[:10]) + 1e-9, c["cell_id"]
