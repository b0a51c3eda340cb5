"""pybamm-dev loader: the tiny hand-written fixture always; the real 48 cells when shared."""
from __future__ import annotations

import numpy as np
import pytest

from data_registry.errors import FadecastError, NotFoundError, ValidationError
from ml.sources import CellRecord, available_sources, load_source


def test_tiny_fixture_loads_with_meta_and_truth(test_data):
    recs = load_source("pybamm-dev", root=test_data / "sources", cells=["tiny_a"])
    assert len(recs) == 1
    r = recs[0]
    assert isinstance(r, CellRecord) and r.cell_id == "tiny_a"
    assert r.cycles["cycle_index"].tolist() == [1, 2, 3]
    assert r.cycles["discharge_capacity_ah"].tolist() == [4.9, 4.85, 4.8]
    assert (r.cycles["test_time_estimated"] == 0).all()
    assert r.truth["loss_time_frac"].tolist() == [0.01, 0.02, 0.025]
    assert r.meta["nominal_capacity_ah"] == 5.0
    assert r.meta["split_group"] == "0.5C|0h"
    assert r.meta["c_rate"] == 0.5


def test_bad_value_names_file_row_and_column(test_data):
    with pytest.raises(ValidationError, match=r"tiny_b\.cycles\.csv:4 column "
                       r"'discharge_capacity_ah'.*expected a float.*found 'n/a'"):
        load_source("pybamm-dev", root=test_data / "sources", cells=["tiny_b"])


def test_unknown_cell_and_unknown_source_are_clear(test_data):
    with pytest.raises(NotFoundError, match="tiny_z"):
        load_source("pybamm-dev", root=test_data / "sources", cells=["tiny_z"])
    with pytest.raises(FadecastError, match=r"best matches are \['pybamm-dev', "):
        load_source("pybamm_dev", root=test_data / "sources")


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(NotFoundError, match="severson2019"):
        load_source("severson-train", root=tmp_path)
    assert available_sources(root=tmp_path) == []
    (tmp_path / "pybamm-dev").mkdir()
    assert available_sources(root=tmp_path) == ["pybamm-dev"]


def test_real_pybamm_dev_cells(shared_data):
    recs = load_source("pybamm-dev", root=shared_data)
    assert len(recs) == 48
    by_id = {r.cell_id: r for r in recs}
    r = by_id["dev_001"]
    # From dev_001.cycles.csv row 2 and cells.csv.
    assert r.cycles["discharge_capacity_ah"].iloc[0] == pytest.approx(4.939981)
    assert r.cycles["test_time_second"].iloc[0] == pytest.approx(118162.0)
    assert len(r.cycles) == r.meta["cycles_run"] == 96
    assert r.meta["rest_h"] == 12 and r.meta["c_rate"] == 0.1
    # README: recorded capacity = none * (1 - time frac - cycle frac), to rounding.
    for rec in recs[:6]:
        t = rec.truth
        rebuilt = t["capacity_none_ah"] * (1 - t["loss_time_frac"] - t["loss_cycle_frac"])
        np.testing.assert_allclose(rebuilt, rec.cycles["discharge_capacity_ah"], atol=2e-4)
        # the final time share in cells.csv follows from the last truth row
        last = t.iloc[-1]
        share = last["loss_time_frac"] / (last["loss_time_frac"] + last["loss_cycle_frac"])
        assert share == pytest.approx(rec.meta["final_time_share"], abs=1e-3)
    assert len({r.meta["split_group"] for r in recs}) == 15
