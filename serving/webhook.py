"""Webhooks of ``fadecast follow``: signed, retried, at least once.

Each notification is first written to an outbox file (``FADECAST_HOME/follow/cell=<id>/
outbox/<key>.json``, atomically) and removed only after the receiver answered 2xx, so a crash
or an unreachable receiver means a later delivery, never a lost one (a receiver may see one
twice: it deduplicates on the ``Idempotency-Key`` header, stable across retries and restarts).

Request: ``POST`` the event's JSON body with ``Content-Type: application/json``,
``Idempotency-Key: <key>``, ``X-Fadecast-Event: <event>``, and
``X-Fadecast-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed by the shared
secret>``. Verify with :func:`verify` (constant-time compare). Retries back off exponentially
(0.5 s × 2^k, at most 30 s) on connection errors, 5xx and 429; other 4xx answers are final
failures (logged, kept in the outbox).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Outbox", "WebhookSender", "signature", "verify"]

SIGNATURE_HEADER = "X-Fadecast-Signature"
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
#: a temp file of the outbox older than this (s) at start is left over from a killed put
STALE_TEMP_S = 600.0


def signature(body: bytes, secret: str) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``body`` keyed by ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    return bool(header) and hmac.compare_digest(signature(body, secret), str(header))


class Outbox:
    """Pending notifications, one JSON file each (written by temp file + rename)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        # a put killed between its temp file and the rename leaves the temp file behind: an
        # old one is debris (a fresh one may belong to a put running right now)
        for stale in folder.glob(".*.tmp"):
            try:
                if time.time() - stale.stat().st_mtime > STALE_TEMP_S:
                    stale.unlink()
            except FileNotFoundError:
                continue

    def put(self, key: str, event: str, payload: dict[str, Any]) -> Path:
        path = self.folder / f"{key}.json"
        if path.exists():
            return path  # the same notification is already pending
        # a temp name of its own: two threads putting the same key never share one
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({"key": key, "event": event, "payload": payload,
                           "queued_at_unix": time.time()}, fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def pending(self) -> list[dict[str, Any]]:
        """Queued notifications, oldest first (by the time stored in each file, then key:
        file times are too coarse to order two notifications queued in one tick).

        A sender thread may deliver (and remove) a file between the folder listing and its
        read; such a file is simply no longer pending (as is one that does not parse).
        """
        items = []
        for p in self.folder.glob("*.json"):
            try:
                item = json.loads(p.read_text())
                queued = float(item.get("queued_at_unix", 0.0))
            except (OSError, ValueError, TypeError, AttributeError):
                continue
            items.append((queued, str(item.get("key", p.stem)), item))
        return [item for _, _, item in sorted(items, key=lambda t: t[:2])]

    def done(self, key: str) -> None:
        (self.folder / f"{key}.json").unlink(missing_ok=True)


class WebhookSender:
    """Delivers an :class:`Outbox` to ``url`` on a background thread.

    ``emit`` receives one event dict per delivery outcome (``webhook_delivered`` /
    ``webhook_retry`` / ``webhook_failed``).
    """

    def __init__(self, outbox: Outbox, url: str, secret: str, *,
                 emit: Callable[[dict[str, Any]], None] | None = None,
                 timeout_s: float = 10.0, max_attempts: int = 8) -> None:
        self.outbox, self.url, self.secret = outbox, url, secret
        self.emit = emit or (lambda event: None)
        self.timeout_s, self.max_attempts = timeout_s, max_attempts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._attempts: dict[str, int] = {}
        self._next_try: dict[str, float] = {}
        self._given_up: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="fadecast-webhook", daemon=True)

    def start(self) -> "WebhookSender":
        self._thread.start()
        return self

    def notify(self) -> None:
        """Something was queued: try now."""
        self._wake.set()

    def idle(self) -> bool:
        """Nothing left to try (delivered, or given up for this run)."""
        return all(item["key"] in self._given_up for item in self.outbox.pending())

    def flush(self, timeout_s: float) -> bool:
        """Wait until :meth:`idle` (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + timeout_s
        self.notify()
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.05)
        return self.idle()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout_s + 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            waits = []
            for item in self.outbox.pending():
                key = item["key"]
                if key in self._given_up:
                    continue
                due = self._next_try.get(key, 0.0)
                if due > now:
                    waits.append(due - now)
                    continue
                self._deliver(item)
                if key not in self._given_up and key in self._next_try:
                    waits.append(max(0.0, self._next_try[key] - time.monotonic()))
            self._wake.wait(timeout=min(waits) if waits else 1.0)
            self._wake.clear()

    def _deliver(self, item: dict[str, Any]) -> None:
        key = item["key"]
        body = json.dumps(item["payload"], sort_keys=True, separators=(",", ":")).encode()
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": key,
            "X-Fadecast-Event": str(item["event"]),
            SIGNATURE_HEADER: signature(body, self.secret)})
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        status, retry = None, True
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            retry = exc.code >= 500 or exc.code == 429
        except (OSError, urllib.error.URLError):
            status = None
        if status is not None and 200 <= status < 300:
            self.outbox.done(key)
            self.emit({"event": "webhook_delivered", "key": key, "attempt": attempt,
                       "status": status})
            return
        if not retry or attempt >= self.max_attempts:
            self._given_up.add(key)
            self.emit({"event": "webhook_failed", "key": key, "attempt": attempt,
                       "status": status, "kept_in_outbox": True})
            return
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1))
        self._next_try[key] = time.monotonic() + delay
        self.emit({"event": "webhook_retry", "key": key, "attempt": attempt,
                   "status": status, "retry_in_second": delay})
