"""Vendor conventions turned canonical: current sign and capacity split from a step state.

Many cyclers write an unsigned current and ONE capacity/energy counter per step, plus a state
letter or word (Maccor ``C``/``D``/``R``, Neware ``CC Chg``/``CC DChg``/``Rest``). Canonical data
has a signed current (positive = charge) and separate charging/discharging counters.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

#: step-state words of a discharge / a charge, in any cycler's spelling (English, German)
_DISCHARGE_WORDS = re.compile(r"dchg|d[\s_-]chg|dis|entlad|^ela|^d$|^dch")
_CHARGE_WORDS = re.compile(r"chg|charge|^lad|^c$|^ch$")


def state_sense(states: pd.Series, charge: tuple[str, ...], discharge: tuple[str, ...]
                ) -> np.ndarray:
    """+1 for charge states, −1 for discharge states, 0 otherwise (prefix match, case-blind).

    Discharge prefixes are tested first so ``'DChg'`` is not read as a charge.
    """
    s = states.astype("string").str.strip().str.lower().fillna("")
    out = np.zeros(len(s), dtype=np.int8)
    for p in charge:
        out[s.str.startswith(p.lower()).to_numpy(dtype=bool)] = 1
    for p in discharge:
        out[s.str.startswith(p.lower()).to_numpy(dtype=bool)] = -1
    return out


def signed_current(current: np.ndarray, sense: np.ndarray) -> np.ndarray:
    """|I| with the sign of the state where the state is charge/discharge, else as written."""
    return np.where(sense != 0, np.abs(current) * sense, current)


def split_counter(counter: np.ndarray, sense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One unsigned counter → (charging, discharging) counters; NaN outside their state."""
    c = np.abs(counter)
    return np.where(sense > 0, c, np.nan), np.where(sense < 0, c, np.nan)


def state_words_sense(states: pd.Series) -> np.ndarray:
    """+1 / −1 / 0 for step states written as words in any cycler's spelling: ``CC Chg``,
    ``CCCV_Chg``, ``Charge``, ``C``, ``LAD`` → charge; ``CC DChg``, ``Discharge``, ``D``,
    ``ELA``, ``Entladen`` → discharge (tested first); ``Rest``, ``Pause``, ``OCV`` … → 0."""
    s = states.astype("string").str.strip().str.lower().fillna("")
    dis = s.str.contains(_DISCHARGE_WORDS).to_numpy(dtype=bool)
    chg = s.str.contains(_CHARGE_WORDS).to_numpy(dtype=bool)
    return np.where(dis, -1, np.where(chg, 1, 0)).astype(np.int8)
