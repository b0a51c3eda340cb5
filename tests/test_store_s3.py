"""The registry on object storage: raw files and Parquet parts PUT to a real S3-compatible
server (moto's server mode, started here on a free port) before the catalog commit, and read
back from it — by a second registry on an empty home folder, as a worker elsewhere would."""
from __future__ import annotations

import pandas as pd
import pytest

from data_registry.errors import StoreError
from data_registry.store import Registry
from ml.features.commands import cell_cycle_table
from ml.fleet.features import featurize_fleet
from test_features_equivalence import fleet_samples

moto_server = pytest.importorskip("moto.server", reason="moto[server] (the S3-compatible "
                                  "test server) is not installed: pip install 'moto[server]'")
s3fs = pytest.importorskip("s3fs", reason="s3fs (fsspec's S3 file system) is not installed")


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def store(s3_endpoint, request):
    options = {"key": "testing", "secret": "testing", "endpoint_url": s3_endpoint,
               "client_kwargs": {"region_name": "eu-west-1"}, "skip_instance_cache": True}
    fs = s3fs.S3FileSystem(**options)
    bucket = f"fadecast-{request.node.name.replace('_', '-')[:40].lower()}"
    fs.mkdir(bucket)
    return f"s3://{bucket}/registry", options, fs


def _ingest(reg: Registry, tmp_path, n_cells: int = 2) -> None:
    df = fleet_samples(n_cells=n_cells, n_cycles=12, rows_per_cycle=40, seed=5)
    for cid, g in df.drop(columns=["source_row"]).groupby("cell_id"):
        path = tmp_path / f"{cid}.csv"
        g.drop(columns=["cell_id"]).to_csv(path, index=False)
        reg.ingest([path], cid, meta={"nominal_capacity_ah": 1.0})


@pytest.mark.slow
def test_parts_and_raw_files_live_in_the_store_and_read_back_elsewhere(tmp_path, store):
    url, options, fs = store
    home = tmp_path / "home"
    reg = Registry(home, store_url=url, store_options=options)
    local = Registry(tmp_path / "plain")  # the same cells on a plain local registry
    try:
        _ingest(reg, tmp_path)
        _ingest(local, tmp_path)
        info = reg.cell("cell-00")
        sha = info["files"][0]["raw_sha256"]
        objects = fs.find(url)
        assert any(o.endswith(f"raw/{sha[:2]}/{sha}") for o in objects)
        assert sum("/tables/samples/cell=" in o and o.endswith(".parquet")
                   for o in objects) == 2
        # a registry elsewhere: an empty home, the same catalog and store
        remote = Registry(tmp_path / "elsewhere", catalog_url=reg.catalog.url, store_url=url,
                          store_options=options)
        try:
            assert not (tmp_path / "elsewhere" / "tables").exists()
            pd.testing.assert_frame_equal(remote.load_samples("cell-01"),
                                          local.load_samples("cell-01"), check_exact=True)
            want = cell_cycle_table(local, "cell-00")
            pd.testing.assert_frame_equal(cell_cycle_table(remote, "cell-00"), want,
                                          check_exact=True)
            # the fleet path streams the parts from the store in cycle blocks
            summary = featurize_fleet(remote, tmp_path / "all.parquet", progress=False,
                                      max_cell_rows=10)
            assert summary["streamed"] == 2
            got = pd.read_parquet(tmp_path / "all.parquet")
            pd.testing.assert_frame_equal(got[got["cell_id"] == "cell-00"].reset_index(
                drop=True), want, check_exact=True)
            assert not (tmp_path / "elsewhere" / "tables").exists()
        finally:
            remote.close()
    finally:
        reg.close()
        local.close()


def test_a_failed_put_leaves_nothing_visible(tmp_path, store):
    url, options, fs = store
    reg = Registry(tmp_path / "home", store_url="s3://no-such-bucket-fadecast/x",
                   store_options=options)
    try:
        with pytest.raises(StoreError, match="could not write to the store") as info:
            _ingest(reg, tmp_path, n_cells=1)
        assert info.value.code == "store_write_failed"
        assert reg.cells() == []  # the catalog commit never happened
    finally:
        reg.close()


def test_bad_store_url_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open the store") as info:
        Registry(tmp_path / "home", store_url="nosuchproto://bucket/x")
    assert info.value.code == "bad_store_url"
