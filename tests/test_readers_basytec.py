"""BaSyTec text exports: a hand-made file in BaSyTec's layout (``~`` preamble, ``~Time[h]``
header, tab-separated rows, latin-1, optionally decimal commas) of a cell cycled at ±0.5 A with
a known charge per cycle, read through ingest and the per-cycle features."""
from __future__ import annotations

from pathlib import Path

import pytest

from data_registry.errors import InputFormatError
from data_registry.readers import detect, open_source

HEADER = ("~Time[h]\tDataSet\tDate\tTime\tt-Step[h]\tLine\tCommand\tU[V]\tI[A]\tAh[Ah]\t"
          "Ah-Cyc-Charge-0\tAh-Cyc-Discharge-0\tT1[°C]\tCyc-Count\tState")
PREAMBLE = ["~Resultfile from Basytec Battery Test System",
            "~Date and Time of Data Converting: 19.05.2025 14:36:50",
            "~Name of Test: cell7 cycling", "~Battery: NMC 1Ah", "~"]
#: minutes of charge and of discharge at 0.5 A per cycle → 0.5 A × n / 60 h Ah
MINUTES = (108, 104, 100)


def basytec_lines(header: str = HEADER, comma: bool = False, scale_i: float = 1.0
                  ) -> list[str]:
    rows, t, n_row = [], 0.0, 0
    for cycle, n in enumerate(MINUTES, start=1):
        for line, cmd, amp, steps in ((3, "Charge", 0.5, n), (4, "Pause", 0.0, 15),
                                      (5, "Discharge", -0.5, n)):
            for k in range(steps + 1):
                n_row += 1
                volt = 3.6 + 0.5 * k / steps if amp > 0 else (4.1 if amp == 0
                                                              else 4.0 - k / steps)
                fields = [f"{t:.6f}", str(n_row), "05.05.2025", "14:00:00", f"{k / 60:.6f}",
                          str(line), cmd, f"{volt:.4f}", f"{amp * scale_i:.4f}", "0", "0", "0",
                          "25.1", str(cycle), "1"]
                if comma:
                    fields = [f.replace(".", ",") for f in fields]
                rows.append("\t".join(fields))
                if k < steps:
                    t += 1 / 60
    return PREAMBLE + [header] + rows


def _write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return path


@pytest.mark.parametrize("comma", [False, True])
def test_basytec_export_reads_clock_current_cycles_and_capacity(tmp_path, comma):
    from ml.features import build_cycle_table

    p = _write(tmp_path / "cell7.txt", basytec_lines(comma=comma))
    assert detect(p) == "basytec_txt"
    src = open_source(p)
    df = src.read()
    first = len(PREAMBLE) + 2  # 1-based line of the first row
    assert df["source_row"].iloc[0] == first
    assert df["test_time_second"].iloc[1] == pytest.approx(60.0, abs=0.01)  # 0.016667 h
    assert df["current_ampere"].max() == 0.5 and df["current_ampere"].min() == -0.5
    assert sorted(df["cycle_count"].unique()) == [1, 2, 3]
    assert df["ambient_temperature_celsius"].iloc[0] == pytest.approx(25.1)
    assert "cell7 cycling" in src.metadata["preamble"]
    table = build_cycle_table(df.assign(cell_id="cell7"), voltage_curves=False)
    expected = [0.5 * n / 60 for n in MINUTES]  # Ah, integrated from the current
    assert table["discharge_capacity_ah"].to_numpy() == pytest.approx(expected, rel=1e-4)
    assert table["charge_capacity_ah"].to_numpy() == pytest.approx(expected, rel=1e-4)


def test_basytec_milliamp_and_minute_units(tmp_path):
    header = HEADER.replace("~Time[h]", "~Time[min]").replace("I[A]", "I[mA]")
    lines = basytec_lines(header=header, scale_i=1000.0)
    # Time[min]: the same numbers now count minutes
    df = open_source(_write(tmp_path / "ma.txt", lines)).read()
    assert df["current_ampere"].max() == pytest.approx(0.5)
    assert df["test_time_second"].iloc[1] == pytest.approx(1.0, abs=0.01)  # 0.016667 min


def test_basytec_per_mass_export_is_refused_naming_its_columns(tmp_path):
    header = HEADER.replace("I[A]", "I[A/kg]").replace("Ah[Ah]", "Ah[Ah/kg]")
    with pytest.raises(InputFormatError) as err:
        open_source(_write(tmp_path / "kg.txt", basytec_lines(header=header)))
    assert err.value.row == len(PREAMBLE) + 1 and "per mass" in str(err.value)
    assert "I[A/kg]" in str(err.value)


def test_basytec_blank_separated_export_is_refused_saying_why(tmp_path):
    lines = [line.replace("\t", " ") for line in basytec_lines()]
    with pytest.raises(InputFormatError) as err:
        open_source(_write(tmp_path / "blank.txt", lines))
    assert err.value.code == "unsupported_layout" and "separated by blanks" in str(err.value)
    assert err.value.row == len(PREAMBLE) + 1


def test_basytec_semicolon_export_reads_like_the_tab_one(tmp_path):
    lines = [line.replace("\t", ";") for line in basytec_lines()]
    df = open_source(_write(tmp_path / "semi.txt", lines)).read()
    assert df["current_ampere"].min() == -0.5 and df["cycle_count"].max() == 3
