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
    assert "fadecast warburg --eis" in w.message and "biologic_mpr_eis" in w.message


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


def test_a_peis_mpr_is_read_as_eis_spectra(monkeypatch, tmp_path):
    from data_registry.errors import InputFormatError
    from data_registry.readers.formats import detect
    # a PEIS technique file: every record an impedance record; two sweeps told by z cycle
    path = _fake_mpr(monkeypatch, tmp_path, {
        "time/s": [0.0, 1, 2, 50, 51], "Ewe/V": [3.7, 3.7, 3.7, 3.6, 3.6],
        "I/mA": [0.0] * 5, "Ns": [1] * 5, "freq/Hz": [1000.0, 100.0, 10.0, 1000.0, 100.0],
        "Re(Z)/Ohm": [0.05, 0.06, 0.08, 0.051, 0.061],
        "-Im(Z)/Ohm": [0.01, 0.02, 0.04, 0.011, 0.021], "z cycle": [0, 0, 0, 1, 1]})
    assert detect(path) == "biologic_mpr_eis"
    src = open_source(path)
    df = src.read()
    assert src.kind == "eis" and src.format_name == "biologic_mpr_eis"
    assert df["measurement_id"].tolist() == ["peis_gcpl#1"] * 3 + ["peis_gcpl#2"] * 2
    np.testing.assert_allclose(df["z_imag_ohm"], [-0.01, -0.02, -0.04, -0.011, -0.021])
    np.testing.assert_allclose(df["z_real_ohm"], [0.05, 0.06, 0.08, 0.051, 0.061])
    np.testing.assert_allclose(df["voltage_volt"], [3.7, 3.7, 3.7, 3.6, 3.6])
    # its time/s is the EC-Lab experiment's clock, not necessarily the cell's test
    assert not {"cycle_count", "test_time_second"} & set(df.columns)
    assert [w.code for w in src.warnings] == ["eis_cycle_count_unknown"]
    # forced as cycling samples: refused, naming the format that reads it
    with pytest.raises(InputFormatError) as err:
        open_source(path, format_name="biologic_mpr").read()
    assert err.value.code == "eis_only" and err.value.file == "peis_gcpl.mpr"
    assert "5 records, all with freq/Hz > 0" in str(err.value.found)
    assert "biologic_mpr_eis" in str(err.value.expected)


def test_a_cycling_mpr_s_impedance_records_on_the_samples_clock(monkeypatch, tmp_path):
    from data_registry.errors import InputFormatError
    from ml.features.commands import read_eis_file
    # records 1-2 cycle (half cycle 0 -> cycle 0), 3-5 one sweep, 6-7 cycle (half cycle 2 ->
    # cycle 1), 8-9 a second sweep; no Re/Im columns: |Z| and phase (deg)
    path = _fake_mpr(monkeypatch, tmp_path, {
        "time/s": [0.0, 10, 20, 21, 22, 30, 40, 41, 42],
        "Ewe/V": [3.0, 3.1, 0.12, 0.12, 0.12, 3.2, 3.1, 0.2, 0.2],
        "I/mA": [1.0, 1.0, 0, 0, 0, -1.0, -1.0, 0, 0],
        "Ns": [1, 1, 2, 2, 2, 3, 3, 4, 4], "half cycle": [0, 0, 0, 0, 0, 2, 2, 2, 2],
        "freq/Hz": [0, 0, 1000, 100, 10, 0, 0, 1000, 100],
        "|Z|/Ohm": [0, 0, 2.0, 2.0, 4.0, 0, 0, 1.0, 1.0],
        "Phase(Z)/deg": [0, 0, -30.0, -60.0, -90.0, 0, 0, 0.0, -45.0]})
    assert open_source(path).kind == "samples"  # detected as its cycling samples
    df = read_eis_file(str(path))  # `fadecast warburg --eis` reads its spectra
    assert df["source_row"].tolist() == [3, 4, 5, 8, 9]
    assert df["measurement_id"].tolist() == ["peis_gcpl#1"] * 3 + ["peis_gcpl#2"] * 2
    # Z' = |Z| cos(phase), Z'' = |Z| sin(phase), by hand
    np.testing.assert_allclose(df["z_real_ohm"], [3 ** 0.5, 1.0, 0.0, 1.0, 0.5 ** 0.5],
                               atol=1e-12)
    np.testing.assert_allclose(df["z_imag_ohm"], [-1.0, -(3 ** 0.5), -4.0, 0.0, -(0.5 ** 0.5)],
                               atol=1e-12)
    assert df["test_time_second"].tolist() == [20.0, 21.0, 22.0, 41.0, 42.0]
    assert df["cycle_count"].tolist() == [0, 0, 0, 1, 1]
    # a .mpr without impedance records: `warburg --eis` says it holds no spectra; forcing the
    # EIS format is refused
    (tmp_path / "p").mkdir()
    plain = _fake_mpr(monkeypatch, tmp_path / "p", {
        "time/s": [0.0, 1.0], "Ewe/V": [3.0, 3.1], "I/mA": [1.0, 1.0], "Ns": [1, 1],
        "freq/Hz": [0.0, 0.0]})
    with pytest.raises(InputFormatError) as err:
        read_eis_file(str(plain))
    assert err.value.code == "wrong_kind" and "holds no EIS spectra" in str(err.value)
    with pytest.raises(InputFormatError) as err:
        open_source(plain, format_name="biologic_mpr_eis")
    assert err.value.code == "wrong_format"


