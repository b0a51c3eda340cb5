"""Arbin ``.res`` result files: MS-Access (Jet) databases (magic ``Standard Jet DB``).

Read through the Debian system tool ``mdbtools`` (``mdb-export``): the ``Channel_Normal_Table``
is exported to a temporary CSV and streamed like an Arbin CSV export (same column names and
conventions: seconds, A, V, Ah, Wh, positive = charge). ``DateTime`` there is an OLE date in the
cycler's local time zone, so it is not converted to ``unix_time_second``; ``Global_Table``
(test name, schedule, start) goes to metadata. Without ``mdb-export`` on PATH the file is
refused with :class:`MissingDependencyError` naming mdbtools.
"""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv

from data_registry.errors import IngestWarning, InputFormatError, MissingDependencyError
from data_registry.readers.arbin_csv import COLUMN_MAP as ARBIN_MAP
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.headers import match_headers
from data_registry.readers.sniff import Head, read_head
from data_registry.readers.source import Mapped, Source, csv_source, layout_from_head

READER_VERSION = "1"
JET_MAGIC = b"\x00\x01\x00\x00Standard Jet DB"
DATA_TABLE = "Channel_Normal_Table"
COLUMN_MAP = {k: v for k, v in ARBIN_MAP.items() if k not in ("datetime", "date_time")}


def is_res(head: Head) -> bool:
    """True for an MS-Access (Jet) database, the container of Arbin .res files."""
    return head.raw.startswith(JET_MAGIC)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingDependencyError(
            f"Arbin .res files need the system tool mdbtools ({name})",
            code="missing_dependency", expected="mdbtools installed (apt-get install mdbtools)",
            found=f"{name} not on PATH")
    return path


def _run(args: list[str], file: str) -> str:
    out = subprocess.run(args, capture_output=True, check=False)
    if out.returncode != 0:
        raise InputFormatError(f"mdbtools cannot read this database: "
                               f"{out.stderr.decode(errors='replace')[:200]}", code="unreadable",
                               file=file)
    return out.stdout.decode("utf-8", errors="replace")


def open_arbin_res(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                   **_: object) -> Source:
    """Open an Arbin ``.res`` file via mdb-export."""
    export = _tool("mdb-export")
    tables = _run([_tool("mdb-tables"), "-1", str(head.path)], head.name).split()
    if DATA_TABLE not in tables:
        raise InputFormatError(
            "recognised but not supported: an Access database without Arbin's "
            f"{DATA_TABLE}", code="unsupported_format", file=head.name,
            expected=f"a table {DATA_TABLE}", found=f"tables {tables[:20]}")
    meta: dict = {}
    if "Global_Table" in tables:
        rows = list(csv.reader(io.StringIO(_run([export, str(head.path), "Global_Table"],
                                                head.name))))
        if len(rows) >= 2:
            meta = {f"arbin_{k.lower()}": v for k, v in zip(rows[0], rows[1]) if v}
            if len(rows) > 2:
                meta["arbin_tests_in_file"] = str(len(rows) - 1)

    def produce(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        with tempfile.TemporaryDirectory(prefix="fadecast-res-") as d:
            tmp = Path(d) / f"{head.name}.{DATA_TABLE}.csv"
            with open(tmp, "wb") as fh:
                done = subprocess.run([export, str(head.path), DATA_TABLE], stdout=fh,
                                      stderr=subprocess.PIPE, check=False)
            if done.returncode != 0:
                raise InputFormatError(f"mdb-export failed: {done.stderr[:200]!r}",
                                       code="unreadable", file=head.name)
            _sort_by_data_point(tmp, sink, head.name)
            inner = read_head(tmp)
            layout, _ = layout_from_head(inner, 0)
            columns = match_headers(layout.names, [], COLUMN_MAP, head.name, 1)
            columns.append(Mapped("Data_Point", "_data_point"))
            source = csv_source(inner, format_name="arbin_res", reader_version=READER_VERSION,
                                kind="samples", layout=layout, columns=columns,
                                chunk_rows=chunk_rows, max_line_bytes=max_line_bytes,
                                post=_record_numbers)
            yield from source.produce(sink)

    return Source(path=head.path, format_name="arbin_res", reader_version=READER_VERSION,
                  kind="samples", metadata=meta, produce=produce)


def _record_numbers(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
    """``source_row`` = Arbin's ``Data_Point`` (the record number inside the database)."""
    frame["source_row"] = frame.pop("_data_point").to_numpy(dtype=np.int64)
    return frame


def _sort_by_data_point(csv_path: Path, sink: list[IngestWarning], file: str) -> None:
    """Access tables come back in storage order: sort the export by ``Data_Point`` in place.

    This loads the one exported table into memory (Arbin caps .res files at ~2 GB).
    """
    table = pacsv.read_csv(csv_path)
    if "Data_Point" not in table.column_names:
        return
    dp = table["Data_Point"].to_numpy()
    if len(dp) < 2 or bool(np.all(np.diff(dp) >= 0)):
        return
    order = np.argsort(dp, kind="stable")
    pacsv.write_csv(table.take(order), csv_path)
    sink.append(IngestWarning("records_reordered", "Channel_Normal_Table records were stored "
                              "out of order; sorted by Data_Point", file, None, "Data_Point",
                              int(np.count_nonzero(np.diff(dp) < 0))))
