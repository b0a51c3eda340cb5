"""The one error hierarchy of fadecast.

Every error a user can cause carries *where* (file, row, column), *what was expected* and
*what was found*, plus a machine-readable ``code`` (lower_snake_case), so the CLI prints one
clear line and the HTTP API returns ``{"code", "message", "field"}`` with a 4xx status.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class FadecastError(Exception):
    """Root of every fadecast error.

    Parameters
    ----------
    message:
        What went wrong, in words a user can act on.
    code:
        Stable machine-readable code, lower_snake_case (e.g. ``missing_column``).
    file, row, column:
        Where it went wrong. ``row`` is 1-based as a text editor shows it (the header is row 1
        for CSV-like files) unless the reader documents otherwise.
    expected, found:
        What the input should have been and what it was.
    """

    http_status = 422

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid_input",
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        self.expected = expected
        self.found = found
        super().__init__(self.__str__())

    def location(self) -> str:
        """``file:row: column 'x'`` — the part of the message that says where."""
        parts = []
        if self.file:
            parts.append(self.file + (f":{self.row}" if self.row is not None else ""))
        elif self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column '{self.column}'")
        return " ".join(parts)

    def __str__(self) -> str:
        where = self.location()
        text = f"{where}: {self.message}" if where else self.message
        if self.expected is not None or self.found is not None:
            text += f" (expected {self.expected}, found {self.found})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON body for the API: ``{"code", "message", "field"}`` plus location details."""
        return {
            "code": self.code,
            "message": str(self),
            "field": self.column,
            "file": self.file,
            "row": self.row,
        }


class InputFormatError(FadecastError):
    """A file cannot be parsed as the format it claims or was detected as."""


def require_file(path, name: str | None = None) -> None:
    """Raise :class:`InputFormatError` (``file_not_found``) unless ``path`` is a regular file;
    a folder gets told how to pass its files (``name``: how the user called it)."""
    from pathlib import Path

    path = Path(path)
    if path.is_file():
        return
    if path.is_dir():
        raise InputFormatError(
            "is a folder, not a file: pass its files in time order (e.g. `fadecast ingest "
            f"{name or path}/*.csv --cell-id ID`; `fadecast follow` watches a folder where new "
            "files appear)", code="file_not_found", file=str(name or path),
            expected="a readable file", found="a folder")
    raise InputFormatError("no such file" if not path.exists() else "not a regular file",
                           code="file_not_found", file=str(name or path),
                           expected="a readable file",
                           found="nothing" if not path.exists() else "a special file")


class UnknownFormatError(InputFormatError):
    """No reader recognises the file, or several do (the message lists the candidates)."""


class ValidationError(FadecastError):
    """Parsed values break the canonical schema or physical consistency."""


class MissingDependencyError(FadecastError):
    """A format is recognised but needs an optional extra or a system tool that is absent."""

    http_status = 415


class StoreError(FadecastError):
    """The registry store or catalog refused an operation (conflict, corruption, not found)."""

    http_status = 409


class NotFoundError(StoreError):
    """A cell, dataset or model that was asked for does not exist."""

    http_status = 404


@dataclass(frozen=True)
class IngestWarning:
    """Suspicious but usable data: stored in the catalog with the ingest, printed on stderr.

    ``code`` is lower_snake_case (e.g. ``time_backwards_row``, ``current_sign_flipped``).
    """

    code: str
    message: str
    file: str | None = None
    row: int | None = None
    column: str | None = None
    count: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The one stderr line the CLI prints: ``warning: <code>: <message>``."""
        where = ""
        if self.file:
            where = self.file + (f":{self.row}" if self.row is not None else "") + ": "
        return f"warning: {self.code}: {where}{self.message}"