@pytest.mark.parametrize("freq, expected", [
    ([1000.0, 100, 10, 1000, 100], [1, 1, 1, 2, 2]),  # high -> low, twice
    ([10.0, 100, 1000, 10, 100, 1000], [1, 1, 1, 2, 2, 2]),  # low -> high (one per sweep)
    ([1000.0, 100, 100, 10], [1, 1, 2, 2]),  # a repeated frequency starts a sweep
])
def test_mpr_sweeps_follow_their_direction(freq, expected):
    from data_registry.readers.biologic_mpr import _sweeps

    f = np.array([0.0] + freq)  # a cycling record first
    eis = f > 0
    assert _sweeps(f, eis, None).tolist() == expected


def test_mpr_real_file_spectra(shared_data):
    pytest.importorskip("galvani", reason="BioLogic .mpr needs the optional extra galvani")
    from ml.features.commands import read_eis_file
    from ml.features.warburg import warburg_table

    path = shared_data / "parsers" / "biologic_cellpy" / "biol.mpr"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    df = read_eis_file(str(path))
    # the 310 impedance records of 5 sweeps (z cycle 0-4), from record 28 at t = 661.19 s
    assert len(df) == 310 and df["measurement_id"].nunique() == 5
    first = df.iloc[0]
    assert first["source_row"] == 28 and first["frequency_hz"] == pytest.approx(100019.51)
    # biol.mpr stores |Z| = 6.572359 Ω and phase -2.7340386° (no Re/Im columns)
    phase = np.radians(-2.7340386)
    assert first["z_real_ohm"] == pytest.approx(6.572359 * np.cos(phase), rel=1e-6)
    assert first["z_imag_ohm"] == pytest.approx(6.572359 * np.sin(phase), rel=1e-6)
    assert first["test_time_second"] == pytest.approx(661.19, abs=0.01)
    table = warburg_table(df)
    assert len(table) == 5 and table["ok"].all()


# ----------------------------------------------------------------------------------- Maccor

PAUSED = "vendor_fixes/maccor_paused.052"
#: by hand: the wall clock (DPt Time) minus the test clock (Test (Sec)) at each pause —
#: line 6: 23:59:00 → 02:00:00 next day = 7260 s while Test (Sec) advances 0.02 s: 7259.98 s;
#: line 9: 02:01:00 → 02:03:00 = 120 s for 0.02 s: 119.98 s; lines 13-14: the test clock
#: stands at 210.04 s while the wall clock steps 40 s twice (each step under 60 s, the run
#: 80 s). Line 11 (wall step 31 s for 30 s) is the clock's 1-s jitter, not a pause.
PAUSES = {6: 7259.98, 9: 119.98, 13: 80.0}
#: expected test_time_second per line 3..15 = wall-clock seconds since 23:58:00 (but line 11,
#: 02:04:01, whose extra second is jitter)
EXPECTED_TIME = [0.0, 30.0, 60.0, 7320.0, 7350.0, 7380.0, 7500.0, 7530.0, 7560.0, 7590.0,
                 7630.0, 7670.0, 7700.0]
