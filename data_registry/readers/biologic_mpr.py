"""BioLogic EC-Lab binary ``.mpr`` files (magic ``BIO-LOGIC MODULAR FILE``), read with galvani.

galvani is GPL-3.0, so it is an OPTIONAL extra (``pip install fadecast[biologic]``), imported
only here and only when such a file is opened; without it the file is refused with
:class:`MissingDependencyError`.

Columns (galvani names): ``time/s``, ``Ewe/V``, ``I/mA`` (positive = charge), ``Ns`` (step),
``half cycle`` (cycle = half cycle // 2), ``Q charge/discharge/mA.h`` (one counter, positive while
charging, negative while discharging: split into magnitudes by its sign), ``Energy
charge/W.h``, ``Energy discharge/W.h``. Two technique-specific gaps are filled and flagged:

* OCV files have no current column: current is 0 by definition (warning ``ocv_zero_current``);
* some GCPL files store no ``I/mA`` but ``dq/mA.h`` per record: current = dq / Δt (warning
  ``current_from_dq``).

Impedance records (``freq/Hz`` > 0; 0 in every other record) are read by the EIS format
``biologic_mpr_eis`` (:func:`open_mpr_eis`):

* a PEIS/GEIS ``.mpr`` (EC-Lab writes one file per technique of a sequence: every record is an
  impedance record) is detected as ``biologic_mpr_eis``: its spectra, cycle unknown (its
  ``time/s`` counts from the start of its EC-Lab experiment, not necessarily the cell's test;
  ``--eis-cycle N`` places a one-spectrum file);
* a settings file that chains PEIS/GEIS with cycling (cellpy's ``biol.mpr``: 5 sweeps, 310
  records among 23,561) is detected as ``biologic_mpr`` (samples): the impedance records, with
  zero net current and no meaningful ``Ewe/V`` for cycling, are skipped and counted in ONE
  warning ``eis_rows_skipped`` (first record, count, frequency range, number of sweeps), as the
  battdat reader does. ``fadecast warburg --eis FILE`` (and ``--format biologic_mpr_eis``)
  reads the same file's spectra, on the samples' clock: ``test_time_second`` = ``time/s`` and
  ``cycle_count`` the cycling records' cycle before each sweep. (The registry stores a raw
  file once per cell: a cell holds such a file's samples OR its spectra.)

Z′ and Z″ come from ``Re(Z)/Ohm`` and ``-Im(Z)/Ohm`` when the file has them, else from
``|Z|/Ohm`` and ``Phase(Z)/deg`` (Z′ = |Z| cos φ, Z″ = |Z| sin φ: biol.mpr stores only these);
one spectrum per ``z cycle`` value, or per sweep (a frequency that rises, or impedance records
after other records, starts one), ids ``<file stem>#n`` when there are several.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from data_registry.errors import IngestWarning, InputFormatError, MissingDependencyError
from data_registry.readers.conventions import split_counter
from data_registry.readers.sniff import Head
from data_registry.readers.source import Mapped, Source, frame_source, row_chunks

READER_VERSION = "2"
EIS_READER_VERSION = "1"
EIS_FORMAT = "biologic_mpr_eis"
MAGIC = b"BIO-LOGIC MODULAR FILE"

COLUMN_MAP: dict[str, tuple[str, float]] = {
    "time/s": ("test_time_second", 1.0),
    "Ewe/V": ("voltage_volt", 1.0),
    "I/mA": ("current_ampere", 1e-3),
    "Ns": ("step_count", 1.0),
    "Energy charge/W.h": ("charging_energy_wh", 1.0),
    "Energy discharge/W.h": ("discharging_energy_wh", 1.0),
}


def is_mpr(head: Head) -> bool:
    """True for a BioLogic ``.mpr`` file holding cycling records (or one galvani cannot read
    here: the opener says why)."""
    return head.raw.startswith(MAGIC) and _impedance(head) != "all"


def is_any_mpr(head: Head) -> bool:
    """True for any BioLogic ``.mpr`` file (a FORCED ``biologic_mpr``: the opener refuses a
    file of impedance records only, saying so)."""
    return head.raw.startswith(MAGIC)


def is_mpr_eis(head: Head) -> bool:
    """True for a ``.mpr`` whose every record is an impedance record (PEIS/GEIS technique)."""
    return head.raw.startswith(MAGIC) and _impedance(head) == "all"


def has_mpr_eis(head: Head) -> bool:
    """True for a ``.mpr`` with any impedance record (a FORCED ``biologic_mpr_eis``)."""
    return head.raw.startswith(MAGIC) and _impedance(head) in ("all", "some")


_parsed: dict[tuple, object] = {}


def _parse(head: Head, *, keep: bool = True):
    """galvani's ``MPRfile`` of ``head``. Detection keeps the last file it parsed (``keep``),
    so the opener, which takes it (``keep=False``), parses each file once; raises
    :class:`MissingDependencyError` without galvani."""
    stat = head.path.stat()
    # the head's bytes too: a file rewritten with the same size and time stamp (cp -p,
    # rsync -t) is parsed again
    key = (str(head.path.resolve()), stat.st_size, stat.st_mtime_ns, hash(head.raw))
    hit = _parsed.pop(key, None)
    if hit is None:
        hit = _galvani().MPRfile(str(head.path))
    _parsed.clear()
    if keep:
        _parsed[key] = hit
    return hit


def _impedance(head: Head) -> str:
    """``"all"``, ``"some"`` or ``"none"`` of the records are impedance records (``freq/Hz``
    > 0); ``"unknown"`` when galvani is absent or cannot read the file."""
    try:
        data = _parse(head).data
    except Exception:  # noqa: BLE001 - ImportError or a parse failure: the opener reports it
        return "unknown"
    if "freq/Hz" not in (data.dtype.names or ()) or not len(data):
        return "none"
    eis = np.asarray(data["freq/Hz"]) > 0
    return "all" if eis.all() else "some" if eis.any() else "none"


def _galvani():
    try:
        from galvani import BioLogic
    except ImportError:
        raise MissingDependencyError(
            "BioLogic .mpr files need the optional extra 'biologic' (galvani, GPL-3.0)",
            code="missing_dependency", expected="pip install fadecast[biologic]",
            found="galvani not installed") from None
    return BioLogic


def _open(head: Head):
    """The parsed ``.mpr`` (galvani), or a clear refusal."""
    _galvani()
    try:
        return _parse(head, keep=False)
    except Exception as exc:  # noqa: BLE001 - any parser failure is a format error
        raise InputFormatError(f"galvani cannot read this .mpr file: {exc}"[:300],
                               code="unreadable", file=head.name, expected="a valid .mpr file",
                               found=type(exc).__name__) from None


def open_mpr(head: Head, chunk_rows: int, **_: object) -> Source:
    """Open a BioLogic ``.mpr`` file's cycling records via galvani."""
    mpr = _open(head)
    names = set(mpr.data.dtype.names)
    if "freq/Hz" in names and len(mpr.data) and bool((mpr.data["freq/Hz"] > 0).all()):
        raise InputFormatError(
            "this .mpr holds only impedance records (PEIS/GEIS), no cycling samples",
            code="eis_only", file=head.name, column="freq/Hz",
            expected=f"cycling records (freq/Hz = 0); its spectra are read as {EIS_FORMAT} "
            "(the default for this file: drop --format)",
            found=f"{len(mpr.data)} records, all with freq/Hz > 0")
    warns: list[IngestWarning] = []
    if "I/mA" not in names:
        if "dq/mA.h" in names:
            warns.append(IngestWarning("current_from_dq", "no I/mA column: current derived "
                                       "from dq/mA.h over the time step", head.name, None,
                                       "current_ampere"))
        elif "Ns" not in names:
            warns.append(IngestWarning("ocv_zero_current", "open-circuit file without a "
                                       "current column: current set to 0", head.name, None,
                                       "current_ampere"))
        else:
            raise InputFormatError("no current column in this .mpr file", code="missing_column",
                                   file=head.name, column="current_ampere",
                                   expected="I/mA or dq/mA.h", found=f"{sorted(names)}")
    meta = {"biologic_start": str(getattr(mpr, "timestamp", "") or "")}

    def load() -> pd.DataFrame:
        return pd.DataFrame({n: mpr.data[n] for n in mpr.data.dtype.names})

    carry = {"t": None, "freq_last": 0.0, "warning": -1}

    def post(frame: pd.DataFrame, raw: pd.DataFrame, sink: list) -> pd.DataFrame:
        n = len(frame)
        if "I/mA" not in raw:
            if "dq/mA.h" in raw:
                t = frame["test_time_second"].to_numpy()
                prev = np.concatenate(([t[0] if carry["t"] is None else carry["t"]], t[:-1]))
                dt = t - prev
                dq = raw["dq/mA.h"].to_numpy(np.float64) * 1e-3 * 3600.0
                frame["current_ampere"] = np.divide(dq, dt, out=np.zeros(n), where=dt > 0)
            else:
                frame["current_ampere"] = np.zeros(n)
        carry["t"] = frame["test_time_second"].iloc[-1] if n else carry["t"]
        frame["cycle_count"] = (raw["half cycle"].to_numpy(np.int64) // 2
                                if "half cycle" in raw else np.zeros(n, dtype=np.int64))
        if "Q charge/discharge/mA.h" in raw:
            q = raw["Q charge/discharge/mA.h"].to_numpy(np.float64) * 1e-3
            frame["charging_capacity_ah"], frame["discharging_capacity_ah"] = split_counter(
                q, np.sign(q))
        for col in ("charging_energy_wh", "discharging_energy_wh"):
            if col in frame:
                frame[col] = np.abs(frame[col].to_numpy())
        if "freq/Hz" in raw:
            freq = raw["freq/Hz"].to_numpy(np.float64)
            eis = freq > 0
            if eis.any():
                _count_eis(frame["source_row"].to_numpy(), freq, carry, sink, head.name)
            carry["freq_last"] = float(freq[-1]) if n else carry["freq_last"]
            return frame[~eis] if eis.any() else frame
        return frame

    columns = [Mapped(s, t, f) for s, (t, f) in COLUMN_MAP.items() if s in names]
    columns += [Mapped("half cycle", "cycle_count", 0.0),
                Mapped("I/mA", "current_ampere", 0.0)] if "I/mA" not in names else \
        [Mapped("half cycle", "cycle_count", 0.0)]
    return frame_source(head, format_name="biologic_mpr", reader_version=READER_VERSION,
                        kind="samples", load=load, columns=columns, chunk_rows=chunk_rows,
                        metadata=meta, warnings=warns, post=post)


