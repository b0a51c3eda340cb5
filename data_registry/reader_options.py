"""Reader options an ingest forwards to ``open_source``, checked before any file is read.

``Registry.ingest(..., reader_options={...})`` and ``--meta protocol_hours_per_cycle=…``
(alias ``hours_per_cycle``, also kept as cell metadata) end here.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from data_registry.errors import StoreError

#: reader options :meth:`Registry.ingest` forwards to ``open_source`` → (type, low, high)
READER_OPTIONS: dict[str, tuple[type, float, float]] = {
    "protocol_hours_per_cycle": (float, 0.0, 1e5),
    "max_line_bytes": (int, 1.0, float(1 << 30)),
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
    for key, value in dict(options or {}).items():
        if key not in READER_OPTIONS:
            raise StoreError("unknown reader option", code="invalid_reader_option", column=key,
                             expected=f"one of {sorted(READER_OPTIONS)}", found=repr(key))
        if value is None:
            continue
        if key in out and _as_float(out[key]) != _as_float(value):
            raise StoreError(f"reader option '{key}' contradicts the metadata",
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
            raise StoreError(f"reader option '{key}' is not valid", code="invalid_reader_option",
                             column=key, expected=f"a {kind.__name__} in ({lo:g}, {hi:g})",
                             found=repr(value))
        out[key] = number
    return out


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
