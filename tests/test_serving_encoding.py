"""The request/response fast path: history rows → frame in one pass, strict-JSON cleaning,
the orjson response — same values as the plain encoders."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from serving.history import OPTIONAL_COLUMNS, frame_from_rows
from serving.predict import clean_json
from serving.responses import FastJSONResponse


def test_clean_json_by_hand():
    doc = {"a": [np.float64(1.5), float("nan"), np.int64(3), (1, float("inf"))],
           "b": None, "c": True, "d": "x", "e": {"f": np.float32(0.25), "g": -math.inf}}
    out = clean_json(doc)
    assert out == {"a": [1.5, None, 3, [1, None]], "b": None, "c": True, "d": "x",
                   "e": {"f": 0.25, "g": None}}
    assert type(out["a"][0]) is float and type(out["a"][2]) is int
    assert type(out["e"]["f"]) is float
    json.dumps(out, allow_nan=False)  # strict JSON


def test_fast_response_encodes_the_same_values_as_json():
    doc = clean_json({"forecast": [{"cycle_index": 3, "capacity_ah": {"p05": 0.1 + 0.2,
                                                                       "p50": 1e-05,
                                                                       "p95": None}}],
                      "cell_id": "é-1", "end_of_life": None})
    body = FastJSONResponse(doc).body
    assert json.loads(body) == doc
    assert json.loads(body)["forecast"][0]["capacity_ah"]["p05"] == 0.1 + 0.2  # bit for bit
    raw = FastJSONResponse({"x": np.array([1.5, 2.0]), "y": float("nan")}).body
    assert json.loads(raw) == {"x": [1.5, 2.0], "y": None}


def test_frame_from_rows_one_pass_by_hand():
    rows = [{"cycle_index": 1, "test_time_second": 10.0, "discharge_capacity_ah": 1.0,
             "c_rate": None, "rest_second": 5.0},
            {"cycle_index": 4, "test_time_second": 25.5, "discharge_capacity_ah": 0.9,
             "c_rate": 0.5}]
    frame = frame_from_rows(rows)
    assert list(frame.columns) == ["cycle_index", "test_time_second", "discharge_capacity_ah",
                                   "rest_second", "c_rate"]
    assert frame["cycle_index"].dtype == np.int64 and frame["cycle_index"].tolist() == [1, 4]
    assert frame["test_time_second"].tolist() == [10.0, 25.5]
    np.testing.assert_array_equal(frame["c_rate"], [np.nan, 0.5])
    np.testing.assert_array_equal(frame["rest_second"], [5.0, np.nan])
    assert set(frame.columns) - {"cycle_index", "test_time_second",
                                 "discharge_capacity_ah"} <= set(OPTIONAL_COLUMNS)


@pytest.mark.parametrize("n", [1, 3])
def test_frame_from_rows_without_optionals(n):
    rows = [{"cycle_index": i, "test_time_second": 3600.0 * i, "discharge_capacity_ah": 1.0}
            for i in range(1, n + 1)]
    frame = frame_from_rows(rows)
    assert list(frame.columns) == ["cycle_index", "test_time_second", "discharge_capacity_ah"]
    assert len(frame) == n and frame["test_time_second"].iloc[-1] == 3600.0 * n


def test_parse_json_matches_json_loads_on_what_orjson_refuses():
    from serving.json_route import parse_json

    body = b'{"a": [1, 2.5, "x", null, true], "b": {"c": 1e-05}}'
    assert parse_json(body) == json.loads(body)
    nan = parse_json(b'{"rest_second": NaN, "big": 123456789012345678901234567890}')
    assert math.isnan(nan["rest_second"]) and nan["big"] == 123456789012345678901234567890
    with pytest.raises(json.JSONDecodeError) as exc:
        parse_json(b'{"history": [')
    assert exc.value.pos == 13


def test_per_request_dependencies_run_on_the_event_loop():
    """A plain ``def`` dependency costs a thread-pool hop per request; these must stay async."""
    import inspect

    from serving.app import create_app
    from serving.deps import app_settings, current_model, model_slot, require_read

    app = create_app()
    assert inspect.iscoroutinefunction(current_model)
    assert inspect.iscoroutinefunction(model_slot)
    assert inspect.iscoroutinefunction(app_settings)
    assert inspect.iscoroutinefunction(require_read)
    # no dependency override: with one, FastAPI re-analyses every dependency on every request
    assert app.dependency_overrides == {}
