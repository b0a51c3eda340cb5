"""Per-sample conventions of a generic table that its header words alone cannot settle: an
unsigned current beside a step-state column, and units a bare header (``Current``) leaves to the
default. ``values(header)`` gives a column's numbers on the file's first rows.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning
from data_registry.readers.headers import norm
from data_registry.readers.source import Mapped


#: quantities whose unit a bare alias header (``Current``, ``Time``) leaves to the default
_ASSUMED = {"test_time_second": "s", "current_ampere": "A", "voltage_volt": "V"}


def assumed_units(file: str, values: Callable[[str], np.ndarray], columns: list[Mapped],
                  from_units_row: dict[str, str], warns: list[IngestWarning]) -> None:
    """Warn ``units_assumed`` when alias headers without a unit (``Time``, ``Current``) are
    read in the canonical unit (s, A, V), with the head's largest |value| so a file in mA or
    hours shows itself (``Current`` up to 500 is more likely mA)."""
    from data_registry.units import split_header

    bare = [m for m in columns if m.target in _ASSUMED and not m.text and m.factor == 1.0
            and norm(m.source) != m.target and m.source not in from_units_row
            and split_header(m.source)[1] is None]
    if not bare:
        return
    parts = []
    for m in bare:
        v = np.abs(values(m.source))
        v = v[np.isfinite(v)]
        if v.size:  # a clock written as durations (12:03:04) carries its own unit
            parts.append(f"'{m.source}' in {_ASSUMED[m.target]} (first rows up to "
                         f"{v.max():.4g})")
    if not parts:
        return
    warns.append(IngestWarning(
        "units_assumed", "headers name no unit, so the canonical units are assumed: "
        + ", ".join(parts) + "; if that is wrong, name the unit in the header, e.g. "
        "'Current (mA)', 'Time (h)'", file, 1, bare[0].source, len(bare)))


#: headers (normalised) of a step-state column: Neware ``Step Type``, Maccor ``MD``/``State``,
#: BaSyTec ``Command``, Digatron ``Zustand`` …
STATE_HEADERS = frozenset({"state", "status", "step_type", "steptype", "step_status", "md",
                           "zustand", "command", "step_name", "type"})


def state_signed_current(file: str, names: tuple[str, ...], values: Callable[[str], np.ndarray],
                         head_states: Callable[[str], list[str]], columns: list[Mapped], post,
                         warns: list[IngestWarning]) -> tuple[list[Mapped], object]:
    """An UNSIGNED current (never negative on the head's rows) beside a step-state column is
    signed by the state's words (:func:`~data_registry.readers.conventions.state_words_sense`:
    discharge → −|I|); warning ``current_signed_from_state``. Else unchanged."""
    from data_registry.readers.conventions import signed_current, state_words_sense

    current = next((m for m in columns if m.target == "current_ampere"), None)
    taken = {m.source for m in columns}
    state = next((n for n in names if n not in taken and n
                  and norm(n) in STATE_HEADERS), None)
    if current is None or state is None:
        return columns, post
    head_current = values(current.source)
    head_current = head_current[np.isfinite(head_current)]
    if not head_current.size or (head_current < 0).any():
        return columns, post
    if not state_words_sense(pd.Series(head_states(state))).any():
        return columns, post  # the column holds no state words (e.g. a cell type)
    warns.append(IngestWarning(
        "current_signed_from_state", f"current '{current.source}' is never negative on the "
        f"first rows: it is signed by the step state '{state}' (discharge words → negative, "
        "charge words → positive, others as written)", file, 1, current.source))

    def sign(frame: pd.DataFrame, raw, sink: list) -> pd.DataFrame:
        if post is not None:
            frame = post(frame, raw, sink)
        frame["current_ampere"] = signed_current(frame["current_ampere"].to_numpy(),
                                                 state_words_sense(raw[state]))
        return frame
    return [*columns, Mapped(state, "_state", 1.0, True)], sign
