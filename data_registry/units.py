"""Unit tables: vendor unit spellings → factor to the canonical unit of each quantity.

Units are converted ONCE, in the reader. The canonical units are the ones in the column names of
:mod:`data_registry.schema` (s, V, A, Ah, Wh, Ω, °C, Hz).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

#: quantity → {unit spelling (lower case) → factor to the canonical unit}
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "time": {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "min": 60.0,
             "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0, "d": 86400.0,
             "day": 86400.0, "days": 86400.0},
    "voltage": {"v": 1.0, "volt": 1.0, "mv": 1e-3, "kv": 1e3},
    "current": {"a": 1.0, "ampere": 1.0, "amp": 1.0, "ma": 1e-3, "ua": 1e-6, "µa": 1e-6,
                "na": 1e-9},
    "capacity": {"ah": 1.0, "mah": 1e-3, "uah": 1e-6, "µah": 1e-6, "a.h": 1.0, "ma.h": 1e-3,
                 "as": 1.0 / 3600.0, "c": 1.0 / 3600.0, "mas": 1e-3 / 3600.0},
    "energy": {"wh": 1.0, "mwh": 1e-3, "kwh": 1e3, "uwh": 1e-6, "w.h": 1.0, "mw.h": 1e-3,
               "j": 1.0 / 3600.0, "ws": 1.0 / 3600.0},
    "resistance": {"ohm": 1.0, "ω": 1.0, "mohm": 1e-3, "mω": 1e-3, "kohm": 1e3, "kω": 1e3,
                   "uohm": 1e-6, "µohm": 1e-6},
    "temperature": {"c": 1.0, "°c": 1.0, "℃": 1.0, "degc": 1.0, "celsius": 1.0},
    "frequency": {"hz": 1.0, "khz": 1e3},
    "dimensionless": {"": 1.0, "1": 1.0, "-": 1.0},
}

#: canonical column → the quantity its unit measures
COLUMN_QUANTITY: dict[str, str] = {
    "test_time_second": "time",
    "unix_time_second": "time",
    "voltage_volt": "voltage",
    "current_ampere": "current",
    "charging_capacity_ah": "capacity",
    "discharging_capacity_ah": "capacity",
    "charge_capacity_ah": "capacity",
    "discharge_capacity_ah": "capacity",
    "charging_energy_wh": "energy",
    "discharging_energy_wh": "energy",
    "charge_energy_wh": "energy",
    "discharge_energy_wh": "energy",
    "internal_resistance_ohm": "resistance",
    "z_real_ohm": "resistance",
    "z_imag_ohm": "resistance",
    "ambient_temperature_celsius": "temperature",
    "temperature_celsius": "temperature",
    "frequency_hz": "frequency",
    "cycle_duration_second": "time",
    "rest_second": "time",
    "_capacity_ah": "capacity",
    "_energy_wh": "energy",
}

_UNIT_IN_HEADER = re.compile(
    r"^\s*(?P<name>.*?)\s*(?:[(\[](?P<u1>[^)\]]*)[)\]]|/\s*(?P<u2>[^/]+))\s*$")
#: ``name / unit`` whose unit itself holds a slash: a capacity per mass (``SpeCap/mAh/g``)
_PER_MASS_IN_HEADER = re.compile(
    r"^\s*(?P<name>.*?)\s*/\s*(?P<u>[mµu]?Ah\s*/\s*(?:m|k)?g)\s*$", re.IGNORECASE)
#: full-width ASCII forms (U+FF01–U+FF5E) and the ideographic space, as CJK exports write
#: brackets and letters (``电流（mA）``), → their ASCII characters
_FULL_WIDTH = {**{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}, 0x3000: 0x20}


#: half-width katakana (U+FF61–U+FF9F), as older Japanese software writes headers (``ｻｲｸﾙ``)
_HALF_WIDTH_KANA = re.compile("[\uff61-\uff9f]+")


def ascii_forms(text: str) -> str:
    """``text`` with full-width ASCII forms and the ideographic space as plain ASCII
    (``'电流（ｍＡ）'`` → ``'电流(mA)'``) and half-width katakana as full-width (``'ｻｲｸﾙ'`` →
    ``'サイクル'``, voiced marks joined); other characters (``µ``, ``Ω``, ``°``) unchanged."""
    import unicodedata

    text = text.translate(_FULL_WIDTH)
    if _HALF_WIDTH_KANA.search(text):
        text = _HALF_WIDTH_KANA.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    return text


def split_header(header: str) -> tuple[str, str | None]:
    """Split a human header into (name, unit): ``'Current (mA)'`` → ``('Current', 'mA')``.

    Handles ``name (unit)``, ``name [unit]`` and ``name / unit`` (BDF/EC-Lab style
    ``'Test Time / h'``, ``'Ewe/V'``; Landt's ``'SpeCap/mAh/g'`` → ``('SpeCap', 'mAh/g')``),
    full-width brackets too (``'电流（mA）'``). Returns ``(header, None)`` when no unit is given.
    """
    header = ascii_forms(header)
    m = _PER_MASS_IN_HEADER.match(header) or _UNIT_IN_HEADER.match(header)
    if not m:
        return header.strip(), None
    if "u" in m.groupdict():
        return m.group("name").strip(), m.group("u").strip()
    unit = m.group("u1") if m.group("u1") is not None else m.group("u2")
    return m.group("name").strip(), unit.strip()


#: capacity per mass of active material → Ah per gram for one unit of the value
#: (1 mAh/g = 1 Ah/kg = 1e-3 Ah per gram); spaces are dropped before the lookup
SPECIFIC_CAPACITY: dict[str, float] = {
    "mah/g": 1e-3, "ah/kg": 1e-3, "mahg-1": 1e-3, "mahg^-1": 1e-3, "mah·g-1": 1e-3,
    "mah·g^-1": 1e-3, "mahg⁻¹": 1e-3, "mah/mg": 1.0, "ah/g": 1.0, "µah/mg": 1e-3,
    "uah/mg": 1e-3, "µah/g": 1e-6, "uah/g": 1e-6}


def specific_capacity_factor(unit: str | None) -> float | None:
    """Ah per gram of active material for one unit of a capacity-per-mass ``unit``
    (``'mAh/g'`` → 1e-3), or None when ``unit`` is not one."""
    if unit is None:
        return None
    return SPECIFIC_CAPACITY.get(unit.strip().lower().replace(" ", ""))


def unit_factor(quantity: str, unit: str) -> float | None:
    """Factor that converts ``unit`` to the canonical unit of ``quantity`` (None if unknown).

    Examples: ``unit_factor('capacity', 'mAh') == 1e-3``; ``unit_factor('time', 'h') == 3600``.
    Spelling is case-insensitive except that ``'mOhm'``/``'MOhm'`` are read as milli-ohm.
    """
    key = unit.strip().lower().replace("ohms", "ohm").replace(" ", "")
    return UNIT_FACTORS.get(quantity, {}).get(key)


#: ``[D d ]H:MM:SS[.f]`` (Maccor ``1d 10:28:12.78``) or the .NET TimeSpan ``D.HH:MM:SS[.f]``
#: (``1.02:03:04``: the days end with a dot directly followed by two-digit hours and a colon,
#: so ``02:03:04.5``, whose dot is in the seconds, is never read as days)
_DURATION = (r"^\s*(?:(?P<d>\d+)\s*d\s*|(?P<dn>\d+)\.(?=\d{2}:))?"
             r"(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d+(?:[.,]\d*)?)\s*$")


def parse_duration(values: pd.Series) -> np.ndarray:
    """Elapsed-time strings → seconds (float64; NaN where a value does not parse).

    Accepts ``'HH:MM:SS[.fff]'`` with any number of hours (Neware ``'123:04:05'``), Maccor's
    ``'1d 10:28:12.78'`` and the .NET TimeSpan ``'1.02:03:04'`` / ``'1.00:00:33.300'``
    (days.hours:minutes:seconds); the seconds may carry a decimal comma (``'0:00:10,500'``).
    Vectorised (``Series.str.extract``).
    """
    parts = values.astype("string").str.extract(_DURATION)
    parts["s"] = parts["s"].str.replace(",", ".", regex=False)  # a decimal comma (Digatron)
    num = parts.apply(pd.to_numeric, errors="coerce")
    days = num["d"].fillna(num["dn"]).fillna(0.0)
    out = days * 86400.0 + num["h"] * 3600.0 + num["m"] * 60.0 + num["s"]
    return out.to_numpy(dtype=np.float64, na_value=np.nan)
