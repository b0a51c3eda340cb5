"""Damaged files get a named refusal, never a parser's own exception or a dead process.

Found by mutating real cycler files (session 14: truncation, flipped bytes, inserted lines, cut
gzip streams): a gzip cut short after the head reached the user as ``internal error:
OSError``/``EOFError``; a legacy ``.xls`` with one inserted line made python-calamine ask for
8 GiB, and the kernel's OOM killer took the whole process (the service, in an upload)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from data_registry.errors import InputFormatError
from data_registry.readers import open_source
from data_registry.readers.excel import _probe_legacy, _probe_verdict
from data_registry.readers.numeric_lines import iter_lines
from data_registry.readers.sniff import read_head

XLS = Path(__file__).resolve().parent / "data" / "readers" / "xls"


def _big_samples_csv(rows: int = 60_000) -> bytes:
    """A generic per-sample CSV of ``rows`` rows (~2.5 MB: longer than any head a reader
    sniffs, so a cut lands in the body)."""
    t = np.arange(rows, dtype=float)
    lines = ["test_time_second,voltage_volt,current_ampere,cycle_count"]
    lines += [f"{a:.1f},{3.5 + 0.1 * np.sin(a / 50):.4f},{0.5 if (a // 500) % 2 else -0.5},"
              f"{int(a // 1000) + 1}" for a in t]
    return ("\n".join(lines) + "\n").encode()


def test_a_gzip_cut_short_in_its_body_is_named(tmp_path):
    whole = gzip.compress(_big_samples_csv())
    p = tmp_path / "run.csv.gz"
    p.write_bytes(whole[: int(len(whole) * 0.7)])
    src = open_source(p)  # the head decompresses fine: detected as usual
    with pytest.raises(InputFormatError) as err:
        for _ in src.chunks():
            pass
    assert err.value.code == "unreadable_data" and err.value.file == "run.csv.gz"
    assert "cut short" in str(err.value) and "bytes of data" in str(err.value)


def test_the_line_reader_names_a_cut_gzip_and_its_line(tmp_path):
    """The line-by-line path (capacity lists, timestamp scans) meets the cut too."""
    whole = gzip.compress(_big_samples_csv())
    p = tmp_path / "lines.csv.gz"
    p.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputFormatError) as err:
        for _ in iter_lines(read_head(p), 1 << 20):
            pass
    assert err.value.code == "unreadable_data" and err.value.file == "lines.csv.gz"
    assert err.value.row > 1000  # the line it got to, not line 1


def test_a_parser_failure_the_reader_did_not_foresee_is_named(tmp_path):
    p = tmp_path / "ok.csv"
    p.write_bytes(_big_samples_csv(100))
    src = open_source(p)

    def broken(sink):
        yield from ()
        raise pa.ArrowInvalid("CSV conversion error to string: invalid UTF8 data")

    src.produce = broken
    with pytest.raises(InputFormatError) as err:
        src.read()
    assert err.value.code == "unparseable" and err.value.file == "ok.csv"
    assert "ArrowInvalid: CSV conversion error" in str(err.value)
    assert "generic_csv" in str(err.value)  # the format it was read as


def _damaged_xls(tmp_path: Path) -> Path:
    lines = (XLS / "blank_first_row.xls").read_bytes().split(b"\n")
    lines.insert(1, b"garbage,\xff\xfe,;;\t1e400,nan")
    p = tmp_path / "damaged.xls"
    p.write_bytes(b"\n".join(lines))
    return p


def test_a_damaged_xls_is_read_in_a_capped_child_and_refused(tmp_path):
    """This file makes the workbook reader ask for 8 GiB: only the child process, capped at
    a few GiB, ever opens it; the verdict names the file, and open_source refuses it."""
    p = _damaged_xls(tmp_path)
    stat = p.stat()
    verdict = _probe_verdict(str(p), stat.st_size, stat.st_mtime_ns, p.name)
    assert verdict is not None and "exit status" in verdict[2]
    with pytest.raises(InputFormatError) as err:
        _probe_legacy(str(p), stat.st_size, stat.st_mtime_ns, p.name)
    assert err.value.code == "unreadable" and err.value.file == "damaged.xls"
    with pytest.raises(InputFormatError) as err:  # detection: not a workbook it can read
        open_source(p).read()
    assert err.value.file == "damaged.xls"


def test_the_probe_steps_aside_where_it_cannot_run(monkeypatch):
    """No usable interpreter for the child: the check is unavailable, not a refusal."""
    import sys

    from data_registry.readers import excel

    p = XLS / "land_cycles.xls"
    stat = p.stat()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    excel._probe_verdict.cache_clear()
    assert excel._probe_verdict(str(p), stat.st_size, stat.st_mtime_ns + 1, p.name) is None
    excel._probe_verdict.cache_clear()


def test_an_intact_xls_passes_the_probe():
    p = XLS / "land_cycles.xls"
    stat = p.stat()
    assert _probe_verdict(str(p), stat.st_size, stat.st_mtime_ns, p.name) is None
