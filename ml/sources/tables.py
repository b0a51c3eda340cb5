"""Reading a source's CSV files in place, with errors that name file, row and column."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from data_registry.errors import InputFormatError, ValidationError


def read_table(path: Path, required: Iterable[str], **kw) -> pd.DataFrame:
    """Read a CSV (BOM tolerated) and check that the ``required`` columns exist.

    Raises
    ------
    InputFormatError
        The file is missing, unreadable or lacks a required column.
    """
    if not path.is_file():
        raise InputFormatError("file not found", code="missing_file", file=str(path),
                               expected="an existing file", found="nothing")
    try:
        kw.setdefault("keep_default_na", False)
        kw.setdefault("na_values", ["", "NaN", "nan"])
        df = pd.read_csv(path, encoding="utf-8-sig", **kw)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputFormatError(f"cannot parse as CSV: {exc}", code="unparseable_file",
                               file=str(path)) from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputFormatError(f"missing column(s) {missing}", code="missing_column",
                               file=str(path), row=1, column=missing[0],
                               expected=f"columns {list(required)}",
                               found=str(list(df.columns)))
    return df


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def numeric_column(df: pd.DataFrame, column: str, path: Path, *, lo: float | None = None,
                   hi: float | None = None, allow_nan: bool = False,
                   header_rows: int = 1) -> np.ndarray:
    """``df[column]`` as float64, checked to lie in [lo, hi]; the first bad cell is reported.

    ``header_rows`` converts a 0-based frame position to the 1-based file line in errors.
    """
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64")
    bad = np.isnan(values) & (raw.notna().to_numpy() if allow_nan else True)
    if lo is not None:
        bad |= values < lo
    if hi is not None:
        bad |= values > hi
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if lo is not None and hi is not None:
            rng = f" in [{lo:g}, {hi:g}]"
        elif lo is not None:
            rng = f" >= {lo:g}"
        else:
            rng = f" <= {hi:g}" if hi is not None else ""
        raise ValidationError(f"{int(bad.sum())} bad value(s)",
                              code="bad_value", file=str(path), row=i + 1 + header_rows,
                              column=column, expected=f"a float{rng}",
                              found=_shown(raw.iloc[i]))
    return values


def check_increasing(values: np.ndarray, column: str, path: Path, *, strict: bool = True,
                     header_rows: int = 1) -> None:
    """Raise :class:`ValidationError` at the first row where ``values`` stops increasing."""
    d = np.diff(values)
    bad = d <= 0 if strict else d < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0]) + 1
        raise ValidationError(f"column '{column}' must increase", code="not_increasing",
                              file=str(path), row=i + 1 + header_rows, column=column,
                              expected=f"> {values[i - 1]}", found=str(values[i]))
