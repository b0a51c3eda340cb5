"""An ingest killed with SIGKILL half way leaves the registry unchanged and readable."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from conftest import read_lines
from data_registry import catalog as cat
from data_registry.errors import NotFoundError
from data_registry.store import Registry

CHUNK_ROWS = 2_000

WORKER = textwrap.dedent("""
    import sys, time
    from data_registry.store import Registry

    calls = []

    def hook(rows):
        print("rows", rows, flush=True)
        calls.append(rows)
        if len(calls) == 3:  # parked mid-ingest: the parent's SIGKILL lands before any commit
            time.sleep(3600)
        time.sleep(0.05)

    Registry().ingest(sys.argv[1], "victim", chunk_rows=int(sys.argv[2]), on_chunk=hook)
    print("done", flush=True)
""")


def _long_cell(store_data, tmp_path, repeats: int = 300):
    """The 3-cycle fixture cell repeated: ``repeats`` × 390 plausible rows."""
    one = pd.read_csv(store_data / "cell_full.csv")
    span = one["test_time_second"].iloc[-1]
    blocks = []
    for k in range(repeats):
        b = one.copy()
        b["test_time_second"] += k * span
        b["cycle_count"] += 3 * k
        blocks.append(b)
    path = tmp_path / "long.csv"
    pd.concat(blocks, ignore_index=True).to_csv(path, index=False)
    return path, repeats * len(one)


def _consistent(reg):
    """Every part and raw file the catalog names exists and reads; return the part paths."""
    with reg.catalog.reading() as conn:
        parts = reg.catalog.referenced_parts(conn)
        raws = [r[0] for r in conn.execute(sa.select(cat.raw_files.c.stored_path))]
        rows = {r[0]: r[1] for r in conn.execute(sa.select(cat.ingests.c.part_path,
                                                           cat.ingests.c.rows))}
    for p in parts:
        assert pq.ParquetFile(reg.home / p).metadata.num_rows == rows[p]
    for r in raws:
        assert (reg.home / r).is_file()
    return parts


def test_sigkill_mid_ingest_leaves_registry_unchanged(test_data, tmp_path, _isolated_home):
    store_data = test_data / "store"
    big, total = _long_cell(store_data, tmp_path)
    reg = Registry()
    reg.ingest(store_data / "cell_full.csv", "early", meta={"chemistry": "LFP"})
    before_cells = reg.cells()
    before_sets = reg.datasets()
    before_parts = _consistent(reg)

    env = {**os.environ, "FADECAST_HOME": str(_isolated_home)}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(big), str(CHUNK_ROWS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = read_lines(proc.stdout, 3)  # at most 120 s: a stuck child fails, never hangs
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    err = proc.stderr.read()
    counts = [int(line.split()[1]) for line in seen if line.startswith("rows ")]
    assert len(counts) == 3 and 0 < counts[0] < counts[1] < counts[2] < total, (seen, err)
    assert proc.returncode == -signal.SIGKILL

    # The dead ingest may leave temp files (its part, its raw copy), but no Parquet part
    # beyond the ones the catalog already had.
    on_disk = {p.relative_to(_isolated_home).as_posix()
               for p in (_isolated_home / "tables").rglob("*.parquet")}
    assert on_disk == before_parts

    after = Registry()
    assert after.cells() == before_cells
    assert after.datasets() == before_sets
    assert _consistent(after) == before_parts
    assert len(after.load_samples("early")) == 390
    with pytest.raises(NotFoundError):
        after.load_samples("victim")

    # The next ingest sweeps the debris and stores the whole file.
    report = after.ingest(big, "victim", chunk_rows=50_000)
    assert report.rows == total
    assert not list((_isolated_home / "tables").rglob("*.tmp"))
    assert not list((_isolated_home / "raw" / "tmp").iterdir())
    loaded = after.load_samples("victim", columns=["test_time_second"])
    assert len(loaded) == total and np.all(np.diff(loaded["test_time_second"]) > 0)
    after.close()
    reg.close()


def test_part_moved_in_but_never_committed_is_invisible(test_data, _isolated_home):
    """A process killed between os.replace of its part and the catalog commit."""
    store_data = test_data / "store"
    reg = Registry()
    reg.ingest(store_data / "cell_part1.csv", "cellA")
    part_dir = reg.part_dir("samples", "cellA")
    committed = next(part_dir.glob("*.parquet"))
    orphan = part_dir / "000001-deadbeefdeadbeef.parquet"
    orphan.write_bytes(committed.read_bytes())
    assert len(reg.load_samples("cellA")) == 195  # the orphan is not read
    reg.ingest(store_data / "cell_part2.csv", "cellA")
    assert len(reg.load_samples("cellA")) == 390
    # ingest leaves complete parts alone (another catalog may share the folder) ...
    assert orphan.exists()
    # ... an explicit sweep for a single-catalog folder removes it, and only it
    with reg.write_lock():
        assert reg.remove_debris(orphan_parts=True) == [orphan]
    assert len(reg.load_samples("cellA")) == 390
    reg.close()


def test_interrupt_after_the_commit_keeps_the_committed_data(test_data, monkeypatch):
    """Ctrl-C between the catalog commit and the return must not delete committed parts."""
    import data_registry.ingest as ingest_module

    store_data = test_data / "store"
    reg = Registry()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest_module, "IngestReport", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reg.ingest(store_data / "cell_part1.csv", "cellA")
    monkeypatch.undo()
    assert len(reg.load_samples("cellA")) == 195
    assert _consistent(reg)
    assert reg.ingest(store_data / "cell_part1.csv", "cellA").already_present
    reg.close()


def test_two_catalogs_sharing_one_folder_keep_each_others_parts(test_data, tmp_path,
                                                                 _isolated_home):
    store_data = test_data / "store"
    first = Registry()
    first.ingest(store_data / "cell_part1.csv", "cellA")
    other = Registry(catalog_url=f"sqlite:///{tmp_path / 'other.sqlite'}")
    other.ingest(store_data / "eis_m1.csv", "cellE")
    assert len(first.load_samples("cellA")) == 195
    assert len(other.load_eis("cellE")) == 8
    first.close()
    other.close()
