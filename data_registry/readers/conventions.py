"""Vendor conventions turned canonical: current sign and capacity split from a step state.

Many cyclers write an unsigned current and ONE capacity/energy counter per step, plus a state
letter or word (Maccor ``C``/``D``/``R``, Neware ``CC Chg``/``CC DChg``/``Rest``). Canonical data
has a signed current (positive = charge) and separate charging/discharging counters.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

#: step-state words (whole tokens, lower case) of a discharge / a charge, in the spellings of
#: Neware (CC_DChg), Maccor (D / C), BaSyTec (Discharge), Digatron (ELA / LAD, DCH / CHA) …
_DISCHARGE = frozenset({"d", "dchg", "dischg", "discharge", "discharging", "dch", "dsg", "dsc",
                        "dis", "entladen", "entladung", "entl", "ela"})
_CHARGE = frozenset({"c", "chg", "charge", "charging", "chrg", "ch", "cha", "laden", "ladung",
                     "lad"})
#: compact forms: CCD / CVD / DCC (discharge), CCC / CCCV / CCC-V (charge)
_DISCHARGE_TOKEN = re.compile(r"(cc|cv|cp|cr)d|d(cc|cv|cp|cr)")
_CHARGE_TOKEN = re.compile(r"(cc|cv)c|c(cc|cv)|cccv")


def _sense_of(text: str) -> int:
    tokens = [t for t in re.split(r"[^a-z]+", text) if t]
    if any(t in _DISCHARGE or _DISCHARGE_TOKEN.fullmatch(t) for t in tokens):
        return -1
    if any(t in _CHARGE or _CHARGE_TOKEN.fullmatch(t) for t in tokens):
        return 1
    return 0


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
    """+1 / −1 / 0 for step states written as words in any cycler's spelling, matched as whole
    tokens: ``CC Chg``, ``CCCV_Chg``, ``Charge``, ``C``, ``LAD`` → charge; ``CC DChg``,
    ``Discharge``, ``CC_D``, ``CCD``, ``ELA``, ``Entl.`` → discharge (tested first); ``Rest``,
    ``Pause``, ``OCV``, and words that merely contain a state (``Display``, ``Exchg``) → 0."""
    s = states.astype("string").str.strip().str.lower().fillna("")
    words = {w: _sense_of(w) for w in pd.unique(s)}  # a few distinct states per file
    return s.map(words).to_numpy(dtype=np.int8)
