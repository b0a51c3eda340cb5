"""Readers: raw cycler exports → validated canonical chunks.

``open_source(path)`` detects the format by content, opens the file and returns a
:class:`Source` whose ``chunks()`` yield canonical, validated DataFrames in file order.
``FORMATS`` lists every format (name, kind, needs, detector).
"""
from __future__ import annotations

from pathlib import Path

from data_registry.errors import FadecastError, InputFormatError, UnknownFormatError
from data_registry.readers.cell_column import CELL_TABLE_FORMATS
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.eis_matrix import FORMAT_NAME as MATRIX_FORMAT
from data_registry.readers.formats import FORMATS, Format, detect, detect_head, get_format, opener
from data_registry.readers.sniff import read_head
from data_registry.readers.source import Source, stated_eis_cycle

__all__ = ["FORMATS", "Format", "Source", "detect", "open_source", "MAX_LINE_BYTES"]


def open_source(path: str | Path, *, format_name: str | None = None,
                chunk_rows: int = 1_000_000, max_line_bytes: int = MAX_LINE_BYTES,
                protocol_hours_per_cycle: float | None = None, c_rate: float | None = None,
                on_error: str = "raise", capacity_column: str | None = None,
                eis_sign: str | None = None, cell_id: str | None = None,
                display_name: str | None = None, capacity_unit: str | None = None,
                cell_column: str | None = None, cell_value: str | None = None,
                frequencies: str | Path | None = None,
                eis_every_cycles: int | None = None, eis_cycle: int | None = None,
                active_mass_g: float | None = None) -> Source:
    """Open a raw file as a :class:`Source` of canonical, validated chunks.

    Parameters
    ----------
    path:
        The raw file (gzip'd files are read transparently).
    format_name:
        Force a format (a name from ``FORMATS``); default: detect by content. A forced format
        whose detector rejects the file raises :class:`InputFormatError` (``wrong_format``).
    chunk_rows:
        Rows per yielded chunk (bounds peak memory).
    max_line_bytes:
        Longest accepted text line in bytes.
    protocol_hours_per_cycle:
        For per-cycle files without elapsed time: hours per cycle of the stated protocol
        (``test_time_second`` is then estimated and flagged).
    c_rate:
        The same from a C-rate when the hours are not given: 2 / C hours per cycle.
    on_error:
        ``"raise"`` (default) refuses the file at its first bad row; ``"skip-row"`` drops bad
        rows (unreadable, non-finite, out-of-range values) and lists each one's line and reason
        in ONE warning ``row_skipped``.
    capacity_column:
        For a capacity table with several capacity columns (one per cell): the one to read
        (default: the only one, or the one named like ``cell_id``).
    eis_sign:
        For EIS files: ``"auto"`` (default: detect a stored −Im(Z) and negate it, warning
        ``eis_imaginary_sign_flipped``), ``"im"`` (the file holds Im(Z)) or ``"minus_im"``.
    capacity_unit:
        ``"Ah"`` or ``"mAh"``: the unit of a capacity column whose header names none (generic
        per-cycle tables; default: inferred from its values and warned).
    cell_column, cell_value:
        A generic table of MANY cells (a ``cell_name`` / ``cell_id`` / ``Channel`` … column
        with several values): read only the rows whose ``cell_column`` holds ``cell_value``.
        Without them such a table is refused (``several_cells``), never read as one cell
        (:mod:`data_registry.readers.cell_column`).
    frequencies:
        For an EIS matrix (``eis_matrix_txt``: one spectrum per line, Re(Z) then ±Im(Z)): the
        side file of its F frequencies in Hz (default: a ``frequencies*.csv`` / ``*freq*``
        file beside it or in its parent folder, warned; refused when none).
    eis_every_cycles:
        For an EIS matrix: a spectrum every K cycles, line n ↔ ``cycle_count`` K·n (default:
        cycle unknown).
    eis_cycle:
        For an EIS file of ONE spectrum without a cycle column (Gamry, ZView, Maccor …): the
        cycle it was measured at (:func:`~data_registry.readers.source.stated_eis_cycle`).
    active_mass_g:
        Grams of active material: a generic table's capacity per mass (``mAh/g``, ``Ah/kg``)
        is read in Ah with it; without it such a column is refused (``needs_active_mass``).
    cell_id:
        The cell the file is ingested as (a hint some readers use, e.g. the capacity column).
    display_name:
        The name errors and warnings give the file (e.g. the client's file name of an upload
        staged under a temp name); default the file's own name.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if on_error not in ("raise", "skip-row"):
        raise InputFormatError("unknown on-error policy", code="invalid_reader_option",
                               column="on_error", expected="'raise' or 'skip-row'",
                               found=repr(on_error))
    try:
        source = _open(path, format_name, chunk_rows, max_line_bytes, protocol_hours_per_cycle,
                       c_rate, capacity_column, eis_sign, cell_id, capacity_unit,
                       cell_column, cell_value, frequencies, eis_every_cycles,
                       active_mass_g)
    except FadecastError as exc:
        if display_name and exc.file in (Path(path).name, str(path)):
            exc.file = Path(display_name).name
        raise
    source.on_error = on_error
    if eis_cycle is not None:
        if int(eis_cycle) < 0:
            raise InputFormatError("eis_cycle must be a whole number >= 0",
                                   code="invalid_reader_option",
                                   file=Path(display_name or path).name,
                                   column="eis_cycle", expected="--eis-cycle N with N >= 0",
                                   found=repr(eis_cycle))
        stated_eis_cycle(source, int(eis_cycle))
    if not source.eis_sign_decided:
        source.eis_sign = eis_sign or "auto"
    if display_name:
        source.display_name = Path(display_name).name
    return source


def _open(path: str | Path, format_name: str | None, chunk_rows: int, max_line_bytes: int,
          protocol_hours_per_cycle: float | None, c_rate: float | None,
          capacity_column: str | None, eis_sign: str | None, cell_id: str | None,
          capacity_unit: str | None = None, cell_column: str | None = None,
          cell_value: str | None = None, frequencies: str | Path | None = None,
          eis_every_cycles: int | None = None, active_mass_g: float | None = None) -> Source:
    head = read_head(path)
    if format_name is None:
        fmt = detect_head(head)
    else:
        fmt = get_format(format_name)
        if not fmt.generic and not fmt.accepts(head):
            try:
                found = detect_head(head).name
            except UnknownFormatError:
                found = "an unrecognised file"
            raise InputFormatError(
                f"file is not a {fmt.name} file", code="wrong_format", file=head.name,
                expected=f"{fmt.name} ({fmt.description})", found=found)
    if head.gzip and not fmt.gzip:
        raise InputFormatError(
            f"a gzip'd {fmt.name} file cannot be read in place (its reader needs the plain "
            "file)", code="gzip_unsupported", file=head.name,
            expected=f"an uncompressed {fmt.description}", found="gzip data")
    extra = {k: v for k, v in (("c_rate", c_rate), ("capacity_column", capacity_column),
                               ("cell_id", cell_id), ("capacity_unit", capacity_unit),
                               ("cell_column", cell_column), ("cell_value", cell_value))
             if v is not None}
    if (cell_column is not None or cell_value is not None) and fmt.name not in CELL_TABLE_FORMATS:
        raise InputFormatError(
            f"cell_column / cell_value split generic CSV tables; this file is read as "
            f"{fmt.name} ({fmt.description}), one cell per file", code="not_cell_table",
            file=head.name, column="cell_column",
            expected="a generic CSV table with a column naming each row's cell",
            found=fmt.name)
    if fmt.generic and active_mass_g is not None:
        extra["active_mass_g"] = float(active_mass_g)
    matrix = {k: v for k, v in (("frequencies", frequencies),
                                ("eis_every_cycles", eis_every_cycles)) if v is not None}
    if fmt.name == MATRIX_FORMAT:
        extra.update(matrix, eis_sign=eis_sign)
    try:
        source = opener(fmt)(head, chunk_rows, format_name=fmt.name,
                             max_line_bytes=max_line_bytes,
                             protocol_hours_per_cycle=protocol_hours_per_cycle, **extra)
    except FadecastError as exc:
        if exc.file is None:
            exc.file = head.name
        raise
    source.keep_alive = head  # a transcription's temporary folder lives while the source does
    if matrix and fmt.name != MATRIX_FORMAT:
        # one ingest passes its options to every file (a matrix and its capacity list)
        from data_registry.errors import IngestWarning
        from data_registry.reader_options import CLI_FLAGS

        flags = ", ".join(f"{k} ({CLI_FLAGS.get(k, k)})" for k in matrix)
        note = IngestWarning("reader_option_unused", f"only EIS matrix files (one spectrum "
                             f"per line) use {flags}; not used for this {fmt.name} file",
                             head.name, None, next(iter(matrix)), 1, {"options": list(matrix)})
        source.warnings.append(note)
        source._open_warnings.append(note)
    return source
