"""Where the registry's raw files and Parquet parts live: the home folder, or object storage.

By default everything sits under ``FADECAST_HOME``. With a store URL
(``Registry(store_url=...)`` or ``$FADECAST_STORE_URL``, e.g. ``s3://bucket/fadecast``; any
fsspec URL) the home folder still holds the catalog (SQLite, or PostgreSQL by URL), the lock
and the staging copies an ingest writes, and every raw file and Parquet part is also PUT to
``<store>/<same relative path>`` BEFORE the catalog transaction that makes it visible — an
object PUT appears whole or not at all, so a reader never sees half a part. Reads of parts
then come from the store, so a worker on another machine needs only the catalog URL and the
store URL. ``$FADECAST_STORE_OPTIONS`` (JSON) passes fsspec options, e.g.
``{"endpoint_url": "http://127.0.0.1:9000", "key": "...", "secret": "..."}`` for an
S3-compatible server.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_registry.errors import StoreError

ENV_URL = "FADECAST_STORE_URL"
ENV_OPTIONS = "FADECAST_STORE_OPTIONS"


class Storage:
    """The registry's file layer: local paths under ``home`` or an fsspec store at ``url``."""

    def __init__(self, home: Path, url: str | None = None,
                 options: dict[str, Any] | None = None) -> None:
        self.home = Path(home)
        chosen = url if url is not None else os.environ.get(ENV_URL) or None
        self.url = chosen.rstrip("/") if chosen else None
        self.options = dict(options) if options is not None else _env_options()
        self.fs: Any = None
        self.root = ""
        if self.url:
            try:
                import fsspec

                self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.options)
            except (ImportError, ValueError) as exc:
                raise StoreError(f"cannot open the store: {exc}", code="bad_store_url",
                                 column=ENV_URL, expected="an fsspec URL such as "
                                 "s3://bucket/prefix (with its fsspec package installed)",
                                 found=self.url) from exc

    @property
    def remote(self) -> bool:
        """True when raw files and parts are kept in an fsspec store."""
        return self.fs is not None

    def location(self, rel: str) -> str:
        """Where the file at ``rel`` (relative to the registry root) is read from."""
        if self.remote:
            return f"{self.root.rstrip('/')}/{rel}"
        return str(self.home / rel)

    def publish(self, local: Path) -> None:
        """Copy a file just placed under the home folder to the store (no-op without one).

        Content-addressed raw files already in the store are not sent again.
        """
        if not self.remote:
            return
        rel = Path(local).relative_to(self.home).as_posix()
        target = self.location(rel)
        if rel.startswith("raw/") and self.fs.exists(target):
            return
        try:
            self.fs.put_file(str(local), target)
        except Exception as exc:  # noqa: BLE001 - any transport error: the ingest must fail
            raise StoreError(f"could not write to the store: {exc}", code="store_write_failed",
                             file=target, expected="a writable store", found=type(exc).__name__
                             ) from exc

    def open(self, rel_or_location: str, mode: str = "rb") -> Any:
        """A binary file object (store) or the local path, for ``pyarrow.parquet``."""
        if self.remote:
            loc = (rel_or_location if rel_or_location.startswith(self.root.rstrip("/"))
                   else self.location(rel_or_location))
            return self.fs.open(loc, mode)
        return rel_or_location if os.path.isabs(rel_or_location) else str(
            self.home / rel_or_location)

    def read_parquet(self, rel: str, columns: Sequence[str] | None = None) -> pa.Table:
        """One Parquet part (path relative to the registry root)."""
        cols = list(columns) if columns else None
        if not self.remote:
            return pq.read_table(self.home / rel, columns=cols)
        try:
            with self.fs.open(self.location(rel), "rb") as fh:
                return pq.read_table(fh, columns=cols)
        except FileNotFoundError as exc:
            raise StoreError("a stored part is missing from the store", code="missing_part",
                             file=self.location(rel), expected="the object the catalog names",
                             found="nothing") from exc

    def spec(self) -> dict[str, Any]:
        """What a worker needs to open the same storage: ``store_url``, ``store_options``."""
        return {"store_url": self.url, "store_options": self.options}


def _env_options() -> dict[str, Any]:
    text = os.environ.get(ENV_OPTIONS)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError("store options are not JSON", code="bad_store_options",
                         column=ENV_OPTIONS, expected='a JSON object, e.g. {"endpoint_url": '
                         '"http://127.0.0.1:9000"}', found=text[:80]) from exc
    if not isinstance(value, dict):
        raise StoreError("store options must be a JSON object", code="bad_store_options",
                         column=ENV_OPTIONS, expected="a JSON object", found=type(value).__name__)
    return value
