"""The catalog: what the registry holds, in a real database through SQLAlchemy 2 Core.

SQLite inside the registry folder by default (``data_registry.home.catalog_url()``), PostgreSQL
by URL (``postgresql+psycopg://...``). The same tables and queries serve both.

Tables
------
``cells``          one row per cell: chemistry, active_mass_g, nominal_capacity_ah, metadata JSON
``raw_files``      raw files kept verbatim, keyed by sha256
``ingests``        one row per (cell, raw file) stored: reader, versions, kind, rows, time range,
                   and the Parquet part that holds its rows (relative to the home folder)
``companions``     sidecar files read with an ingest's main file (kept verbatim in raw_files)
``warnings``       machine-readable code + message per ingest
``datasets``       named, immutable versions (version = content hash)
``dataset_cells``  which cells, at which cell version (the ingests included), make a dataset

All writes of one registry operation happen in ONE transaction (:meth:`Catalog.transaction`),
so a crash leaves the catalog as it was before the operation.
"""
from __future__ import annotations

import fcntl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from data_registry.errors import StoreError
from data_registry.manifest import DatasetRef, cell_version, dataset_version
from data_registry.schema import SCHEMA_VERSION

metadata = sa.MetaData()
#: PostgreSQL advisory lock key held while creating tables (any constant unique to fadecast).
_DDL_LOCK = 0x0FADECA57

