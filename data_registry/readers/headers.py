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
from data_registry.readers.header_words import STEP_TIME_STEMS, TOTAL_TIME_STEMS
from data_registry.readers.source import Mapped
from data_registry.units import (COLUMN_QUANTITY, UNIT_FACTORS, ascii_forms, split_header,
                                 unit_factor)


def norm(text: str) -> str:
    """Lower case, blanks/dashes/dots → underscore, repeated underscores collapsed
    (full-width forms read as ASCII: :func:`data_registry.units.ascii_forms`)."""
    return re.sub(r"_+", "_", re.sub(r"[\s\-.]+", "_",
                                     ascii_forms(text).strip().lower())).strip("_")


def camel_stem(name: str) -> str:
    """:func:`norm` with CamelCase words split: ``'TestTime'`` → ``'test_time'``."""
    return norm(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name))


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
    if camel_stem(name) != norm(name):  # Landt/Arbin CamelCase: TestTime, CycleIndex
        candidates.append((camel_stem(name), unit, True))
    if unit is None:
        candidates.append((*_suffix_unit(n), False))
    for stem, u, explicit in candidates:
        target = stems.get(stem)
        if target is None:
            continue
        quantity = COLUMN_QUANTITY.get(target, "dimensionless")
        if u is None or (quantity == "dimensionless" and u in ("", "1", "-")) \
                or (quantity == "time" and _DURATION_UNIT.match(u.strip())):
            # a clock whose unit is its text layout (Neware's Time(h:min:s.ms)): durations,
            # read by content like a clock without a unit
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


#: every unit spelling of :data:`UNIT_FACTORS` (lower case), for recognising a units row
_KNOWN_UNITS = {u for q, table in UNIT_FACTORS.items() if q != "dimensionless" for u in table}
#: a units-row cell: a short token of letters and unit signs (``mAh``, ``°C``, ``mAh/g``, ``%``)
_UNIT_TOKEN = re.compile(r"^[A-Za-zµμΩ°℃%/.·\-]{1,12}$")
#: a units-row cell giving a duration's layout (Digatron ``[h:m:s]``, ``hh:mm:ss.sss``)
_DURATION_UNIT = re.compile(r"^(d{1,2}[.:])?h{1,2}:m(?:in|m)?(:s{1,2}(\.(?:s+|ms))?)?$",
                            re.IGNORECASE)


def _unit_token(cell: str) -> str:
    """A units-row cell without brackets: ``'(mA)'`` → ``'mA'``."""
    return cell.strip().strip('"').strip().strip("()[]").strip()


def units_row(fields: list[str], n_names: int) -> list[str | None] | None:
    """The unit of each column when ``fields`` (the line under the header) is a units row
    (``s,,,mA,V,mAh,mAh``), else None.

    A units row has no number, every non-blank cell is a short unit-like token, and at least
    half of them (and at least one) are units :data:`UNIT_FACTORS` knows. Blank, ``-`` or
    ``1`` cells give None (no unit).
    """
    cells = [_unit_token(f) for f in fields]
    if not cells or len(cells) > max(n_names, 1) or not any(cells):
        return None
    tokens = [c for c in cells if c and c not in ("-", "1")]
    if not tokens or any(not (_UNIT_TOKEN.match(c) or _DURATION_UNIT.match(c))
                         for c in tokens):
        return None
    known = sum(1 for c in tokens if c.lower().replace("μ", "µ") in _KNOWN_UNITS
                or _DURATION_UNIT.match(c))
    if known == 0 or 2 * known < len(tokens):
        return None
    # a duration layout (h:m:s) is no unit: such values are read as durations by content
    out = [c if c and c not in ("-", "1") and not _DURATION_UNIT.match(c) else None
           for c in cells]
    return out + [None] * (n_names - len(out))


def match_with_units(names: tuple[str, ...] | list[str], units: list[str | None] | None,
                     canonical: list[str], stems: dict[str, str], file: str,
                     units_line: int = 2) -> tuple[list[Mapped], dict[str, str]]:
    """:func:`match_headers` where a header without a unit takes the one of the units row.

    Returns the mapping (sources are the headers as written) and ``{header: unit}`` of the
    columns whose unit came from the units row. A units-row unit that is not a unit of its
    column's quantity raises :class:`ValidationError` (``unknown_unit``) naming the line.
    """
    if not units:
        return match_headers(names, canonical, stems, file, 1), {}
    out: dict[str, Mapped] = {}
    used: dict[str, str] = {}
    for h, u in zip(names, list(units) + [None] * (len(names) - len(units))):
        m = None
        if u is not None and split_header(h)[1] is None:
            try:
                m = match_header(f"{h} [{u}]", canonical, stems, file, units_line)
            except ValidationError as exc:
                raise ValidationError(
                    f"unit {u!r} in the units row (line {units_line}) is not a unit of "
                    f"column '{h}'", code="unknown_unit", file=file, row=units_line, column=h,
                    expected=exc.expected, found=repr(u)) from None
            if m is not None:
                m = Mapped(h, m.target, m.factor, m.text)
                used[h] = u
        if m is None:
            m = match_header(h, canonical, stems, file, 1)
        if m is not None and m.target not in out:
            out[m.target] = m
    used = {h: u for h, u in used.items() if any(m.source == h for m in out.values())}
    return list(out.values()), used


def cell_column(names: tuple[str, ...] | list[str], words: set[str] | frozenset[str]
                ) -> str | None:
    """The first header that names a cell's identity (``cell_id``, ``Cell Name``, ``Channel``,
    ``Zelle`` …: normalised, it is one of ``words``), or None. A header with a unit
    (``'Cell (V)'``) is a measurement, never an identity."""
    for h in names:
        name, unit = split_header(h)
        if unit is None and norm(h) in words:
            return h
    return None


def step_clock(names: tuple[str, ...] | list[str]) -> set[str]:
    """The headers that are a STEP clock: a plain ``Time`` / ``Step Time`` / ``Step Duration``
    beside a whole-test clock (``Total Time``, ``Cumulative Time`` as Neware writes them,
    ``Test Time``, ``Program Duration`` / ``Programmdauer`` as Digatron does), which must not
    be read as the test time. Empty when there is no whole-test clock."""
    stems = {h: camel_stem(split_header(h)[0]) for h in names}
    if not TOTAL_TIME_STEMS & set(stems.values()):
        return set()
    return {h for h, n in stems.items() if n in STEP_TIME_STEMS}
