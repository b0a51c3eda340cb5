"""Cohorts in the registry: a cell's ``cohort`` metadata key names its sibling group.

A cohort is a set of cells of one design (same make and batch) run under different protocols.
It is ordinary cell metadata: ``fadecast ingest ... --meta cohort=NAME`` stores it, ``show``
prints it, and :func:`set_cohort` (``fadecast cohort NAME --add CELL ...``) sets it later in
one catalog transaction under the registry's write lock.
"""
from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from data_registry.catalog import cells as cells_table
from data_registry.catalog import now_utc
from data_registry.errors import NotFoundError, ValidationError

__all__ = ["COHORT_KEY", "check_cohort_name", "cohort_members", "set_cohort", "cohorts"]

COHORT_KEY = "cohort"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


def check_cohort_name(name: str) -> str:
    """``name`` if it is a valid cohort name (letters, digits, ``_ . -``; 1–128 characters)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError("invalid cohort name", code="bad_cohort_name", column="cohort",
                              expected="1-128 letters, digits, '_', '.' or '-'",
                              found=repr(name))
    return name


def cohorts(registry: Any) -> dict[str, list[str]]:
    """``{cohort name: [cell ids]}`` over every registered cell that has one."""
    out: dict[str, list[str]] = {}
    with registry.catalog.reading() as conn:
        for row in conn.execute(sa.select(cells_table.c.cell_id, cells_table.c.metadata)
                                .order_by(cells_table.c.cell_id)).mappings():
            name = (row["metadata"] or {}).get(COHORT_KEY)
            if name:
                out.setdefault(str(name), []).append(str(row["cell_id"]))
    return out


def cohort_members(registry: Any, name: str) -> list[str]:
    """Cell ids of cohort ``name`` (sorted); NotFoundError when it has none."""
    check_cohort_name(name)
    members = cohorts(registry).get(name, [])
    if not members:
        raise NotFoundError(f"no cells in cohort '{name}'", code="unknown_cohort",
                            column="cohort", expected="a cohort set by --meta cohort=NAME or "
                            "'fadecast cohort NAME --add CELL ...'", found=repr(name))
    return members


def set_cohort(registry: Any, name: str, cell_ids: list[str]) -> list[str]:
    """Put ``cell_ids`` into cohort ``name`` (all or none: unknown ids change nothing).

    Returns the cohort's members afterwards.
    """
    check_cohort_name(name)
    with registry.write_lock(), registry.catalog.transaction() as conn:
        rows = {r["cell_id"]: dict(r["metadata"] or {}) for r in conn.execute(
            sa.select(cells_table.c.cell_id, cells_table.c.metadata)
            .where(cells_table.c.cell_id.in_(list(cell_ids)))).mappings()}
        missing = [c for c in cell_ids if c not in rows]
        if missing:
            raise NotFoundError(f"no cell '{missing[0]}' in the registry", code="unknown_cell",
                                column="cell_id", expected="registered cell ids",
                                found=repr(missing[0]))
        for cid, meta in rows.items():
            meta[COHORT_KEY] = name
            conn.execute(cells_table.update().where(cells_table.c.cell_id == cid)
                         .values(metadata=meta, updated_at=now_utc()))
    return cohort_members(registry, name)
