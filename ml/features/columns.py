"""Reading named numeric columns of per-cycle tables (missing column → all-NaN)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def numeric_column(df: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as float64 (NaN where absent, null or not a number)."""
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
