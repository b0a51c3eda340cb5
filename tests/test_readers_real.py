"""Readers on the REAL vendor files in ../shared/data/parsers (read in place; skipped if absent).

Numbers pinned here were checked by hand against the raw files (head/tail/awk).
"""
from __future__ import annotations

import pytest

from data_registry.readers import detect, open_source


def _p(shared_data, rel):
    return shared_data / "parsers" / rel


def test_arbin_csv_fastcharge(shared_data):
    p = _p(shared_data, "arbin_csv_beep/FastCharge_000025_CH8.csv")
    assert detect(p) == "arbin_csv"
    src = open_source(p)
    df = src.read()
    assert len(df) == 248                       # 249 lines - header
    assert df["test_time_second"].iloc[0] == pytest.approx(10.0024)
    assert df["test_time_second"].iloc[-1] == pytest.approx(1800.01, abs=1e-3)
    assert df["voltage_volt"].iloc[0] == pytest.approx(3.3011441)
    assert df["ambient_temperature_celsius"].iloc[0] == pytest.approx(30.109268)
    assert src.metadata["arbin_test_id"] == "153"
    assert src.metadata["arbin_schedule_file_name"].endswith("4_4C.SDU")


def test_arbin_csv_contact_test_empty_cycle_column(shared_data):
    src = open_source(_p(shared_data, "arbin_csv_beep/2017-05-09_test-TC-contact_CH33.csv"))
    df = src.read()
    assert len(df) == 287
    assert df["test_time_second"].iloc[-1] == pytest.approx(1022.8913)
    # a 6.6 A charge: positive current, charging capacity rising
    assert df["current_ampere"].iloc[0] == pytest.approx(6.600444793701172)
    assert df["charging_capacity_ah"].iloc[-1] == pytest.approx(0.6082700490951538)
    assert (df["cycle_count"] == 0).all()
    assert [w.code for w in src.warnings] == ["cycle_count_missing"]
    assert src.metadata["arbin_test_id"] == "144"
