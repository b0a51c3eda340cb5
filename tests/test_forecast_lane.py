"""``serving.forecast_lane``: POST /v1/forecast answered without FastAPI's per-request machinery
must be invisible — the same status, headers and bytes as the route for every body, valid or
not — and must actually answer the valid ones itself (else it only adds a copy of the body)."""
from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

import serving.forecast_lane as lane_module
from serving.app import create_app
from serving.settings import Settings
from test_serving_model import forecaster, history_rows, serving_model_dir  # noqa: F401


def _apps(forecaster, model_dir, **kw):  # noqa: F811
    common = dict(model_uri=str(model_dir), max_history_cycles=300, max_horizon_cycles=2_000,
                  **kw)
    return (create_app(Settings(**common), forecaster=forecaster),
            create_app(Settings(**common, fast_lane=False), forecaster=forecaster))


def _bodies() -> list[tuple[str, bytes, dict[str, str]]]:
    rows = history_rows(120)
    ok = {"history": rows[:60], "horizon_cycles": 30}
    nan_literal = json.dumps(ok).replace(str(rows[3]["discharge_capacity_ah"]), "NaN", 1)
    return [
        ("valid", json.dumps(ok).encode(), {}),
        ("valid, options", json.dumps({
            "history": rows, "horizon_cycles": 200, "future_hours_per_cycle": 2.5,
            "eol_fraction": 0.85, "cell": {"cell_id": "A1", "nominal_capacity_ah": 5.0,
                                           "chemistry": "NMC"}}).encode(), {}),
        ("valid, 3 cycles", json.dumps({"history": rows[:3], "horizon_cycles": 5}).encode(),
         {}),
        ("broken JSON", b'{"history": [', {}),
        ("NaN literal", nan_literal.encode(), {}),
        ("missing field", json.dumps({"horizon_cycles": 5}).encode(), {}),
        ("extra field", json.dumps({**ok, "colour": "red"}).encode(), {}),
        ("history too long", json.dumps({"history": [{"x": 1}] * 301,
                                         "horizon_cycles": 5}).encode(), {}),
        ("horizon too long", json.dumps({**ok, "horizon_cycles": 5000}).encode(), {}),
        ("too short", json.dumps({"history": rows[:1], "horizon_cycles": 5}).encode(), {}),
        ("not an object", b"[1, 2, 3]", {}),
    ]


def _post(client, body, headers):
    return client.post("/v1/forecast", content=body,
                       headers={"content-type": "application/json", **headers})


def _same(a, b, label):
    assert a.status_code == b.status_code, label
    assert a.content == b.content, label
    assert a.headers.get("content-type") == b.headers.get("content-type"), label
    assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate"), label


def test_lane_answers_like_the_route(forecaster, serving_model_dir):  # noqa: F811
    lane_app, route_app = _apps(forecaster, serving_model_dir)
    with TestClient(lane_app) as lane, TestClient(route_app) as route:
        for label, body, headers in _bodies():
            _same(_post(lane, body, headers), _post(route, body, headers), label)


def test_lane_keeps_the_token_rules(forecaster, serving_model_dir):  # noqa: F811
    lane_app, route_app = _apps(forecaster, serving_model_dir, read_token="r", write_token="w")
    body = _bodies()[0][1]
    with TestClient(lane_app) as lane, TestClient(route_app) as route:
        for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": "Basic r"},
                        {"authorization": "Bearer r"}, {"authorization": "Bearer w"}):
            a, b = _post(lane, body, headers), _post(route, body, headers)
            _same(a, b, str(headers))
        assert _post(lane, body, {}).status_code == 401
        assert _post(lane, body, {"authorization": "Bearer r"}).status_code == 200


def test_lane_answers_valid_requests_itself(forecaster, serving_model_dir,  # noqa: F811
                                            monkeypatch):
    answered: list[bool] = []
    original = lane_module.ForecastLane._answer

    def spy(self, scope, body):
        out = original(self, scope, body)
        answered.append(out is not None)
        return out

    monkeypatch.setattr(lane_module.ForecastLane, "_answer", spy)
    lane_app, _ = _apps(forecaster, serving_model_dir)
    with TestClient(lane_app) as lane:
        for label, body, headers in _bodies():
            _post(lane, body, headers)
    assert answered == [label.startswith("valid") for label, _, _ in _bodies()]


def test_lane_off_and_no_model_fall_through(forecaster, serving_model_dir,  # noqa: F811
                                            monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(lane_module.ForecastLane, "_answer",
                        lambda self, scope, body: calls.append(1))
    _, route_app = _apps(forecaster, serving_model_dir)
    with TestClient(route_app) as route:
        assert _post(route, _bodies()[0][1], {}).status_code == 200
    assert calls == []  # fast_lane=False: the lane never looks at the body
    empty = create_app(Settings(model_uri=str(serving_model_dir / "missing")))
    monkeypatch.undo()
    with TestClient(empty) as client:
        r = _post(client, _bodies()[0][1], {})
    assert r.status_code == 503 and r.json()["code"] == "model_not_loaded"


def test_client_leaving_mid_body_reaches_the_route(forecaster, serving_model_dir):  # noqa: F811
    """A disconnect before the body ended: the lane hands what it read plus the disconnect to
    the app, which answers exactly as it would have without the lane."""
    body = _bodies()[0][1]
    sent: dict[str, list] = {}
    for name, app in zip(("lane", "route"), _apps(forecaster, serving_model_dir)):
        messages = [{"type": "http.request", "body": body[:100], "more_body": True},
                    {"type": "http.disconnect"}]

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)

        out: list = []

        async def send(message):
            out.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/v1/forecast",
                 "raw_path": b"/v1/forecast", "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", b"application/json")],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "app": app}

        async def run():
            async with app.router.lifespan_context(app):
                await asyncio.wait_for(app(scope, receive, send), 30)

        try:
            asyncio.run(run())
            raised = None
        except Exception as exc:  # noqa: BLE001 - the route's own outcome, compared below
            raised = type(exc).__name__
        sent[name] = [(m["type"], m.get("status")) for m in out] + [raised]
    assert sent["lane"] == sent["route"]


@pytest.mark.parametrize("n", [60, 120])
def test_lane_bytes_equal_the_cli_document(forecaster, serving_model_dir, n):  # noqa: F811
    """The lane's answer is the forecast document the CLI path computes from a DataFrame."""
    from serving.history import frame_from_rows
    from serving.predict import forecast_document

    rows = history_rows(n)
    lane_app, _ = _apps(forecaster, serving_model_dir)
    with TestClient(lane_app) as lane:
        got = _post(lane, json.dumps({"history": rows, "horizon_cycles": 40}).encode(), {})
    want = forecast_document(forecaster, frame_from_rows(rows), horizon_cycles=40)
    assert got.json() == json.loads(json.dumps(want))
