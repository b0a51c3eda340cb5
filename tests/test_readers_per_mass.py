"""Capacities per mass of active material (``mAh/g``, ``Ah/kg``): read in Ah with the active
mass (``--meta active_mass_g`` / ``--active-mass-g``), refused without it, never mistaken for
a unitless column. Hand-made tables whose Ah values are computed by hand (q · m / 1000)."""
from __future__ import annotations

import csv
import io

import pytest

from data_registry.errors import ValidationError
from data_registry.readers import open_source

MASS_G = 0.005  # 5 mg of active material
SPECIFIC = [400.0, 398.0, 396.0, 394.0, 392.0, 390.0]  # mAh/g


def _table(path, header: list[str], rows: list[list]):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


@pytest.mark.parametrize("header", ["Discharge capacity (mAh/g)", "Specific discharge capacity "
                                    "(mAh/g)", "Q_dis [Ah/kg]", "capacity (mAh g-1)"])
def test_per_mass_capacity_is_read_in_ah_with_the_mass_and_refused_without(tmp_path, header):
    p = _table(tmp_path / "pto.csv", ["Cycle", header, "Time (h)"],
               [[n, q, 20 * n] for n, q in enumerate(SPECIFIC, start=1)])
    with pytest.raises(ValidationError) as err:
        open_source(p).read()
    assert err.value.code == "needs_active_mass" and err.value.column == header
    assert "active_mass_g" in str(err.value) and "--active-mass-g" in str(err.value)
    df = open_source(p, active_mass_g=MASS_G).read()
    # 400 mAh/g × 0.005 g = 2 mAh = 0.002 Ah
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([q * MASS_G / 1000
                                                                  for q in SPECIFIC])
    assert df["test_time_second"].iloc[0] == 20 * 3600


def test_an_ah_column_beside_a_per_mass_one_needs_no_mass(tmp_path):
    p = _table(tmp_path / "both.csv", ["Cycle", "Discharge capacity (Ah)",
                                       "Discharge capacity (mAh/g)", "Time (h)"],
               [[n, 0.001 * n, q, 20 * n] for n, q in enumerate(SPECIFIC, start=1)])
    df = open_source(p).read()
    assert df["discharge_capacity_ah"].tolist() == pytest.approx([0.001 * n for n in
                                                                  range(1, 7)])


def test_per_sample_counters_per_mass_are_left_out_without_a_mass(tmp_path):
    rows = [[10 * k, 3.6, 0.001, 1, 0.5 * k] for k in range(10)]
    header = ["Time (s)", "Voltage (V)", "Current (A)", "Cycle", "Charge capacity (mAh/g)"]
    p = _table(tmp_path / "samples.csv", header, rows)
    df = open_source(p).read()
    assert "charging_capacity_ah" not in df or df["charging_capacity_ah"].isna().all()
    df = open_source(p, active_mass_g=MASS_G).read()
    assert df["charging_capacity_ah"].iloc[-1] == pytest.approx(4.5 * MASS_G / 1000)


def test_cli_ingest_and_forecast_take_the_active_mass(tmp_path, capsys, monkeypatch):
    from serving.cli import main

    rows = [[n, 400.0 * (1 - 0.001 * n), 20 * n] for n in range(1, 61)]
    p = _table(tmp_path / "pto.csv", ["Cycle", "Discharge capacity (mAh/g)", "Time (h)"],
               rows)
    monkeypatch.setenv("FADECAST_HOME", str(tmp_path / "home"))
    assert main(["ingest", str(p), "--cell-id", "pto1", "--active-mass-g", "0.005"]) == 0
    capsys.readouterr()
    assert main(["features", "pto1"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert float(table[0]["discharge_capacity_ah"]) == pytest.approx(rows[0][1] * MASS_G / 1e3)
    # the stored mass turns the Ah back into mAh/g
    assert float(table[-1]["discharge_capacity_mah_per_g"]) == pytest.approx(rows[-1][1])
    assert main(["forecast", "--cycles", str(p), "--horizon-cycles", "10", "--json",
                 "--active-mass-g", "0.005"]) == 0
    doc = __import__("json").loads(capsys.readouterr().out)
    assert doc["forecast"][0]["capacity_ah"]["p50"] == pytest.approx(0.0019, rel=0.05)
