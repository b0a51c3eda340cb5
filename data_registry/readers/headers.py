"""Header matching: vendor/human column headers (with units) → canonical columns + factors.

A header matches a canonical column when, lower-cased and with blanks/underscores unified:

1. it IS the canonical name (``voltage_volt``), factor 1; or
2. its stem is in the reader's stem table and its unit (``'Current (mA)'``, ``'Test Time / h'``,
   ``'time_ms'``) is in :data:`data_registry.units.UNIT_FACTORS` for that column's quantity.
   A stem without a unit takes the reader's default unit for it (``None`` = the canonical unit).
"""
from __future__ import annotations

import re

from data_registry.errors import ValidationError
from data_registry.readers.source import Mapped
from data_registry.units import COLUMN_QUANTITY, split_header, unit_factor


def norm(text: str) -> str:
    """Lower case, blanks/dashes/dots → underscore, repeated underscores collapsed."""
    return re.sub(r"_+", "_", re.sub(r"[\s\-.]+", "_", text.strip().lower())).strip("_")


def _suffix_unit(stem: str) -> tuple[str, str | None]:
    """``'time_ms'`` → ``('time', 'ms')``; ``'current'`` → ``('current', None)``."""
    if "_" in stem:
        head, _, tail = stem.rpartition("_")
        return head, tail
    return stem, None


def match_header(header: str, canonical: list[str], stems: dict[str, str],
                 file: str, row: int | None = None) -> Mapped | None:
    """Map one header to a canonical column, or None when it is not recognised.

    Raises :class:`ValidationError` (``unknown_unit``) when the stem is known but its unit is
    not, so a mislabelled column is never silently read with the wrong scale.
    """
    n = norm(header)
    if n in canonical:
        return Mapped(header, n, 1.0)
    name, unit = split_header(header)
    candidates = [(norm(name), unit, True)]
    if unit is None:
        candidates.append((*_suffix_unit(n), False))
    for stem, u, explicit in candidates:
        target = stems.get(stem)
        if target is None:
            continue
        quantity = COLUMN_QUANTITY.get(target, "dimensionless")
        if u is None or (quantity == "dimensionless" and u in ("", "1", "-")):
            return Mapped(header, target, 1.0)
        factor = unit_factor(quantity, u)
        if factor is None and not explicit:
            continue
        if factor is None:
            raise ValidationError(
                f"unknown unit in header '{header}'", code="unknown_unit", file=file, row=row,
                column=header, expected=f"a {quantity} unit",
                found=repr(u))
        return Mapped(header, target, factor)
    return None


def match_headers(names: tuple[str, ...] | list[str], canonical: list[str],
                  stems: dict[str, str], file: str, row: int | None = None) -> list[Mapped]:
    """Map every recognised header; the first header wins when two map to one column."""
    out: dict[str, Mapped] = {}
    for h in names:
        m = match_header(h, canonical, stems, file, row)
        if m is not None and m.target not in out:
            out[m.target] = m
    return list(out.values())
