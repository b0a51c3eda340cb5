"""``Registry.ingest(..., reader_options=...)``: reader options forwarded, checked, reconciled
with ``meta``. The fixture has 3 cycles and no time column; 2 h per cycle → 7200 s per cycle."""
from __future__ import annotations

import pytest

from data_registry.errors import InputFormatError, StoreError
from data_registry.reader_options import reader_options_for
from data_registry.store import Registry


@pytest.fixture
def reg(_isolated_home):
    r = Registry()
    yield r
    r.close()


@pytest.fixture
def no_time(test_data):
    return test_data / "readers" / "generic_cycles_no_time.csv"


def test_reader_options_estimate_the_clock(reg, no_time):
    report = reg.ingest(no_time, "c", reader_options={"protocol_hours_per_cycle": 2})
    assert [w.code for w in report.warnings] == ["test_time_estimated"]
    cycles = reg.load_cycles("c")
    assert cycles["test_time_second"].tolist() == [7200.0, 14400.0, 21600.0]
    assert reg.cell_metadata("c") == {}  # an option, not a stated cell fact


def test_meta_alias_is_forwarded_and_kept(reg, no_time):
    reg.ingest(no_time, "c", meta={"hours_per_cycle": "0.5"})
    assert reg.load_cycles("c")["test_time_second"].tolist() == [1800.0, 3600.0, 5400.0]
    assert reg.cell_metadata("c") == {"protocol_hours_per_cycle": 0.5}


def test_max_line_bytes_reaches_the_reader(reg, test_data):
    with pytest.raises(InputFormatError, match="line too long") as e:
        reg.ingest(test_data / "store" / "cell_part1.csv", "c",
                   reader_options={"max_line_bytes": 10})
    assert e.value.code == "line_too_long" and e.value.row == 1
    assert reg.cells() == []


def test_reader_option_checks():
    assert reader_options_for(None, {}) == {}
    assert reader_options_for({"max_line_bytes": "4096"}, {}) == {"max_line_bytes": 4096}
    assert reader_options_for({"protocol_hours_per_cycle": 2.0},
                              {"protocol_hours_per_cycle": 2}) == {
        "protocol_hours_per_cycle": 2.0}
    with pytest.raises(StoreError, match="unknown reader option") as e:
        reader_options_for({"hours": 2}, {})
    assert e.value.column == "hours"
    with pytest.raises(StoreError, match="contradicts the metadata"):
        reader_options_for({"protocol_hours_per_cycle": 3}, {"protocol_hours_per_cycle": 2.0})
    for bad in ({"max_line_bytes": 1.5}, {"max_line_bytes": 0},
                {"protocol_hours_per_cycle": float("inf")}):
        with pytest.raises(StoreError, match="is not valid"):
            reader_options_for(bad, {})


def test_capacity_unit_states_what_a_unitless_column_holds(reg, tmp_path, capsys):
    """A coin cell's capacity in mAh under a header without a unit: by default read as Ah and
    warned (naming --capacity-unit); stated as mAh it is stored in Ah (3.72 mAh -> 0.00372)."""
    from serving.cli import main

    table = tmp_path / "coin.csv"
    table.write_text("cycle,capacity\n1,3.72\n2,3.70\n3,3.69\n", encoding="utf-8")
    report = reg.ingest(table, "guess", reader_options={"protocol_hours_per_cycle": 2})
    warned = {w.code: w for w in report.warnings}
    assert "--capacity-unit mAh" in warned["capacity_unit_inferred"].message
    assert reg.load_cycles("guess")["discharge_capacity_ah"].tolist() == [3.72, 3.70, 3.69]
    stated = tmp_path / "coin_stated.csv"
    stated.write_text("cycle,capacity\n1,3.72\n2,3.70\n3,3.68\n", encoding="utf-8")
    assert main(["ingest", str(stated), "--cell-id", "coin", "--hours-per-cycle", "2",
                 "--capacity-unit", "mAh", "--no-progress"]) == 0
    got = Registry().load_cycles("coin")["discharge_capacity_ah"].tolist()
    assert got == pytest.approx([0.00372, 0.00370, 0.00368], rel=1e-12)
    assert "capacity_unit_inferred" not in capsys.readouterr().err
    with pytest.raises(StoreError, match="is not valid"):
        reader_options_for({"capacity_unit": "kAh"}, {})
