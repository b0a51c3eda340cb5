"""NASA PCoE ``metadata.csv``: one battery's discharges as cycles (hand-computed clock), the
many-cell refusal and split, and the same cycles as the evaluation's ``ml.sources`` loader."""
from __future__ import annotations

import numpy as np
import pytest

from data_registry.errors import FadecastError
from data_registry.readers import open_source

HEADER = "type,start_time,ambient_temperature,battery_id,test_id,uid,filename,Capacity,Re,Rct\n"
ROWS = [
    # B0001: charge at t0, a discharge, an impedance sweep (complex Re), a '[]' discharge,
    # a junk 0.3 Ah discharge, a discharge cut short by the next operation 10 min later
    "charge,[2010.       7.      21.      15.       0.      0.],24,B0001,0,1,00001.csv,,,\n",
    "discharge,[2010. 7. 21. 16. 0. 0.],24,B0001,1,2,00002.csv,1.8,,\n",
    "impedance,[2010. 7. 21. 18. 0. 0.],24,B0001,2,3,00003.csv,,(0.05+0.01j),0.2\n",
    "discharge,[2010. 7. 21. 19. 0. 0.],24,B0001,3,4,00004.csv,[],,\n",
    "discharge,[2010. 7. 21. 20. 0. 0.],24,B0001,4,5,00005.csv,0.3,,\n",
    "discharge,[2.010e+03 7.000e+00 2.200e+01 1.000e+01 0.000e+00 0.000e+00],24,B0001,5,6,"
    "00006.csv,1.7,,\n",
    "charge,[2010. 7. 22. 10. 10. 0.],24,B0001,6,7,00007.csv,,,\n",
    "discharge,[2010. 7. 22. 12. 0. 0.],24,B0001,7,8,00008.csv,1.6,,\n",
]
OTHER = "discharge,[2010. 7. 21. 15. 0. 0.],4,B0002,0,9,00009.csv,1.9,,\n"


def _write(tmp_path, rows):
    path = tmp_path / "metadata.csv"
    path.write_text(HEADER + "".join(rows))
    return path


def test_one_battery_becomes_its_valid_discharges_with_the_estimated_clock(tmp_path):
    src = open_source(_write(tmp_path, ROWS))
    assert src.format_name == "nasa_pcoe_metadata_csv" and src.kind == "cycles"
    got = src.read()
    assert got["cycle_index"].tolist() == [1, 2, 3]
    assert got["discharge_capacity_ah"].tolist() == [1.8, 1.7, 1.6]
    assert got["source_row"].tolist() == [3, 7, 9]  # lines of the file (header = line 1)
    # end = start + capacity / 2 A, capped at the next operation's start (hours since 15:00)
    ends_h = [1.0 + 1.8 / 2, 19.0 + 10 / 60, 21.0 + 1.6 / 2]
    assert got["test_time_second"].to_numpy() == pytest.approx(np.array(ends_h) * 3600.0)
    assert got["temperature_celsius"].tolist() == [24.0] * 3
    codes = {w.code: w for w in src.warnings}
    assert codes["missing_capacity"].row == 5 and codes["junk_capacity"].row == 6
    assert codes["impedance_rows_not_stored"].count == 1
    assert codes["bad_impedance"].row == 4


def test_a_table_of_several_batteries_is_refused_or_split(tmp_path):
    path = _write(tmp_path, ROWS + [OTHER])
    with pytest.raises(FadecastError) as e:
        open_source(path).read()
    assert e.value.code == "several_cells" and "--cell-column battery_id" in str(e.value)
    one = open_source(path, cell_value="B0002").read()
    assert one["discharge_capacity_ah"].tolist() == [1.9] and one["source_row"].tolist() == [10]
    with pytest.raises(FadecastError) as e:
        open_source(path, cell_value="B0009").read()
    assert e.value.code == "unknown_cell"


def test_an_unreadable_start_time_is_named(tmp_path):
    rows = ROWS[:1] + ["discharge,[2010 7 21],24,B0001,1,2,00002.csv,1.8,,\n"]
    with pytest.raises(FadecastError) as e:
        open_source(_write(tmp_path, rows)).read()
    assert (e.value.code, e.value.row, e.value.column) == ("bad_timestamp", 3, "start_time")


def test_the_real_table_reads_as_the_evaluation_loader_does(shared_data):
    from ml.sources.nasa_pcoe import load

    path = shared_data / "nasa_pcoe" / "metadata.csv"
    got = open_source(path, cell_column="battery_id", cell_value="B0036").read()
    with pytest.warns(UserWarning):  # B0052 has too few discharges for the loader
        raw = {r.cell_id: r for r in load(shared_data / "nasa_pcoe")}
    ref = raw["B0036"].cycles
    assert len(got) == len(ref) == 197
    assert got["source_row"].iloc[0] == 3515
    assert np.array_equal(got["test_time_second"].to_numpy(), ref["test_time_second"].to_numpy())
    assert np.array_equal(got["discharge_capacity_ah"].to_numpy(),
                          ref["discharge_capacity_ah"].to_numpy())
    assert got["discharge_capacity_ah"].iloc[0] == pytest.approx(1.00198, abs=1e-5)  # line 3515


def test_every_battery_is_stored_as_its_own_cell(tmp_path, _isolated_home):
    from data_registry.store import Registry

    path = _write(tmp_path, ROWS + [OTHER])
    with Registry() as reg:
        table = reg.ingest_table(path, "battery_id", "nasa-")
        assert sorted(r.cell_id for r in table.cells) == ["nasa-B0001", "nasa-B0002"]
        one = reg.load_cycles("nasa-B0001")
        assert one["discharge_capacity_ah"].tolist() == [1.8, 1.7, 1.6]
        assert reg.load_cycles("nasa-B0002")["temperature_celsius"].tolist() == [4.0]


def test_a_headerless_matrix_of_capacities_is_named_not_read_as_a_header(tmp_path, capsys):
    from serving.cli import main

    # Severson's Qn layout: one cell per line, its capacity at each cycle across (NaN padded)
    path = tmp_path / "Qn.csv"
    path.write_text("\n".join(",".join(["NaN"] + [f"{1.07 - 1e-4 * k:.7f}" for k in range(30)])
                              for _ in range(3)) + "\n")
    with pytest.raises(FadecastError) as e:
        open_source(path)
    assert e.value.code == "unknown_format"
    assert "headerless table of numbers (31 numbers on each of the first 3 lines)" in str(e.value)
    # fadecast forecast --cycles says the same, not "column 'cycle_index' missing, found NaN…"
    assert main(["forecast", "--cycles", str(path), "--horizon-cycles", "5"]) != 0
    err = capsys.readouterr().err
    assert "headerless table of numbers" in err and "cycle_index': required column" not in err
    # a short numeric table (fewer than 10 columns) is not called a matrix
    short = tmp_path / "short.csv"
    short.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(FadecastError) as e:
        open_source(short)
    assert "headerless table" not in str(e.value)
