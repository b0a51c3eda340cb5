"""A per-cycle table as named 1-D arrays: raw values as given, float64 parses made once.

``complete_cycle_table`` reads a user's DataFrame into a :class:`CycleColumns` once, then
validates, sorts and derives descriptors with numpy over these arrays — no per-column pandas
operations and no DataFrame copies on the per-request path.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


def _is_plain_number(raw: Any) -> bool:
    return isinstance(raw, np.ndarray) and raw.dtype.kind in "biuf"


class CycleColumns:
    """Named columns of one per-cycle table (rows share one order).

    Attributes
    ----------
    n_rows : number of rows.
    position : int [n_rows] — each row's 0-based position in the table the user gave (error
        messages show ``position + 2``, the line of a CSV with a header).
    """

    __slots__ = ("_raw", "_num", "n_rows", "position")

    def __init__(self, raw: dict[str, Any], n_rows: int,
                 position: np.ndarray | None = None) -> None:
        self._raw = raw
        self._num: dict[str, np.ndarray] = {}
        self.n_rows = int(n_rows)
        self.position = np.arange(self.n_rows) if position is None else position

    @classmethod
    def from_frame(cls, df: pd.DataFrame, keep: Iterable[str] | None = None) -> "CycleColumns":
        """The columns of ``df`` (only names in ``keep`` when given), without copying numeric
        numpy columns."""
        wanted = None if keep is None else set(keep)
        raw: dict[str, Any] = {}
        for name, series in df.items():
            if wanted is not None and name not in wanted:
                continue
            values = series.array
            raw[name] = (series.to_numpy() if isinstance(values, pd.arrays.NumpyExtensionArray)
                         else values)
        return cls(raw, len(df))

    def __len__(self) -> int:
        return self.n_rows

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names, in input order."""
        return tuple(self._raw)

    def raw(self, name: str) -> Any:
        """Values of ``name`` as given (numpy array or pandas extension array)."""
        return self._raw[name]

    def value(self, name: str, i: int) -> Any:
        """The value of ``name`` at row ``i`` as given (for error messages)."""
        return self._raw[name][i]

    def num(self, name: str) -> np.ndarray:
        """Column ``name`` as float64 (NaN where absent, null or not a number); cached."""
        got = self._num.get(name)
        if got is not None:
            return got
        raw = self._raw.get(name)
        if raw is None:
            got = np.full(self.n_rows, np.nan)
        elif _is_plain_number(raw):
            got = raw.astype(np.float64)
        else:
            got = pd.to_numeric(pd.Series(raw, copy=False), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
        self._num[name] = got
        return got

    def has_values(self, name: str) -> bool:
        """Whether ``name`` exists and holds at least one non-null value (text counts)."""
        raw = self._raw.get(name)
        if raw is None:
            return False
        if _is_plain_number(raw):
            return bool(raw.dtype.kind != "f" or not np.isnan(raw).all())
        return bool(pd.notna(np.asarray(raw, dtype=object)).any())

    def set(self, name: str, values: np.ndarray) -> None:
        """Replace (or add) column ``name`` with float or int ``values``."""
        self._raw[name] = values
        self._num.pop(name, None)

    def drop(self, name: str) -> None:
        """Remove column ``name`` if present."""
        self._raw.pop(name, None)
        self._num.pop(name, None)

    def rows(self, sel: slice | np.ndarray) -> "CycleColumns":
        """The rows ``sel`` (a slice or integer indices) of every column, parses included."""
        out = CycleColumns({k: v[sel] for k, v in self._raw.items()},
                           len(self.position[sel]), self.position[sel])
        out._num = {k: v[sel] for k, v in self._num.items()}
        return out