def _count_eis(source_row: np.ndarray, freq_all: np.ndarray, carry: dict,
               sink: list[IngestWarning], name: str) -> None:
    """Add one chunk's impedance records (``freq/Hz`` > 0) to the single ``eis_rows_skipped``
    warning. A sweep starts at an impedance record after a non-impedance record, or whose
    frequency is not below the previous record's (the sweep restarted)."""
    eis = freq_all > 0
    prev = np.concatenate(([carry["freq_last"]], freq_all[:-1]))
    starts = int((eis & ((prev <= 0) | (freq_all >= prev))).sum())
    rows, freq = source_row[eis], freq_all[eis]
    if carry["warning"] < 0:
        carry["warning"] = len(sink)
        sink.append(IngestWarning("eis_rows_skipped", "", name, int(rows[0]), "freq/Hz", 0,
                                  {"frequency_min_hz": float(freq.min()),
                                   "frequency_max_hz": float(freq.max()), "sweeps": 0}))
    old = sink[carry["warning"]]
    details = dict(old.details or {})
    details["frequency_min_hz"] = min(details["frequency_min_hz"], float(freq.min()))
    details["frequency_max_hz"] = max(details["frequency_max_hz"], float(freq.max()))
    details["sweeps"] = int(details["sweeps"]) + starts
    count = int(old.count or 0) + len(rows)
    sink[carry["warning"]] = IngestWarning(
        old.code, f"{count} impedance records (freq/Hz > 0, {details['frequency_min_hz']:g}–"
        f"{details['frequency_max_hz']:g} Hz, {details['sweeps']} sweep(s)) are not samples "
        "and were skipped; their spectra are read by `fadecast warburg --eis` on this file "
        f"(format {EIS_FORMAT})", old.file, old.row, old.column, count, details)


