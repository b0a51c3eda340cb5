"""Fleet runs: every cell's per-cycle table (and forecast) mapped over dask workers, cells in
cycle blocks, a worker killed mid-run — and always the one-process path's values."""
from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_registry.store import Registry
from ml.features.commands import cell_cycle_table
from ml.features.cycle_table import complete_cycle_table
from ml.features.sample_cycles import sample_cycles
from ml.features.sample_frame import prepare_samples
from ml.fleet import cell_stream
from ml.fleet.cell_stream import StreamOrderError, stream_cycle_table
from ml.fleet.features import featurize_fleet
from serving.cli import main
from test_features_equivalence import fleet_samples
from test_serving_model import serving_model_dir  # noqa: F401


def _parts(df: pd.DataFrame, folder, n: int = 3, row_group: int = 100) -> list[str]:
    paths = []
    for i, idx in enumerate(np.array_split(np.arange(len(df)), n)):
        p = folder / f"{i}.parquet"
        pq.write_table(pa.Table.from_pandas(df.iloc[idx].reset_index(drop=True),
                                            preserve_index=False), p, row_group_size=row_group)
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("block_rows", [50, 97, 333, 100_000])
def test_cycle_blocks_equal_the_in_memory_table(tmp_path, monkeypatch, block_rows):
    """Streamed from 3 parts in batches of 37 rows, cut into cycle blocks: the table equals
    build_cycle_table's for the same block size, with and without voltage curves."""
    monkeypatch.setattr(cell_stream, "BATCH_ROWS", 37)
    df = fleet_samples(n_cells=1, n_cycles=30, rows_per_cycle=40, seed=3)
    df["ambient_temperature_celsius"] = 25.0 + 0.01 * np.arange(len(df))
    df["charging_energy_wh"] = np.nan  # an all-null optional column stays absent
    parts = _parts(df, tmp_path)
    meta = {"nominal_capacity_ah": 1.0, "high_voltage_threshold_volt": 3.9}
    for curves in (False, True):
        got = stream_cycle_table(parts, "cell-00", meta, voltage_curves=curves,
                                 block_rows=block_rows)
        raw = sample_cycles(prepare_samples(df.drop(columns=["charging_energy_wh"])),
                            high_voltage_volt=np.array([3.9]), voltage_curves=curves,
                            block_rows=block_rows)
        want = complete_cycle_table(raw, {"cell-00": meta})
        pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_cycle_blocks_refuse_unsorted_parts(tmp_path):
    df = fleet_samples(n_cells=1, n_cycles=6, rows_per_cycle=20, seed=4)
    parts = _parts(df, tmp_path)
    with pytest.raises(StreamOrderError, match="not stored in time order"):
        stream_cycle_table(parts[::-1], "cell-00", block_rows=50)