#: Test (Sec) as written, lines 3..15
WRITTEN = [0, 30, 60, 60.02, 90.02, 120.02, 120.04, 150.04, 180.04, 210.04, 210.04, 210.04,
           240.04]


@pytest.fixture
def adding(monkeypatch):
    """Pauses added to test_time_second (maccor.ADD_PAUSE_TIME, the default)."""
    from data_registry.readers import maccor
    monkeypatch.setattr(maccor, "ADD_PAUSE_TIME", True)


def _maccor(test_data, tmp_path, wall=None):
    """The paused fixture, optionally with its wall clock rewritten by ``wall(text)``."""
    src = test_data / "readers" / PAUSED
    if wall is None:
        return src
    lines = src.read_text().split("\n")
    out = lines[:2]
    for line in lines[2:]:
        f = line.split("\t")
        if len(f) > 11:
            f[11] = wall(f[11])
        out.append("\t".join(f))
    path = tmp_path / src.name
    path.write_text("\n".join(out))
    return path


def test_maccor_pause_warned_time_kept_when_adding_is_off(test_data, monkeypatch):
    from data_registry.readers import maccor
    monkeypatch.setattr(maccor, "ADD_PAUSE_TIME", False)
    src = open_source(test_data / "readers" / PAUSED)
    df = src.read()
    written = dict(zip(range(3, 16), WRITTEN))  # line 14 repeats line 13: dropped as duplicate
    assert df["source_row"].tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]
    np.testing.assert_allclose(df["test_time_second"],
                               [written[r] for r in df["source_row"]], atol=1e-9)
    (w,) = [w for w in src.warnings if w.code == "test_paused"]
    assert (w.row, w.count, w.details["added_to_test_time"]) == (6, 3, False)
    assert w.details["lines"] == list(PAUSES)
    assert w.details["total_pause_second"] == pytest.approx(7459.96, abs=1e-6)
    assert "NOT in test_time_second" in w.message


def test_maccor_pause_added_to_elapsed_time(test_data, adding):
    src = open_source(test_data / "readers" / PAUSED)
    df = src.read()
    assert src.format_name == "maccor_txt"
    assert df["source_row"].tolist() == list(range(3, 16))
    np.testing.assert_allclose(df["test_time_second"], EXPECTED_TIME, atol=1e-6)
    (w,) = [w for w in src.warnings if w.code == "test_paused"]
    assert (w.row, w.column, w.count) == (6, "test_time_second", 3)
    assert w.details["lines"] == list(PAUSES)
    np.testing.assert_allclose(w.details["pauses_second"], list(PAUSES.values()), atol=1e-6)
    assert w.details["total_pause_second"] == pytest.approx(7459.96, abs=1e-6)
    assert "line 6: 7259.98 s (10/21/2019 23:59:00 → 10/22/2019 02:00:00)" in w.message
    assert "7459.96 s (2.07 h) in all" in w.message and w.details["added_to_test_time"]
    # the capacity counter and the current are untouched
    assert df["discharging_capacity_ah"].max() == pytest.approx(0.0416722222)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5])
def test_maccor_pause_same_across_chunks(test_data, chunk_rows, adding):
    src = open_source(test_data / "readers" / PAUSED, chunk_rows=chunk_rows)
    df = src.read()
    t = df["test_time_second"].to_numpy()
    (w,) = [w for w in src.warnings if w.code == "test_paused"]
    assert w.details["lines"] == list(PAUSES)
    assert w.details["total_pause_second"] == pytest.approx(7459.96, abs=1e-6)
    # a stalled run cut by a chunk boundary adds its earlier part at its first row of the next
    # chunk: line 13 may keep 7590 s; every other line is as by hand
    keep = df["source_row"].to_numpy() != 13
    np.testing.assert_allclose(t[keep], np.array(EXPECTED_TIME)[keep], atol=1e-6)


def test_maccor_wall_clock_am_pm_format(test_data, tmp_path, adding):
    def am_pm(text):
        stamp = pd.Timestamp(text)
        return f"{stamp.month}/{stamp.day}/{stamp.year} {stamp.strftime('%I:%M:%S %p').lstrip('0')}"
    df = open_source(_maccor(test_data, tmp_path, am_pm)).read()
    np.testing.assert_allclose(df["test_time_second"], EXPECTED_TIME, atol=1e-6)


