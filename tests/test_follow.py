"""``fadecast follow``: a growing export appended idempotently, the per-cycle table extended
(equal to a batch build), advice at each completed cycle, a signed webhook on the flip."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_registry.append import append_file
from data_registry.store import Registry
from ml.features.cell_table import cell_cycle_table
from ml.synthetic import make_cell
from ml.synthetic_samples import csv_header, csv_rows, sample_rows
from serving.follow import FollowConfig, Follower
from serving.webhook import SIGNATURE_HEADER, verify
from test_serving_model import forecaster, serving_model_dir  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "examples" / "pto_c10_raw.csv"
SECRET = "s3cret-key"


def test_stored_table_extended_at_random_cuts_equals_a_full_build(tmp_path):
    """Appends cut anywhere (mid-cycle too): the extended table EQUALS a batch build of all
    samples, every column bit for bit — high_voltage_second and the rest / flow durations
    included, since the thresholds are causal (running maxima carried across extensions)."""
    from ml.features import build_cycle_table, complete_cycle_table
    from ml.features.sample_cycles import sample_cycles
    from ml.features.sample_frame import prepare_samples

    lines = RAW.read_bytes().splitlines(keepends=True)
    reg = Registry()
    cuts = sorted(np.random.default_rng(0).choice(np.arange(40, len(lines)), 9,
                                                  replace=False).tolist()) + [len(lines)]
    kinds = []
    for n in cuts:
        snap = tmp_path / "snap.csv"
        snap.write_bytes(b"".join(lines[:n]))
        append_file(reg, snap, "c1", source_name=f"pto#{n}")
        stored = cell_cycle_table(reg, "c1")
        kinds.append("extended" if stored.extended else "rebuilt" if stored.rebuilt else "kept")
        assert stored.recomputed_cycles[0] <= int(stored.table["cycle_index"].iloc[-1])
        # after every append, not only the last: the table so far equals a batch build
        full = sample_cycles(prepare_samples(reg.load_samples("c1"), default_cell_id="c1"),
                             voltage_curves=False)
        assert_equal_to_batch(stored.table, full)
    assert kinds.count("extended") >= 5  # mostly extended, not rebuilt
    assert kinds[0] == "rebuilt"
    assert stored.table["high_voltage_second"].gt(0).any()  # the column is really compared
    a = complete_cycle_table(stored.table, {"c1": {}})
    b = build_cycle_table(reg.load_samples("c1"), cells={"c1": {}}, voltage_curves=False)
    assert_equal_to_batch(a, b)
    reg.close()


#: Mid-capacity voltages interpolate on a running sum of the charge flow over the whole
#: array (ml.features.polarization._voltage_at_half); an extension starts that sum at a later
#: row, so these may differ in the last bits (not a threshold matter) — compared to 1e-12.
_RUNNING_SUM_COLUMNS = ("mid_charge_voltage_volt", "mid_discharge_voltage_volt",
                        "mid_capacity_polarization_volt")


def assert_equal_to_batch(stored: pd.DataFrame, batch: pd.DataFrame) -> None:
    """Every column bit for bit, except the running-sum ones (within 1e-9 V)."""
    cols = list(stored.columns)
    exact = [c for c in cols if c not in _RUNNING_SUM_COLUMNS]
    pd.testing.assert_frame_equal(stored[exact].reset_index(drop=True),
                                  batch[exact].reset_index(drop=True), check_exact=True)
    close = [c for c in cols if c in _RUNNING_SUM_COLUMNS]
    pd.testing.assert_frame_equal(stored[close].reset_index(drop=True),
                                  batch[close].reset_index(drop=True), check_exact=False,
                                  rtol=0, atol=1e-9)


def test_extension_carries_a_rising_max_voltage_and_current(tmp_path):
    """A later append with a higher voltage and a larger current than anything stored (which
    forced a rebuild or kept a stale threshold before): extended, not rebuilt, and equal to
    the batch build — the earlier cycles unchanged."""
    from ml.features import build_cycle_table, complete_cycle_table

    rows = []
    t = 0.0
    for c in range(1, 9):
        boost = 1.5 if c >= 6 else 1.0  # cycles 6-8: larger current, higher top voltage
        for k in range(12):
            cur = (0.5 * boost if k < 5 else -0.5 * boost if k < 10 else 0.0)
            volt = 3.0 + (0.12 * k if k < 5 else 0.6 - 0.1 * (k - 5)) * boost
            rows.append({"test_time_second": t, "cycle_count": c, "current_ampere": cur,
                         "voltage_volt": volt})
            t += 60.0
    df = pd.DataFrame(rows)
    reg = Registry()
    first = tmp_path / "a.csv"
    df[df.cycle_count <= 4].to_csv(first, index=False)
    append_file(reg, first, "c1", source_name="a")
    before = cell_cycle_table(reg, "c1").table.copy()
    df.to_csv(tmp_path / "b.csv", index=False)
    append_file(reg, tmp_path / "b.csv", "c1", source_name="b")
    stored = cell_cycle_table(reg, "c1")
    assert stored.extended and not stored.rebuilt
    assert stored.recomputed_cycles == [4, 5, 6, 7, 8]
    assert_equal_to_batch(stored.table.iloc[:4], before)
    b = build_cycle_table(reg.load_samples("c1"), cells={"c1": {}}, voltage_curves=False)
    assert_equal_to_batch(complete_cycle_table(stored.table, {"c1": {}}), b)
    reg.close()


class _Receiver(BaseHTTPRequestHandler):
    fail_first = 0
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        cls.seen.append((dict(self.headers), body))
        status = 503 if len(cls.seen) <= cls.fail_first else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    handler = type("Receiver", (_Receiver,), {"seen": [], "fail_first": 2})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def _growing_export(path: Path):
    """A cell that reaches 80 % near cycle 70, written cycle by cycle."""
    cycles = make_cell("f", seed=3, stop_retention=0.5, c_rate=0.5, time_scale=0.04,
                       cycle_scale=0.25, n_cycles=90).cycles
    samples = sample_rows(cycles, 5.0, points_per_step=3)
    path.write_bytes(csv_header())
    return cycles, samples


def _write_cycles(path: Path, samples: pd.DataFrame, lo: int, hi: int, partial: bool = False):
    rows = samples[(samples["cycle_count"] >= lo) & (samples["cycle_count"] <= hi)]
    text = csv_rows(rows)
    if partial:  # a half-written last line
        text += b"123.5,91,1,2.5"
    with open(path, "ab") as fh:
        fh.write(text)


def test_follow_advises_each_completed_cycle_and_signs_the_flip_webhook(
        forecaster, receiver, tmp_path):  # noqa: F811
    url, handler = receiver
    export = tmp_path / "running.csv"
    cycles, samples = _growing_export(export)
    cfg = FollowConfig(path=export, cell_id="run1", planned_cycles=400, tolerance_cycles=20,
                       meta={"nominal_capacity_ah": 5.0}, webhook_url=url,
                       webhook_secret=SECRET)
    events: list[dict] = []
    reg = Registry()
    follower = Follower(reg, forecaster, cfg, events.append)
    _write_cycles(export, samples, 1, 40, partial=False)
    follower.poll()
    lo = 41
    while lo <= 85:
        _write_cycles(export, samples, lo, lo + 4)
        follower.poll()
        lo += 5
    assert follower.sender.flush(20)
    follower.sender.stop()
    advised = [e["cycle_index"] for e in events if e["event"] in ("advice", "advice_error")]
    assert advised == list(range(3, 85))  # every completed cycle once (85 may still run)
    errors = [e for e in events if e["event"] == "advice_error"]
    assert len(errors) <= 3 and {e["code"] for e in errors} <= {"history_too_short"}
    flips = [e for e in events if e["event"] == "flip"]
    assert len(flips) == 1 and flips[0]["to"] == "stop"
    q = cycles.set_index("cycle_index")["discharge_capacity_ah"] / 5.0
    # the end of life is observed once three cycles in a row are below 80 % (ml.advice:
    # one noisy row must not stop a test): the flip comes at the third of them
    flip = flips[0]["cycle_index"]
    assert (q.loc[flip - 2:flip] < 0.8).all() and 0.8 < q.loc[:flip - 3].min()
    # delivered after two 503s, same key and valid signature every time
    assert len(handler.seen) == 3
    keys = {h["Idempotency-Key"] for h, _ in handler.seen}
    assert keys == {flips[0]["key"]}
    for headers, body in handler.seen:
        assert verify(body, headers[SIGNATURE_HEADER], SECRET)
        assert not verify(body, headers[SIGNATURE_HEADER], "other-key")
    payload = json.loads(handler.seen[-1][1])
    assert payload["decision"] == "stop" and payload["cell_id"] == "run1"
    assert [e["status"] for e in events if e["event"].startswith("webhook")] == [503, 503, 200]
    # idempotent: every stored row once, in order; a restart (offsets from the catalog) and a
    # re-read of the whole file from byte 0 (another path to the same bytes) add nothing
    stored = reg.load_samples("run1")
    assert len(stored) == int((samples["cycle_count"] <= 85).sum())
    again: list[dict] = []
    restarted = Follower(reg, forecaster, cfg, again.append)  # cfg has the webhook: a sender
    try:
        restarted.poll()
    finally:
        restarted.sender.stop()
    copy = tmp_path / "copy.csv"
    copy.write_bytes(export.read_bytes())
    Follower(reg, forecaster, FollowConfig(path=copy, cell_id="run1", planned_cycles=400,
                                           tolerance_cycles=20), again.append).poll()
    assert len(reg.load_samples("run1")) == len(stored)
    assert not [e for e in again if e["event"] in ("flip", "advice")]
    assert [e["rows"] for e in again if e["event"] == "appended"] == [0]
    reg.close()


def test_follow_cli_once_json_events(forecaster, serving_model_dir, tmp_path,  # noqa: F811
                                     capsys):
    from serving.cli import main

    export = tmp_path / "cli.csv"
    cycles, samples = _growing_export(export)
    _write_cycles(export, samples, 1, 12, partial=True)
    code = main(["follow", str(export), "--cell-id", "cli1", "--planned-cycles", "300",
                 "--model", str(serving_model_dir), "--once", "--json"])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    appended = [e for e in events if e["event"] == "appended"]
    assert appended and appended[0]["cycle_last"] == 12
    assert [e["cycle_index"] for e in events
            if e["event"] in ("advice", "advice_error")] == list(range(3, 12))


def test_follow_a_folder_where_new_files_appear(test_data, tmp_path):
    """Exports split across files: each followed from its own offset, new ones as they
    appear; no model needed to append."""
    folder = tmp_path / "exports"
    folder.mkdir()
    store = test_data / "store"
    events: list[dict] = []
    reg = Registry()
    follower = Follower(reg, None, FollowConfig(path=folder, cell_id="dir1",
                                                planned_cycles=10, tolerance_cycles=2),
                        events.append)
    (folder / "a_part1.csv").write_bytes((store / "cell_part1.csv").read_bytes())
    assert follower.poll()
    (folder / "b_part2.csv").write_bytes((store / "cell_part2.csv").read_bytes())
    assert follower.poll()
    assert not follower.poll()  # nothing new
    full = pd.read_csv(store / "cell_full.csv")
    stored = reg.load_samples("dir1")
    assert len(stored) == len(full)
    assert np.array_equal(stored["test_time_second"].to_numpy(),
                          full["test_time_second"].to_numpy())
    assert [e["file"] for e in events if e["event"] == "appended"] == ["a_part1.csv",
                                                                       "b_part2.csv"]
    reg.close()


def test_a_webhook_not_delivered_before_exit_is_sent_by_the_next_run(
        forecaster, receiver, tmp_path):  # noqa: F811
    from serving.webhook import Outbox, WebhookSender

    url, handler = receiver
    handler.fail_first = 0
    outbox = Outbox(tmp_path / "outbox")
    outbox.put("k1", "advice.flipped", {"cell_id": "x", "decision": "stop"})
    dead = WebhookSender(outbox, "http://127.0.0.1:9/nothing", SECRET, max_attempts=2).start()
    assert not dead.flush(3.0) or outbox.pending()
    dead.stop()
    assert [p["key"] for p in outbox.pending()] == ["k1"]  # kept: at least once
    events: list[dict] = []
    alive = WebhookSender(outbox, url, SECRET, emit=events.append).start()
    assert alive.flush(10.0)
    alive.stop()
    assert outbox.pending() == [] and len(handler.seen) == 1
    assert handler.seen[0][0]["Idempotency-Key"] == "k1"


def _queue(outbox, keys: list[str]) -> None:
    """Put ``keys`` in this order, the clock moving between two puts (one queue time each)."""
    import time

    for i, key in enumerate(keys):
        queued = json.loads(outbox.put(key, "advice.flipped", {"i": i}).read_text())
        while time.time() <= queued["queued_at_unix"]:
            time.sleep(0.001)


def test_a_notification_delivered_while_the_outbox_is_listed_is_no_longer_pending(tmp_path):
    """The sender thread removes a delivered file while another thread lists the outbox (CI
    saw ``flush`` die with FileNotFoundError): a file gone between listing and stat/read is
    skipped, the others come back oldest first."""
    from serving.webhook import Outbox

    outbox = Outbox(tmp_path / "outbox")
    _queue(outbox, ["old", "gone", "new"])

    class ListedThenDelivered(type(Path())):  # this outbox's folder only, not every Path
        def glob(self, pattern, *args, **kwargs):
            found = list(super().glob(pattern, *args, **kwargs))
            outbox.done("gone")  # delivered by the other thread right after the listing
            return iter(found)

    outbox.folder = ListedThenDelivered(outbox.folder)
    assert [p["key"] for p in outbox.pending()] == ["old", "new"]


def test_notifications_queued_in_one_file_time_tick_come_back_in_queue_order(tmp_path):
    """File times are coarse (one kernel tick): two notifications whose files carry the same
    time come back in the order they were queued, not in key order."""
    import os

    from serving.webhook import Outbox

    outbox = Outbox(tmp_path / "outbox")
    _queue(outbox, ["b-first", "a-second"])
    for path in outbox.folder.glob("*.json"):
        os.utime(path, (1000.0, 1000.0))
    assert [p["key"] for p in outbox.pending()] == ["b-first", "a-second"]


def test_concurrent_puts_of_one_key_leave_one_valid_file(tmp_path):
    """Several threads queue the same notification at once (each its own temp file): no
    error, one file per key, valid JSON, no temp file left behind."""
    from serving.webhook import Outbox

    outbox = Outbox(tmp_path / "outbox")
    errors: list[BaseException] = []
    keys = [f"k{r}" for r in range(20)]
    for key in keys:
        start = threading.Barrier(8)

        def put(key=key, start=start):
            try:
                start.wait(timeout=30)
                outbox.put(key, "advice.flipped", {"cell_id": "x"})
            except BaseException as exc:  # noqa: BLE001 - collected, asserted below
                errors.append(exc)

        threads = [threading.Thread(target=put) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    assert sorted(p.name for p in outbox.folder.iterdir()) == sorted(f"{k}.json" for k in keys)
    for key in keys:
        doc = json.loads((outbox.folder / f"{key}.json").read_text())
        assert doc["key"] == key and doc["payload"] == {"cell_id": "x"}
    assert sorted(p["key"] for p in outbox.pending()) == sorted(keys)


def test_polls_do_not_read_the_stored_keys_back_while_the_prefix_is_unchanged(
        tmp_path, monkeypatch):
    import data_registry.append as append

    calls = []
    real = append.stored_keys
    monkeypatch.setattr(append, "stored_keys", lambda *a, **k: calls.append(1) or real(*a, **k))
    lines = RAW.read_bytes().splitlines(keepends=True)
    export = tmp_path / "grow.csv"
    reg = Registry()
    follower = Follower(reg, None, FollowConfig(path=export, cell_id="g1", planned_cycles=50,
                                                tolerance_cycles=5), lambda e: None)
    for n in (500, 1500, 2600, len(lines)):
        export.write_bytes(b"".join(lines[:n]))
        assert follower.poll()
    assert calls == []  # every poll trusted the committed prefix
    assert len(reg.load_samples("g1")) == len(lines) - 1
    # a rewritten file (new inode, other bytes before the offset) is checked row by row
    export.unlink()
    export.write_bytes(b"".join(lines[:1]) + b"".join(ln.replace(b",1,1,", b",1,2,", 1)
                                                     for ln in lines[1:50]))
    follower.poll()
    assert calls  # verified against the stored keys: a conflict, reported as an error event
    assert len(reg.load_samples("g1")) == len(lines) - 1
    reg.close()


def test_an_outbox_clears_the_temp_files_of_a_killed_put_but_not_a_fresh_one(tmp_path):
    import os
    import time

    from serving.webhook import STALE_TEMP_S, Outbox

    folder = tmp_path / "outbox"
    folder.mkdir()
    old, fresh = folder / ".k1.abc.tmp", folder / ".k2.def.tmp"
    for p in (old, fresh):
        p.write_text("{")
    then = time.time() - STALE_TEMP_S - 5
    os.utime(old, (then, then))
    Outbox(folder)
    assert not old.exists() and fresh.exists()
