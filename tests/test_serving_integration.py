"""The service passes the latest ``ml.inference`` / ``ml.advice`` fields through: observed-EOL
hours, the trained-trajectory extrapolation check, the forecast's ``censored`` flags, and the CSV
stem as the CLI's cell id (the domain verdict, retention included: tests/test_advice_domain.py)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.cli import main
from serving.history import cycles_csv_cell_id
from serving.predict import advice_document
from serving.schemas import ForecastResponse
from serving.settings import Settings
from test_serving_model import forecaster, history_rows, serving_model_dir  # noqa: F401


class _WithDomain:
    """The real forecaster with another card domain."""

    def __init__(self, inner, domain):
        self.inner, self.domain = inner, domain

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_observed_eol_reports_its_elapsed_hour(forecaster):  # noqa: F811
    frame = pd.DataFrame(history_rows(60))
    ref = float(frame["discharge_capacity_ah"].iloc[:3].max())
    frame.loc[55:, "discharge_capacity_ah"] = 0.7 * ref  # EOL (80 %) observed at cycle 56
    doc = advice_document(forecaster, frame, planned_cycles=300, tolerance_cycles=25)
    assert doc["decision"] == "stop" and "observed at cycle 56" in doc["reason"]
    hour = float(frame["test_time_second"].iloc[55]) / 3600.0
    assert doc["end_of_life"]["cycle_index"] == {"p05": 56, "p50": 56, "p95": 56}
    assert doc["end_of_life"]["elapsed_hour"] == pytest.approx(
        {"p05": hour, "p50": hour, "p95": hour})


def test_predicted_eol_far_beyond_the_trained_trajectories_is_out_of_domain(
        forecaster):  # noqa: F811
    frame = pd.DataFrame(history_rows(60))
    model = _WithDomain(forecaster, {"cycle_index": [1.0, 20.0]})  # 60 <= 4 x 20: cell in range
    doc = advice_document(model, frame, planned_cycles=300, tolerance_cycles=1000)
    assert not doc["checks"]["in_domain"] and doc["decision"] == "continue"
    assert "predicted EOL cycle" in doc["reason"]
    assert "beyond 4× the longest trained trajectory (20 cycles)" in doc["reason"]
    # the same cell with a long enough trained trajectory is inside the domain
    wide = _WithDomain(forecaster, {"cycle_index": {"min": 1.0, "max": 1e6}})
    assert advice_document(wide, frame, planned_cycles=300,
                           tolerance_cycles=1000)["checks"]["in_domain"]


def test_forecast_response_keeps_the_censored_flags(forecaster, serving_model_dir):  # noqa: F811
    settings = Settings(model_uri=str(serving_model_dir), max_horizon_cycles=2_000)
    body = {"history": history_rows(120), "horizon_cycles": 2_000}
    direct = forecaster.forecast(pd.DataFrame(body["history"]), horizon_cycles=2_000)
    assert direct["end_of_life"] is not None and "censored" in direct["end_of_life"]
    with TestClient(create_app(settings, forecaster=forecaster)) as client:
        doc = client.post("/v1/forecast", json=body).json()
    assert doc["end_of_life"]["censored"] == direct["end_of_life"]["censored"]
    assert set(doc["end_of_life"]["censored"]) == {"p05", "p50", "p95"}
    # the documented response model carries the field (clients generated from OpenAPI see it)
    kept = ForecastResponse.model_validate(doc).model_dump()["end_of_life"]
    assert kept["censored"] == doc["end_of_life"]["censored"]
    schemas = create_app(settings, forecaster=forecaster).openapi()["components"]["schemas"]
    assert schemas["_EndOfLife"]["properties"]["censored"]["anyOf"][0] == {
        "type": "object", "additionalProperties": {"type": "boolean"}}


def _csv(path, rows, cell_ids=None):
    cols = ["cycle_index", "test_time_second", "discharge_capacity_ah"]
    head = cols + (["cell_id"] if cell_ids is not None else [])
    lines = [",".join(head)]
    for i, r in enumerate(rows):
        lines.append(",".join([str(r[c]) for c in cols] +
                              ([cell_ids[i]] if cell_ids is not None else [])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_cell_id_is_the_file_stem_unless_the_file_names_it(
        tmp_path, capsys, serving_model_dir):  # noqa: F811
    rows = history_rows(30)
    args = ["--horizon-cycles", "3", "--model", str(serving_model_dir), "--json"]
    assert main(["forecast", "--cycles", str(_csv(tmp_path / "B07.csv", rows))] + args) == 0
    assert json.loads(capsys.readouterr().out)["cell_id"] == "B07"
    named = _csv(tmp_path / "export.csv", rows, ["K-12"] * len(rows))
    assert cycles_csv_cell_id(named) == "K-12"
    assert main(["forecast", "--cycles", str(named)] + args) == 0
    assert json.loads(capsys.readouterr().out)["cell_id"] == "K-12"
    blank = _csv(tmp_path / "blank.csv", rows, [""] * len(rows))
    assert main(["forecast", "--cycles", str(blank)] + args) == 0
    assert json.loads(capsys.readouterr().out)["cell_id"] == "blank"
    mixed = _csv(tmp_path / "mixed.csv", rows, ["A"] * 10 + ["B"] * 20)
    assert main(["forecast", "--cycles", str(mixed)] + args) == 2
    out, err = capsys.readouterr()
    assert out == "" and "mixed.csv:12 column 'cell_id'" in err and "one cell" in err