def _sweeps(freq: np.ndarray, eis: np.ndarray, z_cycle: np.ndarray | None) -> np.ndarray:
    """1-based spectrum number of every impedance record (``eis`` mask over all records): by
    ``z cycle`` when the file has it, else a new sweep at an impedance record after a
    non-impedance record or where the frequency turns back against the sweep's direction
    (set by its first two records: EC-Lab sweeps high → low by default, low → high on
    request)."""
    if z_cycle is not None:
        z = np.asarray(z_cycle, dtype=np.int64)[eis]
        _, number = np.unique(z, return_inverse=True)
        return number.astype(np.int64) + 1
    out = np.zeros(len(freq), dtype=np.int64)
    sweep, direction = 0, 0.0
    for k in range(len(freq)):
        if not eis[k]:
            continue
        step = freq[k] - freq[k - 1] if k and eis[k - 1] else None
        if step is None:
            new = True  # after a cycling record, or the file's first
        elif direction == 0.0:
            new = step == 0.0  # the same frequency again
        else:
            new = step * direction <= 0.0  # turned back
        if new:
            sweep, direction = sweep + 1, 0.0  # its direction comes from its next step
        elif direction == 0.0:
            direction = 1.0 if step > 0 else -1.0
        out[k] = sweep
    return out[eis]


