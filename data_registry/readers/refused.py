"""Files that are recognised by content but carry no samples fadecast can ingest: detectors
for them exist so the user gets "recognised but not supported: …" instead of "unknown"."""
from __future__ import annotations

from data_registry.readers.sniff import Head


def is_biologic_log(head: Head) -> bool:
    """BioLogic ``.mpl`` acquisition log (settings only; the data is in the .mpr / text)."""
    return head.is_text and bool(head.lines) and head.lines[0].strip().endswith("LOG FILE")


def is_prime_instrument(head: Head) -> bool:
    """cellpy's "custom" PRIME instrument CSV (free-form sections, no fixed data header)."""
    return head.is_text and bool(head.lines) and "PRIME INSTRUMENT FILE" in head.lines[0]


def is_matlab(head: Head) -> bool:
    """A MATLAB ``.mat`` file (v5-v7 header text; v7.3 files carry the same text before their
    HDF5 body)."""
    return head.raw.startswith(b"MATLAB ") and b"MAT-file" in head.raw[:128]


def is_legacy_excel(head: Head) -> bool:
    """An OLE2 compound file that :func:`data_registry.readers.excel.is_xls` did not open as a
    workbook (a damaged ``.xls``, an old Word or Outlook file)."""
    from data_registry.readers.excel import OLE2_MAGIC, is_xls

    return head.raw.startswith(OLE2_MAGIC) and not is_xls(head)
