"""The serving forecast path reads the model table as plain arrays (``ml.windows.model_columns``)
instead of a DataFrame: every answer must stay IDENTICAL — the same JSON document, the same
errors — to the pandas table path, on varied histories (NaNs, optional columns, out-of-domain
conditions, the cycle-life head of the shipped model)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ml.inference as inference
from data_registry.errors import FadecastError
from ml.domain import request_conditions
from ml.inference import forecast, load_model_dir
from ml.synthetic import make_cell
from ml.uncertainty import share_band
from ml.windows import (FEATURE_NAMES, ModelColumns, future_schedule, history_arrays,
                        model_columns, model_table)
from test_windows_fast_table import _reference_model_table as _reference_table

PRODUCTION = Path(__file__).resolve().parents[1] / "models" / "production"


def _base(n=200, seed=7, **kw):
    cyc = make_cell("bench", seed=seed, n_cycles=n + 20, stop_retention=0.0, **kw).cycles
    return cyc.drop(columns=["cell_id"]).iloc[:n].reset_index(drop=True)


def _histories():
    """(label, frame, forecast kwargs): the shapes users send."""
    b = _base()
    nan = b.copy()
    nan.loc[5:20, "temperature_celsius"] = np.nan
    nan.loc[::7, "c_rate"] = np.nan
    hot = b.copy()
    hot["temperature_celsius"] = 60.0
    hot["c_rate"] = 5.0
    aw = b.copy()
    aw["aw_ohm_per_sqrt_s"] = np.linspace(1.0, 2.0, len(aw))
    aw.loc[:3, "aw_ohm_per_sqrt_s"] = np.nan
    slow = b.copy()
    slow["test_time_second"] *= 30.0
    flat = b.copy()
    flat["discharge_capacity_ah"] = 5.0
    named = b.copy()
    named.insert(0, "cell_id", "c-7")
    nullable = b.astype({"c_rate": "Float64", "temperature_celsius": "Float64"})
    nullable.loc[nullable.index[5], "c_rate"] = pd.NA
    return [
        ("200", b, {"horizon_cycles": 100}),
        ("nominal+chemistry", b, {"horizon_cycles": 50, "nominal_capacity_ah": 5.0,
                                  "chemistry": "LFP/graphite", "cell_id": "x1"}),
        ("pace+eol", b, {"horizon_cycles": 300, "hours_per_cycle": 2.5, "eol_fraction": 0.9}),
        ("nan-optional", nan, {"horizon_cycles": 80}),
        ("required-only", b[["cycle_index", "test_time_second", "discharge_capacity_ah"]],
         {"horizon_cycles": 60}),
        ("out-of-domain", hot, {"horizon_cycles": 100, "chemistry": "NMC"}),
        ("3-cycles", b.iloc[:3], {"horizon_cycles": 20}),
        ("900-cycles", _base(900, seed=3), {"horizon_cycles": 200}),
        ("aw", aw, {"horizon_cycles": 40}),
        ("slow", slow, {"horizon_cycles": 100}),
        ("flat", flat, {"horizon_cycles": 30}),
        ("cell-id-column", named, {"horizon_cycles": 30}),
        ("nullable-dtypes", nullable, {"horizon_cycles": 30}),
        ("polarization+aw", make_cell("p", seed=2, n_cycles=150, with_polarization=True,
                                      aw_every_n_cycles=10).cycles, {"horizon_cycles": 120}),
    ]


HISTORIES = _histories()
IDS = [h[0] for h in HISTORIES]


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory):
    from ml.training.quick import train_quick_model

    return train_quick_model(tmp_path_factory.getbasetemp() / "quick-model", n_cells=16,
                             epochs=4, reuse=True)


@pytest.fixture(scope="module", params=["quick", "production"])
def loaded(request, quick_model):
    if request.param == "production":
        if not (PRODUCTION / "model.onnx").is_file():
            pytest.skip("models/production is absent from this checkout")
        return load_model_dir(PRODUCTION)
    return load_model_dir(quick_model)


def _pandas_columns(frame, *, nominal_capacity_ah=None, min_history=3):
    """The reference pandas table, handed to the forecast as its columns' arrays."""
    df = _reference_table(frame, nominal_capacity_ah=nominal_capacity_ah,
                          min_history=min_history)
    return ModelColumns({c: df[c].to_numpy().copy() if isinstance(df[c].array,
                                                                 pd.arrays.NumpyExtensionArray)
                         else df[c].array for c in df.columns}, len(df), df.attrs)


