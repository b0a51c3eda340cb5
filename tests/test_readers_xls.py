"""Legacy Excel ``.xls`` workbooks (Neware BTS 7, LAND and older lab PCs export them) are read
like ``.xlsx`` ones, through python-calamine. The fixtures were written from the bundled C/10
export by ``tests/data/readers/xls/make_fixtures.py`` (xlwt)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_registry.errors import InputFormatError
from data_registry.readers import detect, open_source

ROOT = Path(__file__).resolve().parent.parent
XLS = ROOT / "tests" / "data" / "readers" / "xls"
RAW = ROOT / "examples" / "pto_c10_raw.csv"


def test_a_chinese_neware_xls_reads_like_the_csv_it_was_written_from():
    """Record sheet after an info sheet; 总时间 stored as Excel duration cells ([h]:mm:ss.000,
    past 24 h: 2.5 days at the last row); mA and mAh converted."""
    src = open_source(XLS / "neware_zh_detail.xls")
    got = src.read()
    english = open_source(RAW).read()
    english = english[english["cycle_count"] <= 3].reset_index(drop=True)
    assert src.format_name == "landt_xlsx"
    assert len(got) == len(english) == 372
    # Excel keeps a duration as days in a double: equal to well under a millisecond
    np.testing.assert_allclose(got["test_time_second"], english["test_time_second"], atol=1e-3)
    assert got["test_time_second"].iloc[-1] == pytest.approx(218434.032, abs=1e-3)
    np.testing.assert_allclose(got["current_ampere"], english["current_ampere"], rtol=1e-12)
    np.testing.assert_allclose(got["voltage_volt"], english["voltage_volt"], rtol=0)
    np.testing.assert_allclose(got["discharging_capacity_ah"],
                               english["discharging_capacity_ah"], rtol=1e-12)
    assert got["cycle_count"].tolist() == english["cycle_count"].tolist()


def test_a_per_cycle_xls_reads_as_cycles_with_the_stated_protocol():
    path = XLS / "land_cycles.xls"
    assert detect(path) == "xlsx_cycles"
    with pytest.raises(Exception, match="--hours-per-cycle"):
        open_source(path).read()
    got = open_source(path, protocol_hours_per_cycle=20.0).read()
    np.testing.assert_allclose(got["discharge_capacity_ah"], [1.0005e-3, 0.99875e-3, 0.9961e-3],
                               rtol=1e-12)
    assert got["test_time_second"].tolist() == [72000.0, 144000.0, 216000.0]
    assert got["test_time_estimated"].tolist() == [1, 1, 1]


def test_a_truncated_xls_is_refused_naming_the_file(tmp_path):
    broken = tmp_path / "cut.xls"
    broken.write_bytes((XLS / "neware_zh_detail.xls").read_bytes()[:4096])
    with pytest.raises(InputFormatError, match="cut.xls"):
        open_source(broken).read()


def test_a_sheet_whose_first_row_is_empty_is_refused_naming_its_layout():
    """pandas takes row 1 as the header: a header on row 2 under an empty row is no data sheet
    (as for .xlsx), refused naming the sheets, not a KeyError."""
    with pytest.raises(InputFormatError, match="unsupported Excel sheet layout") as err:
        open_source(XLS / "blank_first_row.xls").read()
    assert "Channel_1" in str(err.value)
