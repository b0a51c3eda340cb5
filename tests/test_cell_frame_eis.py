"""A stored cell's spectra reach the model: the per-cycle frame a stored-cell forecast reads
carries the A_w of its EIS spectra (as `fadecast features` does)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_registry.store import Registry
from serving.history import cell_history
from test_warburg import randles, spectrum


def test_a_cells_spectra_give_its_cycles_the_warburg_coefficient(tmp_path):
    n = np.arange(1, 41)
    cycles = pd.DataFrame({"cycle_index": n, "test_time_second": n * 7200.0,
                           "discharge_capacity_ah": 2.0 - 0.002 * n})
    cycles.to_csv(tmp_path / "cycles.csv", index=False)
    # spectra after cycles 10 and 30, A_w 0.10 then 0.14 Ω s^-½
    eis = pd.concat([spectrum(randles(0.10), measurement_id="m1", cycle_count=10),
                     spectrum(randles(0.14), measurement_id="m2", cycle_count=30)])
    eis.to_csv(tmp_path / "eis.csv", index=False)
    with Registry() as reg:
        reg.ingest([tmp_path / "cycles.csv", tmp_path / "eis.csv"], "c1")
        frame, _ = cell_history(reg, "c1")
    aw = frame.set_index("cycle_index")["aw_ohm_per_sqrt_s"]
    assert aw.loc[10] == pytest.approx(0.10, rel=0.03)
    assert aw.loc[30] == pytest.approx(0.14, rel=0.03)
    assert np.isnan(aw.loc[5])  # before the first spectrum nothing is known


def test_a_cell_without_spectra_has_no_warburg_column(tmp_path):
    n = np.arange(1, 11)
    pd.DataFrame({"cycle_index": n, "test_time_second": n * 3600.0,
                  "discharge_capacity_ah": 1.0 - 0.001 * n}).to_csv(tmp_path / "c.csv",
                                                                     index=False)
    with Registry() as reg:
        reg.ingest(tmp_path / "c.csv", "c2")
        frame, _ = cell_history(reg, "c2")
    assert "aw_ohm_per_sqrt_s" not in frame
