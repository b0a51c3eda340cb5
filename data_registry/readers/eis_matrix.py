"""EIS matrix: one spectrum per line, Re(Z) at F frequencies then ±Im(Z) at the same F.

The layout of lab scripts and data re-shares (Zhang et al. 2020 ``EIS_data_<cell>.txt``, 60
frequencies; the A1–A8 set, 33): a headerless text file of numbers, every line ``2F`` values
(``F`` ≥ 5, the same on every line), the first ``F`` the real parts, the last ``F`` the
imaginary parts at the same frequencies, in the same order. The frequencies are not in the file:

* ``frequencies`` (reader option, CLI ``--frequencies FILE``): a side file giving them in
  column order (one per line with or without a header such as ``frequency_hz``; an
  ``index,frequency_hz`` table; or one line of ``F`` numbers; ``kHz`` in a header is read);
* else a file named ``frequencies*.csv`` or ``*freq*`` beside the matrix, then in its parent
  folder (the one whose count is ``F``; warning ``eis_frequencies_found`` names it);
* else the file is refused (``frequencies_missing``), as is a count other than ``F``
  (``frequency_count_mismatch``, both numbers named). Real parts that RISE with frequency
  (a cell's fall) are warned: ``eis_frequency_order_suspect`` (frequencies listed in the
  reverse order of the columns?).

The side file is a companion: the store keeps it with the matrix.

Sign: ``z_imag_ohm`` is Im(Z) as measured (negative for capacitive/diffusive behaviour). The
imaginary half is decided ONCE, on the head's rows: mostly positive ⇒ the file stores −Im(Z)
and it is negated here (warning ``eis_imaginary_sign_flipped``), else it is kept (warning
``eis_sign_inferred``); ``eis_sign`` ``"im"`` / ``"minus_im"`` states it instead.

Rows: ``measurement_id`` = ``"row <n>"``, n = the 1-based line of the spectrum (a blank line
counts: it stands for a missing measurement, so later rows keep their numbers); ``source_row``
= the same line. ``cycle_count`` is unknown (warning ``eis_cycle_count_unknown``) unless
``eis_every_cycles`` K says a spectrum was taken every K cycles: line n ↔ cycle K·n (the first
spectrum after the first K cycles). Zhang 2020 measured every 2 cycles but its notes disagree on
the offset (line n ↔ cycle 2n − 1 or 2n); K = 2 gives 2n, one cycle from the other reading.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.numeric_lines import (NumberLayout, fields, first_bad, guess_layout,
                                                 head_rows, line_problem, number_chunks,
                                                 parse_fields)
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source

READER_VERSION = "1"
FORMAT_NAME = "eis_matrix_txt"
#: fewest values per line (5 frequencies): fewer is another layout (eis_text: 3–8 columns)
MIN_COLUMNS = 10
#: head lines the layout and the sign are decided on
HEAD_ROWS = 200
#: largest side file read as a frequency list while searching (bytes)
MAX_FREQUENCY_FILE = 1 << 20
#: the flags a user of the CLI passes (named in errors)
FREQUENCY_FLAG = "--frequencies FILE"
EVERY_FLAG = "--eis-every-cycles K"


def matrix_layout(head: Head) -> tuple[NumberLayout, np.ndarray, list[int]] | None:
    """(number layout, head rows [n, 2F], their lines) of a headerless EIS matrix, or None.

    The layout: the leading head lines all numbers, finite, the same even count ≥
    :data:`MIN_COLUMNS` on every line; the real half positive and not constant on each line
    (a matrix of anything else — policies, ΔQ(V) curves with NaN or negative values — is not
    a spectrum); no line monotone through all its values (a list of frequencies)."""
    if not head.is_text or not head.lines:
        return None
    first = next((ln for ln in head.lines if ln.strip()), "")
    layout = guess_layout(first)
    got = head_rows(head, layout, HEAD_ROWS)
    if got is None:
        return None
    rows, lines = got
    width = rows[0].size
    if width < MIN_COLUMNS or width % 2:
        return None
    block = np.vstack(rows)
    if not np.isfinite(block).all():
        return None
    real = block[:, : width // 2]
    if not (real > 0).all() or not (np.ptp(real, axis=1) > 0).all():
        return None
    step = np.sign(np.diff(block, axis=1))
    if ((step > 0).all(axis=1) | (step < 0).all(axis=1)).any():
        return None  # a row monotone through both halves is a frequency list, not a spectrum
    return layout, block, lines


def is_eis_matrix(head: Head) -> bool:
    """True for a headerless matrix of spectra, Re(Z) then ±Im(Z) (see module doc)."""
    return matrix_layout(head) is not None


# --- the frequencies -------------------------------------------------------------------------

def read_frequencies(path: Path) -> np.ndarray:
    """The frequencies (Hz) a side file gives, in file order.

    Accepted: one number per line (an optional header line), a table with a header naming the
    frequency column (``frequency_hz``, ``freq``, ``f``, ``Frequency (kHz)`` …) or, headerless,
    one positive column besides a row index, or one line of numbers. Raises
    :class:`InputFormatError` (``bad_frequencies``) naming the file, line and what was found.
    """
    from data_registry.readers.headers import norm
    from data_registry.units import split_header, unit_factor

    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    name = Path(path).name

    def bad(msg: str, row: int | None, found: str, column: str | None = None) -> InputFormatError:
        return InputFormatError(msg, code="bad_frequencies", file=name, row=row, column=column,
                                expected="frequencies in Hz: one per line (optional header "
                                "such as 'frequency_hz'), an 'index,frequency_hz' table, or "
                                "one line of numbers", found=found)

    if not lines:
        raise bad("the frequency file is empty", None, "no line of text")
    layout = guess_layout(lines[-1][1])
    header = fields(lines[0][1], layout)
    names: list[str] | None = None
    if parse_fields(header) is None:
        names, lines = header, lines[1:]
    rows = []
    for n, line in lines:
        parts = fields(line, layout)
        v = parse_fields(parts)
        if v is None:
            k = first_bad(parts)
            raise bad("not a number in the frequency file", n, repr(parts[k]),
                      names[k] if names and k < len(names) else f"column {k + 1}")
        rows.append(v)
    if not rows:
        raise bad("no frequencies under the header", None, f"header {header[:4]}")
    widths = {r.size for r in rows}
    if len(rows) == 1 and names is None:
        values, column = rows[0], None  # one line of F numbers
    elif len(widths) != 1:
        raise bad("lines of the frequency file differ in length", lines[0][0],
                  f"{sorted(widths)} values per line")
    else:
        block = np.vstack(rows)
        column = _frequency_column(block, names)
        if column is None:
            raise bad("cannot tell which column holds the frequencies", lines[0][0],
                      f"header {names[:6]}" if names else f"{block.shape[1]} unnamed columns")
        values = block[:, column]
    factor = 1.0
    if names is not None and column is not None and column < len(names):
        unit = split_header(names[column])[1]
        if unit is None and "_" in norm(names[column]):
            unit = norm(names[column]).rpartition("_")[2]
        if unit is not None and unit_factor("frequency", unit) is not None:
            factor = float(unit_factor("frequency", unit))
    values = values * factor
    if not (np.isfinite(values).all() and (values > 0).all()):
        k = int(np.argmax(~(np.isfinite(values) & (values > 0))))
        raise bad("frequencies must be positive", lines[k][0] if len(rows) > 1 else None,
                  f"{values[k]:g}")
    return values


def _frequency_column(block: np.ndarray, names: list[str] | None) -> int | None:
    """The frequency column of a table: the one named so, else the only positive column
    that is not a row index (0, 1, 2 … or 1, 2, 3 …)."""
    from data_registry.readers.headers import norm

    if block.shape[1] == 1:
        return 0
    if names is not None and len(names) == block.shape[1]:
        named = [k for k, h in enumerate(names)
                 if norm(h.split("(")[0].split("[")[0].split("/")[0]).startswith(("freq", "f_"))
                 or norm(h.split("(")[0].split("[")[0].split("/")[0]) == "f"]
        if len(named) == 1:
            return named[0]
    n = block.shape[0]
    index = {k for k in range(block.shape[1])
             if np.array_equal(block[:, k], np.arange(n)) or
             np.array_equal(block[:, k], np.arange(1, n + 1))}
    cands = [k for k in range(block.shape[1]) if k not in index and (block[:, k] > 0).all()]
    return cands[0] if len(cands) == 1 else None


def _is_frequency_name(name: str) -> bool:
    low = name.lower()
    return (low.startswith("frequencies") and low.endswith(".csv")) or "freq" in low


def find_frequencies(path: Path, count: int) -> tuple[Path, np.ndarray, str]:
    """The side file of ``count`` frequencies beside ``path``, else in its parent folder:
    ``(file, frequencies, where)``. Refuses (``frequencies_missing``,
    ``frequency_count_mismatch``, ``ambiguous_frequencies``) with the files looked at."""
    path = Path(path)
    folders = [path.parent]
    if path.parent.parent != path.parent:
        folders.append(path.parent.parent)
    seen: list[tuple[Path, int | None]] = []  # (file, count or None when unreadable)
    for depth, folder in enumerate(folders):
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        good = []
        for p in entries:
            if p == path or not _is_frequency_name(p.name) or not p.is_file():
                continue
            if p.stat().st_size > MAX_FREQUENCY_FILE:
                continue
            try:
                f = read_frequencies(p)
            except (InputFormatError, OSError):
                seen.append((p, None))
                continue
            seen.append((p, f.size))
            if f.size == count:
                good.append((p, f))
        if len(good) == 1:
            where = "beside the file" if depth == 0 else "in the parent folder"
            return good[0][0], good[0][1], where
        if len(good) > 1:
            raise InputFormatError(
                f"several frequency files with {count} values beside the EIS matrix; name the "
                f"one to use with {FREQUENCY_FLAG}", code="ambiguous_frequencies",
                file=path.name, column="frequency_hz", expected=f"one file of {count} "
                "frequencies", found=", ".join(str(p) for p, _ in good))
    counted = [(p, n) for p, n in seen if n is not None]
    if counted:
        p, n = counted[0]
        raise InputFormatError(
            f"the frequency file found ({p}) gives {n} frequencies, but each row holds "
            f"{2 * count} values = Re(Z) and Im(Z) at {count} frequencies; pass the right "
            f"file with {FREQUENCY_FLAG}", code="frequency_count_mismatch", file=path.name,
            column="frequency_hz", expected=f"{count} frequencies (half of {2 * count} "
            "columns)", found=f"{n} in {p.name}")
    looked = " and ".join(str(f) for f in folders)
    unreadable = [str(p) for p, n in seen if n is None]
    raise InputFormatError(
        f"an EIS matrix (each row {2 * count} values: Re(Z) then Im(Z) at {count} frequencies) "
        f"needs its {count} frequencies: pass {FREQUENCY_FLAG} (one frequency in Hz per line, "
        "in column order; API reader option 'frequencies')", code="frequencies_missing",
        file=path.name, column="frequency_hz",
        expected=f"{FREQUENCY_FLAG}, or a frequencies*.csv / *freq* file of {count} values "
                 "beside the file or in its parent folder",
        found=f"no frequency file in {looked}" + (
            f" (unreadable as a frequency list: {', '.join(unreadable[:3])})"
            if unreadable else ""))


def _given_frequencies(path: Path, given: str | Path, count: int) -> np.ndarray:
    p = Path(given)
    if not p.is_file():
        raise InputFormatError(
            "frequency file not found", code="file_not_found", file=path.name,
            column="frequencies", expected=f"{FREQUENCY_FLAG}: a readable file of {count} "
            "frequencies", found=f"{str(given)!r} ({'a folder' if p.exists() else 'nothing'})")
    f = read_frequencies(p)
    if f.size != count:
        raise InputFormatError(
            f"the frequency file gives {f.size} frequencies, but each row holds {2 * count} "
            f"values = Re(Z) and Im(Z) at {count} frequencies", code="frequency_count_mismatch",
            file=path.name, column="frequency_hz",
            expected=f"{count} frequencies (half of {2 * count} columns)",
            found=f"{f.size} in {p.name}")
    return f


# --- the reader ------------------------------------------------------------------------------

def open_eis_matrix(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                    frequencies: str | Path | None = None, eis_every_cycles: int | None = None,
                    eis_sign: str | None = None, **_: object) -> Source:
    """Open an EIS matrix (see module doc). ``frequencies``: the side file (default: searched);
    ``eis_every_cycles``: K, line n ↔ cycle K·n; ``eis_sign``: ``"auto"`` (default),
    ``"im"`` or ``"minus_im"``."""
    found = matrix_layout(head)
    if found is None:
        raise InputFormatError(
            "not an EIS matrix", code="not_eis_matrix", file=head.name,
            expected=f"headerless lines of the same even number (≥ {MIN_COLUMNS}) of numbers: "
                     "Re(Z) > 0 at F frequencies, then Im(Z) or −Im(Z) at the same F",
            found=f"first line {head.lines[0][:80]!r}" if head.lines else "no line of text")
    layout, block, lines = found
    width = block.shape[1]
    count = width // 2
    warns: list[IngestWarning] = []
    if frequencies is not None:
        freq_path = Path(frequencies)
        freq = _given_frequencies(head.path, freq_path, count)
        where = "given"
    else:
        freq_path, freq, where = find_frequencies(head.path, count)
        warns.append(IngestWarning(
            "eis_frequencies_found", f"the {count} frequencies ({freq.max():g} … {freq.min():g} "
            f"Hz) are taken from {freq_path} ({where}); pass {FREQUENCY_FLAG} to choose "
            "another", head.name, None, "frequency_hz", 1,
            {"frequencies_file": str(freq_path), "count": count, "where": where}))
    order = _order_check(head.name, block[:, :count], freq)
    if order is not None:
        warns.append(order)
    imag = block[:, count:]
    positive = float(np.mean(imag > 0))
    sign = eis_sign or "auto"
    if sign == "auto":
        negate = positive > 0.5
        if negate:
            warns.append(IngestWarning(
                "eis_imaginary_sign_flipped", f"{positive:.0%} of the imaginary half (columns "
                f"{count + 1}–{width}) of the first {len(lines)} rows is positive: the file "
                "stores −Im(Z); negated to Im(Z) (pass --eis-sign im if it really holds Im(Z))",
                head.name, lines[0], "z_imag_ohm", 1,
                {"convention": "minus_im", "positive_fraction": positive}))
        else:
            warns.append(IngestWarning(
                "eis_sign_inferred", f"{1 - positive:.0%} of the imaginary half (columns "
                f"{count + 1}–{width}) of the first {len(lines)} rows is negative or zero: the "
                "file stores Im(Z) as measured; kept (pass --eis-sign minus_im if it holds "
                "−Im(Z))", head.name, lines[0], "z_imag_ohm", 1,
                {"convention": "im", "positive_fraction": positive}))
    else:
        negate = sign == "minus_im"
    every = None if eis_every_cycles is None else int(eis_every_cycles)
    if every is None:
        warns.append(IngestWarning(
            "eis_cycle_count_unknown", "the rows carry no cycle number: cycle_count left "
            f"unknown; pass {EVERY_FLAG} if a spectrum was taken every K cycles (row n ↔ "
            "cycle K·n)", head.name, None, "cycle_count", 1))
    elif every < 1:
        raise InputFormatError("eis_every_cycles must be a positive whole number",
                               code="invalid_reader_option", file=head.name,
                               column="eis_every_cycles", expected=f"{EVERY_FLAG} with K ≥ 1",
                               found=repr(eis_every_cycles))
    meta = {"eis_frequencies_file": freq_path.name, "eis_frequencies_source": where,
            "eis_frequency_count": count,
            "eis_frequency_range_hz": f"{freq.max():g}–{freq.min():g}",
            "eis_sign": ("minus_im" if negate else "im") + (" (inferred)" if sign == "auto"
                                                            else " (stated)"),
            "eis_delimiter": layout.describe(),
            "eis_row_cycle": f"row n = cycle {every}·n" if every else "unknown"}
    names = [_column_name(k, count, freq) for k in range(width)]
    holder: list[Source] = []

    def produce(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        lenient = bool(holder) and holder[0].on_error == "skip-row"
        per_chunk = max(1, chunk_rows // count)
        for good_lines, good, skipped in number_chunks(
                head, layout, lambda n, parts: _line_problem(head.name, n, parts, width, names),
                rows=per_chunk, lenient=lenient, max_line_bytes=max_line_bytes):
            yield _frame(good_lines, good, skipped, freq, count, negate, every)

    source = Source(path=head.path, format_name=FORMAT_NAME, reader_version=READER_VERSION,
                    kind="eis", metadata=meta, warnings=warns, produce=produce,
                    companions=[] if freq_path.resolve() == head.path.resolve()
                    else [freq_path])
    source.eis_sign = "im"  # converted here: the validator must not flip it again
    source.eis_sign_decided = True
    holder.append(source)
    return source


def _order_check(file: str, real: np.ndarray, freq: np.ndarray) -> IngestWarning | None:
    """Warning ``eis_frequency_order_suspect`` when the real parts RISE with frequency: a
    cell's Re(Z) falls as frequency rises (a passive RC network's real part never increases
    with ω), so frequencies listed in the reverse order of the columns show up here."""
    mean = real.mean(axis=0)
    if np.ptp(mean) <= 0 or np.ptp(np.log(freq)) <= 0:
        return None
    r = float(np.corrcoef(np.log(freq), mean)[0, 1])
    if not r > 0.5:
        return None
    return IngestWarning(
        "eis_frequency_order_suspect", f"the real parts rise with frequency (correlation of "
        f"Re(Z) with log f = {r:.2f}); a cell's Re(Z) falls as frequency rises: are the "
        f"frequencies ({freq[0]:g} … {freq[-1]:g} Hz) in the order of the columns?", file,
        None, "frequency_hz", 1, {"correlation": r})


def _column_name(k: int, count: int, freq: np.ndarray) -> str:
    """How an error names column ``k`` (0-based): ``column 63 (−Im(Z) or Im(Z) at 20004 Hz)``."""
    part = "Re(Z)" if k < count else "imaginary part"
    return f"column {k + 1} ({part} at {freq[k % count]:g} Hz)"


def _line_problem(file: str, line: int, parts: list[str], width: int, names: list[str]
                  ) -> tuple[InputFormatError, str] | None:
    """:func:`numeric_lines.line_problem` of one spectrum line."""
    return line_problem(file, line, parts, width, names,
                        f"Re(Z) and Im(Z) at {width // 2} frequencies")


def _frame(lines: list[int], rows: list[np.ndarray], skipped: list[tuple[int, str]],
           freq: np.ndarray, count: int, negate: bool, every: int | None) -> pd.DataFrame:
    """Long canonical EIS rows of a batch of lines (+ one placeholder row per skipped line,
    NaN values and the reason in ``_not_numeric``, for the validator's ``row_skipped``)."""
    m = np.vstack(rows) if rows else np.empty((0, 2 * count))
    at = np.repeat(np.asarray(lines, dtype=np.int64), count)
    out = {"source_row": at,
           "measurement_id": pd.array([f"row {n}" for n in at], dtype="string"),
           "frequency_hz": np.tile(freq, len(rows)),
           "z_real_ohm": m[:, :count].ravel(),
           "z_imag_ohm": (-m[:, count:] if negate else m[:, count:]).ravel()}
    if every is not None:
        out["cycle_count"] = at * every
    frame = pd.DataFrame(out)
    if skipped:
        bad_at = np.asarray([n for n, _ in skipped], dtype=np.int64)
        holes = {"source_row": bad_at,
                 "measurement_id": pd.array([f"row {n}" for n in bad_at], dtype="string"),
                 "frequency_hz": np.full(len(skipped), np.nan),
                 "z_real_ohm": np.full(len(skipped), np.nan),
                 "z_imag_ohm": np.full(len(skipped), np.nan),
                 "_not_numeric": np.asarray([why for _, why in skipped], dtype=object)}
        if every is not None:
            holes["cycle_count"] = bad_at * every
        frame["_not_numeric"] = np.full(len(frame), None, dtype=object)
        frame = pd.concat([frame, pd.DataFrame(holes)], ignore_index=True)
        frame = frame.sort_values("source_row", kind="stable", ignore_index=True)
    return frame
