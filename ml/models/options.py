"""Closed option sets of the forecasting model, validated up front with did-you-mean errors."""
from __future__ import annotations

import difflib
from typing import Iterable

from data_registry.errors import FadecastError

__all__ = ["check_option"]


def check_option(kind: str, value: str, options: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``options``, else raise with the nearest matches.

    Raises
    ------
    FadecastError
        ``Option 'powr' for time_term not recognised. Best matches are ['power']``.
    """
    options = list(options)
    if value in options:
        return value
    near = difflib.get_close_matches(str(value), options, n=3, cutoff=0.3)
    hint = f" Best matches are {near}." if near else ""
    raise FadecastError(f"Option '{value}' for {kind} not recognised.{hint}",
                        code="unknown_option", column=kind, expected=f"one of {options}",
                        found=repr(value))
