"""Reader options an ingest forwards to ``open_source``, checked before any file is read.

``Registry.ingest(..., reader_options={...})`` and ``--meta protocol_hours_per_cycle=…``
(alias ``hours_per_cycle``, also kept as cell metadata) end here. An EIS matrix's
``frequencies`` (a side file) and ``eis_every_cycles`` (K: line n ↔ cycle K·n) are options
too (:mod:`data_registry.readers.eis_matrix`), and ``eis_cycle`` places a one-spectrum EIS
file at a cycle (:func:`data_registry.readers.source.stated_eis_cycle`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from data_registry.errors import StoreError

#: reader options :meth:`Registry.ingest` forwards to ``open_source`` → (type, low, high)
READER_OPTIONS: dict[str, tuple[type, float, float]] = {
    "protocol_hours_per_cycle": (float, 0.0, 1e5),
    "c_rate": (float, 0.0, 1e4),
    "max_line_bytes": (int, 1.0, float(1 << 30)),
    "eis_every_cycles": (int, 0.0, 1e6),
    "eis_cycle": (int, 0.0, 1e9),
    "active_mass_g": (float, 0.0, 1e6),
}
#: reader options that take one of a few words, or any text → allowed values (None = any)
CHOICE_OPTIONS: dict[str, tuple[str, ...] | None] = {
    "on_error": ("raise", "skip-row"),
    "eis_sign": ("auto", "im", "minus_im"),
    "capacity_column": None,
    "capacity_unit": ("Ah", "mAh"),
    "cell_column": None,
    "cell_value": None,
    "frequencies": None,
}
#: options naming a file (a path object is accepted and read as its text)
PATH_OPTIONS = frozenset({"frequencies"})
#: the CLI flag of each option, named in errors (a user of the CLI never sees Python names)
CLI_FLAGS: dict[str, str] = {
    "protocol_hours_per_cycle": "--hours-per-cycle", "c_rate": "--c-rate",
    "max_line_bytes": "--max-line-bytes", "on_error": "--on-error",
    "eis_sign": "--eis-sign", "capacity_column": "--capacity-column",
    "capacity_unit": "--capacity-unit", "cell_column": "--cell-column",
    "cell_value": "--cell-value", "frequencies": "--frequencies",
    "eis_every_cycles": "--eis-every-cycles", "eis_cycle": "--eis-cycle",
    "active_mass_g": "--meta active_mass_g=G",
}


def reader_options_for(options: Mapping[str, Any] | None,
                       meta: Mapping[str, Any]) -> dict[str, Any]:
    """Checked reader options: ``options`` plus ``protocol_hours_per_cycle`` from ``meta``.

    Raises :class:`StoreError` (``invalid_reader_option``) for an unknown name or a value
    outside its range (hours per cycle in (0, 1e5) h, line length in bytes).
    """
    out: dict[str, Any] = {}
    if "protocol_hours_per_cycle" in meta:
        out["protocol_hours_per_cycle"] = meta["protocol_hours_per_cycle"]
    if meta.get("active_mass_g") is not None:  # converts a capacity per mass (mAh/g) to Ah
        out["active_mass_g"] = meta["active_mass_g"]
    options = dict(options or {})
    if "hours_per_cycle" in options:  # the CLI / API spelling
        options.setdefault("protocol_hours_per_cycle", options.pop("hours_per_cycle"))
        if options.get("hours_per_cycle") is None:
            options.pop("hours_per_cycle", None)
    choices: dict[str, Any] = {}
    for key in list(options):
        if key in CHOICE_OPTIONS:
            value = options.pop(key)
            if key in PATH_OPTIONS and isinstance(value, os.PathLike):
                value = os.fspath(value)
            allowed = CHOICE_OPTIONS[key]
            if value is None:
                continue
            if not isinstance(value, str) or (allowed is not None and value not in allowed):
                raise StoreError(f"reader option {_label(key)} is not valid",
                                 code="invalid_reader_option", column=key,
                                 expected=f"one of {list(allowed)}" if allowed else "a name",
                                 found=repr(value))
            choices[key] = value
    for key, value in options.items():
        if key not in READER_OPTIONS:
            known = sorted([*READER_OPTIONS, *CHOICE_OPTIONS, "hours_per_cycle"])
            raise StoreError("unknown reader option", code="invalid_reader_option", column=key,
                             expected=f"one of {known}", found=repr(key))
        if value is None:
            continue
        if key in out and _as_float(out[key]) != _as_float(value):
            raise StoreError(f"reader option {_label(key)} contradicts the metadata",
                             code="invalid_reader_option", column=key,
                             expected=f"{out[key]!r} (from the metadata)", found=repr(value))
        out[key] = value
    for key, value in out.items():
        kind, lo, hi = READER_OPTIONS[key]
        try:
            number = kind(value)
            ok = lo < number < hi and float(number) == float(value)
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise StoreError(f"reader option {_label(key)} is not valid",
                             code="invalid_reader_option", column=key,
                             expected=f"a {kind.__name__} in ({lo:g}, {hi:g})", found=repr(value))
        out[key] = number
    out.update(choices)
    return out


def _label(key: str) -> str:
    """An option as a user of either interface knows it: ``'c_rate' (--c-rate)``."""
    flag = CLI_FLAGS.get(key)
    return f"'{key}' ({flag})" if flag else f"'{key}'"


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
