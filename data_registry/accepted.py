"""What ``fadecast ingest`` accepts, printed from the readers' own tables (never typed twice):
``--list-formats`` from :data:`data_registry.readers.formats.FORMATS`, ``--list-columns`` from
the canonical schema (:mod:`data_registry.schema`), the generic readers' alias stems
(:mod:`data_registry.readers.generic_csv`) and the unit table (:mod:`data_registry.units`)."""
from __future__ import annotations

from data_registry.readers.formats import FORMATS
from data_registry.readers.header_words import CYCLE_STEMS, EIS_STEMS, SAMPLE_STEMS
from data_registry.schema import TABLES
from data_registry.units import COLUMN_QUANTITY, UNIT_FACTORS

_NEEDS = {"": "-", "unsupported": "recognised, refused with a pointer"}


def formats_text() -> str:
    """One line per format: name, kind, what it needs, description."""
    rows = [(f.name, f.kind, _NEEDS.get(f.needs, f.needs.replace("extra:", "pip extra ")
                                        .replace("tool:", "system tool ")), f.description)
            for f in FORMATS]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    lines = ["formats (detected by content; force one with --format NAME):",
             f"  {'name':<{w0}}  {'kind':<{w1}}  {'needs':<{w2}}  description"]
    lines += [f"  {a:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d}" for a, b, c, d in rows]
    return "\n".join(lines)


def _aliases(stems: dict[str, str], target: str) -> list[str]:
    return sorted(k for k, v in stems.items() if v == target)


def columns_text() -> str:
    """Canonical columns per kind with their accepted aliases and units."""
    stems = {"samples": SAMPLE_STEMS, "cycles": CYCLE_STEMS, "eis": EIS_STEMS}
    lines = ["columns of generic CSV files (case-insensitive; a unit may follow an alias as "
             "_unit, (unit), [unit] or / unit, e.g. time_h, 'Current (mA)', 'capacity / mAh'; "
             "no unit = the canonical unit):"]
    for kind, table in TABLES.items():
        lines.append(f"\n  {kind}:")
        for col in table.columns:
            if col.name in ("cell_id", "source_row"):
                continue
            flag = "required" if col.required else "optional"
            alias = ", ".join(_aliases(stems[kind], col.name)) or "-"
            lines.append(f"    {col.name:<30} {flag:<8} aliases: {alias}")
    lines.append("\n  a per-cycle table without a clock needs --hours-per-cycle H or --c-rate C;"
                 " any table with a cycle column and capacity columns (one per cell) is read "
                 "as format capacity_table_csv")
    lines.append("\nunits:")
    for quantity, units in UNIT_FACTORS.items():
        if quantity == "dimensionless":
            continue
        cols = sorted({c for c, q in COLUMN_QUANTITY.items() if q == quantity
                       and not c.startswith("_")})
        lines.append(f"  {quantity:<12} {', '.join(units)}   ({', '.join(cols[:4])}"
                     f"{', …' if len(cols) > 4 else ''})")
    lines.append("\nclocks: seconds, minutes (e.g. Maccor 'Test (Min)'), hours, 'HH:MM:SS', "
                 "'1d 02:03:04', '1.02:03:04'")
    return "\n".join(lines)