def _registry(tmp_path, n_cells: int = 4, n_cycles: int = 14, mixed: bool = False
              ) -> Registry:
    """Cells of 40-row cycles; with ``mixed`` every other cell has half the cycles."""
    reg = Registry()
    df = fleet_samples(n_cells=n_cells, n_cycles=n_cycles, rows_per_cycle=40, seed=2)
    for k, (cid, g) in enumerate(df.drop(columns=["source_row"]).groupby("cell_id")):
        if mixed and k % 2:
            g = g[g["cycle_count"] <= n_cycles // 2]
        path = tmp_path / f"{cid}.csv"
        g.drop(columns=["cell_id"]).to_csv(path, index=False)
        reg.ingest([path], cid, meta={"nominal_capacity_ah": 1.0})
    return reg


def _one_process(reg: Registry) -> pd.DataFrame:
    return pd.concat([cell_cycle_table(reg, c["cell_id"]) for c in reg.cells()],
                     ignore_index=True)


def test_features_all_in_process_equals_per_cell_tables(tmp_path, capsys):
    reg = _registry(tmp_path)
    try:
        want = _one_process(reg)
        summary = featurize_fleet(reg, tmp_path / "streamed.parquet", progress=False,
                                  max_cell_rows=100)  # every cell in cycle blocks
        assert summary["streamed"] == 4 and not summary["failed"]
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "streamed.parquet"), want,
                                      check_exact=True)
    finally:
        reg.close()
    assert main(["features", "--all", "--workers", "0", "--no-progress", "-o",
                 str(tmp_path / "out")]) == 0
    got = pd.concat([pd.read_parquet(tmp_path / "out" / f"cell-0{i}.parquet")
                     for i in range(4)], ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert "4 cells, 56 cycles" in capsys.readouterr().err


def test_one_file_in_cell_order_whatever_the_arrival_order(tmp_path):
    """Tables arriving out of order wait in spill files, not in memory; the file holds them
    in order, and no spill file is left."""
    from ml.fleet.features import OrderedParquet

    reg = _registry(tmp_path, n_cells=4, n_cycles=6)
    try:
        tables = [cell_cycle_table(reg, c["cell_id"]) for c in reg.cells()]
    finally:
        reg.close()
    out = OrderedParquet(tmp_path / "ordered.parquet")
    for k in (3, 1, 2):  # cell 2 produced nothing
        out.add(k, tables[k] if k != 2 else None)
    assert out.rows == 0 and len(list(out.spill.iterdir())) == 2
    out.add(0, tables[0])
    assert out.rows == sum(len(tables[k]) for k in (0, 1, 3))
    assert not list(out.spill.iterdir())
    out.close()
    want = pd.concat([tables[0], tables[1], tables[3]], ignore_index=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ordered.parquet"), want,
                                  check_exact=True)
    assert sorted(p.name for p in tmp_path.iterdir() if "ordered" in p.name) == [
        "ordered.parquet"]


def test_features_all_reports_bad_cells_and_options(tmp_path, capsys):
    reg = _registry(tmp_path, n_cells=2, n_cycles=5)
    eis = tmp_path / "eis.csv"
    eis.write_text("frequency_hz,z_real_ohm,z_imag_ohm\n1000,1.0,-0.1\n100,1.2,-0.3\n"
                   "10,1.5,-0.5\n1,2.0,-0.9\n", encoding="utf-8")
    reg.ingest([eis], "eis-only")
    reg.close()
    out = tmp_path / "all.parquet"
    assert main(["features", "--all", "--workers", "0", "--no-progress", "-o",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 cell(s) failed" in err and "eis-only" in err and "neither samples" in err
    assert list(pd.read_parquet(out)["cell_id"].unique()) == ["cell-00", "cell-01"]
    assert main(["features", "--all", "-o", str(tmp_path / "x.csv")]) == 2
    assert "writes Parquet" in capsys.readouterr().err
    assert main(["features", "--all"]) == 2
    assert "needs an output" in capsys.readouterr().err
    assert main(["features"]) == 2
    assert "a cell id or --all" in capsys.readouterr().err


@pytest.mark.slow
def test_features_all_on_a_local_cluster_survives_a_killed_worker(tmp_path):
    """2 worker processes; one is SIGKILLed after the first result: the run completes (its
    task is rerun, the nanny restarts the worker) and the table is the one-process table."""
    from ml.fleet.cluster import fleet_client

    reg = _registry(tmp_path, n_cells=12, n_cycles=25, mixed=True)
    try:
        want = _one_process(reg)
        with fleet_client(workers=2, memory_limit="1GiB") as client:
            killed: list[int] = []

            def kill_one(index, result):
                if not killed:
                    pids = client.run(os.getpid)
                    victim = sorted(pids.values())[0]
                    os.kill(victim, signal.SIGKILL)
                    killed.append(victim)

            summary = featurize_fleet(reg, tmp_path / "fleet.parquet", client=client,
                                      progress=False, on_result=kill_one, max_cell_rows=900)
            assert killed and summary["cells"] == 12 and not summary["failed"]
            assert summary["streamed"] == 6  # the 1000-row cells, in cycle blocks
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "fleet.parquet"), want,
                                          check_exact=True)
            assert killed[0] not in client.run(os.getpid).values()
            # the CLI on the same cluster by its address (--scheduler), a file per cell
            address = client.scheduler.address
            assert main(["features", "--all", "--scheduler", address, "--no-progress",
                         "-o", str(tmp_path / "by-address")]) == 0
            got = pd.concat([pd.read_parquet(tmp_path / "by-address" / f"cell-{i:02d}.parquet")
                             for i in range(12)], ignore_index=True)
            pd.testing.assert_frame_equal(got, want, check_exact=True)
    finally:
        reg.close()


@pytest.mark.slow
def test_forecast_all_on_a_local_cluster_equals_one_process(tmp_path, serving_model_dir):
    """``fadecast forecast --all`` on 2 worker processes gives the rows of the in-process run,
    which are the documents of ``fadecast forecast --cell`` for each cell."""
    import argparse

    from serving.commands import forecast_doc
    from serving.fleet_forecast import forecast_rows
    from serving.runtime import load_forecaster

    reg = _registry(tmp_path, n_cells=5, n_cycles=30, mixed=True)
    model = load_forecaster(str(serving_model_dir))
    try:
        docs = [forecast_doc(argparse.Namespace(
            cell=c["cell_id"], cycles=None, horizon_cycles=20, hours_per_cycle=None,
            c_rate=None, eol=0.8, nominal_capacity_ah=None, capacity_column=None,
            model=str(serving_model_dir)), lambda: model, reg) for c in reg.cells()]
    finally:
        reg.close()
    want = pd.concat([forecast_rows(d) for d in docs], ignore_index=True)
    assert len(want) == 5 * 20 and want["cell_id"].nunique() == 5
    common = ["forecast", "--all", "--horizon-cycles", "20", "--model", str(serving_model_dir),
              "--no-progress", "-o"]
    assert main(common + [str(tmp_path / "one.parquet"), "--workers", "0"]) == 0
    assert main(common + [str(tmp_path / "dask.parquet"), "--workers", "2",
                          "--memory-limit", "1GiB"]) == 0
    one = pd.read_parquet(tmp_path / "one.parquet")
    pd.testing.assert_frame_equal(one, pd.read_parquet(tmp_path / "dask.parquet"),
                                  check_exact=True)
    assert {"cell_id", "cycle_index", "capacity_ah_p50"} <= set(one.columns)
    pd.testing.assert_frame_equal(one, want, check_exact=True, check_dtype=False)
