"""EIS spectra from anywhere: headerless text exports, columns told apart by CONTENT.

Many potentiostat and lab-script exports write EIS as bare numbers, e.g. ``|Z|  f  Z′  −Z″
cycle`` (tab, space, comma or semicolon separated, no header). The columns are identified from
the first rows, never from their position:

* frequency: positive, spans more than one decade, monotone within a sweep;
* |Z|: the column equal to √(a² + b²) of two others (which are then Z′ and ±Z″);
* Z′: of that pair, the one that is positive throughout; the other is the imaginary part;
* cycle: whole numbers that never decrease (optional).

The imaginary part's sign is decided per file by the validator (``eis_sign``): a file holding
−Z″ (positive for capacitive/diffusive behaviour) is negated to the canonical Im(Z) with warning
``eis_imaginary_sign_flipped``. Spectra are split where the frequency sweep restarts or the
cycle changes: ``measurement_id`` = ``<file stem>#<n>`` (n = 1, 2, …).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from data_registry.errors import InputFormatError
from data_registry.readers.csv_stream import MAX_LINE_BYTES, CsvLayout
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, csv_source

READER_VERSION = "1"
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_SPLIT = re.compile(r"[\t,; ]+")


def _rows(head: Head, limit: int = 60) -> list[list[str]]:
    return [_SPLIT.split(line.strip()) for line in head.lines[:limit] if line.strip()]


def _delimiter(head: Head) -> str | None:
    line = head.lines[0] if head.lines else ""
    for d in ("\t", ",", ";"):
        if d in line:
            return d
    return " " if " " in line.strip() else None


def identify_columns(values: np.ndarray) -> dict[str, int] | None:
    """Column roles (``frequency``, ``z_real``, ``z_imag``, optional ``modulus``, ``cycle``)
    of a numeric block [rows, columns], or None when it does not look like EIS."""
    n, k = values.shape
    if n < 5 or not 3 <= k <= 8 or not np.isfinite(values).all():
        return None
    roles: dict[str, int] = {}
    for j in range(k):
        v = values[:, j]
        if (v > 0).all() and np.log10(v.max() / v.min()) > 1.0:
            d = np.sign(np.diff(v))
            main = np.sign(np.median(d)) if d.size else 0
            if main != 0 and (d == main).mean() >= 0.8:
                roles.setdefault("frequency", j)
    if "frequency" not in roles:
        return None
    rest = [j for j in range(k) if j != roles["frequency"]]
    for m in rest:
        others = [j for j in rest if j != m]
        for a in others:
            for b in others:
                if a < b and np.allclose(values[:, m], np.hypot(values[:, a], values[:, b]),
                                         rtol=1e-3, atol=1e-9):
                    roles["modulus"] = m
                    pair = (a, b)
                    break
            if "modulus" in roles:
                break
        if "modulus" in roles:
            break
    if "modulus" in roles:
        a, b = pair
    else:
        cand = [j for j in rest if not _whole_nondecreasing(values[:, j])]
        if len(cand) < 2:
            return None
        a, b = cand[:2]
    pos_a, pos_b = (values[:, a] > 0).all(), (values[:, b] > 0).all()
    if pos_a and not pos_b:
        roles["z_real"], roles["z_imag"] = a, b
    elif pos_b and not pos_a:
        roles["z_real"], roles["z_imag"] = b, a
    else:  # both positive (a −Z″ column): the real part is the one that varies less in log
        spread = [np.ptp(np.log(np.abs(values[:, j]) + 1e-300)) for j in (a, b)]
        roles["z_real"], roles["z_imag"] = (a, b) if spread[0] <= spread[1] else (b, a)
    used = set(roles.values())
    for j in range(k):
        if j not in used and _whole_nondecreasing(values[:, j]):
            roles["cycle"] = j
            break
    return roles


def _whole_nondecreasing(v: np.ndarray) -> bool:
    return bool((v == np.round(v)).all() and (np.diff(v) >= 0).all() and (v >= 0).all())


def _block(head: Head) -> np.ndarray | None:
    rows = _rows(head)
    if len(rows) < 5 or len({len(r) for r in rows}) != 1:
        return None
    if not all(_NUMBER.match(f) for r in rows for f in r):
        return None
    return np.array([[float(f) for f in r] for r in rows])


def is_headerless_eis(head: Head) -> bool:
    """True for a headerless numeric table whose columns read as an EIS spectrum."""
    if not head.is_text or not head.lines:
        return False
    block = _block(head)
    return block is not None and identify_columns(block) is not None


def open_headerless_eis(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                        **_: object) -> Source:
    """Open a headerless EIS text export (see module doc)."""
    block = _block(head)
    roles = identify_columns(block) if block is not None else None
    d = _delimiter(head)
    if roles is None or d is None:
        raise InputFormatError("not a headerless EIS table", code="not_eis", file=head.name,
                               expected="numeric columns f, Z′, Z″ (optional |Z|, cycle)",
                               found=f"first line {head.lines[0][:80]!r}" if head.lines else "")
    names = tuple(f"col{j + 1}" for j in range(block.shape[1]))
    layout = CsvLayout(names=names, data_line=1, delimiter=d, encoding=head.encoding,
                       gzip=head.gzip)
    target = {"frequency": "frequency_hz", "z_real": "z_real_ohm", "z_imag": "z_imag_ohm",
              "cycle": "cycle_count"}
    columns = [Mapped(names[j], target[r], 1.0) for r, j in roles.items() if r in target]
    columns.append(Mapped(names[roles["frequency"]], "measurement_id", 0.0))
    meta = {"eis_columns": ", ".join(f"{r}=column {j + 1}" for r, j in roles.items())}
    return csv_source(head, format_name="eis_text", reader_version=READER_VERSION, kind="eis",
                      layout=layout, columns=columns, chunk_rows=chunk_rows, metadata=meta,
                      post=sweep_splitter(head.stem), max_line_bytes=max_line_bytes)


def sweep_splitter(stem: str):
    """A post-step giving ``measurement_id`` = ``<stem>#<n>``: a new spectrum starts where the
    frequency sweep restarts (turns back against its direction) or the cycle changes."""
    state = {"n": 0, "last_f": None, "dir": 0.0, "last_c": None}

    def post(frame: pd.DataFrame, raw, sink: list) -> pd.DataFrame:
        f = frame["frequency_hz"].to_numpy(dtype=np.float64)
        c = (frame["cycle_count"].to_numpy(dtype=np.float64) if "cycle_count" in frame
             else np.zeros(len(f)))
        ids = np.empty(len(f), dtype=np.int64)
        n, last_f, direction, last_c = state["n"], state["last_f"], state["dir"], state["last_c"]
        for i in range(len(f)):  # a short loop per row: spectra are small files
            new = last_f is None or (last_c is not None and c[i] != last_c)
            if not new and last_f is not None:
                step = np.sign(f[i] - last_f)
                if direction == 0.0:
                    direction = step
                elif step != 0 and step != direction:
                    new = True
            if new:
                n += 1
                direction = 0.0
            ids[i] = n
            last_f, last_c = f[i], c[i]
        state.update(n=n, last_f=last_f, dir=direction, last_c=last_c)
        frame["measurement_id"] = pd.array([f"{stem}#{k}" for k in ids], dtype="string")
        return frame
    return post
