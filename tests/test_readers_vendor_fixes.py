"""Vendor reader fixes found by a new-user trial on real files:

* Indigo: the signed capacity counter is split into charging/discharging by its own sign, not
  by the sign of the current at the row (a charge pulse inside a discharge moved the whole
  amount discharged so far into the charging column; CE came out ~0.5);
* BioLogic .mpr: impedance rows (``freq/Hz`` > 0) are skipped from the samples with a warning;
* Maccor: a pause (wall clock jumps, test time does not) is added to ``test_time_second``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_registry.readers import open_source
from ml.features.capacity import counter_increments

# ----------------------------------------------------------------------------------- Indigo


def _write_indigo(path, frame: pd.DataFrame) -> None:
    """A pandas "fixed" HDF5 frame as Indigo writes it (one float block), with h5py."""
    import h5py
    names = [n.encode() for n in frame.columns]
    with h5py.File(path, "w") as f:
        g = f.create_group("time_series_data")
        g["axis0"] = np.array(names)
        g["axis1"] = np.arange(len(frame))
        g["block0_items"] = np.array(names)
        g["block0_values"] = frame.to_numpy(np.float64)


def _per_cycle(df: pd.DataFrame) -> pd.DataFrame:
    """Per-cycle charge/discharge Ah the way ml.features sums the counters."""
    starts = np.array([0])
    out = {c: pd.Series(counter_increments(df[c].to_numpy(np.float64), starts))
           .groupby(df["cycle_count"].to_numpy()).sum()
           for c in ("charging_capacity_ah", "discharging_capacity_ah")}
    return pd.DataFrame(out)


def test_indigo_charge_pulse_inside_discharge_stays_discharge(tmp_path):
    # cycle 1: charge at +36 A for 400 s (counter 0 → 14400 C = 4 Ah), then a discharge at
    # -36 A whose third sample falls on a short +3.6 A pulse: the counter (net, since the half
    # cycle began) reads -6840 C = -1.9 Ah there (2 Ah out, 0.1 Ah back in), and ends at
    # -14040 C = 3.9 Ah. Cycle 2: a charge to 7200 C = 2 Ah.
    t = [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200]
    current = [36, 36, 36, 36, 36, -36, -36, 3.6, -36, -36, 36, 36, 36]
    coulomb = [0, 3600, 7200, 10800, 14400, 0, -3600, -6840, -10440, -14040, 0, 3600, 7200]
    half = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3]
    cycle = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2]
    n = len(t)
    frame = pd.DataFrame({
        "cycle_count": cycle, "half_cycle_count": half, "time_s": t,
        "system_time_us": 1.6e15 + np.array(t) * 1e6, "cell_coulomb_count_c": coulomb,
        "cell_current_a": current, "cell_temperature_c": np.full(n, 25.0),
        "cell_energy_j": np.array(coulomb) * 3.6, "cell_voltage_v": np.full(n, 3.6)})
    path = tmp_path / "pulse.h5"
    _write_indigo(path, frame)
    src = open_source(path)
    assert src.format_name == "indigo_h5"
    df = src.read()
    pulse = df.iloc[7]
    # the pulse row: 1.9 Ah discharged so far, nothing charged in this half cycle
    assert pulse["current_ampere"] == pytest.approx(3.6)
    assert pulse["discharging_capacity_ah"] == pytest.approx(1.9)
    assert np.isnan(pulse["charging_capacity_ah"])
    assert pulse["discharging_energy_wh"] == pytest.approx(1.9 * 3.6)
    np.testing.assert_allclose(df["discharging_capacity_ah"].iloc[5:10],
                               [0.0, 1.0, 1.9, 2.9, 3.9])
    per = _per_cycle(df)
    # by hand: cycle 1 charged 4.0 Ah, discharged 3.9 Ah (CE 0.975); cycle 2 charged 2.0 Ah.
    # (the current-sign split gave cycle 1 a charge of 4.0 + 1.9 = 5.9 Ah, CE 0.66)
    np.testing.assert_allclose(per["charging_capacity_ah"], [4.0, 2.0])
    np.testing.assert_allclose(per["discharging_capacity_ah"], [3.9, 0.0], atol=1e-12)


def test_indigo_real_file_coulombic_efficiency(shared_data):
    path = shared_data / "parsers" / "indigo_beep" / "indigo_test_sample.h5"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    df = open_source(path, chunk_rows=100_000).read()
    # record 1074: a +2.44 A pulse inside a discharge; the counter reads -26759.96 C there,
    # i.e. 7.4333 Ah discharged so far in that half cycle (not charged)
    row = df[df["source_row"] == 1074].iloc[0]
    assert row["current_ampere"] == pytest.approx(2.437721, rel=1e-5)
    assert row["discharging_capacity_ah"] == pytest.approx(26759.962891 / 3600, rel=1e-6)
    assert np.isnan(row["charging_capacity_ah"])
    per = _per_cycle(df)
    # cycle 1 starts with a discharge of a cell charged before the log; cycle 84 is the log's
    # truncated end (a second discharge and a partial charge still counted as cycle 84)
    whole = per.loc[2:83]
    ce = whole["discharging_capacity_ah"] / whole["charging_capacity_ah"]
    assert len(ce) == 82
    assert 0.98 <= float(ce.median()) <= 1.0
    assert ce.between(0.95, 1.01).all()
    assert whole["charging_capacity_ah"].between(18.6, 19.1).all()  # was ~36 Ah


# ---------------------------------------------------------------------------- BioLogic .mpr


def _fake_mpr(monkeypatch, tmp_path, records: dict[str, list]):
    """A ``.mpr`` whose table galvani would return as ``records`` (galvani is replaced, so
    the test runs without the optional GPL extra)."""
    import types

    from data_registry.readers import biologic_mpr
    names = list(records)
    data = np.zeros(len(records[names[0]]), dtype=[(n, np.float64) for n in names])
    for n in names:
        data[n] = records[n]

    class MPRfile:
        def __init__(self, _path):
            self.data, self.timestamp = data, None

    monkeypatch.setattr(biologic_mpr, "_galvani", lambda: types.SimpleNamespace(
        MPRfile=MPRfile))
    path = tmp_path / "peis_gcpl.mpr"
    path.write_bytes(biologic_mpr.MAGIC + b" " * 64)
    return path


@pytest.mark.parametrize("chunk_rows", [100, 4, 5])
def test_mpr_impedance_records_skipped_with_one_warning(monkeypatch, tmp_path, chunk_rows):
    # records 1-2 and 8-9 cycle at +1 mA / -1 mA; records 3-5 are one impedance sweep
    # (1 kHz, 100 Hz, 10 Hz) and 6-7 a second one (1 kHz, 100 Hz), all at 0 mA
    path = _fake_mpr(monkeypatch, tmp_path, {
        "time/s": [0.0, 10, 20, 21, 22, 23, 24, 30, 40],
        "Ewe/V": [3.0, 3.1, 0.12, 0.12, 0.12, 0.12, 0.12, 3.2, 3.1],
        "I/mA": [1.0, 1.0, 0, 0, 0, 0, 0, -1.0, -1.0],
        "Ns": [1, 1, 2, 2, 2, 2, 2, 3, 3],
        "half cycle": [0, 0, 0, 0, 0, 0, 0, 1, 1],
        "freq/Hz": [0, 0, 1000, 100, 10, 1000, 100, 0, 0],
    })
    src = open_source(path, chunk_rows=chunk_rows)
    df = src.read()
    assert df["source_row"].tolist() == [1, 2, 8, 9]
    np.testing.assert_allclose(df["current_ampere"], [1e-3, 1e-3, -1e-3, -1e-3])
    np.testing.assert_allclose(df["voltage_volt"], [3.0, 3.1, 3.2, 3.1])
    (w,) = src.warnings
    assert (w.code, w.row, w.column, w.count) == ("eis_rows_skipped", 3, "freq/Hz", 5)
    assert w.details == {"frequency_min_hz": 10.0, "frequency_max_hz": 1000.0, "sweeps": 2}
    assert "5 impedance records" in w.message and "2 sweep(s)" in w.message
    assert "ingest that file as EIS" in w.message


def test_mpr_without_impedance_records_has_no_warning(monkeypatch, tmp_path):
    path = _fake_mpr(monkeypatch, tmp_path, {
        "time/s": [0.0, 10, 20], "Ewe/V": [3.0, 3.1, 3.2], "I/mA": [1.0, 1.0, 1.0],
        "Ns": [1, 1, 1], "freq/Hz": [0.0, 0.0, 0.0]})
    src = open_source(path)
    assert len(src.read()) == 3 and src.warnings == []


def test_mpr_real_file_impedance_records_skipped(shared_data):
    pytest.importorskip("galvani", reason="BioLogic .mpr needs the optional extra galvani")
    path = shared_data / "parsers" / "biologic_cellpy" / "biol.mpr"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    src = open_source(path)
    df = src.read()
    # 23561 records, 310 of them in 5 PEIS sweeps (100 kHz → 50 mHz) starting at record 28
    assert len(df) == 23561 - 310
    (w,) = src.warnings
    assert (w.code, w.row, w.count, w.details["sweeps"]) == ("eis_rows_skipped", 28, 310, 5)
    assert w.details["frequency_max_hz"] == pytest.approx(100019.5078125)
    assert w.details["frequency_min_hz"] == pytest.approx(0.0499552, rel=1e-5)
    assert 28 not in set(df["source_row"]) and {27, 92} <= set(df["source_row"])


def test_mpr_with_only_impedance_records_is_refused_clearly(monkeypatch, tmp_path):
    from data_registry.errors import InputFormatError
    path = _fake_mpr(monkeypatch, tmp_path, {
        "time/s": [0.0, 1, 2], "Ewe/V": [0.1, 0.1, 0.1], "I/mA": [0.0, 0.0, 0.0],
        "Ns": [1, 1, 1], "freq/Hz": [1000.0, 100.0, 10.0]})
    with pytest.raises(InputFormatError) as err:
        open_source(path).read()
    assert err.value.code == "eis_only" and err.value.file == "peis_gcpl.mpr"
    assert "3 records, all with freq/Hz > 0" in str(err.value.found)
