"""The band's parts (ml.evaluation.coverage.band_parts) and the cell-bootstrap interval of a
coverage (ml.evaluation.calibration.cell_bootstrap_coverage), on hand-computed cases."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_registry.errors import ValidationError
from ml.evaluation.calibration import cell_bootstrap_coverage
from ml.evaluation.coverage import band_parts, diagnose
from ml.uncertainty import compose_band

PRODUCTION = Path(__file__).resolve().parents[1] / "models" / "production"


# ---- cell bootstrap ----------------------------------------------------------------------------

def test_cell_bootstrap_resamples_whole_cells():
    # cell a: 10/10 covered, cell b: 5/10. Two cells drawn with replacement: aa -> 100 %
    # (p 1/4), ab or ba -> 75 % (1/2), bb -> 50 % (1/4); the 2.5 / 97.5 percentiles: 50, 100
    cells = ["a"] * 10 + ["b"] * 10
    inside = [True] * 10 + [True] * 5 + [False] * 5
    assert cell_bootstrap_coverage(cells, inside) == (50.0, 100.0)
    # one cell: every draw is that cell
    assert cell_bootstrap_coverage(["a"] * 4, [True, True, False, True]) == (75.0, 75.0)
    assert all(math.isnan(v) for v in cell_bootstrap_coverage([], []))


def test_cell_bootstrap_refuses_mismatched_input():
    with pytest.raises(ValidationError, match="one cell id per point"):
        cell_bootstrap_coverage(["a", "b"], [True])
    with pytest.raises(ValidationError, match="level must lie in"):
        cell_bootstrap_coverage(["a"], [True], level=1.0)


def test_diagnose_reports_the_cell_mean_and_the_cell_interval():
    base = {"source": "S", "p05": 0.9, "p50": 1.0, "p95": 1.1, "model_lo": 0.1,
            "model_hi": 0.1, "floor": 0.01, "scale": 0.0, "widening": 1.0, "in_domain": True,
            "reasons": "", "naive_p50": 0.98, "naive_resid_rms": 0.002, "cycles_ahead": 1,
            "third": "near"}
    # cell c0: 2 points, 1 inside (50 %); c1: 2 inside (100 %); c2: 1 outside (0 %)
    rows = [{**base, "cell_id": c, "truth": y}
            for c, y in (("c0", 1.0), ("c0", 0.8), ("c1", 1.0), ("c1", 1.05), ("c2", 1.2))]
    d = diagnose(pd.DataFrame(rows))
    assert d["coverage_pct"] == pytest.approx(60.0)  # 3 of 5 points
    assert d["coverage_cell_mean_pct"] == pytest.approx(50.0)  # (50 + 100 + 0) / 3
    # three cells drawn: c2 three times -> 0 % (p 1/27 > 2.5 %); c1 three times -> 100 %
    assert (d["coverage_ci95_low_pct"], d["coverage_ci95_high_pct"]) == (0.0, 100.0)


# ---- the band with one part switched off --------------------------------------------------------

def _rows() -> pd.DataFrame:
    """Median 1; model half-widths 0.03 raw, the lower one checked to 0.05 (a trend gap of 0.04);
    noise floor 0.03, fit floor 0.04 (composed floor 0.05); scale -0.5 and widening 2 (k = 1)."""
    part = {"source": "S", "cell_id": "c", "p50": 1.0, "model_lo_raw": 0.03,
            "model_hi_raw": 0.03, "model_lo": 0.05, "model_hi": 0.03, "noise_floor": 0.03,
            "fit_floor": 0.04, "floor": 0.05, "scale": -0.5, "widening": 2.0}
    return pd.DataFrame([{**part, "truth": 0.94, "third": "near"},
                         {**part, "truth": 1.055, "third": "far"}])


def test_band_parts_recompose_the_served_band_and_switch_each_part_off():
    p = _rows()
    parts = band_parts(p)
    # served: lower sqrt(1·(0.03² + 0.04²) + 0.05²) = sqrt(0.005) = 0.070711 covers 0.06 below;
    # upper sqrt(0.03² + 0.05²) = sqrt(0.0034) = 0.058310 covers 0.055 above
    assert parts["served"]["coverage_pct"] == 100.0
    assert parts["served"]["halfwidth_pct"] == pytest.approx(
        100 * (math.sqrt(0.005) + math.sqrt(0.0034)) / 2)
    served = compose_band(np.array([[0.95, 1.0, 1.03]]), np.array([0.05]), -0.5, 2.0)
    assert 1.0 - served[0, 0] == pytest.approx(math.sqrt(0.005))
    # no floor: lower 0.05 and upper 0.03 miss both points
    assert parts["no_floor"]["coverage_pct"] == 0.0
    # no trend gap: lower sqrt(0.0009 + 0.0025) = 0.0583 < 0.06 misses the near point
    assert parts["no_trend_gap"]["coverage_near_pct"] == 0.0
    assert parts["no_trend_gap"]["coverage_far_pct"] == 100.0
    # no noise floor: upper sqrt(0.0009 + 0.0016) = 0.05 < 0.055; no fit floor: 0.0424 < 0.055
    assert parts["no_noise_floor"]["coverage_far_pct"] == 0.0
    assert parts["no_fit_floor"]["coverage_far_pct"] == 0.0
    # no model spread: lower sqrt(0.0016 + 0.0025) = 0.0640 >= 0.06; upper 0.05 < 0.055
    assert (parts["no_model_spread"]["coverage_near_pct"],
            parts["no_model_spread"]["coverage_far_pct"]) == (100.0, 0.0)
    # no conformal scale: k = 2, lower sqrt(4·0.0025 + 0.0025) = 0.1118
    assert parts["no_conformal_scale"]["halfwidth_pct"] == pytest.approx(
        100 * (math.sqrt(0.0125) + math.sqrt(4 * 0.0009 + 0.0025)) / 2)
    # no out-of-domain widening: k = 0.5, lower sqrt(0.25·0.0025 + 0.0025) = 0.0559 < 0.06
    assert parts["no_ood_widening"]["coverage_near_pct"] == 0.0


def test_band_parts_refuse_rows_without_the_parts():
    with pytest.raises(ValidationError) as err:
        band_parts(_rows().drop(columns=["noise_floor"]))
    assert err.value.code == "missing_column"
    with pytest.raises(ValidationError, match="parts not recorded"):
        band_parts(_rows().assign(noise_floor=np.nan))


def test_recorded_parts_reproduce_the_served_band():
    if not (PRODUCTION / "model_card.json").is_file():
        pytest.skip("models/production is absent from this checkout")
    from ml.evaluation.coverage import band_points
    from ml.inference import load_model_dir
    from ml.synthetic import make_fleet

    card, run = load_model_dir(PRODUCTION)
    p = band_points(make_fleet(2, seed=5, prefix="parts"), card, run, "synthetic")
    assert np.allclose(p["floor"] ** 2, p["noise_floor"] ** 2 + p["fit_floor"] ** 2)
    assert (p["model_lo"] >= p["model_lo_raw"] - 1e-12).all()
    served = ((p["truth"] >= p["p05"]) & (p["truth"] <= p["p95"])).mean() * 100
    parts = band_parts(p)
    assert parts["served"]["coverage_pct"] == pytest.approx(served)
    assert parts["served"]["halfwidth_pct"] == pytest.approx(
        100 * ((p["p95"] - p["p05"]) / 2).mean(), rel=1e-9)


def test_the_recomposed_band_keeps_the_served_ceiling():
    # the _rows() band: lower 1 - sqrt(0.005) = 0.92929, upper 1 + sqrt(0.03² + 0.0025) =
    # 1.05831; recorded ceiling (history's best + first floor) 1.02
    parts = band_parts(_rows().assign(cap=1.02))
    assert parts["served"]["coverage_pct"] == 50.0  # 1.055 is above the ceiling
    assert parts["served"]["halfwidth_pct"] == pytest.approx(
        100 * (math.sqrt(0.005) + 0.02) / 2)
    uncapped = band_parts(_rows())
    assert uncapped["served"]["coverage_pct"] == 100.0
    assert uncapped["served"]["halfwidth_pct"] == pytest.approx(
        100 * (math.sqrt(0.005) + math.sqrt(0.0034)) / 2)
