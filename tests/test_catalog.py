"""The catalog on BOTH backends: SQLite (default) and a throw-away PostgreSQL server.

The PostgreSQL server is started once per session by the tests themselves: ``initdb`` and
``pg_ctl start`` run as the ``postgres`` user (a server refuses to run as root), with the data
folder and unix socket in a folder chowned to that user, no TCP (``listen_addresses=''``). Each
test gets a fresh database. Skipped only where no PostgreSQL binaries exist.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import read_lines
from data_registry import catalog as cat
from data_registry.catalog import Catalog
from data_registry.errors import StoreError
from data_registry.store import Registry


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    return ["su", "postgres", "-s", "/bin/sh", "-c"]  # pragma: no cover - joined below


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    prefix = _as_postgres()
    if prefix[:1] == ["su"]:  # pragma: no cover - only where runuser is missing
        cmd = prefix + [" ".join(map(str, cmd))]
    else:
        cmd = prefix + [str(c) for c in cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on a unix socket for this session; yields the socket folder."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries (looked under /usr/lib/postgresql/*/bin and PATH)")
    if os.geteuid() == 0:
        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
    base = Path(tempfile.mkdtemp(prefix="fadecast-pg-"))
    if os.geteuid() == 0:
        os.chown(base, pg_user.pw_uid, pg_user.pw_gid)
    data = base / "data"
    out = _run([bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                "--no-sync", "--no-instructions"])
    assert out.returncode == 0, f"initdb failed: {out.stderr}"
    opts = f"-k {base} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
    out = _run([bindir / "pg_ctl", "-D", data, "-l", base / "server.log", "-o", opts, "-w",
                "-t", "60", "start"])
    assert out.returncode == 0, f"pg_ctl start failed: {out.stderr}\n{out.stdout}"
    try:
        yield base
    finally:
        _run([bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path):
    """A fresh, empty catalog URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        return
    sock = request.getfixturevalue("postgres_server")
    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(f"postgresql+psycopg://postgres@/postgres?host={sock}",
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql+psycopg://postgres@/{name}?host={sock}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def reg(catalog_url, _isolated_home):
    r = Registry(catalog_url=catalog_url)
    yield r
    r.close()


def test_backend_is_the_one_asked_for(reg, catalog_url):
    assert reg.catalog.engine.dialect.name == catalog_url.split(":")[0].split("+")[0]
    names = set(sa.inspect(reg.catalog.engine).get_table_names())
    assert {"cells", "raw_files", "ingests", "warnings", "datasets", "dataset_cells"} <= names


def test_ingest_lineage_and_datasets_on_both_backends(reg, test_data):
    store = test_data / "store"
    r1 = reg.ingest(store / "cell_part1.csv", "cellA",
                    meta={"nominal_capacity_ah": "0.1", "chemistry": "NMC/graphite"})
    r2 = reg.ingest(store / "cell_part2.csv", "cellA")
    reg.ingest(store / "eis_m1.csv", "cellA")
    assert (r1.rows, r2.rows) == (195, 195)
    info = reg.cell("cellA")
    assert [f["kind"] for f in info["files"]] == ["samples", "samples", "eis"]
    assert info["nominal_capacity_ah"] == 0.1 and info["chemistry"] == "NMC/graphite"
    assert info["sample_rows"] == 390 and info["eis_rows"] == 8
    assert info["time_start_second"] == 60.0 and info["time_end_second"] == 23400.0
    assert info["files"][0]["ingested_at"].endswith("Z")
    assert len(reg.load_samples("cellA")) == 390
    assert reg.ingest(store / "cell_part2.csv", "cellA").already_present
    ref = reg.create_dataset("pair", ["cellA"])
    assert reg.dataset("pair") == ref
    # three per-cell versions (one per ingest that stored rows) + the named set
    names = [d["name"] for d in reg.datasets()]
    assert names.count("cell:cellA") == 3 and names.count("pair") == 1


def test_versions_do_not_depend_on_the_backend(reg, test_data, tmp_path):
    store = test_data / "store"
    reg.ingest([store / "cell_part1.csv", store / "cell_part2.csv"], "cellA")
    ref = reg.create_dataset("s", ["cellA"])
    local = Registry(tmp_path / "h2", catalog_url=f"sqlite:///{tmp_path / 'other.sqlite'}")
    local.ingest([store / "cell_part1.csv", store / "cell_part2.csv"], "cellA")
    assert local.create_dataset("s", ["cellA"]).version == ref.version
    local.close()


def test_conflicting_metadata_on_both_backends(reg, test_data):
    store = test_data / "store"
    reg.ingest(store / "cell_part1.csv", "cellA", meta={"active_mass_g": "1.5"})
    with pytest.raises(StoreError, match=r"active_mass_g=1.5.*to 2.0") as e:
        reg.ingest(store / "cell_part2.csv", "cellA", meta={"active_mass_g": "2.0"})
    assert e.value.code == "conflicting_metadata"
    assert reg.cells()[0]["sample_rows"] == 195


def test_one_transaction_rolls_back_everything(catalog_url):
    c = Catalog(catalog_url)
    now = cat.now_utc()
    with pytest.raises(RuntimeError, match="boom"):
        with c.transaction() as conn:
            conn.execute(cat.cells.insert().values(cell_id="x", metadata={}, created_at=now,
                                                   updated_at=now))
            conn.execute(cat.raw_files.insert().values(sha256="0" * 64, size_bytes=1,
                                                       original_name="f", stored_path="raw/f",
                                                       created_at=now))
            raise RuntimeError("boom")
    with c.reading() as conn:
        assert c.all_cells(conn) == []
        assert conn.execute(sa.select(sa.func.count()).select_from(cat.raw_files)).scalar() == 0
    c.dispose()


def test_foreign_keys_are_enforced(catalog_url):
    c = Catalog(catalog_url)
    with pytest.raises(sa.exc.IntegrityError):
        with c.transaction() as conn:
            conn.execute(cat.ingests.insert().values(
                cell_id="ghost", raw_sha256="f" * 64, original_path="p", kind="samples",
                format_name="x", reader_version="1", schema_version="1", rows=0,
                source_metadata={}, created_at=cat.now_utc()))
    c.dispose()


def test_unreachable_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open the catalog") as e:
        Catalog(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'c.sqlite'}")
    assert e.value.code == "catalog_unavailable"


def test_many_processes_may_create_the_catalog_at_once(catalog_url):
    import threading

    barrier = threading.Barrier(4)
    errors = []

    def open_catalog():
        barrier.wait()
        try:
            Catalog(catalog_url).dispose()
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_catalog) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    c = Catalog(catalog_url)
    with c.reading() as conn:
        assert c.all_cells(conn) == []
    c.dispose()


