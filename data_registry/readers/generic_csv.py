"""Generic CSV: canonical column names, or the documented aliases below, units in the names.

Three layouts, told apart by their columns:

* ``generic_csv`` (samples): ``test_time_second, voltage_volt, current_ampere, cycle_count``
  (+ optional SAMPLES columns);
* ``generic_cycles_csv`` (per-cycle summary): ``cycle_index, discharge_capacity_ah`` and
  ``test_time_second`` (elapsed at the END of the cycle). Without a time column, pass
  ``protocol_hours_per_cycle`` to estimate it (flagged ``test_time_estimated = 1``), else the
  file is refused;
* ``generic_eis_csv``: ``measurement_id, frequency_hz, z_real_ohm, z_imag_ohm`` (Im(Z) as
  measured, negative for capacitive behaviour).

Aliases (case-insensitive; a unit may follow as ``_unit``, ``(unit)``, ``[unit]`` or ``/ unit``,
e.g. ``time_h``, ``Current (mA)``, ``capacity / mAh``; no unit = the canonical unit) are in
:mod:`data_registry.readers.header_words`. Delimiter ``,`` ``;`` or tab.
A units row right under the header (``s,,,mA,V,mAh``) is skipped and gives the unit of each
column whose header names none (warning ``units_row``). A capacity column with no unit at all
is read as Ah, or as mAh when its median exceeds ``MAH_THRESHOLD``; either way it is
warned (``capacity_unit_inferred``), since a bare number cannot say which; a capacity per mass
(``mAh/g``) needs the active mass (:mod:`data_registry.readers.capacity_units`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, ValidationError
from data_registry.readers.csv_stream import MAX_LINE_BYTES
from data_registry.readers.capacity_units import (_capacity_factor, _override_hint,
                                                  _per_mass_columns, _stated_factor, header_unit)
from data_registry.readers.generic_samples import assumed_units, state_signed_current
from data_registry.readers.header_words import CYCLE_STEMS, EIS_STEMS, SAMPLE_STEMS
from data_registry.readers.headers import (match_header, match_headers, match_with_units, norm,
                                           step_clock, units_row)
from data_registry.readers.sniff import Head
from data_registry.readers.source import (Mapped, Source, brief_fields, csv_source,
                                          layout_from_head)
from data_registry.schema import CYCLES, EIS, SAMPLES

READER_VERSION = "1"

LAYOUTS: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "generic_csv": ("samples", SAMPLE_STEMS, [c for c in SAMPLES.names if c != "cell_id"]),
    "generic_cycles_csv": ("cycles", CYCLE_STEMS, [c for c in CYCLES.names if c != "cell_id"]),
    "generic_eis_csv": ("eis", EIS_STEMS, [c for c in EIS.names if c != "cell_id"]),
}
#: the columns whose presence identifies each layout (canonical names, or stems for samples)
SIGNATURES: dict[str, set[str]] = {
    "generic_eis_csv": {"frequency_hz", "z_real_ohm", "z_imag_ohm"},
    "generic_cycles_csv": {"cycle_index", "discharge_capacity_ah"},
    "generic_csv": {"test_time_second", "voltage_volt", "current_ampere"},
}


def _as_ah(names: list[str]) -> list[str]:
    """Headers with a capacity per mass (``Q (mAh/g)``) as their Ah alias (``Q (Ah)``), for
    recognising a layout: the mass that converts them is the reader's business."""
    from data_registry.units import specific_capacity_factor, split_header

    out = []
    for h in names:
        base, unit = split_header(h)
        out.append(f"{base} (Ah)" if specific_capacity_factor(unit) is not None else h)
    return out


def _mapped(head: Head, name: str) -> list[Mapped]:
    _, stems, canonical = LAYOUTS[name]
    names = _as_ah(head.fields(0))
    try:
        return match_headers(names, canonical, stems, head.name, 1)
    except ValidationError:
        return []


