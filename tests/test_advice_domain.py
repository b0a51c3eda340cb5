"""One domain judgement (``ml.domain``) behind the forecast AND the advice: the advice reports
the latest forecast's own ``domain`` answer, a retention beyond the trained range is judged there
like every other conditioning input, and an out-of-domain answer never stops with confidence."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ml.domain import RETENTION_SLACK, judge_domain, request_conditions
from ml.windows import model_table
from serving.app import create_app
from serving.predict import advice_document, forecast_document
from serving.settings import Settings
from test_serving_model import forecaster, history_rows, serving_model_dir  # noqa: F401


def _faded(n: int = 60, slope: float = 0.008, hours: float = 5.0) -> pd.DataFrame:
    """A hand-built cell: 2 Ah at cycle 1, losing ``slope`` of it per cycle, ``hours`` per cycle,
    C/2, 25 °C (inside the quick model's trained pace, rate, temperature and scale)."""
    k = np.arange(1, n + 1)
    return pd.DataFrame({"cycle_index": k, "test_time_second": 3600.0 * hours * k,
                         "discharge_capacity_ah": 2.0 * (1.0 - slope * (k - 1)),
                         "c_rate": 0.5, "temperature_celsius": 25.0})


def _rows(frame: pd.DataFrame) -> list[dict]:
    return [{k: (int(v) if k == "cycle_index" else float(v)) for k, v in r.items()}
            for r in frame.to_dict("records")]


def _with_retention(model, lo: float, hi: float):
    """The same model (ONNX session and card) with another trained retention range."""
    card = dataclasses.replace(model.card,
                               training_domain={**model.domain, "retention": [lo, hi]})
    return dataclasses.replace(model, card=card)


def _retention_reason(value: float, ref: float, lo: float, hi: float) -> str:
    return (f"retention so far {100 * value:.1f} % of the reference capacity {ref:.4g} Ah, "
            f"median of the last 10 cycles, below the trained range "
            f"{100 * lo:.1f}–{100 * hi:.1f} %")


def test_retention_alone_puts_the_advice_out_of_domain(forecaster):  # noqa: F811
    frame = _faded()
    # by hand: the last 10 cycles are 51..60, median retention 1 - 0.008 * 54.5 = 0.564
    lo, hi = forecaster.domain["retention"]
    assert 0.564 < lo - RETENTION_SLACK * (hi - lo)  # the quick model trained above it
    reason = _retention_reason(0.564, 2.0, lo, hi)
    # EOL at 50 %: not yet observed (retention at cycle 60 is 0.528), so the model decides
    adv = advice_document(forecaster, frame, planned_cycles=300, tolerance_cycles=25,
                          eol_fraction=0.5)
    assert adv["domain"]["in_domain"] is False and adv["domain"]["reasons"] == [reason]
    assert "retention" in adv["domain"]["checked"] and adv["domain"]["widened"]
    assert adv["decision"] == "continue" and adv["checks"]["in_domain"] is False
    assert adv["reason"] == f"continue: outside the model's training domain ({reason})"
    # the forecast of the same history says the same, and widens its band for it
    fc = forecast_document(forecaster, frame, horizon_cycles=240, eol_fraction=0.5)
    assert fc["domain"] == adv["domain"]
    # a card trained down to 40 % judges the same history inside, in both answers
    wide = _with_retention(forecaster, 0.4, 1.0)
    adv = advice_document(wide, frame, planned_cycles=300, tolerance_cycles=25,
                          eol_fraction=0.5)
    assert adv["domain"]["in_domain"] is True and adv["domain"]["reasons"] == []
    assert adv["checks"]["in_domain"] and "training domain" not in adv["reason"]
    assert forecast_document(wide, frame, horizon_cycles=240,
                             eol_fraction=0.5)["domain"] == adv["domain"]


def test_forecast_and_advice_routes_report_the_same_domain_verdict(
        forecaster, serving_model_dir):  # noqa: F811
    settings = Settings(model_uri=str(serving_model_dir), max_history_cycles=300,
                        max_horizon_cycles=2_000)
    cases = {"in": history_rows(60), "retention": _rows(_faded()),
             "rate": [{**r, "c_rate": 5.0} for r in history_rows(60)]}
    with TestClient(create_app(settings, forecaster=forecaster)) as client:
        for name, rows in cases.items():
            fc = client.post("/v1/forecast", json={"history": rows, "horizon_cycles": 50,
                                                   "eol_fraction": 0.5})
            adv = client.post("/v1/advice", json={"history": rows, "planned_cycles": 300,
                                                  "tolerance_cycles": 25, "eol_fraction": 0.5})
            assert fc.status_code == adv.status_code == 200, (name, fc.text, adv.text)
            assert fc.json()["domain"] == adv.json()["domain"], name
            verdict = adv.json()["domain"]
            assert set(verdict) >= {"in_domain", "reasons", "checked"}
            assert verdict["in_domain"] is (name == "in"), (name, verdict)
            assert adv.json()["checks"]["in_domain"] is verdict["in_domain"], name
            if name != "in":
                assert adv.json()["decision"] == "continue"
                assert all(r in adv.json()["reason"] for r in verdict["reasons"])
            if name == "retention":
                assert [r[:26] for r in verdict["reasons"]] == ["retention so far 56.4 % of"]
            if name == "rate":
                assert verdict["reasons"] == ["C-rate 5 1/h above the trained range 0.1–1 1/h"]


class _Confident:
    """A stand-in forecaster that is sure of the end of life (cycle 101 ± 2) and judges its
    domain with ml.domain on the real model table, as ``ml.inference.forecast`` does: an
    in-domain answer from it passes every other check of the stop rule."""

    name, version, interval_scale = "stand-in", "0", 1.0

    def __init__(self, domain: dict) -> None:
        self.domain = domain

    def forecast(self, frame, *, horizon_cycles, hours_per_cycle=None, eol_fraction=0.8,
                 nominal_capacity_ah=None, cell_id=None, chemistry=None):
        table = model_table(frame, nominal_capacity_ah=nominal_capacity_ah)
        pace = hours_per_cycle or float(np.median(np.diff(frame["test_time_second"])[-10:])
                                        / 3600.0)
        verdict = judge_domain(request_conditions(table, planned_hours_per_cycle=pace,
                                                  chemistry=chemistry), self.domain)
        last = int(frame["cycle_index"].iloc[-1])
        rows = [{"cycle_index": c, "test_time_second": 3600.0 * pace * c,
                 "capacity_ah": {"p05": 1.0, "p50": 1.1, "p95": 1.2},
                 "loss_time_fraction": 0.1, "loss_cycle_fraction": 0.1}
                for c in range(last + 1, last + horizon_cycles + 1)]
        eol = {"threshold_fraction": eol_fraction,
               "cycle_index": {"p05": 99, "p50": 101, "p95": 103},
               "test_time_second": {k: 3600.0 * pace * c for k, c in
                                    (("p05", 99), ("p50", 101), ("p95", 103))}}
        return {"model": {"name": self.name, "version": self.version}, "cell_id": cell_id,
                "forecast": rows, "end_of_life": eol, "attribution": {}, "domain": verdict}


def test_a_retention_out_of_domain_never_stops_with_confidence():
    frame = _faded(n=80, slope=0.002)  # retention of the last 10: 1 - 0.002 * 74.5 = 0.851
    domain = {"hours_per_cycle": [3.15, 300.0], "c_rate": [0.1, 1.0],
              "temperature_celsius": [15.0, 35.0], "reference_capacity_ah": [1.0, 5.0],
              "history_cycles": [16.0, 200.0], "cycle_index": [1.0, 250.0]}
    kw = dict(planned_cycles=300, tolerance_cycles=25)
    inside = advice_document(_Confident({**domain, "retention": [0.6, 1.0]}), frame, **kw)
    assert inside["decision"] == "stop" and inside["domain"]["in_domain"] is True
    assert inside["reason"] == "stop now: 80 % at cycle 101 ± 2"
    out = advice_document(_Confident({**domain, "retention": [0.9, 1.0]}), frame, **kw)
    reason = _retention_reason(0.851, 2.0, 0.9, 1.0)
    assert out["domain"]["reasons"] == [reason]
    assert out["decision"] == "continue"
    assert out["reason"] == f"continue: outside the model's training domain ({reason})"
    # the domain is the only check that failed: the EOL is known, stable and past the onset
    assert out["checks"] == {"known": True, "stable": True, "in_domain": False,
                             "onset_ruled_out": True}
    assert out["end_of_life"]["cycle_index"] == {"p05": 99, "p50": 101, "p95": 103}