def _cycle_before(half_cycle: np.ndarray, eis: np.ndarray) -> np.ndarray:
    """Cycle (``half cycle // 2``, as the samples are numbered) of the last cycling record
    before each impedance record — the first one after it for a sweep before any cycling."""
    cycling = np.flatnonzero(~eis)
    rows = np.flatnonzero(eis)
    k = np.searchsorted(cycling, rows) - 1
    k = np.where(k >= 0, k, 0)
    return np.asarray(half_cycle, dtype=np.int64)[cycling[k]] // 2


def open_mpr_eis(head: Head, chunk_rows: int, **_: object) -> Source:
    """Open a BioLogic ``.mpr`` file's impedance records (PEIS/GEIS) as EIS spectra."""
    mpr = _open(head)
    data = mpr.data
    names = set(data.dtype.names or ())
    freq = np.asarray(data["freq/Hz"], dtype=np.float64) if "freq/Hz" in names else None
    if freq is None or not (freq > 0).any():
        raise InputFormatError(
            "this .mpr holds no impedance records", code="no_eis", file=head.name,
            column="freq/Hz", expected="records with freq/Hz > 0 (a PEIS/GEIS technique)",
            found=f"{len(data)} records, none with freq/Hz > 0")
    eis = freq > 0
    if {"Re(Z)/Ohm", "-Im(Z)/Ohm"} <= names:
        z_re = np.asarray(data["Re(Z)/Ohm"], dtype=np.float64)[eis]
        z_im = -np.asarray(data["-Im(Z)/Ohm"], dtype=np.float64)[eis]
    elif {"|Z|/Ohm", "Phase(Z)/deg"} <= names:
        mod = np.asarray(data["|Z|/Ohm"], dtype=np.float64)[eis]
        phase = np.radians(np.asarray(data["Phase(Z)/deg"], dtype=np.float64)[eis])
        z_re, z_im = mod * np.cos(phase), mod * np.sin(phase)
    else:
        raise InputFormatError(
            "impedance records without an impedance", code="missing_column", file=head.name,
            column="z_real_ohm", expected="Re(Z)/Ohm and -Im(Z)/Ohm, or |Z|/Ohm and "
            "Phase(Z)/deg", found=f"{sorted(names)}")
    number = _sweeps(freq, eis, data["z cycle"] if "z cycle" in names else None)
    several = int(number.max()) > 1
    stem = head.stem
    frame: dict[str, object] = {
        "source_row": np.flatnonzero(eis).astype(np.int64) + 1,
        "measurement_id": np.array([f"{stem}#{k}" if several else stem for k in number],
                                   dtype=object),
        "frequency_hz": freq[eis], "z_real_ohm": z_re, "z_imag_ohm": z_im}
    for col in ("<Ewe>/V", "Ewe/V"):
        if col in names:
            frame["voltage_volt"] = np.asarray(data[col], dtype=np.float64)[eis]
            break
    warns: list[IngestWarning] = []
    if eis.all():  # a PEIS technique file: its clock is the experiment's, its cycle unknown
        warns.append(IngestWarning(
            "eis_cycle_count_unknown", "a PEIS/GEIS .mpr carries no cycle number and its "
            "time/s counts from the start of its EC-Lab experiment, not necessarily the "
            "cell's test: cycle_count and test_time_second left unknown (state the cycle "
            "with --eis-cycle N)", head.name, 1, "cycle_count", int(number.max())))
    else:  # chained with cycling: the samples' clock and cycle numbering
        frame["test_time_second"] = np.asarray(data["time/s"], dtype=np.float64)[eis]
        if "half cycle" in names:
            frame["cycle_count"] = _cycle_before(data["half cycle"], eis)
    table = pd.DataFrame(frame)
    meta = {"biologic_start": str(getattr(mpr, "timestamp", "") or ""),
            "biologic_impedance_records": int(eis.sum()), "biologic_records": int(len(data))}

    def produce(sink: list[IngestWarning]) -> Iterator[pd.DataFrame]:
        yield from row_chunks(table, chunk_rows)

    return Source(path=head.path, format_name=EIS_FORMAT, reader_version=EIS_READER_VERSION,
                  kind="eis", metadata=meta, warnings=warns, produce=produce)