#: headers of a cycle-number column (normalised) in a capacity table
CYCLE_HEADERS = {k for k, v in CYCLE_STEMS.items() if v == "cycle_index"} | {"cycle_index"}
#: headers of a leading row-index column (pandas ``to_csv`` writes an unnamed one)
INDEX_HEADERS = {"", "unnamed_0", "index", "#", "row", "no"}
#: first words of headers that make a table per-sample data, never a capacity table
_SAMPLE_WORDS = {k.split("_")[0] for k, v in SAMPLE_STEMS.items()
                 if v in ("voltage_volt", "current_ampere")} | {"ewe", "volts", "amps", "i", "u"}
def _sample_rows(head: Head, delimiter: str, limit: int = 20,
                 start: int = 1) -> list[list[str]]:
    return [[f.strip().strip('"').strip() for f in line.split(delimiter)]
            for line in head.lines[start:start + limit] if line.strip()]


def head_units(head: Head, header_index: int = 0) -> list[str | None] | None:
    """The units row right under the header (one unit or None per column), or None."""
    if len(head.lines) <= header_index + 1:
        return None
    d = head.delimiter(head.lines[header_index])
    names = head.fields(header_index, d)
    return units_row(head.fields(header_index + 1, d), len(names))


def _units_warning(head: Head, used: dict[str, str]) -> IngestWarning:
    """Warning ``units_row``: line 2 skipped, and the units it gave (``used``)."""
    pairs = ", ".join(f"{h} [{u}]" for h, u in list(used.items())[:12])
    more = f" … ({len(used) - 12} more)" if len(used) > 12 else ""
    what = (f"its units used for headers that name none: {pairs}{more}" if used else
            "no unit taken from it (the headers name theirs, or name no known column)")
    return IngestWarning("units_row", f"line 2 is a units row, not data: skipped; {what}",
                         head.name, 2, None, max(len(used), 1), {"units": dict(used)})


