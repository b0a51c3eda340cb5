"""Tables of MANY cells in one file: the column naming each row's cell, its values, and the
row filter that reads one cell's rows — or refuses a second cell when no cell was chosen.

A generic CSV (samples, per-cycle, capacity table or EIS) whose header holds a cell-identity
column (:data:`~data_registry.readers.header_words.CELL_WORDS`: ``cell_name``, ``cell_id``,
``Cell``, ``Channel``, ``Barcode``, ``Zelle`` …) is read as follows:

* the column holds one value (blank rows aside): one cell, as before; the value is kept in the
  ingest's lineage (``source_metadata["cell_value"]``);
* it holds several and the reader was told nothing: refused (``several_cells``) with the file,
  the column, how many cells, the first ids and the options that split it — never merged;
* reader options ``cell_column`` (+ ``cell_value``): only the rows of that cell are read
  (``source_row`` stays the raw file's line; rows of one cell may be interleaved with others).

A header word alone is not enough: a column of non-integer numbers, or whose values never
repeat (a row counter named ``Sample``), is not an identity. Values that look distinct in the
file's head (a long table interleaving hundreds of cells row by row) are checked further down
the file: when most of them occur on several rows, the column names cells.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from data_registry.errors import FadecastError, ValidationError
from data_registry.readers.csv_stream import MAX_LINE_BYTES, CsvLayout, stream_records
from data_registry.readers.headers import cell_column, norm
from data_registry.readers.sniff import Head
from data_registry.readers.source import RowFilter, brief_fields

#: the formats whose tables may hold many cells (the generic CSV layouts)
CELL_TABLE_FORMATS = ("generic_csv", "generic_cycles_csv", "generic_eis_csv",
                      "capacity_table_csv", "nasa_pcoe_metadata_csv")
#: head rows from which a column whose values are mostly distinct is a row label, not a cell
MIN_ROWS_FOR_ID_CHECK = 20
#: rows of the cell column read past the head when the head's values look distinct
REPEAT_SCAN_ROWS = 200_000
#: cell ids an error message shows
SHOWN_IDS = 5


@dataclass
class CellLabels:
    """The values of a cell column over the whole file, in order of first appearance."""

    column: str
    rows: dict[str, int] = field(default_factory=dict)  # value → rows
    first_line: dict[str, int] = field(default_factory=dict)  # value → 1-based line
    blank_rows: int = 0
    first_blank_line: int | None = None

    @property
    def values(self) -> list[str]:
        """Distinct non-blank values, in order of first appearance."""
        return list(self.rows)

    def brief(self, limit: int = SHOWN_IDS) -> str:
        """``'cell_003', 'cell_004', … (75 more)``."""
        shown = ", ".join(repr(v) for v in self.values[:limit])
        more = len(self.values) - limit
        return shown + (f", … ({more} more)" if more > 0 else "")


def head_values(head: Head, layout: CsvLayout, column: str) -> list[str]:
    """The column's values in the data lines of the file's head (stripped, blanks kept)."""
    k = list(layout.names).index(column)
    out = []
    for line in head.lines[layout.data_line - 1:]:
        if not line.strip():
            continue
        fields = line.split(layout.delimiter)
        out.append(fields[k].strip().strip('"').strip() if k < len(fields) else "")
    return out


def looks_like_ids(values: list[str]) -> bool:
    """True unless the values are row labels (mostly distinct over at least
    :data:`MIN_ROWS_FOR_ID_CHECK` rows) or measurements (non-integer numbers)."""
    filled = [v for v in values if v]
    if mostly_distinct(filled):
        return False
    return not _measurements(filled)


def mostly_distinct(filled: list[str]) -> bool:
    """True when at least :data:`MIN_ROWS_FOR_ID_CHECK` values are more than half distinct."""
    return len(filled) >= MIN_ROWS_FOR_ID_CHECK and len(set(filled)) > len(filled) / 2


def _measurements(filled: list[str]) -> bool:
    """True when a value is a finite non-integer number (a measurement, not an id)."""
    for v in filled:
        try:
            x = float(v.replace(",", "."))
        except ValueError:
            return False  # text: an id
        if np.isfinite(x) and x != int(x):
            return True
    return False


def values_repeat(head: Head, layout: CsvLayout, column: str,
                  max_rows: int = REPEAT_SCAN_ROWS) -> bool:
    """True when most distinct values of ``column`` in the file's first ``max_rows`` rows
    occur on two rows or more (cells interleaved row by row); False for a row counter (every
    value distinct) or when the column cannot be read (the reader then says why)."""
    use = CsvLayout(**{**layout.__dict__, "numeric": (), "text": (column,)})
    stream = stream_records(head.path, use, chunk_rows=max_rows)
    try:
        raw, _ = next(iter(stream))
        vals = pc.utf8_trim_whitespace(raw.table.column(column)).fill_null("")
        vals = pc.filter(vals, pc.not_equal(vals, ""))
        counts = pc.value_counts(vals).field("counts").to_numpy(zero_copy_only=False)
    except (StopIteration, FadecastError):
        return False
    finally:
        stream.close()
    return len(counts) > 0 and int((counts >= 2).sum()) > len(counts) / 2


def detect_cell_column(head: Head, layout: CsvLayout) -> str | None:
    """The header naming each row's cell (by header word, checked against the values: not
    measurements, and not all distinct — unless they repeat further down the file), or None."""
    from data_registry.readers.header_words import CELL_WORDS

    col = cell_column(layout.names, CELL_WORDS)
    if col is None:
        return None
    filled = [v for v in head_values(head, layout, col) if v]
    if _measurements(filled):
        return None
    if mostly_distinct(filled) and not values_repeat(head, layout, col):
        return None
    return col


def resolve_cell_column(head: Head, layout: CsvLayout, given: str) -> str:
    """The header ``given`` names (as written, else case/blank-insensitively)."""
    names = [n for n in layout.names if not n.startswith("_unnamed_")]
    if given in names:
        return given
    hits = [n for n in names if norm(n) == norm(given)]
    if len(hits) == 1:
        return hits[0]
    found = detect_cell_column(head, layout)
    hint = f"; the cell column seems to be '{found}'" if found else ""
    raise ValidationError(f"no column '{given}' to tell cells apart{hint}",
                          code="unknown_column", file=head.name, row=1, column=given,
                          expected=f"one of {brief_fields(names, 20)}", found=repr(given))


def scan_labels(head: Head, layout: CsvLayout, column: str,
                max_line_bytes: int = MAX_LINE_BYTES) -> CellLabels:
    """Every value of ``column`` in the whole file, counted (one pass reading that column
    only)."""
    use = CsvLayout(**{**layout.__dict__, "numeric": (), "text": (column,)})
    out = CellLabels(column)
    for raw, lines in stream_records(head.path, use, chunk_rows=1_000_000,
                                     max_line_bytes=max_line_bytes):
        vals = pc.utf8_trim_whitespace(raw.table.column(column)).fill_null("")
        codes, uniques = pd.factorize(np.asarray(vals.to_numpy(zero_copy_only=False),
                                                 dtype=object))
        counts = np.bincount(codes, minlength=len(uniques))
        _, first = np.unique(codes, return_index=True)
        for u, n, i in zip(uniques, counts, first):
            if u == "":
                out.blank_rows += int(n)
                if out.first_blank_line is None:
                    out.first_blank_line = int(lines[i])
            else:
                out.rows[u] = out.rows.get(u, 0) + int(n)
                out.first_line.setdefault(u, int(lines[i]))
    return out


def split_hint(file: str, column: str, example: str | None) -> str:
    """The commands that ingest a many-cell table: each cell, or one of them."""
    c = shlex.quote(column)
    one = shlex.quote(example) if example is not None else "VALUE"
    return (f"store each cell as its own: fadecast ingest {shlex.quote(file)} --cell-column "
            f"{c} --cell-id PREFIX (cell ids = PREFIX + value); or only one: --cell-column {c} "
            f"--cell-value {one} --cell-id ID (Python: reader options cell_column, cell_value)")


def several_cells_error(head: Head, layout: CsvLayout, column: str, row: int | None,
                        seen: list[str], max_line_bytes: int = MAX_LINE_BYTES,
                        labels: CellLabels | None = None) -> ValidationError:
    """``several_cells``: the file, the column, how many cells and the first ids, and the
    options that split it (``labels`` counted over the whole file, else counted here; the
    values ``seen`` if that pass fails)."""
    try:
        labels = labels or scan_labels(head, layout, column, max_line_bytes)
        values, what = labels.values, labels.brief()
        count = f"{len(values)} cells"
    except Exception:  # noqa: BLE001 - the refusal must still say what it saw
        values, what = seen, ", ".join(repr(v) for v in seen[:SHOWN_IDS])
        count = f"at least {len(seen)} cells"
    hint = split_hint(head.name, column, next(iter(values), None))
    return ValidationError(
        f"the file holds {count} told apart by column '{column}' ({what}); read as one cell "
        f"they would be mixed, so nothing was stored; {hint}",
        code="several_cells", file=head.name, row=row, column=column,
        expected="the rows of one cell, or --cell-column to split the table",
        found=f"{count} in column '{column}'")


class CellRows(RowFilter):
    """Row filter of a many-cell table: with ``value``, the rows of that cell only (refused at
    the end when it has none); without, every row must name one cell (blank rows aside), else
    :func:`several_cells_error`. ``finish`` records ``cell_column``, ``cell_value``,
    ``cell_rows`` (rows read) and ``other_cell_rows`` in the source metadata."""

    def __init__(self, head: Head, layout: CsvLayout, column: str, value: str | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.head, self.layout, self.column = head, layout, column
        self.value = None if value is None else str(value).strip()
        self.max_line_bytes = max_line_bytes
        self.columns = (column,)
        self.reset()

    def reset(self) -> None:
        self.first: str | None = None
        self.kept = 0
        self.other = 0

    def __call__(self, raw, lines: np.ndarray) -> np.ndarray | None:
        vals = pc.utf8_trim_whitespace(raw.table.column(self.column)).fill_null("")
        if self.value is not None:
            mask = pc.equal(vals, self.value).to_numpy(zero_copy_only=False)
            n = int(mask.sum())
            self.kept += n
            self.other += len(mask) - n
            return None if n == len(mask) else mask
        if self.first is None:
            filled = pc.filter(vals, pc.not_equal(vals, ""))
            if len(filled) == 0:
                self.kept += len(vals)
                return None
            self.first = filled[0].as_py()
        odd = pc.and_(pc.not_equal(vals, self.first), pc.not_equal(vals, ""))
        odd = odd.to_numpy(zero_copy_only=False)
        if odd.any():
            k = int(np.argmax(odd))
            raise several_cells_error(self.head, self.layout, self.column, int(lines[k]),
                                      [self.first, vals[k].as_py()], self.max_line_bytes)
        self.kept += len(vals)
        return None

    def finish(self, metadata: dict) -> None:
        if self.value is not None and self.kept == 0:
            labels = scan_labels(self.head, self.layout, self.column, self.max_line_bytes)
            raise ValidationError(
                f"no row has {self.column} = {self.value!r}", code="unknown_cell",
                file=self.head.name, column=self.column,
                expected=f"one of its {len(labels.values)} values: {labels.brief()}",
                found=repr(self.value))
        metadata.update({"cell_column": self.column,
                         "cell_value": self.value if self.value is not None else self.first,
                         "cell_rows": self.kept, "other_cell_rows": self.other})


def cell_rows_for(head: Head, layout: CsvLayout, cell_column: str | None = None,
                  cell_value: str | None = None,
                  max_line_bytes: int = MAX_LINE_BYTES) -> CellRows | None:
    """The row filter of a generic table: None without a cell column; refuses at once when
    no cell is chosen and the head already shows two (the rest of the file is checked as it
    is read)."""
    column = (resolve_cell_column(head, layout, cell_column) if cell_column
              else detect_cell_column(head, layout))
    if column is None:
        if cell_value is not None:
            raise ValidationError(
                "--cell-value needs a column that names each row's cell", code="unknown_column",
                file=head.name, row=1, column="cell_column",
                expected="--cell-column NAME (one of the header's columns)",
                found=f"header {brief_fields(layout.names)}")
        return None
    if cell_value is None:
        seen = list(dict.fromkeys(v for v in head_values(head, layout, column) if v))
        if len(seen) > 1:  # the head's quick split says two cells: count them properly
            labels = scan_labels(head, layout, column, max_line_bytes)
            if len(labels.values) > 1:
                second = labels.values[1]
                raise several_cells_error(head, layout, column, labels.first_line[second],
                                          labels.values, max_line_bytes, labels)
    return CellRows(head, layout, column, cell_value, max_line_bytes)
