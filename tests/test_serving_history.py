"""Turning user input into per-cycle frames: the CSV reader, API rows, summaries."""
from __future__ import annotations

import numpy as np
import pytest

from data_registry.errors import InputFormatError, ValidationError
from serving.history import (
    frame_from_rows, loss_so_far_fraction, read_cycles_csv, recent_hours_per_cycle,
    reference_capacity_ah,
)
from serving.schemas import HistoryRow


def test_reads_known_columns_and_reports_unknown(test_data):
    frame, ignored = read_cycles_csv(test_data / "serving" / "cycles_ok.csv")
    assert list(frame.columns) == ["cycle_index", "test_time_second", "discharge_capacity_ah",
                                   "charge_capacity_ah"]
    assert ignored == ["operator_note"]
    assert frame["cycle_index"].dtype == np.int64
    assert frame["discharge_capacity_ah"].tolist() == [1.10, 1.09, 1.08, 1.07]


def test_bad_value_names_file_line_and_column(test_data):
    with pytest.raises(ValidationError,
                       match=r"cycles_bad_value.csv:3 column 'discharge_capacity_ah': .*"
                             r"expected a finite float, found 'n/a'"):
        read_cycles_csv(test_data / "serving" / "cycles_bad_value.csv")


def test_missing_required_column(test_data):
    with pytest.raises(InputFormatError, match=r":1 column 'test_time_second': required column"):
        read_cycles_csv(test_data / "serving" / "cycles_missing_column.csv")


def test_non_increasing_cycles(test_data):
    with pytest.raises(ValidationError, match=r"cycles_not_increasing.csv:4 column "
                                              r"'cycle_index': cycle indexes must increase"):
        read_cycles_csv(test_data / "serving" / "cycles_not_increasing.csv")


def test_frame_from_rows_keeps_only_present_optionals():
    rows = [HistoryRow(cycle_index=1, test_time_second=10, discharge_capacity_ah=1.0),
            HistoryRow(cycle_index=2, test_time_second=20, discharge_capacity_ah=0.9, c_rate=0.5)]
    frame = frame_from_rows(rows)
    assert list(frame.columns) == ["cycle_index", "test_time_second", "discharge_capacity_ah",
                                   "c_rate"]
    assert np.isnan(frame["c_rate"].iloc[0]) and frame["c_rate"].iloc[1] == 0.5


def test_summaries_by_hand():
    q = np.array([1.0, 1.02, 1.01, 0.95, 0.9, 0.91])
    assert reference_capacity_ah(q, None) == 1.02
    assert reference_capacity_ah(q, 1.1) == 1.1
    # median of the last three (0.95, 0.9, 0.91) = 0.91 -> loss 1 - 0.91/1.0
    assert loss_so_far_fraction(q, 1.0) == pytest.approx(0.09)
    t = np.arange(1, 13) * 7200.0
    t[-1] += 7200  # one long cycle does not move the median
    assert recent_hours_per_cycle(t) == 2.0
    assert recent_hours_per_cycle(t, 3.5) == 3.5
    rows = [HistoryRow(cycle_index=i, test_time_second=3600 * i, discharge_capacity_ah=1.0,
                       c_rate=0.5 if i < 12 else 5.0) for i in range(1, 13)]
    # API rows reach the one domain judgement (ml.domain) through the model table: medians
    # of the last 10 cycles, so the one 5C cycle does not move the C-rate
    from ml.domain import request_conditions
    from ml.windows import model_table

    cond = request_conditions(model_table(frame_from_rows(rows)), planned_hours_per_cycle=1.0)
    assert cond["c_rate"] == 0.5 and cond["last_cycle_index"] == 12.0
    assert cond["temperature_celsius"] is None and cond["retention"] == 1.0
