"""Schemathesis against the OpenAPI document, in-process (ASGI): no input yields a 500.

Bounded: a handful of examples per operation so the suite stays fast.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from serving.app import create_app
from serving.settings import Settings
from test_serving_model import forecaster, serving_model_dir  # noqa: F401


OPERATIONS = ["GET /healthz", "GET /readyz", "POST /v1/forecast", "POST /v1/forecast/batch",
              "POST /v1/advice",
              "POST /v1/cells/{cell_id}/samples", "POST /v1/cells/{cell_id}/forecast",
              "POST /v1/cells/{cell_id}/advice",
              "GET /v1/models", "POST /v1/admin/reload", "POST /v1/cohorts/attribution"]


RAW = Path(__file__).resolve().parent.parent / "examples" / "pto_c10_raw.csv"
AUTH = {"Authorization": "Bearer tok"}


@pytest.fixture(scope="module")
def api_schema(forecaster, serving_model_dir):  # noqa: F811
    app = create_app(Settings(model_uri=str(serving_model_dir), admin_token="tok",
                              max_history_cycles=200, max_horizon_cycles=500,
                              max_upload_bytes=100_000), forecaster=forecaster)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations(schema):
    out = {}
    for result in schema.get_all_operations():
        op = result.ok()
        out[f"{op.method.upper()} {op.path}"] = op
    return out


def test_schema_lists_every_operation(api_schema):
    assert set(OPERATIONS) <= set(_operations(api_schema))


@pytest.mark.parametrize("name", OPERATIONS)
def test_no_input_yields_a_server_error(api_schema, name):
    op = _operations(api_schema)[name]

    @settings(max_examples=10, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(op.as_strategy())
    def check(case):
        response = case.call(headers=AUTH)
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
        if response.status_code >= 400:
            body = response.json()
            assert {"code", "message", "field"} <= set(body), body

    check()


def test_stateful_upload_then_forecast_and_advise_never_500(api_schema):
    """Schemathesis' state machine follows the OpenAPI links (upload → forecast / advice of the
    same cell); every other upload body is a growing prefix of a real export, so the links
    reach stored cells, appends and idempotent re-sends."""
    lines = RAW.read_bytes().splitlines(keepends=True)
    uploads = {"n": 0}

    class Workflow(api_schema.as_state_machine()):
        def before_call(self, case):
            if case.path.endswith("/samples") and case.method.upper() == "POST":
                uploads["n"] += 1
                if uploads["n"] % 2:
                    case.body = b"".join(lines[:150 * (1 + uploads["n"] % 7)])
                    case.query = {"filename": "run.csv"}

        def get_call_kwargs(self, case):
            return {"headers": AUTH}

        def validate_response(self, response, case, **kwargs):
            assert response.status_code < 500, (case.method, case.path, response.text[:500])
            if response.status_code >= 400:
                assert {"code", "message", "field"} <= set(response.json())

    Workflow.run(settings=settings(max_examples=6, stateful_step_count=4, deadline=None,
                                   derandomize=True, database=None,
                                   suppress_health_check=list(HealthCheck)))
    assert uploads["n"] >= 1
