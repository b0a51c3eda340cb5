"""Capacity units of a generic table: stated in the header, in a units row, by the user, or
inferred (and always warned); a capacity per mass of active material (``mAh/g``) is read in Ah
with the active mass, and refused without it.
"""
from __future__ import annotations

import numpy as np

from data_registry.errors import IngestWarning, ValidationError
from data_registry.readers.headers import match_header, match_headers, norm

#: a unitless capacity column whose median exceeds this is read as mAh (warned)
MAH_THRESHOLD = 20.0


def header_unit(header: str, quantity: str = "capacity") -> str | None:
    """The ``quantity`` unit a header names (``'Capacity (mAh)'``, ``'qd_mah'``), or None."""
    from data_registry.units import split_header, unit_factor

    unit = split_header(header)[1]
    if unit is None and "_" in norm(header):
        tail = norm(header).rpartition("_")[2]
        unit = tail if unit_factor(quantity, tail) is not None else None
    return unit


def _override_hint() -> str:
    """How a user states a capacity unit (names the CLI option once one exists)."""
    from data_registry.reader_options import CLI_FLAGS

    flag = CLI_FLAGS.get("capacity_unit")
    option = f"pass {flag} mAh (or Ah), or " if flag else ""
    return (f"{option}state the unit in the header (e.g. 'capacity_mAh', 'capacity (Ah)') or "
            "in a units row under the header")


def _capacity_factor(header: str, values: np.ndarray, file: str, column: str,
                     stated: str | None = None, active_mass_g: float | None = None
                     ) -> tuple[float, IngestWarning | None]:
    """Factor to Ah of a capacity column: its header's unit (a capacity per mass, ``mAh/g``,
    times ``active_mass_g``: :func:`per_mass_factor`), else the ``stated`` unit, else
    inferred from its values (median > :data:`MAH_THRESHOLD` → mAh, else Ah), warned
    ``capacity_unit_inferred`` because a bare number cannot tell a 3.7 mAh coin cell from a
    3.7 Ah cylindrical one."""
    from data_registry.units import specific_capacity_factor, unit_factor

    unit = header_unit(header)
    if unit is not None and unit_factor("capacity", unit) is not None:
        return float(unit_factor("capacity", unit)), None
    if specific_capacity_factor(unit) is not None:
        return per_mass_factor(header, unit, active_mass_g, file), None
    if stated is not None:
        return _stated_factor(stated, file, column), None
    v = values[np.isfinite(values) & (values > 0)]
    median = float(np.median(v)) if v.size else float("nan")
    mah = bool(v.size) and median > MAH_THRESHOLD
    rule = (f"(> {MAH_THRESHOLD:g})" if mah else
            f"(≤ {MAH_THRESHOLD:g})" if v.size else "(no positive value in the first lines)")
    unit, factor = ("mAh", 1e-3) if mah else ("Ah", 1.0)
    return factor, IngestWarning(
        "capacity_unit_inferred", f"capacity column '{header}' names no unit; its median over "
        f"the first {values.size} rows is {median:.4g} {rule}, so it is read as {unit} "
        f"(median {median * factor:.4g} Ah); if that is "
        f"wrong, {_override_hint()}", file, 1, column, 1,
        {"column": header, "median": median, "unit": unit})


def per_mass_factor(header: str, unit: str, active_mass_g: float | None, file: str) -> float:
    """Factor to Ah of a capacity column in ``unit`` per mass of active material (``mAh/g``,
    ``Ah/kg``, ``mAh g-1`` …) for ``active_mass_g`` grams; refused (``needs_active_mass``,
    naming the column and how to state the mass) without one."""
    from data_registry.units import specific_capacity_factor

    factor = specific_capacity_factor(unit)
    if active_mass_g is None or not np.isfinite(active_mass_g) or active_mass_g <= 0:
        raise ValidationError(
            f"capacity column '{header}' is per mass of active material ({unit}): state the "
            "mass to read it in Ah", code="needs_active_mass", file=file, row=1, column=header,
            expected="the active mass in grams: fadecast ingest --meta active_mass_g=G, "
                     "fadecast forecast --active-mass-g G",
            found=f"{unit} and no active mass")
    return float(factor) * float(active_mass_g)


def _per_mass_columns(names: tuple[str, ...], canonical: list[str], stems: dict[str, str],
                      kind: str, active_mass_g: float | None, file: str
                      ) -> tuple[tuple[str, ...], dict[str, tuple[str, float]]]:
    """Capacity headers in a unit per mass (``Discharge capacity (mAh/g)``): each is matched
    as its Ah alias (``Discharge capacity (Ah)``) and read with :func:`per_mass_factor`.
    A column whose quantity another header already gives in Ah, or (per-sample files, whose
    capacities can be integrated from the current) any such column without an active mass,
    is left out. Returns the names to match and ``{alias: (header, factor)}``."""
    from data_registry.units import specific_capacity_factor, split_header

    per_mass = {h: split_header(h) for h in names
                if specific_capacity_factor(split_header(h)[1]) is not None}
    if not per_mass:
        return names, {}
    plain = [h for h in names if h not in per_mass]
    try:
        have = {m.target for m in match_headers(plain, canonical, stems, file, 1)}
    except ValidationError:
        have = set()
    out = list(names)
    aliases: dict[str, tuple[str, float]] = {}
    for h, (base, unit) in per_mass.items():
        alias = f"{base} (Ah)"
        m = match_header(alias, canonical, stems, file, 1)
        hide = m is None or m.target in have or (kind == "samples" and active_mass_g is None)
        if hide:
            out[out.index(h)] = "\x00" + h
            continue
        aliases[alias] = (h, per_mass_factor(h, unit, active_mass_g, file))
        out[out.index(h)] = alias
        have.add(m.target)
    return tuple(out), aliases


def _stated_factor(unit: str, file: str, column: str) -> float:
    """Factor to Ah of a capacity unit the user stated (``capacity_unit``)."""
    from data_registry.units import unit_factor

    factor = unit_factor("capacity", unit)
    if factor is None:
        raise ValidationError("unknown capacity unit", code="invalid_reader_option", file=file,
                              column=column, expected="a capacity unit such as 'Ah' or 'mAh'",
                              found=repr(unit))
    return float(factor)
