"""Reading named numeric columns of per-cycle tables (missing column → all-NaN)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reference.features_v1.cycle_arrays import CycleColumns


def numeric_column(df: pd.DataFrame | CycleColumns, name: str) -> np.ndarray:
    """Column ``name`` as float64 (NaN where absent, null or not a number)."""
    if isinstance(df, CycleColumns):
        return df.num(name)
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def has_values(df: pd.DataFrame | CycleColumns, name: str) -> bool:
    """Whether column ``name`` exists and holds at least one non-null value."""
    if isinstance(df, CycleColumns):
        return df.has_values(name)
    return name in df.columns and bool(df[name].notna().any())