KILLED_WORKER = """
import sys, time
from data_registry.store import Registry

calls = []

def hook(rows):
    print("rows", rows, flush=True)
    calls.append(rows)
    if len(calls) == 3:  # parked mid-ingest: the parent's SIGKILL lands before any commit
        time.sleep(3600)
    time.sleep(0.05)

Registry().ingest(sys.argv[1], "victim", chunk_rows=500, on_chunk=hook)
"""


def test_sigkill_mid_ingest_leaves_either_catalog_unchanged(reg, catalog_url, test_data,
                                                            tmp_path, _isolated_home):
    import signal
    import subprocess
    import sys

    import pandas as pd

    store = test_data / "store"
    reg.ingest(store / "cell_part1.csv", "early")
    before = (reg.cells(), reg.datasets())
    one = pd.read_csv(store / "cell_full.csv")
    blocks = [one.assign(test_time_second=one.test_time_second + k * 23400.0,
                         cycle_count=one.cycle_count + 3 * k) for k in range(40)]
    big = tmp_path / "long.csv"
    pd.concat(blocks).to_csv(big, index=False)
    env = {**os.environ, "FADECAST_HOME": str(_isolated_home),
           "FADECAST_CATALOG_URL": catalog_url}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = read_lines(proc.stdout, 3)  # at most 120 s: a stuck child fails, never hangs
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(lines) == 3 and all(ln.startswith("rows ") for ln in lines), (
        lines, proc.stderr.read())
    after = Registry(catalog_url=catalog_url)
    assert (after.cells(), after.datasets()) == before
    assert len(after.load_samples("early")) == 195
    assert after.ingest(big, "victim").rows == 40 * 390
    after.close()


def test_catalog_from_a_newer_fadecast_is_refused(catalog_url):
    c = Catalog(catalog_url)
    with c.transaction() as conn:
        assert conn.execute(sa.select(cat.registry_info.c.value)).scalar() == str(
            cat.CATALOG_VERSION)
        conn.execute(cat.registry_info.update().values(value=str(cat.CATALOG_VERSION + 1)))
    c.dispose()
    with pytest.raises(StoreError, match="written by a newer fadecast") as e:
        Catalog(catalog_url)
    assert e.value.code == "catalog_too_new"
