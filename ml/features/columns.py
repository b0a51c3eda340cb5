"""Reading named numeric columns of per-cycle tables (missing column → all-NaN)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ml.features.cycle_arrays import CycleColumns


def numeric_column(df: pd.DataFrame | CycleColumns | Mapping[str, Any], name: str
                   ) -> np.ndarray:
    """Column ``name`` as float64 (NaN where absent, null or not a number) of a per-cycle
    DataFrame, :class:`CycleColumns` or mapping of column name → 1-D array."""
    if isinstance(df, CycleColumns):
        return df.num(name)
    if isinstance(df, pd.DataFrame):
        if name not in df.columns:
            return np.full(len(df), np.nan)
        return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64,
                                                                 na_value=np.nan)
    if name not in df:
        return np.full(len(next(iter(df.values()))) if len(df) else 0, np.nan)
    col = df[name]
    if isinstance(col, np.ndarray) and col.dtype.kind in "biuf":
        return col.astype(np.float64, copy=False)  # plain numbers: no parse
    return pd.to_numeric(pd.Series(col, copy=False), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)


def has_values(df: pd.DataFrame | CycleColumns, name: str) -> bool:
    """Whether column ``name`` exists and holds at least one non-null value."""
    if isinstance(df, CycleColumns):
        return df.has_values(name)
    return name in df.columns and bool(df[name].notna().any())
