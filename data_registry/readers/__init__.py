"""Readers: raw cycler exports → validated canonical chunks.

``open_source(path)`` detects the format by content, opens the file and returns a
:class:`Source` whose ``chunks()`` yield canonical, validated DataFrames in file order.
``FORMATS`` lists every format (name, kind, needs, detector).
"""
from __future__ import annotations

from pathlib import Path

from data_registry.errors import FadecastError, InputFormatError, UnknownFormatError
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.formats import FORMATS, Format, detect, detect_head, get_format, opener
from data_registry.readers.sniff import read_head
from data_registry.readers.source import Source

__all__ = ["FORMATS", "Format", "Source", "detect", "open_source", "MAX_LINE_BYTES"]


def open_source(path: str | Path, *, format_name: str | None = None,
                chunk_rows: int = 1_000_000, max_line_bytes: int = MAX_LINE_BYTES,
                protocol_hours_per_cycle: float | None = None) -> Source:
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
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    head = read_head(path)
    if format_name is None:
        fmt = detect_head(head)
    else:
        fmt = get_format(format_name)
        if not fmt.generic and not fmt.detector(head):
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
    try:
        return opener(fmt)(head, chunk_rows, format_name=fmt.name, max_line_bytes=max_line_bytes,
                       protocol_hours_per_cycle=protocol_hours_per_cycle)
    except FadecastError as exc:
        if exc.file is None:
            exc.file = head.name
        raise