def _numeric(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _is_time(header: str, file: str) -> bool:
    from data_registry.readers.headers import match_header

    try:
        m = match_header(header, ["test_time_second"], CYCLE_STEMS, file)
    except ValidationError:
        return False
    return m is not None and m.target == "test_time_second"


#: quantities whose units mark a column of a capacity table as something else
_NOT_CAPACITY = ("time", "voltage", "current", "energy", "resistance", "temperature",
                 "frequency")


def _other_quantity(header: str, file: str) -> str | None:
    """The canonical per-cycle column a header names when it is NOT a discharge capacity
    (charge capacity, energy, temperature …): such a column is never read as one."""
    from data_registry.readers.headers import match_header

    canonical = [c for c in CYCLES.names if c != "cell_id"]
    from data_registry.units import specific_capacity_factor, split_header, unit_factor

    try:
        m = match_header(header, canonical, CYCLE_STEMS, file)
    except ValidationError:
        return "unknown unit"
    if m is None:  # a header unit of another quantity (Energy (Wh), CE (%)) is no capacity
        unit = split_header(header)[1]
        other = unit is not None and unit_factor("capacity", unit) is None \
            and specific_capacity_factor(unit) is None \
            and (unit.strip() == "%" or any(unit_factor(q, unit) is not None
                                            for q in _NOT_CAPACITY))
        return f"a column in {unit}" if other else None
    if m.target == "discharge_capacity_ah":
        return None
    return m.target


def capacity_table(head: Head) -> dict | None:
    """A per-cycle capacity table with a cycle column and one or more capacity columns whose
    headers need not be capacity names (``,Cycle,Cell24``; wide ``Cycle, A1, A2, …`` = one
    column per cell). Returns ``{"cycle", "index", "time", "candidates"}`` or None."""
    if not head.is_text or not head.lines:
        return None
    d = head.delimiter(head.lines[0])
    names = [f.strip().strip('"').strip() for f in head.lines[0].split(d)]
    normed = [norm(n.split("(")[0].split("[")[0]) for n in names]
    cycle = next((i for i, n in enumerate(normed) if n in CYCLE_HEADERS), None)
    if cycle is None or len(names) < 2:
        return None
    units = head_units(head)
    rows = _sample_rows(head, d, start=2 if units else 1)
    if not rows or any(len(r) != len(names) for r in rows):
        return None
    if any(_numeric(r[cycle]) is None for r in rows):
        return None
    if any(n.split("_")[0] in _SAMPLE_WORDS for n in normed):
        return None  # a per-sample file (voltage, current), not a capacity table
    index = [i for i, n in enumerate(normed) if i != cycle and n in INDEX_HEADERS]
    cell = _cell_index(head, names)
    if cell is not None:
        index.append(cell)  # the cell each row belongs to: never a capacity column
    time = next((i for i, n in enumerate(names) if i != cycle and _is_time(n, head.name)),
                None)
    candidates = [names[i] for i in range(len(names))
                  if i != cycle and i not in index and i != time
                  and _other_quantity(names[i], head.name) is None
                  and all(r[i] == "" or _numeric(r[i].replace(",", ".") if d != "," else r[i])
                          is not None for r in rows)
                  and any(r[i] != "" for r in rows)]
    if not candidates:
        return None
    return {"cycle": names[cycle], "index": [names[i] for i in index],
            "time": names[time] if time is not None else None, "candidates": candidates,
            "units": units}


def _cell_index(head: Head, names: list[str]) -> int | None:
    """Index of the column naming each row's cell (``cell_name``, ``Channel`` …), or None."""
    from data_registry.readers.cell_column import detect_cell_column

    try:
        layout, _ = layout_from_head(head, 0, skip_after_header=1 if head_units(head) else 0)
        col = detect_cell_column(head, layout)
    except (ValueError, IndexError):
        return None
    return names.index(col) if col in names else None


def _cell_rows(head: Head, cell_column: str | None, cell_value: str | None,
               max_line_bytes: int):
    """The row filter of a table of many cells (:mod:`data_registry.readers.cell_column`)."""
    from data_registry.readers.cell_column import cell_rows_for

    layout, _ = layout_from_head(head, 0, skip_after_header=1 if head_units(head) else 0)
    return cell_rows_for(head, layout, cell_column, cell_value, max_line_bytes)


#: per generic layout: what it holds, and example headers a user can write for its columns
_LAYOUT_HINTS = {
    "generic_csv": ("samples", "'Time (s)', 'Voltage (V)', 'Current (A)', 'Cycle'"),
    "generic_cycles_csv": ("per-cycle rows", "'Cycle', 'Discharge capacity (Ah)', "
                           "'Time (h)'"),
    "generic_eis_csv": ("EIS spectra", "'Frequency (Hz)', \"Z' (ohm)\", \"Z'' (ohm)\""),
}


def table_diagnosis(head: Head) -> str | None:
    """For a delimited text file no reader recognised: which of its first line's headers the
    generic layouts understand, which columns the closest layout still needs, and how to name
    them (units in the names). None when the first line is not a table header."""
    if not head.is_text or not head.lines:
        return None
    names = [n for n in head.fields(0) if n]
    if len(names) < 2 or any(_numeric(n) is not None for n in names):
        return None
    best = None
    for name, (what, example) in _LAYOUT_HINTS.items():
        _, stems, canonical = LAYOUTS[name]
        found: dict[str, str] = {}
        problems: list[str] = []
        for h in names:
            try:
                m = match_header(h, canonical, stems, head.name, 1)
            except ValidationError as exc:
                problems.append(f"'{h}': {exc.message}")
                continue
            if m is not None and m.target not in found.values():
                found[h] = m.target
        need = sorted(SIGNATURES[name] - set(found.values()))
        score = (len(set(found.values()) & SIGNATURES[name]), len(found))
        if best is None or score > best[0]:
            best = (score, what, example, found, need, problems)
    _, what, example, found, need, problems = best
    if not found and len(names) < 3:  # two fields, none a column we know: a date, a title …
        return None
    known = ", ".join(f"'{h}' → {t}" for h, t in found.items()) or "none"
    text = (f"a table with columns {names[:12]}; understood: {known}; as {what} it still needs "
            f"{need} (name the columns e.g. {example}: units in the names, see "
            "`fadecast ingest --list-columns`)")
    if problems:
        text += "; " + "; ".join(problems[:3])
    return text


def detect_layout(head: Head) -> str | None:
    """Which generic layout the head's first line is (or None).

    A layout whose signature columns are all present wins; otherwise the layout with most
    signature columns, if at least two, so a file missing one column is still recognised and
    then refused with a precise ``missing_column`` error. Beside voltage and current, a
    wall-clock column (:data:`~data_registry.readers.timestamps.TIMESTAMP_STEMS`) stands for
    the samples' test clock. A table that is complete both as
    samples and as per-cycle rows (a cycler's per-cycle statistics export also lists the last
    current and voltage) is per-cycle when its head never repeats a cycle number.
    """
    if not head.lines:
        return None
    from data_registry.readers.timestamps import stamp_header

    scores, cycle_column = {}, None
    stamps = stamp_header(head.fields(0)) is not None
    for name in ("generic_eis_csv", "generic_cycles_csv", "generic_csv"):
        mapped = _mapped(head, name)
        targets = {m.target for m in mapped}
        if name == "generic_csv" and stamps and {"voltage_volt", "current_ampere"} <= targets:
            targets.add("test_time_second")  # the wall clock completes the samples' columns
        hits = len(SIGNATURES[name] & targets)
        scores[name] = (hits == len(SIGNATURES[name]), hits)
        if name == "generic_cycles_csv":
            cycle_column = next((m.source for m in mapped if m.target == "cycle_index"), None)
    if scores["generic_cycles_csv"][0] and scores["generic_csv"][0] \
            and _one_row_per_cycle(head, cycle_column):
        return "generic_cycles_csv"
    best = max(scores, key=lambda n: scores[n])
    if scores[best][1] >= 2:
        return best
    return "capacity_table_csv" if capacity_table(head) is not None else None


def _one_row_per_cycle(head: Head, column: str | None) -> bool:
    """True when the head's values of the cycle ``column`` count up by exactly one on every
    row (≥ 3 rows; a units row under the header is skipped). A per-sample file sampled more
    sparsely than its cycles skips cycle numbers, so it is not taken for one."""
    if column is None:
        return False
    names = [n.strip().strip('"') for n in head.fields(0)]
    if column not in names:
        return False
    j = names.index(column)
    rows = _sample_rows(head, head.delimiter(head.lines[0]), start=2 if head_units(head) else 1)
    values = [_numeric(r[j]) for r in rows if j < len(r)]
    if len(values) < 3 or any(v is None for v in values):
        return False
    return all(b == a + 1 for a, b in zip(values, values[1:]))


def open_generic(head: Head, chunk_rows: int, format_name: str = "generic_csv",
                 protocol_hours_per_cycle: float | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES, c_rate: float | None = None,
                 capacity_column: str | None = None, cell_id: str | None = None,
                 capacity_unit: str | None = None, cell_column: str | None = None,
                 cell_value: str | None = None, active_mass_g: float | None = None,
                 **_: object) -> Source:
    """Open a generic CSV of the given layout (see module doc). ``capacity_unit`` (``'mAh'``,
    ``'Ah'`` …) states the unit of capacity columns whose header names none. A table of many
    cells (a ``cell_name`` / ``Channel`` … column with several values) is refused unless
    ``cell_column`` and ``cell_value`` choose one cell's rows
    (:mod:`data_registry.readers.cell_column`). ``active_mass_g`` (g) reads a capacity per
    mass (``mAh/g``) in Ah."""
    rows = _cell_rows(head, cell_column, cell_value, max_line_bytes)
    if format_name == "capacity_table_csv":
        return open_capacity_table(head, chunk_rows, protocol_hours_per_cycle, c_rate,
                                   capacity_column, cell_id, max_line_bytes, capacity_unit,
                                   rows=rows, active_mass_g=active_mass_g)
    kind, stems, canonical = LAYOUTS[format_name]
    units = head_units(head)
    layout, warns = layout_from_head(head, 0, skip_after_header=1 if units else 0)
    # a step "Time" beside "Total Time" is not the test clock (when "Total Time" is read as it)
    steps = step_clock(layout.names)
    names = tuple("\x00" + n if n in steps else n for n in layout.names)
    names, per_mass = _per_mass_columns(names, canonical, stems, kind, active_mass_g, head.name)
    columns, used = match_with_units(names, units, canonical, stems, head.name)
    if steps and "test_time_second" not in {m.target for m in columns}:
        steps = set()
        names, per_mass = _per_mass_columns(layout.names, canonical, stems, kind, active_mass_g,
                                            head.name)
        columns, used = match_with_units(names, units, canonical, stems, head.name)
    columns = [Mapped(per_mass[m.source][0], m.target, m.factor * per_mass[m.source][1], m.text)
               if m.source in per_mass else m for m in columns]
    if steps:
        clock = next((m.source for m in columns if m.target == "test_time_second"), "?")
        warns.append(IngestWarning("step_time_ignored", f"{sorted(steps)} is the step clock "
                                   f"beside the whole-test clock '{clock}', which is read as "
                                   "the test time", head.name, 1, sorted(steps)[0]))
    if units:
        warns.append(_units_warning(head, used))
    columns = _unitless_capacity(head, layout, columns, warns, kind, used, capacity_unit)
    sample_post = None
    if kind == "samples":
        columns, sample_post = _sample_rules(head, layout, columns, used, warns, max_line_bytes)
    unknown = [n for n in layout.names if n and n not in {m.source for m in columns}
               and n not in steps and (rows is None or n != rows.column)]
    if unknown:
        warns.append(IngestWarning("unknown_columns", f"columns ignored: {unknown[:10]}",
                                   head.name, 1, None, len(unknown)))
    post = None
    if kind == "eis":
        columns = [Mapped(m.source, m.target, m.factor, m.target == "measurement_id")
                   for m in columns]
        if "measurement_id" in {m.target for m in columns}:
            post = _eis_post(columns)
        elif {"frequency_hz", "z_real_ohm", "z_imag_ohm"} <= {m.target for m in columns}:
            # no spectrum id: spectra split where the frequency sweep restarts (or the cycle
            # changes), ids <file stem>#<n>
            from data_registry.readers.eis_text import sweep_splitter

            post = sweep_splitter(head.stem)
            columns.append(Mapped(columns[0].source, "measurement_id", 0.0))
            warns.append(IngestWarning(
                "eis_spectra_split", "no measurement_id column: spectra split where the "
                "frequency sweep restarts or the cycle changes (ids <file>#1, #2, …)",
                head.name, 1, "measurement_id"))
    if sample_post is not None:
        post = sample_post
    if kind == "cycles":
        also = [m.source for m in _mapped(head, "generic_csv")
                if m.target in ("current_ampere", "voltage_volt")]
        if len(also) == 2:
            warns.append(IngestWarning(
                "read_as_per_cycle", f"the table also has {also} but one row per cycle: read "
                "as per-cycle rows (a per-sample file: --format generic_csv)", head.name, 1,
                also[0]))
    if kind == "cycles" and "test_time_second" not in {m.target for m in columns}:
        post, columns, w = estimated_time(head, columns, protocol_hours_per_cycle, c_rate)
        warns.append(w)
    return csv_source(head, format_name=format_name, reader_version=READER_VERSION, kind=kind,
                      layout=layout, columns=columns, chunk_rows=chunk_rows, warnings=warns,
                      post=post, max_line_bytes=max_line_bytes, rows=rows)


def _sample_rules(head: Head, layout, columns: list[Mapped], used: dict[str, str],
                  warns: list[IngestWarning], max_line_bytes: int
                  ) -> tuple[list[Mapped], object]:
    """The per-sample rules a header alone cannot settle, on the head's values: a timestamp
    column as the clock when there is no elapsed time (:mod:`~data_registry.readers.timestamps`),
    an unsigned current signed by a step-state column, and units a bare header assumes
    (:mod:`~data_registry.readers.generic_samples`). Returns the columns and the post-step."""
    from data_registry.readers import timestamps

    first = _sample_rows(head, layout.delimiter, start=layout.data_line - 1)
    texts = {n: [r[j] for r in first if j < len(r)] for j, n in enumerate(layout.names)}
    post = None
    clock = next((m for m in columns if m.target == "test_time_second"), None)
    if clock is not None:
        step = timestamps.step_clock_beside_stamp(
            head.name, layout.names, clock.source, lambda h: timestamps.column_texts(
                head, layout.names.index(h), layout.delimiter, layout.data_line,
                max_line_bytes))
        if step is not None:
            columns = [m for m in columns if m is not clock]
            warns.append(step)
    if "test_time_second" not in {m.target for m in columns}:
        found = timestamps.timestamp_column(
            layout.names, texts, lambda h: timestamps.column_texts(
                head, layout.names.index(h), layout.delimiter, layout.data_line,
                max_line_bytes))
        if found is None:
            timestamps.unreadable_stamps(layout.names, texts, head.name, layout.data_line)
        else:
            columns = [*columns, Mapped(found[0], "test_time_second", 1.0, True)]
            post = timestamps.elapsed_post(found[0], found[1], head.name)
            warns.append(timestamps.timestamp_warning(head.name, *found))

    def values(source: str) -> np.ndarray:
        return _column_values(head, layout, source)
    columns, post = state_signed_current(head.name, layout.names, values, texts.__getitem__,
                                         columns, post, warns)
    assumed_units(head.name, values, columns, used, warns)
    return columns, post


def _column_values(head: Head, layout, source: str) -> np.ndarray:
    names = list(layout.names)
    if source not in names:
        return np.empty(0)
    k = names.index(source)
    vals = []
    for line in head.lines[layout.data_line - 1:layout.data_line + 199]:
        fields = line.split(layout.delimiter)
        if k < len(fields):
            text = fields[k].strip().strip('"')
            v = _numeric(text.replace(",", ".") if layout.decimal_comma else text)
            if v is not None:
                vals.append(v)
    return np.asarray(vals, dtype=np.float64)


#: canonical capacity columns of each layout
_CAPACITY = {"cycles": ("discharge_capacity_ah", "charge_capacity_ah"),
             "samples": ("charging_capacity_ah", "discharging_capacity_ah")}


def _unitless_capacity(head: Head, layout, columns: list[Mapped], warns: list[IngestWarning],
                       kind: str, from_units_row: dict[str, str],
                       stated: str | None) -> list[Mapped]:
    """Capacity columns matched by a unitless alias (``capacity``, ``Qd``) and given no unit
    by a units row: the ``stated`` unit, else (per-cycle tables) inferred from the values,
    else (per-sample files) read as Ah — all but the stated unit warned."""
    out = []
    for m in columns:
        if m.target in _CAPACITY.get(kind, ()) and norm(m.source) != m.target \
                and m.source not in from_units_row and header_unit(m.source) is None:
            if kind == "cycles":
                factor, w = _capacity_factor(m.source, _column_values(head, layout, m.source),
                                             head.name, m.source, stated)
            elif stated is not None:
                factor, w = _stated_factor(stated, head.name, m.source), None
            else:
                factor, w = m.factor, IngestWarning(
                    "capacity_unit_inferred", f"capacity column '{m.source}' names no unit, "
                    f"so it is read as Ah; if that is wrong, {_override_hint()}", head.name, 1,
                    m.source, 1, {"column": m.source, "unit": "Ah"})
            if w is not None:
                warns.append(w)
            m = Mapped(m.source, m.target, factor, m.text)
        out.append(m)
    return out


def open_capacity_table(head: Head, chunk_rows: int, hours: float | None,
                        c_rate: float | None, capacity_column: str | None,
                        cell_id: str | None, max_line_bytes: int = MAX_LINE_BYTES,
                        capacity_unit: str | None = None, rows=None,
                        active_mass_g: float | None = None) -> Source:
    """A cycle column and one capacity column chosen among the table's numeric columns:
    the only one, ``capacity_column``, or the one named like the cell id. ``rows``: the
    row filter of a table of many cells."""
    info = capacity_table(head)
    if info is None:
        raise ValidationError("not a per-cycle capacity table", code="not_capacity_table",
                              file=head.name, row=1, expected="a cycle column and a capacity "
                              "column", found=f"header {brief_fields(head.fields(0))}")
    units = info["units"]
    layout, warns = layout_from_head(head, 0, skip_after_header=1 if units else 0)
    cands = info["candidates"]
    if capacity_column is not None:
        if capacity_column not in cands:
            raise ValidationError(
                f"no capacity column '{capacity_column}' in the table", code="unknown_column",
                file=head.name, row=1, column=capacity_column,
                expected=f"one of {brief_fields(cands, 20)}", found=repr(capacity_column))
        chosen = capacity_column
    elif len(cands) == 1:
        chosen = cands[0]
    elif cell_id is not None and cell_id in cands:
        chosen = cell_id
    else:
        raise ValidationError(
            f"the table has {len(cands)} capacity columns (one per cell?); choose one with "
            "--capacity-column NAME (or a --cell-id equal to a column name), or ingest every "
            "column as its own cell with --all-columns", code="several_capacity_columns",
            file=head.name, row=1, expected="one capacity column",
            found=f"columns {brief_fields(cands)}")
    unit = dict(zip(layout.names, units)).get(chosen) if units else None
    if unit and header_unit(chosen) is None:
        header = f"{chosen} [{unit}]"
        warns.append(_units_warning(head, {chosen: unit}))
    else:
        header = chosen
    factor, w = _capacity_factor(header, _column_values(head, layout, chosen), head.name,
                                 chosen, capacity_unit, active_mass_g)
    if w is not None:
        warns.append(w)
    columns = [Mapped(info["cycle"], "cycle_index", 1.0),
               Mapped(chosen, "discharge_capacity_ah", factor)]
    if info["time"] is not None:
        t_unit = dict(zip(layout.names, units)).get(info["time"]) if units else None
        time, used = match_with_units([info["time"]], [t_unit], ["test_time_second"],
                                      CYCLE_STEMS, head.name)
        if used:
            warns.append(_units_warning(head, used))
        columns += time
    ignored = [n for n in layout.names if n not in {m.source for m in columns}
               and n not in info["index"]]
    if ignored:
        warns.append(IngestWarning("unknown_columns", f"columns ignored: {ignored[:10]}",
                                   head.name, 1, None, len(ignored)))
    post = None
    if "test_time_second" not in {m.target for m in columns}:
        post, columns, w = estimated_time(head, columns, hours, c_rate)
        warns.append(w)
    source = csv_source(head, format_name="capacity_table_csv", reader_version=READER_VERSION,
                        kind="cycles", layout=layout, columns=columns, chunk_rows=chunk_rows,
                        warnings=warns, post=post, max_line_bytes=max_line_bytes,
                        metadata={"capacity_column": chosen, "capacity_columns": cands},
                        rows=rows)
    return source


def _eis_post(columns: list[Mapped]):
    """Copy the (text) measurement id column into the canonical frame."""
    source = next(m.source for m in columns if m.target == "measurement_id")

    def post(frame: pd.DataFrame, raw, sink: list) -> pd.DataFrame:
        frame["measurement_id"] = raw[source].astype("string").to_numpy()
        return frame
    return post


def estimated_time(head: Head, columns: list[Mapped], hours: float | None,
                   c_rate: float | None = None):
    """Post-step, column list and warning that estimate ``test_time_second`` of a per-cycle
    file as ``cycle_index × hours`` (flagged ``test_time_estimated = 1``); ``hours`` may come
    from a C-rate (2 / C h per cycle: one charge and one discharge at C, no rests); refuses
    without either."""
    how = f"{hours:g} h per cycle (stated protocol)" if hours else ""
    if (hours is None or not hours > 0) and c_rate is not None and c_rate > 0:
        hours = 2.0 / float(c_rate)
        how = f"{hours:g} h per cycle from C-rate {c_rate:g} (2/C: charge + discharge, no rests)"
    if hours is None or not hours > 0:
        raise ValidationError(
            "per-cycle file has no elapsed-time column; estimate it from the protocol with "
            "--hours-per-cycle H or --c-rate C", code="missing_column",
            file=head.name, row=1, column="test_time_second",
            expected="a test_time_second column, or --hours-per-cycle H / --c-rate C (API "
                     "options hours_per_cycle / c_rate)",
            found=f"header {brief_fields(head.fields(0))}")
    seconds = float(hours) * 3600.0

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        return frame.assign(test_time_second=frame["cycle_index"].to_numpy() * seconds,
                            test_time_estimated=np.int64(1))
    placeholder = Mapped(columns[0].source, "test_time_second", 0.0)
    w = IngestWarning("test_time_estimated", f"test_time_second estimated as cycle_index × "
                      f"{how}", head.name, 1, "test_time_second", 1,
                      {"hours_per_cycle": float(hours)})
    return post, columns + [placeholder], w