def test_maccor_unreadable_wall_clock_changes_nothing(test_data, tmp_path, adding):
    src = open_source(_maccor(test_data, tmp_path, lambda text: "n/a"))
    df = src.read()
    assert [w.code for w in src.warnings if w.code == "test_paused"] == []
    written = dict(zip(range(3, 16), WRITTEN))
    np.testing.assert_allclose(df["test_time_second"],
                               [written[r] for r in df["source_row"]], atol=1e-9)


def test_maccor_daylight_saving_jump_is_not_a_pause(test_data, tmp_path, adding):
    # the clock moved to a spring-forward night: line 5 at 01:59:59, line 6 at 03:00:00
    # (3601 s on the wall clock for 0.02 s of test: 3600.98 s excess, from 01:xx local time)
    # is read as the clock change, not as a pause; the later pauses are unchanged
    def spring(text):
        return (text.replace("10/21/2019 23:59:00", "03/10/2019 01:59:59")
                .replace("10/21/2019 23:", "03/10/2019 01:")
                .replace("10/22/2019 02:", "03/10/2019 03:"))
    src = open_source(_maccor(test_data, tmp_path, spring))
    src.read()
    (w,) = [w for w in src.warnings if w.code == "test_paused"]
    assert w.details["dst_lines"] == [6]
    assert w.details["lines"] == [9, 13]
    assert w.details["total_pause_second"] == pytest.approx(119.98 + 80.0, abs=1e-6)
    assert "daylight-saving" in w.message


def test_maccor_wall_clock_time_of_day_rolls_over_midnight():
    from data_registry.readers.maccor import wall_clock_seconds
    secs = wall_clock_seconds(pd.Series(["23:59:00", "23:59:30", "00:00:10", "n/a", "01:00:00"]))
    np.testing.assert_allclose(secs[[0, 1, 2, 4]], [86340.0, 86370.0, 86410.0, 90000.0])
    assert np.isnan(secs[3])
    full = wall_clock_seconds(pd.Series(["10/21/2019 23:59:59", "10/22/2019 00:00:01"]))
    assert full[1] - full[0] == 2.0
    am_pm = wall_clock_seconds(pd.Series(["5/14/2021 11:59:13 AM", "5/14/2021 1:10:13 PM"]))
    assert am_pm[0] == pd.Timestamp("2021-05-14 11:59:13").timestamp()
    assert am_pm[1] - am_pm[0] == 4260.0


def test_maccor_real_paused_file(shared_data):
    path = shared_data / "parsers" / "maccor_beep" / "PredictionDiagnostics_000151_paused.052"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    src = open_source(path)
    df = src.read()
    (w,) = [w for w in src.warnings if w.code == "test_paused"]
    # line 47: 10:59:59 → 13:00:00 (7201 s) while Test (Sec) goes 769267.67 → 769267.69
    assert (w.row, w.details["lines"]) == (47, [47])
    assert w.details["total_pause_second"] == pytest.approx(7201 - 0.02, abs=1e-6)
    assert "line 47: 7200.98 s (10/21/2019 10:59:59 → 10/21/2019 13:00:00)" in w.message
    # the pause is added from line 47 on (data_registry.consistency leaves the pause-sized
    # step at −4.84 A out of its unit check, else this 3-s file is refused as mA-as-A)
    assert w.details["added_to_test_time"]
    row = df[df["source_row"] == 47].iloc[0]
    assert row["test_time_second"] == pytest.approx(769267.69 + 7200.98, abs=1e-6)
    assert df["test_time_second"].iloc[-1] == pytest.approx(769270.57 + 7200.98, abs=1e-6)


def test_maccor_real_files_without_pauses_stay_quiet(shared_data):
    for rel in ("PredictionDiagnostics_000151_test.052", "PredictionDiagnostics_000109_tztest.010",
                "PreDiag_000229_000229_truncated.034"):
        path = shared_data / "parsers" / "maccor_beep" / rel
        if not path.exists():
            pytest.skip(f"{path} is absent")
        src = open_source(path)
        src.read()
        assert "test_paused" not in [w.code for w in src.warnings], rel
