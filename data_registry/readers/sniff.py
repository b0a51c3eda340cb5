"""The head of a file, as every detector and reader sees it: bytes, decoded lines, encoding.

Detection is by content: magic bytes for binary formats, header lines and column names for text.
Gzip'd files are looked through transparently (the readers stream them decompressed).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pyarrow as pa

from data_registry.errors import InputFormatError

HEAD_BYTES = 256 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_DELIMITERS = (",", ";", "\t")


@dataclass
class Head:
    """The first ``HEAD_BYTES`` of a file and what can be said about it without parsing."""

    path: Path
    raw: bytes
    gzip: bool
    size: int
    encoding: str = "utf-8"
    bom: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        """The file name without its last extension (and ``.gz``): ``cell7_2024.05.01.DTA`` →
        ``cell7_2024.05.01`` — the spectrum id of a one-spectrum file."""
        name = self.path.name
        if name.lower().endswith(".gz"):
            name = name[:-3]
        stem, dot, ext = name.rpartition(".")
        return stem if dot and stem else name

    @cached_property
    def is_text(self) -> bool:
        """True unless the head holds NUL bytes or mostly control characters."""
        sample = self.raw[:8192]
        if not sample or b"\x00" in sample:
            return False
        ctrl = sum(1 for b in sample if b < 32 and b not in (9, 10, 13))
        return ctrl <= len(sample) * 0.01

    @cached_property
    def text(self) -> str:
        """The head decoded (UTF-8, BOM stripped; else :func:`legacy_encoding`'s choice)."""
        data = self.raw[3:] if self.bom else self.raw
        if len(self.raw) >= HEAD_BYTES and b"\n" in data:  # drop a partial last line
            data = data[: data.rfind(b"\n") + 1]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.encoding = legacy_encoding(data)
            return data.decode(self.encoding, errors="replace")

    @cached_property
    def lines(self) -> list[str]:
        """Up to the first 400 lines of the head (line ends stripped)."""
        if not self.is_text:
            return []
        return self.text.splitlines()[:400]

    def delimiter(self, line: str) -> str:
        """The most frequent of ``,`` ``;`` tab in ``line`` (``,`` when none)."""
        counts = {d: line.count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","

    def fields(self, index: int, delimiter: str | None = None) -> list[str]:
        """Fields of line ``index`` (0-based), stripped of blanks and surrounding quotes."""
        if index >= len(self.lines):
            return []
        line = self.lines[index]
        d = delimiter or self.delimiter(line)
        return [f.strip().strip('"').strip() for f in line.split(d)]

    def find_line(self, predicate, limit: int = 400) -> int | None:
        """0-based index of the first head line satisfying ``predicate``."""
        for i, line in enumerate(self.lines[:limit]):
            if predicate(line):
                return i
        return None

    @cached_property
    def zip_names(self) -> list[str]:
        """Member names when the file is a zip archive (xlsx, ndax), else []."""
        if not self.raw.startswith(b"PK\x03\x04"):
            return []
        try:
            with zipfile.ZipFile(self.path) as zf:
                return zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return []


#: the Windows code pages of Chinese, Japanese and Korean lab PCs, tried (after UTF-8) on a head
#: whose decoded lines then hold known header words; GB18030 is a superset of GBK and GB2312
CJK_ENCODINGS = ("gb18030", "cp932", "cp950", "cp949")
#: known header words a CJK decoding must yield (in the first lines) to be chosen
CJK_MIN_WORDS = 2


def legacy_encoding(data: bytes) -> str:
    """The encoding of a head that is not UTF-8: the CJK code page (:data:`CJK_ENCODINGS`)
    under which the first lines hold the most known CJK header words (电流, 電圧, 전압 …; at
    least :data:`CJK_MIN_WORDS`), else latin-1 (a Western Windows export: every byte decodes).

    A latin-1 file can decode as GB18030 too (``°C`` does), but into words no header uses, so
    the count of KNOWN words, not decodability, decides."""
    from data_registry.readers.header_words import CJK_STEMS
    from data_registry.units import ascii_forms

    lines = data[:8192].splitlines()[:40]
    best, best_hits = "latin-1", CJK_MIN_WORDS - 1
    for encoding in CJK_ENCODINGS:
        text = ascii_forms(b"\n".join(lines).decode(encoding, errors="replace"))
        hits = sum(1 for w in CJK_STEMS if w in text)
        if hits > best_hits:
            best, best_hits = encoding, hits
    return best


def read_head(path: str | Path) -> Head:
    """Read the head of ``path`` (decompressing gzip). Raises InputFormatError when empty."""
    p = Path(path)
    if not p.is_file():
        raise InputFormatError("no such file", code="file_not_found", file=str(p),
                               expected="a readable file", found="nothing")
    with open(p, "rb") as fh:
        magic = fh.read(2)
    gz = magic == _GZIP_MAGIC
    try:
        with pa.input_stream(str(p), compression="gzip" if gz else None) as stream:
            raw = stream.read(HEAD_BYTES)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputFormatError(f"cannot read the file: {exc}", code="unreadable",
                               file=p.name) from None
    size = p.stat().st_size
    if not raw.removeprefix(b"\xef\xbb\xbf").strip():  # nothing but blanks (or a BOM)
        raise InputFormatError("the file is empty", code="empty_file", file=p.name,
                               expected="a header and data rows",
                               found=f"{size} bytes" + (" (gzip)" if gz else ""))
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _utf16_head(p, gz)
    head = Head(path=p, raw=raw, gzip=gz, size=size, bom=raw.startswith(_BOM))
    if gz:
        head.notes.append("gzip")
    return head


#: the note a head read from a UTF-16 file's UTF-8 transcription carries
UTF16_NOTE = "utf16"


def _utf16_head(path: Path, gz: bool) -> Head:
    """The head of a UTF-16 text file (Excel's "Unicode text", some Japanese software), read
    from its UTF-8 transcription: every reader splits lines on the byte ``\\n``, which UTF-16
    does not have. The transcription keeps the file's name (errors name it) in a private
    temporary folder removed with the head; the registry still stores the ORIGINAL bytes (it
    copies the path it was given, not the head's)."""
    import codecs
    import gzip as gzip_module
    import shutil
    import tempfile
    import weakref

    folder = Path(tempfile.mkdtemp(prefix="fadecast-utf16-"))
    copy = folder / path.name
    try:
        with (gzip_module.open(path, "rb") if gz else open(path, "rb")) as src, \
                open(copy, "wb") as dst:
            decoder = codecs.getincrementaldecoder("utf-16")(errors="replace")
            while block := src.read(1 << 20):
                dst.write(decoder.decode(block).encode("utf-8"))
            dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise InputFormatError(f"cannot read the file: {exc}", code="unreadable",
                               file=path.name) from None
    head = read_head(copy)
    head.notes.append(UTF16_NOTE)
    weakref.finalize(head, shutil.rmtree, folder, True)
    return head
