"""Any well-formed history gets a forecast (or a clear 4xx), never a 500 (hypothesis)."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.app import create_app
from serving.settings import Settings
from test_serving_model import forecaster, serving_model_dir  # noqa: F401


@st.composite
def histories(draw):
    n = draw(st.integers(1, 60))
    start = draw(st.integers(0, 5000))
    gaps = draw(st.lists(st.integers(1, 20), min_size=n, max_size=n))
    durations = draw(st.lists(st.floats(0.0, 1e5), min_size=n, max_size=n))
    caps = draw(st.lists(st.floats(1e-3, 50.0), min_size=n, max_size=n))
    rows, cycle, t = [], start, 0.0
    optional = draw(st.sampled_from([{}, {"c_rate": 0.5}, {"temperature_celsius": 25.0,
                                                           "charge_capacity_ah": 1.0}]))
    for gap, dur, cap in zip(gaps, durations, caps):
        cycle += gap
        t += dur
        rows.append({"cycle_index": cycle, "test_time_second": t,
                     "discharge_capacity_ah": cap, **optional})
    return rows


@pytest.fixture(scope="module")
def client(forecaster):  # noqa: F811
    with TestClient(create_app(Settings(max_horizon_cycles=300), forecaster=forecaster)) as c:
        yield c


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(histories(), st.integers(1, 300), st.one_of(st.none(), st.floats(1e-3, 1e3)),
       st.floats(0.05, 0.99))
def test_well_formed_history_never_500(client, rows, horizon, pace, eol):
    body = {"history": rows, "horizon_cycles": horizon, "eol_fraction": eol}
    if pace is not None:
        body["future_hours_per_cycle"] = pace
    r = client.post("/v1/forecast", json=body)
    assert r.status_code in (200, 422), r.text
    doc = r.json()
    if r.status_code == 200:
        assert len(doc["forecast"]) == horizon
        assert doc["forecast"][0]["cycle_index"] == rows[-1]["cycle_index"] + 1
        for row in doc["forecast"]:
            q = row["capacity_ah"]
            assert None not in q.values(), (rows, horizon, pace, eol)
            assert q["p05"] <= q["p50"] <= q["p95"]
    else:
        assert {"code", "message", "field"} <= set(doc) and doc["code"] != "internal_error"


def test_non_finite_model_output_is_a_clear_422(client):
    """Found by the property above: a reference of 0.016 Ah with later cycles at 1-2 Ah
    (retention up to 128) drives the model to NaN; the service says so instead of nulls."""
    rows = [{"cycle_index": i + 1, "test_time_second": float(max(0, i - 3)),
             "discharge_capacity_ah": q}
            for i, q in enumerate([0.015625] * 3 + [1.0] * 4 + [2.0])]
    r = client.post("/v1/forecast", json={"history": rows, "horizon_cycles": 1,
                                          "eol_fraction": 0.5})
    if r.status_code == 200:  # a future model may cope: then the numbers must be finite
        assert None not in r.json()["forecast"][0]["capacity_ah"].values()
        return
    body = r.json()
    assert r.status_code == 422 and body["code"] == "forecast_not_finite", body
    assert body["field"] == "history" and "max retention 128" in body["message"]


def test_forecast_document_refuses_nan_output(forecaster):  # noqa: F811
    import math

    import pandas as pd

    from data_registry.errors import ValidationError
    from serving.predict import forecast_document

    class NanModel:
        def forecast(self, frame, **kw):
            doc = forecaster.forecast(frame, **kw)
            doc["forecast"][-1]["capacity_ah"]["p95"] = math.nan
            return doc

    frame = pd.DataFrame({"cycle_index": [1, 2, 3, 4], "test_time_second": [1.0, 2, 3, 4],
                          "discharge_capacity_ah": [1.7, 2.0, 1.5, 3.0]})
    with pytest.raises(ValidationError, match=r"retention ranges 0.75–1.5 of the reference "
                                              r"capacity 2 Ah .*found max retention 1.5"):
        forecast_document(NanModel(), frame, horizon_cycles=3)
    assert len(forecast_document(forecaster, frame, horizon_cycles=3)["forecast"]) == 3