cells = sa.Table(
    "cells", metadata,
    sa.Column("cell_id", sa.String(200), primary_key=True),
    sa.Column("chemistry", sa.String(200), nullable=True),
    sa.Column("active_mass_g", sa.Float, nullable=True),
    sa.Column("nominal_capacity_ah", sa.Float, nullable=True),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

raw_files = sa.Table(
    "raw_files", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=False, index=True),
    sa.Column("original_name", sa.String(1000), nullable=False),
    sa.Column("stored_path", sa.String(1000), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

ingests = sa.Table(
    "ingests", metadata,
    sa.Column("ingest_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("cell_id", sa.String(200), sa.ForeignKey("cells.cell_id"), nullable=False,
              index=True),
    sa.Column("raw_sha256", sa.String(64), sa.ForeignKey("raw_files.sha256"), nullable=False,
              index=True),
    sa.Column("original_path", sa.String(2000), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("format_name", sa.String(100), nullable=False),
    sa.Column("reader_version", sa.String(50), nullable=False),
    sa.Column("schema_version", sa.String(20), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("time_start_second", sa.Float, nullable=True),
    sa.Column("time_end_second", sa.Float, nullable=True),
    sa.Column("cycle_first", sa.BigInteger, nullable=True),
    sa.Column("cycle_last", sa.BigInteger, nullable=True),
    sa.Column("part_path", sa.String(1000), nullable=True),
    sa.Column("source_metadata", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("cell_id", "raw_sha256", name="uq_ingest_cell_raw"),
)

companions = sa.Table(  # added after layout 1 shipped: created in old catalogs on open
    "companions", metadata,
    sa.Column("ingest_id", sa.Integer, sa.ForeignKey("ingests.ingest_id"), primary_key=True),
    sa.Column("raw_sha256", sa.String(64), sa.ForeignKey("raw_files.sha256"), primary_key=True),
    sa.Column("original_path", sa.String(2000), nullable=False),
)

warnings = sa.Table(
    "warnings", metadata,
    sa.Column("warning_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ingest_id", sa.Integer, sa.ForeignKey("ingests.ingest_id"), nullable=False,
              index=True),
    sa.Column("code", sa.String(100), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("file", sa.String(2000), nullable=True),
    sa.Column("row", sa.BigInteger, nullable=True),
    sa.Column("column", sa.String(200), nullable=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
)

datasets = sa.Table(
    "datasets", metadata,
    sa.Column("dataset_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(300), nullable=False, index=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("schema_version", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("name", "version", name="uq_dataset_name_version"),
)

registry_info = sa.Table(
    "registry_info", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

#: Layout version of these tables; a catalog written by a newer fadecast is refused, not misread.
CATALOG_VERSION = 1

dataset_cells = sa.Table(
    "dataset_cells", metadata,
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.dataset_id"), primary_key=True),
    sa.Column("cell_id", sa.String(200), sa.ForeignKey("cells.cell_id"), primary_key=True),
    sa.Column("cell_version", sa.String(64), nullable=False),
    sa.Column("ingest_ids", sa.JSON, nullable=False),
)


def now_utc() -> datetime:
    """Current time, timezone-aware UTC (stored as such by both backends)."""
    return datetime.now(timezone.utc)


class Catalog:
    """The registry's database: create tables, run one transaction, answer queries.

    Parameters
    ----------
    url:
        SQLAlchemy URL, e.g. ``sqlite:////path/catalog.sqlite`` or
        ``postgresql+psycopg://user@/db?host=/socket/dir``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            # A writer holds the lock for one short transaction; wait for it instead of failing.
            kwargs["connect_args"] = {"timeout": 60}
        try:
            self.engine: Engine = sa.create_engine(url, **kwargs)
            if url.startswith("sqlite"):
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            self._create_tables()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise StoreError(f"cannot open the catalog: {exc.__class__.__name__}: {exc}",
                             code="catalog_unavailable", file=_redact(url)) from exc

    def _create_tables(self) -> None:
        """Create missing tables, serialised so processes opening a new catalog at once agree.

        SQLite runs DDL outside transactions, so a lock file beside the database serialises it;
        PostgreSQL takes a transaction-scoped advisory lock.
        """
        dialect = self.engine.dialect.name
        database = self.engine.url.database
        if dialect == "sqlite" and database and database != ":memory:":
            with open(f"{database}.lock", "a+b") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    metadata.create_all(self.engine)
                    with self.engine.begin() as conn:
                        self._check_version(conn)
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        elif dialect == "postgresql":
            with self.engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DDL_LOCK})
                metadata.create_all(conn)
                self._check_version(conn)
        else:
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                self._check_version(conn)

    def _check_version(self, conn: Connection) -> None:
        """Stamp a new catalog with :data:`CATALOG_VERSION`; refuse one from a newer layout."""
        q = sa.select(registry_info.c.value).where(registry_info.c.key == "catalog_version")
        found = conn.execute(q).scalar()
        if found is None:
            conn.execute(registry_info.insert().values(key="catalog_version",
                                                       value=str(CATALOG_VERSION)))
        elif int(found) > CATALOG_VERSION:
            raise StoreError("the catalog was written by a newer fadecast; upgrade fadecast to "
                             "use it", code="catalog_too_new", file=_redact(self.url),
                             expected=f"catalog version <= {CATALOG_VERSION}", found=found)

    def dispose(self) -> None:
        """Close pooled connections (tests stopping a server call this first)."""
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One all-or-nothing transaction; rolled back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for queries."""
        with self.engine.connect() as conn:
            yield conn

    # -- queries ----------------------------------------------------------------------------

    def cell_row(self, conn: Connection, cell_id: str) -> dict[str, Any] | None:
        """The ``cells`` row of ``cell_id`` as a dict, or None."""
        row = conn.execute(sa.select(cells).where(cells.c.cell_id == cell_id)).mappings().first()
        return None if row is None else dict(row)

    def cell_ingests(self, conn: Connection, cell_id: str,
                     kind: str | None = None) -> list[dict[str, Any]]:
        """Ingests of one cell in the order they were stored (the order rows append in)."""
        q = sa.select(ingests).where(ingests.c.cell_id == cell_id)
        if kind is not None:
            q = q.where(ingests.c.kind == kind)
        return [dict(r) for r in conn.execute(q.order_by(ingests.c.ingest_id)).mappings()]

    def ingests_of_raw(self, conn: Connection, sha256: str) -> list[dict[str, Any]]:
        """Every ingest of one raw file (any cell)."""
        q = sa.select(ingests).where(ingests.c.raw_sha256 == sha256).order_by(ingests.c.ingest_id)
        return [dict(r) for r in conn.execute(q).mappings()]

    def ingest_companions(self, conn: Connection,
                          ingest_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Companion files of the given ingests: ``{ingest_id: [{raw_sha256,
        original_path}]}`` in path order."""
        if not ingest_ids:
            return {}
        q = (sa.select(companions).where(companions.c.ingest_id.in_(ingest_ids))
             .order_by(companions.c.ingest_id, companions.c.original_path))
        out: dict[int, list[dict[str, Any]]] = {}
        for r in conn.execute(q).mappings():
            out.setdefault(r["ingest_id"], []).append(
                {"raw_sha256": r["raw_sha256"], "original_path": r["original_path"]})
        return out

    def ingest_warnings(self, conn: Connection, ingest_ids: list[int]) -> list[dict[str, Any]]:
        """Stored warnings of the given ingests, in insertion order."""
        if not ingest_ids:
            return []
        q = (sa.select(warnings).where(warnings.c.ingest_id.in_(ingest_ids))
             .order_by(warnings.c.warning_id))
        return [dict(r) for r in conn.execute(q).mappings()]

    def all_cells(self, conn: Connection) -> list[dict[str, Any]]:
        """Every cell with its ingest count, row totals per kind and time range."""
        agg = (sa.select(
            ingests.c.cell_id,
            sa.func.count(ingests.c.ingest_id).label("files"),
            sa.func.sum(sa.case((ingests.c.kind == "samples", ingests.c.rows), else_=0))
            .label("sample_rows"),
            sa.func.sum(sa.case((ingests.c.kind == "cycles", ingests.c.rows), else_=0))
            .label("cycle_rows"),
            sa.func.sum(sa.case((ingests.c.kind == "eis", ingests.c.rows), else_=0))
            .label("eis_rows"),
            sa.func.min(ingests.c.time_start_second).label("time_start_second"),
            sa.func.max(ingests.c.time_end_second).label("time_end_second"),
            sa.func.min(sa.case((ingests.c.kind == "samples", ingests.c.cycle_first),
                                else_=None)).label("sample_cycle_first"),
            sa.func.max(sa.case((ingests.c.kind == "samples", ingests.c.cycle_last),
                                else_=None)).label("sample_cycle_last"),
        ).group_by(ingests.c.cell_id).subquery())
        q = (sa.select(cells, agg.c.files, agg.c.sample_rows, agg.c.cycle_rows, agg.c.eis_rows,
                       agg.c.time_start_second, agg.c.time_end_second,
                       agg.c.sample_cycle_first, agg.c.sample_cycle_last)
             .select_from(cells.outerjoin(agg, agg.c.cell_id == cells.c.cell_id))
             .order_by(cells.c.cell_id))
        return [dict(r) for r in conn.execute(q).mappings()]

    def all_datasets(self, conn: Connection) -> list[dict[str, Any]]:
        """Every dataset version with its cells, oldest first."""
        rows = [dict(r) for r in conn.execute(
            sa.select(datasets).order_by(datasets.c.dataset_id)).mappings()]
        members: dict[int, list[dict[str, Any]]] = {}
        for m in conn.execute(sa.select(dataset_cells)
                              .order_by(dataset_cells.c.dataset_id, dataset_cells.c.cell_id)
                              ).mappings():
            members.setdefault(m["dataset_id"], []).append(dict(m))
        for r in rows:
            r["cells"] = members.get(r["dataset_id"], [])
        return rows

    def find_dataset(self, conn: Connection, name: str,
                     version: str | None = None) -> dict[str, Any] | None:
        """One dataset version (the latest of ``name`` when ``version`` is None), or None."""
        q = sa.select(datasets).where(datasets.c.name == name)
        if version is not None:
            q = q.where(datasets.c.version.startswith(version, autoescape=True))
        row = conn.execute(q.order_by(datasets.c.dataset_id.desc())).mappings().first()
        if row is None:
            return None
        out = dict(row)
        out["cells"] = [dict(m) for m in conn.execute(
            sa.select(dataset_cells).where(dataset_cells.c.dataset_id == out["dataset_id"])
            .order_by(dataset_cells.c.cell_id)).mappings()]
        return out

    def referenced_parts(self, conn: Connection) -> set[str]:
        """Every Parquet part path the catalog points at (anything else on disk is debris)."""
        q = sa.select(ingests.c.part_path).where(ingests.c.part_path.is_not(None))
        return {r[0] for r in conn.execute(q)}


def record_dataset(catalog: Catalog, conn: Connection, name: str,
                   members: Mapping[str, Sequence[Mapping[str, Any]]]) -> DatasetRef:
    """Insert a dataset version for ``{cell_id: ingest rows}`` unless it exists; return it."""
    versions = {cid: cell_version(rows) for cid, rows in members.items()}
    version = dataset_version(versions)
    existing = catalog.find_dataset(conn, name, version)
    if existing is None or existing["version"] != version:
        dataset_id = conn.execute(datasets.insert().values(
            name=name, version=version, schema_version=SCHEMA_VERSION,
            created_at=now_utc())).inserted_primary_key[0]
        conn.execute(dataset_cells.insert(), [
            {"dataset_id": dataset_id, "cell_id": cid, "cell_version": versions[cid],
             "ingest_ids": [r["ingest_id"] for r in rows]} for cid, rows in members.items()])
    return DatasetRef(name, version, tuple(sorted(members)), SCHEMA_VERSION)


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 UTC text of a catalog timestamp (SQLite returns them without a zone)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


def _redact(url: str) -> str:
    """The URL without a password, safe to print."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid catalog URL>"
