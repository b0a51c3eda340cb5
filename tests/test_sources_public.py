"""Public data sources: pure pieces on hand-made input everywhere; the real files when shared."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from ml.sources import load_source
from ml.sources.geslin import elapsed_hours
from ml.sources.nasa_pcoe import parse_datevec
from ml.sources.severson import cell_cycles, hours_per_cycle


# ---- pure pieces ---------------------------------------------------------------------------
def test_severson_hours_per_cycle_by_hand():
    # uniform 4C to 80 %: 0.8/4 = 0.2 h; 80-100 % at 1C: 0.2 h; 4C discharge: 0.25 h
    assert hours_per_cycle(np.full(80, 4.0)) == pytest.approx(0.65)
    # 40 steps at 8C + 40 at 2C: 0.4/8 + 0.4/2 = 0.25 h, + 0.45
    assert hours_per_cycle(np.r_[np.full(40, 8.0), np.full(40, 2.0)]) == pytest.approx(0.70)


def test_severson_spike_is_dropped_and_clock_keeps_counting():
    row = np.array([np.nan, 1.07, 1.06, 2.88, 1.05, np.nan, np.nan])
    table, dropped = cell_cycles(row, np.full(80, 4.0), "c1")
    assert dropped == [3]
    assert table["cycle_index"].tolist() == [1, 2, 4]
    assert table["discharge_capacity_ah"].tolist() == [1.07, 1.06, 1.05]
    np.testing.assert_allclose(table["test_time_second"], np.array([1, 2, 4]) * 0.65 * 3600)
    assert (table["test_time_estimated"] == 1).all()


def test_geslin_elapsed_hours():
    # 2 x 10 EFC / 0.5 C = 40 h
    np.testing.assert_allclose(elapsed_hours(np.array([0.0, 10.0]), 0.5), [0.0, 40.0])


def test_parse_datevec_plain_and_scientific():
    assert parse_datevec("[2010.       7.      21.      15.       0.      35.093]") == \
        datetime(2010, 7, 21, 15, 0, 35, 93000)
    assert parse_datevec("[2.0080e+03 4.0000e+00 2.0000e+00 1.3000e+01 8.0000e+00 1.7921e+01]") \
        == datetime(2008, 4, 2, 13, 8, 17, 921000)
    assert parse_datevec("[2010    7   21   20   31    5]") == datetime(2010, 7, 21, 20, 31, 5)
    with pytest.raises(ValueError):
        parse_datevec("[]")


# ---- real files ----------------------------------------------------------------------------
def test_severson_real(shared_data):
    train = load_source("severson-train", root=shared_data)
    test1 = load_source("severson-test1", root=shared_data)
    assert len(train) == 41 and len(test1) == 42
    c = test1[0]
    assert c.meta["cycle_life"] == 1852
    # policy 3.6C everywhere: 0.8/3.6 + 0.2 + 0.25 h
    assert c.meta["hours_per_cycle"] == pytest.approx(0.8 / 3.6 + 0.45)
    assert c.cycles["discharge_capacity_ah"].iloc[0] == pytest.approx(1.0706892)
    assert c.cycles["cycle_index"].iloc[0] == 1
    spiky = {r.cell_id: r.meta["dropped_cycles"] for r in test1 if r.meta["dropped_cycles"]}
    assert spiky == {"severson-test1-01": [11], "severson-test1-08": [39],
                     "severson-test1-25": [252], "severson-test1-40": [247]}
    assert max(r.cycles["discharge_capacity_ah"].max() for r in train + test1) < 1.2
    assert train[0].meta["cycle_life"] == 2160
    # the last valid column is about cycle life - 2 (MANIFEST)
    assert train[0].cycles["cycle_index"].iloc[-1] == 2158


def test_severson_qdlin_real(shared_data):
    recs = load_source("severson-qdlin-train", root=shared_data)
    assert len(recs) == 41 and len(load_source("severson-qdlin-test1", root=shared_data)) == 43
    r = recs[0]
    assert r.meta["file"] == "cell1.csv.gz" and r.meta["cycle_life"] == 2160
    raw = pd.read_csv(shared_data / "severson2019_qdlin/train/cell1.csv.gz", header=None).to_numpy()
    d = raw[:, 98] - raw[:, 8]
    row100 = r.cycles[r.cycles["cycle_index"] == 100].iloc[0]
    assert row100["delta_q_v_variance_ah2"] == pytest.approx(np.var(d))
    assert row100["delta_q_v_minimum_ah"] == pytest.approx(d.min())
    assert row100["delta_q_v_mean_ah"] == pytest.approx(d.mean())
    assert row100["delta_q_v_skewness"] == pytest.approx(np.mean((d - d.mean()) ** 3)
                                                         / np.var(d) ** 1.5)
    assert r.cycles["cycle_index"].tolist() == list(range(2, 101))
    assert r.cycles["discharge_capacity_ah"].iloc[0] == pytest.approx(raw[999, 0])
    assert r.cycles["delta_q_v_mean_ah"].notna().sum() == 1
    spiky = {x.cell_id: x.meta["dropped_cycles"] for x in recs if x.meta["dropped_cycles"]}
    # two ~31 Ah curves, and cell16 cycle 73 whose curve starts at 1.487 Ah at 3.5 V
    assert spiky == {"severson-qdlin-train-02": [12], "severson-qdlin-train-09": [13],
                     "severson-qdlin-train-16": [73]}
    assert max(x.cycles["discharge_capacity_ah"].max() for x in recs) < 1.2
    # cell10 follows cell9, not cell1 (numeric order)
    assert [x.meta["file"] for x in recs[8:11]] == ["cell9.csv.gz", "cell10.csv.gz",
                                                     "cell11.csv.gz"]


def test_geslin_real(shared_data):
    recs = load_source("geslin2024", root=shared_data)
    assert len(recs) == 77
    r = recs[0]
    assert r.cell_id == "cell_003" and r.meta["protocol_type"] == "CC"
    # diagnostics.csv row 2: efc 1.98895513315, avg C-rate 0.060343280440727565
    assert r.cycles["test_time_second"].iloc[0] == pytest.approx(
        2 * 1.98895513315 / 0.060343280440727565 * 3600)
    assert r.cycles["discharge_capacity_ah"].iloc[0] == pytest.approx(0.98646652844)
    assert r.meta["cycles_to_soh90"] == pytest.approx(497.4511837081085)
    assert max(x.meta["average_c_rate"] for x in recs) == pytest.approx(0.60, abs=0.02)


def test_nasa_pcoe_real(shared_data):
    with pytest.warns(UserWarning, match="B0052"):
        recs = load_source("nasa-pcoe", root=shared_data)
    by_id = {r.cell_id: r for r in recs}
    b5 = by_id["B0005"].cycles
    assert len(b5) == 168
    # metadata.csv lines 5122-5124: charge 13:08:17.921, discharge 15:25:41.593 (1.8564874 Ah),
    # next charge 16:37:51.984 -> end = 8243.672 s + 1.8564874/2 A h
    assert b5["discharge_capacity_ah"].iloc[0] == pytest.approx(1.8564874208181574)
    assert b5["test_time_second"].iloc[0] == pytest.approx(8243.672 + 1.8564874208181574 / 2
                                                           * 3600, abs=1e-3)
    codes = {w.code for r in recs for w in r.meta["warnings"]}
    assert {"junk_capacity", "missing_capacity", "bad_impedance"} <= codes
    b33 = by_id["B0033"]
    assert b33.cycles["discharge_capacity_ah"].min() >= 0.5  # 0.068 and 0.69-type junk gone
    gaps = np.diff(np.concatenate([r.cycles["test_time_second"].to_numpy() for r in recs[:1]]))
    assert (gaps > 0).all()
    longest = max(np.diff(r.cycles["test_time_second"]).max() for r in recs) / 3600
    assert longest > 100  # the long rests are kept (up to ~307 h between operations)
    imp = by_id["B0049"].meta["impedance"]
    assert imp["re_ohm"].isna().any() and (imp["re_ohm"].dropna() > 0).all()


def test_zhang2020_real(shared_data):
    recs = {r.cell_id: r for r in load_source("zhang2020", root=shared_data)}
    assert len(recs) == 12
    c = recs["25C01"]
    assert c.cycles["discharge_capacity_ah"].iloc[0] == pytest.approx(0.03720271)  # 37.20271 mAh
    assert c.cycles["test_time_second"].isna().all()
    eis = c.meta["eis"]
    assert eis["measurement_id"].max() == 261 and len(eis) == 261 * 60
    first = eis[eis["measurement_id"] == 1]
    assert first["z_real_ohm"].iloc[0] == pytest.approx(0.3847)
    assert first["z_imag_ohm"].iloc[0] == pytest.approx(0.03513)  # file: -0.035130
    assert first["z_imag_ohm"].iloc[-1] == pytest.approx(-0.32795)  # diffusive tail < 0
    assert first["frequency_hz"].iloc[0] > first["frequency_hz"].iloc[-1]
    assert len(recs["35C02"].cycles) == 317
    timed = load_source("zhang2020", root=shared_data, hours_per_cycle=2.0)
    assert timed[0].cycles["test_time_second"].iloc[1] == pytest.approx(2 * 2.0 * 3600)


def test_zhang2020_cycle_offset_does_not_change_the_ageing_signal(shared_data):
    """Low-frequency Re(Z) vs capacity: the rank correlation barely moves with the offset."""
    from scipy.stats import spearmanr
    rhos = []
    for offset in (0, 1):
        for r in load_source("zhang2020", root=shared_data, eis_cycle_offset=offset):
            if r.cell_id != "25C01":
                continue
            eis = r.meta["eis"]
            low = eis[eis["frequency_hz"] == eis["frequency_hz"].min()]
            cap = r.cycles.set_index("cycle_index")["discharge_capacity_ah"]
            joined = low.join(cap, on="cycle_count", how="inner")
            rhos.append(spearmanr(joined["z_real_ohm"], joined["discharge_capacity_ah"])[0])
    assert rhos[0] < -0.8  # resistance rises as capacity falls
    assert abs(rhos[0] - rhos[1]) < 0.02


# ---- tiny hand-written files in each source's layout (no shared data needed) ---------------
def test_severson_tiny_files(test_data):
    recs = load_source("severson-train", root=test_data / "sources")
    assert [r.cell_id for r in recs] == ["severson-train-01", "severson-train-02"]
    a, b = recs
    assert a.meta["cycle_life"] == 12 and b.meta["cycle_life"] == 11  # BOM read away
    assert a.meta["dropped_cycles"] == [4]  # the 2.5 Ah spike
    assert a.cycles["cycle_index"].tolist() == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    assert a.meta["hours_per_cycle"] == pytest.approx(0.65)
    assert b.meta["hours_per_cycle"] == pytest.approx(0.70)
    assert b.cycles["test_time_second"].iloc[-1] == pytest.approx(8 * 0.70 * 3600)


def test_nasa_tiny_file(test_data):
    with pytest.warns(UserWarning, match="B9002 skipped"):
        recs = load_source("nasa-pcoe", root=test_data / "sources")
    assert [r.cell_id for r in recs] == ["B9001"]
    r = recs[0]
    c = r.cycles
    assert c["discharge_capacity_ah"].tolist() == [1.8, 1.78, 1.79, 1.77, 1.76]
    # 1st discharge starts 2 h after the first charge; ends 1.8 Ah / 2 A = 0.9 h later
    assert c["test_time_second"].iloc[0] == pytest.approx((2.0 + 0.9) * 3600)
    # 4th valid discharge: 2008-04-15 07:00, i.e. 12 days + 18 h after 04-02 13:00, + 0.885 h
    assert c["test_time_second"].iloc[3] == pytest.approx((12 * 24 + 18 + 1.77 / 2) * 3600)
    codes = {w.code: w for w in r.meta["warnings"]}
    assert set(codes) == {"missing_capacity", "junk_capacity", "bad_impedance"}
    assert codes["missing_capacity"].row == 6 and codes["junk_capacity"].row == 8
    assert codes["bad_impedance"].row == 4
    assert r.meta["impedance"]["re_ohm"].tolist()[1] == 0.06
    assert np.isnan(r.meta["impedance"]["re_ohm"].iloc[0])


def test_zhang_tiny_files(test_data):
    recs = load_source("zhang2020", root=test_data / "sources")
    assert [r.cell_id for r in recs] == ["25C09"]  # Capacity_data.txt (aggregate) ignored
    r = recs[0]
    np.testing.assert_allclose(r.cycles["discharge_capacity_ah"], [0.040, 0.0395, 0.0391])
    assert r.meta["temperature_celsius"] == 25.0
    eis = r.meta["eis"]
    assert len(eis) == 120 and eis["cycle_count"].unique().tolist() == [1, 2]
    m2 = eis[eis["measurement_id"] == 2]
    assert m2["z_real_ohm"].iloc[0] == pytest.approx(0.5)  # 0.4 + 0.1 * 1
    # the file stores -Im(Z) = 0.05 - 0.005 i; stored here as Im(Z) = -(that)
    assert m2["z_imag_ohm"].iloc[0] == pytest.approx(-0.05)
    assert m2["z_imag_ohm"].iloc[59] == pytest.approx(0.245)
    shifted = load_source("zhang2020", root=test_data / "sources", eis_cycle_offset=1)
    assert shifted[0].meta["eis"]["cycle_count"].unique().tolist() == [2, 3]


def test_geslin_tiny_files(test_data, tmp_path):
    import shutil

    from data_registry.errors import ValidationError

    root = tmp_path / "sources"
    shutil.copytree(test_data / "sources" / "geslin2024", root / "geslin2024")
    # cell_901's cycle_index goes 30 -> 20 on file line 7: the error names it
    with pytest.raises(ValidationError, match=r"diagnostics\.csv:7 column 'cycle_index'"):
        load_source("geslin2024", root=root)
    diag = root / "geslin2024" / "diagnostics.csv"
    diag.write_text(diag.read_text().replace("cell_901,20.0", "cell_901,60.0"))
    a, b = load_source("geslin2024", root=root)
    # 2 x 50 EFC / 0.5 C = 200 h
    assert a.cycles["test_time_second"].iloc[1] == pytest.approx(200 * 3600)
    assert b.cycles["test_time_second"].iloc[2] == pytest.approx(2 * 45 / 0.1 * 3600)
    assert a.meta["cycles_to_soh90"] == 400.5 and a.meta["split_group"] == "CC"
    assert (a.cycles["test_time_estimated"] == 1).all()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 12, 31)))
def test_parse_datevec_round_trips_both_matlab_styles(when):
    sec = when.second + when.microsecond / 1e6
    plain = (f"[{when.year}.  {when.month}.  {when.day}.  {when.hour}.  {when.minute}.  "
             f"{sec:.3f}]")
    sci = "[" + " ".join(f"{v:.4e}" for v in (when.year, when.month, when.day, when.hour,
                                             when.minute, round(sec, 3))) + "]"
    for text in (plain, sci):
        got = parse_datevec(text)
        # seconds keep 3 decimals in plain; sci keeps 5 significant digits of the seconds
        assert abs((got - when).total_seconds()) < 0.01


def test_a_split_is_available_only_where_its_files_are(shared_data, tmp_path):
    import shutil

    from ml.sources import available_sources, load_source

    assert "severson-test2" not in available_sources(shared_data)  # not in ../shared/data
    folder = tmp_path / "severson2019"
    folder.mkdir()
    for kind in ("Qn", "y", "IvsSOC"):  # test1's files under test2's names: read the same way
        shutil.copy(shared_data / "severson2019" / f"{kind}_test1.csv",
                    folder / f"{kind}_test2.csv")
    assert "severson-test2" in available_sources(tmp_path)
    got = load_source("severson-test2", root=tmp_path)
    ref = load_source("severson-test1", root=shared_data)
    assert [r.cell_id for r in got][:2] == ["severson-test2-01", "severson-test2-02"]
    assert len(got) == len(ref) and got[5].cycles["discharge_capacity_ah"].equals(
        ref[5].cycles["discharge_capacity_ah"])


def test_the_secondary_test_set_is_scored_where_the_data_carry_it(shared_data, tmp_path):
    """`fadecast evaluate` lists severson-test2 only with its files, and scores it as test1."""
    import os

    from ml.evaluation.by_source import source_rows
    from ml.evaluation.suites import available_suites, run_suite

    assert "severson-test2" not in available_suites(shared_data)
    root = tmp_path / "data"
    root.mkdir()
    for name in ("severson2019", "severson2019_qdlin"):
        os.symlink(shared_data / name, root / name)  # read in place, as a copy would be laid out
    # a copy of the data that carries test2: here test1's Qn/y/IvsSOC under test2's names
    sev = tmp_path / "sev"
    sev.mkdir()
    for f in (shared_data / "severson2019").iterdir():
        os.symlink(f, sev / f.name)
    for kind in ("Qn", "y", "IvsSOC"):
        os.symlink(shared_data / "severson2019" / f"{kind}_test1.csv", sev / f"{kind}_test2.csv")
    (root / "severson2019").unlink()
    os.symlink(sev, root / "severson2019")
    assert "severson-test2" in available_suites(root)
    out = run_suite("severson-test2", root=root)
    ref = run_suite("severson", root=root)
    assert out["cells"][0] == "severson-test2-01" and len(out["cells"]) == len(ref["cells"])
    figs = {r["figure"]: r["values"] for r in out["figures"]}
    refs = {r["figure"]: r["values"] for r in ref["figures"]}
    assert figs["cycles_to_80pct_mape_pct@100"] == refs["cycles_to_80pct_mape_pct@100"]
    row = source_rows([out], None)[0]
    assert row["source"] == "severson-test2" and row["naive_eol_error_pct"] is not None
