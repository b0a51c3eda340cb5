"""The ONE cell-id rule, shared by the store (a cell id names a folder) and the HTTP API.

A cell id is 1-128 characters from ``A-Z a-z 0-9 . _ + = @ -`` starting with a letter or a
digit: safe as a folder name on every file system, in a URL path segment and in a shell.
"""
from __future__ import annotations

import re

from data_registry.errors import StoreError

__all__ = ["CELL_ID_MAX_LENGTH", "CELL_ID_PATTERN", "CELL_ID_REGEX", "cell_id_from_label",
           "check_cell_id"]

#: The rule as a regular expression (what OpenAPI documents and the API validates with).
CELL_ID_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._+=@-]{0,127}$"
CELL_ID_MAX_LENGTH = 128
CELL_ID_PATTERN = re.compile(CELL_ID_REGEX)


def check_cell_id(cell_id: str) -> str:
    """``cell_id`` if it is a valid identifier (it names a folder), else ``StoreError``."""
    if not isinstance(cell_id, str) or not CELL_ID_PATTERN.match(cell_id):
        raise StoreError("invalid cell id", code="invalid_cell_id", column="cell_id",
                         expected="1-128 characters from A-Z a-z 0-9 . _ + = @ -, starting with "
                                  "a letter or digit", found=repr(cell_id))
    return cell_id


#: a run of characters the rule does not allow in a cell id
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._+=@-]+")


def cell_id_from_label(prefix: str, label: str) -> str:
    """The cell id of one cell of a many-cell table: ``prefix`` + its label (the value of the
    table's cell column), each run of characters the rule does not allow replaced by ``_``
    (``'Cell 3/A'`` → ``'Cell_3_A'``; leading ``._+=@-`` dropped when there is no prefix);
    ``StoreError`` (``invalid_cell_id``) when the result still breaks the rule (too long)."""
    text = _NOT_ALLOWED.sub("_", str(label).strip())
    if not prefix:
        text = text.lstrip("._+=@-")
    return check_cell_id(f"{prefix}{text}")
