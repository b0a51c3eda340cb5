"""BaSyTec battery test system text export (``~Resultfile from Basytec Battery Test System``).

A preamble of lines starting with ``~`` (test name, battery, date of conversion …), the last of
which is the column header: ``~Time[h]  DataSet  Date  Time  t-Step[h]  …  Line  Command  U[V]
I[A]  Ah[Ah]  Ah-Cyc-Charge-0  Ah-Cyc-Discharge-0 …  T1[°C]  Cyc-Count  Count  State``, then
tab- (or ``;``-) separated rows (a blank-separated export is refused: its date and time
fields hold blanks too); German installations write decimal commas.

* ``Time[h]`` (or ``[min]``/``[s]``) → ``test_time_second``; the wall-clock ``Date``/``Time``
  columns are not the test clock and are ignored.
* ``U[V]`` / ``U[mV]``, ``I[A]`` / ``I[mA]``: BaSyTec's current is POSITIVE on charge, as BDF.
* ``Cyc-Count`` → ``cycle_count`` (the program's ``Cycle-end`` counter); ``Line`` (the program
  line) → ``step_count``; ``T1[°C]`` → ``ambient_temperature_celsius``.
* The capacities are integrated from the current (the trapezoid rule of the feature path): the
  ``Ah-Cyc-*`` counters depend on the program's cycle levels, so they are not trusted.
* An export normalised per mass (``I[A/kg]``, ``Ah[Ah/kg]``) has no current in A: it is
  refused, naming the columns found.
"""
from __future__ import annotations

from data_registry.errors import InputFormatError
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.sniff import Head
from data_registry.readers.source import Source, preamble_text
from data_registry.readers.tabular import TabularSpec, open_tabular

FORMAT_NAME = "basytec_txt"
HEADER_LIMIT = 60


def header_index(head: Head) -> int | None:
    """0-based index of the ``~Time[…] … U[…] I[…]`` header line, or None."""
    for i, line in enumerate(head.lines[:HEADER_LIMIT]):
        low = line.lower()
        if low.startswith("~time[") and "u[" in low and "i[" in low:
            return i
    return None


#: exact BaSyTec headers → (canonical column, factor); the header's leading "~" is kept
EXACT = {
    **{f"~Time[{u}]": ("test_time_second", f) for u, f in (("h", 3600.0), ("min", 60.0),
                                                           ("s", 1.0))},
    "U[V]": ("voltage_volt", 1.0), "U[mV]": ("voltage_volt", 1e-3),
    "I[A]": ("current_ampere", 1.0), "I[mA]": ("current_ampere", 1e-3),
    "Cyc-Count": ("cycle_count", 1.0), "Line": ("step_count", 1.0),
    "T1[°C]": ("ambient_temperature_celsius", 1.0),
}

SPEC = TabularSpec(format_name=FORMAT_NAME, kind="samples", header=header_index, stems={},
                   exact=EXACT, description="BaSyTec text export ('~Time[h] … U[V] I[A] … "
                   "Cyc-Count'); capacities integrated from the current")


def is_basytec(head: Head) -> bool:
    """True for a BaSyTec text export (its ``~``-prefixed column header)."""
    return head.is_text and header_index(head) is not None


def open_basytec(head: Head, chunk_rows: int, max_line_bytes: int = MAX_LINE_BYTES,
                 **_: object) -> Source:
    """Open a BaSyTec text export."""
    i = header_index(head)
    if not any(d in head.lines[i] for d in ("\t", ";", ",")):
        raise InputFormatError(
            "BaSyTec export separated by blanks: its Date/Time fields hold blanks too, so the "
            "columns cannot be told apart; export it with tabs (the BaSyTec default) or ';'",
            code="unsupported_layout", file=head.name, row=i + 1, column=None,
            expected="tab-, ';'- or ','-separated columns", found=repr(head.lines[i][:80]))
    names = [f.strip() for f in head.lines[i].split(head.delimiter(head.lines[i]))]
    if not any(n in names for n in ("I[A]", "I[mA]")):
        per_mass = [n for n in names if "/kg" in n or "/g]" in n]
        raise InputFormatError(
            "BaSyTec export without a current in A or mA" + (
                " (it is normalised per mass)" if per_mass else ""),
            code="missing_column", file=head.name, row=i + 1, column="I[A]",
            expected="I[A] or I[mA] (export absolute units, not per kg)",
            found=f"{names[:14]}")
    meta = {"preamble": preamble_text(head.lines[:i], strip="~")}
    return open_tabular(SPEC, head, chunk_rows, max_line_bytes, metadata=meta)
