"""``fadecast follow PATH --cell-id ID``: follow a cycling test while its export is written.

Each poll:

1. reads what the export(s) gained since the last poll — for text exports only up to the last
   complete line (a row being written is left for the next poll); binary or compressed
   exports once their size stopped changing — and appends it through the ONE write path
   (:func:`serving.cell_store.append_and_extend`: idempotent on (time, step), so re-reading a
   file or restarting after a crash stores nothing twice; the bytes a poll added are kept
   verbatim in the raw store with their byte range; the offset is committed with the rows, in
   the catalog, so a restart resumes where the last commit ended);
2. extends the cell's stored per-cycle table (only the last, possibly incomplete, stored cycle
   and the new ones are recomputed);
3. at each newly COMPLETED cycle (a cycle is complete once a later one has started),
   forecasts and advises on the completed cycles (the same functions as the API);
4. when the decision flips (a running test counts as ``continue`` before its first advice),
   queues a webhook (HMAC-SHA256-signed, retried with backoff, at least once — see
   :mod:`serving.webhook`).

PATH is one export, or a folder whose files (sorted by name) are followed each from its own
offset, new files as they appear. Events go to stdout, one JSON object per line with
``--json``. State (last advice, pending webhooks) lives in ``FADECAST_HOME/follow/cell=<id>``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_registry.errors import FadecastError

__all__ = ["FollowConfig", "Follower", "follow_command"]

Emit = Callable[[dict[str, Any]], None]
_BINARY_SUFFIXES = (".gz", ".xlsx", ".xls", ".mpr", ".nda", ".ndax", ".res", ".h5", ".zip")


@dataclass
class FollowConfig:
    """What to follow and how to advise (see ``fadecast follow --help``)."""

    path: Path
    cell_id: str
    planned_cycles: int
    tolerance_cycles: float
    eol_fraction: float = 0.8
    spec_min_cycles: float | None = None
    format_name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    reader_options: dict[str, Any] = field(default_factory=dict)
    interval_s: float = 1.0
    webhook_url: str | None = None
    webhook_secret: str | None = None


@dataclass
class _Tracked:
    offset: int = 0
    size_seen: int = -1
    stable_polls: int = 0
    identity: list | None = None  # [st_dev, st_ino, sha256 of the 4 KiB before offset]
    lines: int | None = None  # newlines in [0, offset) when the prefix is known unchanged


_TAIL_BYTES = 4096


def _identity(src: Path, offset: int) -> list:
    """What says the committed prefix of ``src`` is still the same bytes: the file's device and
    inode, and the hash of the 4 KiB before ``offset``."""
    st = src.stat()
    with open(src, "rb") as fh:
        fh.seek(max(0, offset - _TAIL_BYTES))
        tail = fh.read(min(offset, _TAIL_BYTES))
    return [st.st_dev, st.st_ino, hashlib.sha256(tail).hexdigest()]


class Follower:
    """One followed cell: :meth:`poll` once, or :meth:`run` until told to stop."""

    def __init__(self, reg: Any, model: Any, cfg: FollowConfig, emit: Emit) -> None:
        from data_registry.cell_ids import check_cell_id
        from serving.webhook import Outbox, WebhookSender

        check_cell_id(cfg.cell_id)
        self.reg, self.model, self.cfg, self.emit = reg, model, cfg, emit
        self.folder = reg.home / "follow" / f"cell={cfg.cell_id}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state = self._load_state()
        self.files: dict[str, _Tracked] = {}
        self.outbox = Outbox(self.folder / "outbox")
        self.sender = None
        if cfg.webhook_url:
            if not cfg.webhook_secret:
                raise FadecastError("a webhook needs a signing secret", code="webhook_secret",
                                    column="FADECAST_SERVE_WEBHOOK_SECRET",
                                    expected="the shared HMAC key in the environment",
                                    found="nothing")
            self.sender = WebhookSender(self.outbox, cfg.webhook_url, cfg.webhook_secret,
                                        emit=emit).start()
            if self.outbox.pending():
                emit({"event": "webhook_resend", "pending": len(self.outbox.pending())})
        self._offsets_from_catalog()

    # -- state ------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        try:
            return json.loads((self.folder / "state.json").read_text())
        except (OSError, ValueError):
            return {"decision": None, "advised_cycle": None}

    def _save_state(self) -> None:
        tmp = self.folder / ".state.tmp"
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.folder / "state.json")

    def _offsets_from_catalog(self) -> None:
        """Byte offsets committed with the rows (``source_metadata.follow``)."""
        with self.reg.catalog.reading() as conn:
            rows = self.reg.catalog.cell_ingests(conn, self.cfg.cell_id)
        for r in rows:
            info = (r.get("source_metadata") or {}).get("follow") or {}
            if info.get("path"):
                t = self.files.setdefault(info["path"], _Tracked())
                end = int(info.get("byte_end") or 0)
                if end >= t.offset:
                    t.offset, t.identity, t.lines = end, info.get("identity"), None

    # -- polling ----------------------------------------------------------------------------

    def sources(self) -> list[Path]:
        p = self.cfg.path
        if p.is_dir():
            return sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")
                          and not q.name.endswith((".tmp", ".part", ".lock")))
        return [p] if p.exists() else []

    def poll(self) -> bool:
        """One pass over the export(s); True when rows were added."""
        added = False
        for src in self.sources():
            try:
                added |= self._poll_file(src)
            except FadecastError as exc:
                self.emit({"event": "error", "file": src.name, "code": exc.code,
                           "message": str(exc)})
        if added and self.model is not None:
            self._advise()
        return added

    def _poll_file(self, src: Path) -> bool:
        key = str(src.resolve())
        t = self.files.setdefault(key, _Tracked())
        size = src.stat().st_size
        if size < t.offset:  # rewritten or truncated: read it all again (keys dedupe)
            self.emit({"event": "file_shrank", "file": src.name, "offset": t.offset,
                       "size": size})
            t.offset = 0
        if size == t.offset:
            return False
        binary = src.suffix.lower() in _BINARY_SUFFIXES or _looks_binary(src)
        if binary:  # cannot cut at a line: wait until the size holds still for one poll
            t.stable_polls = t.stable_polls + 1 if size == t.size_seen else 0
            t.size_seen = size
            if t.stable_polls < 1:
                return False
            end = size
        else:
            with open(src, "rb") as fh:
                fh.seek(t.offset)
                gained = fh.read(size - t.offset)
            cut = gained.rfind(b"\n")
            if cut < 0:
                return False  # a row is being written
            end = t.offset + cut + 1
        return self._append(src, key, t, end, binary)

    def _append(self, src: Path, key: str, t: _Tracked, end: int, binary: bool) -> bool:
        from data_registry.append import STAGING
        from serving.cell_store import append_and_extend

        stage = self.reg.home / STAGING / f"follow-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        stage.mkdir(parents=True)
        try:
            snap = stage / src.name
            delta = stage / f"delta-{src.name}"
            with open(src, "rb") as fin, open(snap, "wb") as fsnap:
                fsnap.write(fin.read(end))
            raw = None
            if t.offset > 0 and not binary:
                with open(snap, "rb") as fin, open(delta, "wb") as fd:
                    fin.seek(t.offset)
                    fd.write(fin.read(end - t.offset))
                raw = delta
            trusted = None
            if t.offset > 0 and not binary and t.identity is not None and \
                    _identity(snap, t.offset)[2] == t.identity[2] and \
                    list(_identity(src, 0)[:2]) == list(t.identity[:2]):
                if t.lines is None:
                    with open(snap, "rb") as fh:
                        t.lines = fh.read(t.offset).count(b"\n")
                trusted = t.lines  # the committed prefix is unchanged: its rows are stored
            identity = _identity(src, end)
            identity[2] = _identity(snap, end)[2]
            started = time.perf_counter()
            report, table = append_and_extend(
                self.reg, snap, self.cfg.cell_id,
                source_name=f"{src.name}#bytes={t.offset}-{end}", raw_path=raw,
                format_name=self.cfg.format_name, meta=self.cfg.meta or None,
                reader_options=self.cfg.reader_options or None,
                source_metadata={"follow": {"path": key, "byte_start": t.offset,
                                            "byte_end": end, "identity": identity}},
                trusted_rows=trusted)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        if t.lines is not None and trusted is not None:
            with open(src, "rb") as fh:
                fh.seek(t.offset)
                t.lines += fh.read(end - t.offset).count(b"\n")
        else:
            t.lines = None
        t.offset, t.identity = end, identity
        self.emit({"event": "appended", "file": src.name, "rows": report.rows_new,
                   "rows_already_stored": report.rows_already_stored,
                   "cycle_last": report.cycle_last, "byte_end": end,
                   "recomputed_cycles": table.recomputed_cycles if table is not None else None,
                   "table_rebuilt": bool(table is not None and table.rebuilt),
                   "second": round(time.perf_counter() - started, 4)})
        return report.rows_new > 0

    # -- advice -----------------------------------------------------------------------------

    def _advise(self) -> None:
        from serving.cell_store import _state, cell_frame
        from serving.predict import advice_document

        cfg = self.cfg
        key, meta, has_cycles = _state(self.reg, cfg.cell_id)
        frame = cell_frame(self.reg, cfg.cell_id, key, meta, has_cycles)
        completed = frame if has_cycles else frame.iloc[:-1]  # the last one may still run
        if len(completed) < 3:
            return
        cycles = completed["cycle_index"].to_numpy()
        done = self.state.get("advised_cycle")
        todo = [i for i, c in enumerate(cycles) if done is None or c > done]
        nominal = meta.get("nominal_capacity_ah")
        for i in todo:
            part = completed.iloc[:i + 1]
            if len(part) < 3:
                continue
            t0 = time.perf_counter()
            try:
                doc = advice_document(
                    self.model, part, planned_cycles=cfg.planned_cycles,
                    tolerance_cycles=cfg.tolerance_cycles, eol_fraction=cfg.eol_fraction,
                    nominal_capacity_ah=float(nominal) if nominal is not None else None,
                    spec_min_cycles=cfg.spec_min_cycles, cell_id=cfg.cell_id,
                    meta={k: v for k, v in meta.items() if k != "cell_id"})
            except FadecastError as exc:
                self.emit({"event": "advice_error", "cycle_index": int(cycles[i]),
                           "code": exc.code, "message": str(exc)})
                self.state["advised_cycle"] = int(cycles[i])
                continue
            cycle = int(cycles[i])
            previous = self.state.get("decision") or "continue"
            self.emit({"event": "advice", "cycle_index": cycle, "decision": doc["decision"],
                       "reason": doc["reason"], "end_of_life": doc["end_of_life"],
                       "second": round(time.perf_counter() - t0, 4),
                       "wall_unix": time.time()})
            self.state.update(decision=doc["decision"], advised_cycle=cycle)
            if doc["decision"] != previous:
                self._flip(cycle, previous, doc)
        self._save_state()

    def _flip(self, cycle: int, previous: str, doc: dict[str, Any]) -> None:
        model = doc.get("model") or {}
        key = hashlib.sha256(f"{self.cfg.cell_id}|{cycle}|{doc['decision']}|"
                             f"{model.get('name')}|{model.get('version')}".encode()
                             ).hexdigest()[:32]
        payload = {"event": "advice.flipped", "idempotency_key": key,
                   "cell_id": self.cfg.cell_id, "cycle_index": cycle,
                   "decision": doc["decision"], "previous_decision": previous,
                   "reason": doc["reason"], "end_of_life": doc["end_of_life"],
                   "hours_saved_if_stopped": doc.get("hours_saved_if_stopped"),
                   "planned_cycles": self.cfg.planned_cycles, "model": model}
        self.emit({"event": "flip", "cycle_index": cycle, "from": previous,
                   "to": doc["decision"], "webhook": bool(self.sender), "key": key})
        if self.sender is not None:
            self.outbox.put(key, "advice.flipped", payload)
            self.sender.notify()

    # -- loop -------------------------------------------------------------------------------

    def run(self, *, once: bool = False, idle_exit_s: float | None = None,
            exit_on_stop: bool = False, flush_s: float = 30.0) -> int:
        """Poll every ``interval_s`` until interrupted, idle for ``idle_exit_s``, or (with
        ``exit_on_stop``) advised to stop; then deliver pending webhooks (up to ``flush_s``)."""
        last_change = time.monotonic()
        try:
            while True:
                if self.poll():
                    last_change = time.monotonic()
                if once:
                    break
                if exit_on_stop and self.state.get("decision") == "stop":
                    break
                if idle_exit_s is not None and time.monotonic() - last_change > idle_exit_s:
                    self.emit({"event": "idle_exit", "second": idle_exit_s})
                    break
                time.sleep(self.cfg.interval_s)
        finally:
            if self.sender is not None:
                if not self.sender.flush(flush_s):
                    self.emit({"event": "webhook_pending", "pending":
                               len(self.outbox.pending()), "kept_in_outbox": True})
                self.sender.stop()
        return 0


def _looks_binary(path: Path) -> bool:
    with open(path, "rb") as fh:
        return b"\x00" in fh.read(4096)


def _emitter(as_json: bool) -> Emit:
    def emit(event: dict[str, Any]) -> None:
        if as_json:
            sys.stdout.write(json.dumps(event, default=str) + "\n")
        else:
            kind = event.get("event")
            if kind == "appended":
                text = (f"{event['file']}: +{event['rows']} rows (last cycle "
                        f"{event['cycle_last']})")
            elif kind == "advice":
                text = f"cycle {event['cycle_index']}: {event['decision']} — {event['reason']}"
            elif kind == "flip":
                text = (f"cycle {event['cycle_index']}: advice flipped {event['from']} -> "
                        f"{event['to']}" + (" (webhook queued)" if event["webhook"] else ""))
            else:
                text = json.dumps(event, default=str)
            sys.stdout.write(text + "\n")
        sys.stdout.flush()

    return emit


def follow_command(args: Namespace) -> int:
    """``fadecast follow PATH --cell-id ID --planned-cycles N [...]``."""
    from data_registry.store import Registry
    from serving.settings import get_settings

    settings = get_settings()
    meta = dict(args.meta or [])
    options = {"protocol_hours_per_cycle": args.hours_per_cycle, "c_rate": args.c_rate,
               "on_error": args.on_error}
    cfg = FollowConfig(
        path=Path(args.path), cell_id=args.cell_id, planned_cycles=args.planned_cycles,
        tolerance_cycles=args.tolerance_cycles or max(2.0, 0.05 * args.planned_cycles),
        eol_fraction=args.eol, spec_min_cycles=args.spec_min_cycles,
        format_name=args.format_name, meta=meta,
        reader_options={k: v for k, v in options.items() if v is not None},
        interval_s=args.interval,
        webhook_url=args.webhook_url or settings.webhook_url,
        webhook_secret=(settings.webhook_secret.get_secret_value()
                        if settings.webhook_secret else None))
    if not cfg.path.exists():
        raise FadecastError("nothing to follow here yet", code="file_not_found",
                            file=str(cfg.path), expected="an export file or a folder",
                            found="nothing")
    emit = _emitter(args.json)
    model = None
    try:
        from serving.runtime import load_forecaster

        model = load_forecaster(args.model)
    except FadecastError as exc:
        print(f"fadecast follow: note: no model ({exc.code}); appending without advice",
              file=sys.stderr)
    reg = Registry()
    try:
        follower = Follower(reg, model, cfg, emit)
        return follower.run(once=args.once, idle_exit_s=args.idle_exit,
                            exit_on_stop=args.exit_on_stop)
    finally:
        reg.close()