@pytest.mark.parametrize("label,frame,kw", HISTORIES, ids=IDS)
def test_forecast_document_identical_to_the_pandas_table_path(loaded, monkeypatch, label,
                                                              frame, kw):
    card, run = loaded
    fast = forecast(frame.copy(), card=card, run=run, **kw)
    monkeypatch.setattr(inference, "model_columns", _pandas_columns)
    slow = forecast(frame.copy(), card=card, run=run, **kw)
    assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True)


@pytest.mark.parametrize("label,frame,kw", HISTORIES, ids=IDS)
def test_model_columns_equal_model_table(label, frame, kw):
    nominal = kw.get("nominal_capacity_ah")
    cols = model_columns(frame.copy(), nominal_capacity_ah=nominal)
    ref = _reference_table(frame.copy(), nominal_capacity_ah=nominal)
    assert list(cols.columns) == list(ref.columns) and cols.n_rows == len(ref)
    pd.testing.assert_frame_equal(cols.frame(), ref, check_exact=True)
    pd.testing.assert_frame_equal(model_table(frame.copy(), nominal_capacity_ah=nominal), ref,
                                  check_exact=True)
    # the helpers read both forms the same way
    assert request_conditions(cols, planned_hours_per_cycle=2.0, chemistry="LFP") == \
        request_conditions(ref, planned_hours_per_cycle=2.0, chemistry="LFP")
    for a, b in zip(future_schedule(cols, 17), future_schedule(ref, 17)):
        assert np.array_equal(a, b)
    from ml.scaling import FeatureScaler

    scaler = FeatureScaler(FEATURE_NAMES, {"elapsed_hour": "log1p"}).fit(
        np.nan_to_num(np.column_stack([ref[f].to_numpy() for f in FEATURE_NAMES]), nan=0.5))
    for a, b in zip(history_arrays(cols, scaler, 32), history_arrays(ref, scaler, 32)):
        assert np.array_equal(a, b)


def _error(fn):
    with pytest.raises(FadecastError) as info:
        fn()
    e = info.value
    return (type(e), e.code, e.message, e.row, e.column, e.expected, e.found)


@pytest.mark.parametrize("case", ["two-cells", "too-short"])
def test_model_columns_errors_are_the_pandas_ones(case):
    cyc = make_cell("a", seed=1, n_cycles=12).cycles
    if case == "two-cells":
        other = make_cell("b", seed=2, n_cycles=12).cycles
        frame, min_history = pd.concat([cyc, other], ignore_index=True), 3
    else:
        frame, min_history = cyc.iloc[:4], 5
    fast = _error(lambda: model_columns(frame.copy(), min_history=min_history))
    slow = _error(lambda: _reference_table(frame.copy(), min_history=min_history))
    assert fast == slow
    assert fast[1] == ("several_cells" if case == "two-cells" else "history_too_short")


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.5, 1.0])
def test_share_band_mixture_quantiles_match_the_bisection_on_numpy(weight):
    """``share_band`` counts samples with a sorted list: the same quantiles as the numpy
    ``mean(s <= x)`` bisection it replaced."""
    from ml.inference import band

    rng = np.random.default_rng(3)
    for samples in (rng.uniform(0, 1, 32), rng.beta(2, 5, 32), np.full(32, 0.25),
                    np.r_[np.zeros(16), np.ones(16)]):
        s = np.clip(samples, 0.0, 1.0)
        got = share_band(samples, weight)
        if weight <= 0:
            assert np.array_equal(got, band(s, None, lo=0.0, hi=1.0))
            continue
        out = []
        for level in (0.05, 0.5, 0.95):
            lo, hi = 0.0, 1.0
            for _ in range(40):
                mid = 0.5 * (lo + hi)
                if (1.0 - weight) * float(np.mean(s <= mid)) + weight * mid < level:
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        q = np.array(out)
        model_q = band(s, None, lo=0.0, hi=1.0)
        if weight < 1.0:
            q[0], q[2] = min(q[0], model_q[0]), max(q[2], model_q[2])
        assert np.array_equal(got, np.clip(q, 0.0, 1.0))
