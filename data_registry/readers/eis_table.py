"""An impedance table under an instrument's preamble (CH Instruments ``A.C. Impedance`` text
exports and the like): free text lines (date, model, settings ``Key = value``), then a header
whose columns name a frequency, Z′ and Z″ (the generic EIS aliases: ``Freq/Hz, Z'/ohm,
Z"/ohm, Z/ohm, Phase/deg``), then delimited rows.

A table whose header is the FIRST line is the generic EIS CSV; this reader takes the header
found further down (within the first :data:`HEADER_LIMIT` lines). Units come from the headers
(``/ohm``, ``(mOhm)`` …); the imaginary column's sign is decided by the validator
(``eis_sign``). Without a spectrum-id column, spectra split where the frequency sweep restarts
(ids ``<stem>#<n>``, as the headerless reader does); the preamble is kept as metadata.
"""
from __future__ import annotations

from data_registry.errors import IngestWarning, ValidationError
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.eis_text import sweep_splitter
from data_registry.readers.generic_csv import SIGNATURES
from data_registry.readers.header_words import EIS_STEMS
from data_registry.readers.headers import match_headers
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source, preamble_text
from data_registry.readers.tabular import TabularSpec, open_tabular
from data_registry.schema import EIS

FORMAT_NAME = "eis_table_txt"
HEADER_LIMIT = 80
_CANONICAL = [c for c in EIS.names if c != "cell_id"]


def header_index(head: Head) -> int | None:
    """The first line after the first (index ≥ 1, within :data:`HEADER_LIMIT`) whose fields
    map to a frequency, Z′ and Z″ column, with a numeric row right under it; else None."""
    lines = head.lines[:HEADER_LIMIT]
    for i, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue
        names = [f.strip() for f in line.split(head.delimiter(line))]
        if len(names) < 3:
            continue
        try:
            mapped = match_headers(names, _CANONICAL, EIS_STEMS, head.name, i + 1)
        except ValidationError:
            continue
        if SIGNATURES["generic_eis_csv"] <= {m.target for m in mapped} and _numeric_below(
                lines, i):
            return i
    return None


def _numeric_below(lines: list[str], i: int) -> bool:
    nxt = next((ln for ln in lines[i + 1:i + 4] if ln.strip()), "")
    first = nxt.replace(";", ",").replace("\t", ",").split(",")[0].strip()
    try:
        float(first)
    except ValueError:
        return False
    return True


SPEC = TabularSpec(format_name=FORMAT_NAME, kind="eis", header=header_index, stems=EIS_STEMS,
                   description="impedance table under an instrument preamble (CH Instruments "
                   "A.C. Impedance text …): Freq, Z′, Z″ columns by their headers")


def is_eis_table(head: Head) -> bool:
    """True for a text file whose impedance header comes after a preamble (not for a generic
    EIS CSV, whose header is the first line, even when it repeats it further down)."""
    from data_registry.readers.generic_csv import detect_layout

    return (head.is_text and bool(head.lines) and detect_layout(head) != "generic_eis_csv"
            and header_index(head) is not None)


def open_eis_table(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                   **_: object) -> Source:
    """Open the table (ids from sweep restarts; the preamble as ``preamble`` metadata)."""
    i = header_index(head)
    meta = {"preamble": preamble_text(head.lines[:i or 0])}
    source = open_tabular(SPEC, head, chunk_rows, max_line_bytes, metadata=meta,
                          extra_post=sweep_splitter(head.stem),
                          add_measurement_id=True)
    note = IngestWarning("eis_spectra_split", "no measurement_id column: spectra split where "
                         "the frequency sweep restarts (ids <file>#1, #2, …)", head.name,
                         (i or 0) + 1, "measurement_id")
    source.warnings.append(note)
    source._open_warnings.append(note)
    return source
