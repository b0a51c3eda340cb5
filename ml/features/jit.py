"""numba compilation on first use: kernels are plain Python functions in their modules, compiled
(and cached on disk) only when first called, so importing ``ml.features`` never loads numba.

Kernels are compiled without fast-math (no reassociation, no fused multiply-add), so each one
performs the same IEEE operations in the same order as the numpy formulation it replaces —
``tests/test_features_equivalence.py`` checks the tables are bit-identical.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LazyKernel:
    """``LazyKernel(py_func)(*args)`` runs ``numba.njit(py_func)`` (compiled once)."""

    __slots__ = ("py_func", "_compiled")

    def __init__(self, py_func: Callable[..., Any]) -> None:
        self.py_func = py_func
        self._compiled: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        if self._compiled is None:
            from numba import njit

            self._compiled = njit(cache=True, nogil=True, error_model="numpy")(self.py_func)
        return self._compiled(*args)


def kernel(py_func: Callable[..., Any]) -> LazyKernel:
    """Decorator: compile ``py_func`` with numba on its first call."""
    return LazyKernel(py_func)
