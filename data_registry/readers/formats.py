"""The table of every format fadecast knows, and detection by content.

Each :class:`Format` row is data: name, kind, what it needs (an optional extra or a system
tool), a detector over the file head, and the opener (``"module:function"``, imported lazily so
optional dependencies load only when used). Detection runs every detector; exactly one match
wins. Generic layouts are a fallback: they count only when no vendor format matched.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from data_registry.errors import InputFormatError, UnknownFormatError
from data_registry.readers import (arbin_csv, arbin_res, basytec, battdat, batteryarchive, bdf,
                                   biologic_mpr, biologic_text, capacity_list, eis_matrix,
                                   eis_table, eis_text, excel, gamry, generic_csv, indigo, maccor,
                                   maccor_eis, nasa_pcoe, neware_binary, neware_csv,
                                   neware_regular, novonix, pec, refused, zview)
from data_registry.readers.numeric_lines import numeric_matrix_shape
from data_registry.readers.sniff import Head, read_head


@dataclass(frozen=True)
class Format:
    """One readable (or recognised-but-refused) file format."""

    name: str
    kind: str
    needs: str  # "" | "extra:<name>" | "tool:<name>" | "unsupported"
    detector: Callable[[Head], bool]
    opener: str  # "module:function" in data_registry.readers
    description: str
    generic: bool = False
    gzip: bool = True  # text formats stream through gzip; binary libraries need a plain file
    #: the detector of a FORCED format (``--format``), when it accepts more than detection
    #: may (a cycling .mpr's impedance records read as EIS); default: ``detector``
    forced: Callable[[Head], bool] | None = None

    def accepts(self, head: Head) -> bool:
        """Whether this format, forced by the user, can read ``head``."""
        return (self.forced or self.detector)(head)


def _generic(name: str) -> Callable[[Head], bool]:
    return lambda head: head.is_text and generic_csv.detect_layout(head) == name


_R = "data_registry.readers."

FORMATS: tuple[Format, ...] = (
    Format("generic_csv", "samples", "", _generic("generic_csv"),
           _R + "generic_csv:open_generic", "canonical per-sample CSV (documented aliases)",
           generic=True),
    Format("generic_cycles_csv", "cycles", "", _generic("generic_cycles_csv"),
           _R + "generic_csv:open_generic", "per-cycle summary CSV", generic=True),
    Format("generic_eis_csv", "eis", "", _generic("generic_eis_csv"),
           _R + "generic_csv:open_generic", "EIS spectra CSV (CONTRACTS.md layout)",
           generic=True),
    Format("capacity_table_csv", "cycles", "", _generic("capacity_table_csv"),
           _R + "generic_csv:open_generic", "per-cycle capacity table: a cycle column and one "
           "or more capacity columns (one per cell), any headers; unit from the header or "
           "inferred", generic=True),
    Format("eis_text", "eis", "", eis_text.is_headerless_eis,
           _R + "eis_text:open_headerless_eis", "headerless EIS text export: columns f, Z′, "
           "Z″ or −Z″ (optional |Z|, cycle) identified by content; spectra split where the "
           "sweep restarts", generic=True),
    Format("eis_matrix_txt", "eis", "", eis_matrix.is_eis_matrix,
           _R + "eis_matrix:open_eis_matrix", "headerless EIS matrix, one spectrum per line: "
           "Re(Z) at F frequencies then Im(Z) or −Im(Z) at the same F; the F frequencies from "
           "--frequencies FILE or a frequencies*.csv / *freq* file beside it or in its parent "
           "folder", generic=True),
    Format("eis_table_txt", "eis", "", eis_table.is_eis_table,
           _R + "eis_table:open_eis_table", eis_table.SPEC.description, generic=True),
    Format("capacity_list_txt", "cycles", "", capacity_list.is_capacity_list,
           _R + "capacity_list:open_capacity_list", "headerless capacity list, one cycle per "
           "line (capacity, or 'cycle capacity'); unit stated with --capacity-unit or "
           "inferred and warned; no clock: needs --hours-per-cycle or --c-rate", generic=True),
    Format("arbin_csv", "samples", "", arbin_csv.is_arbin_csv,
           _R + "arbin_csv:open_arbin_csv", "Arbin CSV export (+ _Metadata.csv sidecar)"),
    Format("arbin_metadata_csv", "samples", "unsupported", arbin_csv.is_arbin_metadata,
           "", "Arbin _Metadata.csv sidecar: ingest the data file beside it"),
    Format("basytec_txt", "samples", "", basytec.is_basytec, _R + "basytec:open_basytec",
           basytec.SPEC.description),
    Format("maccor_txt", "samples", "", maccor.is_maccor, _R + "maccor:open_maccor",
           "Maccor text export (BEEP and cellpy header styles)"),
    Format("maccor_eis", "eis", "", maccor_eis.is_maccor_eis,
           _R + "maccor_eis:open_maccor_eis", maccor_eis.SPEC.description),
    Format("gamry_dta", "eis", "", gamry.is_gamry_dta, _R + "gamry:open_gamry_dta",
           "Gamry Framework .DTA (EXPLAIN/TAG header): the impedance spectra of its ZCURVE "
           "tables"),
    Format("zview_z", "eis", "", zview.is_zview, _R + "zview:open_zview",
           "ZPlot / ZView .z impedance file (Freq(Hz) … Z'(a) Z''(b); ZPLOT2 ASCII or "
           "ZPlotW/Z60W layout)"),
    Format("bdf_csv", "samples", "", bdf.SPEC.detect, _R + "bdf:open_bdf",
           bdf.SPEC.description),
    Format("batteryarchive_timeseries_csv", "samples", "", batteryarchive.TIMESERIES.detect,
           _R + "batteryarchive:open_timeseries", batteryarchive.TIMESERIES.description),
    Format("batteryarchive_cycles_csv", "cycles", "", batteryarchive.CYCLES.detect,
           _R + "batteryarchive:open_cycles", batteryarchive.CYCLES.description),
    Format("pec_csv", "samples", "", pec.SPEC.detect, _R + "pec:open_pec", pec.SPEC.description),
    Format("battdat_raw_csv", "samples", "", battdat.is_battdat_raw,
           _R + "battdat:open_battdat_raw",
           "battery-data-toolkit raw time series with EIS columns (EIS rows skipped)"),
    Format("battdat_summary_csv", "cycles", "", battdat.is_battdat_summary,
           _R + "battdat:open_battdat_summary",
           "battery-data-toolkit per-cycle summary (cycles without discharge skipped)"),
    Format("nasa_pcoe_metadata_csv", "cycles", "", nasa_pcoe.is_nasa_metadata,
           _R + "nasa_pcoe:open_nasa_metadata", "NASA Ames PCoE metadata.csv (one row per "
           "charge/discharge/impedance operation of many cells): each valid discharge of one "
           "battery_id is a cycle; --cell-column battery_id splits the cells"),
    Format("novonix_csv", "samples", "", novonix.is_novonix, _R + "novonix:open_novonix",
           novonix.SPEC.description),
    Format("novonix_summary_csv", "cycles", "", novonix.is_novonix_summary,
           _R + "novonix:open_novonix_summary",
           "Novonix per-cycle summary (*_metadata.csv; no elapsed time: needs the protocol)"),
    Format("neware_csv", "samples", "", neware_csv.SPEC.detect,
           _R + "neware_csv:open_neware_csv", neware_csv.SPEC.description),
    Format("neware_regular_csv", "samples", "", neware_regular.is_regular_export,
           _R + "neware_regular:open_neware_regular",
           "Neware regular export CSV (cycle / step / record levels)"),
    Format("biologic_txt", "samples", "", biologic_text.is_biologic_cycling,
           _R + "biologic_text:open_biologic_text", biologic_text.SAMPLES.description),
    Format("biologic_peis_txt", "eis", "", biologic_text.is_biologic_eis,
           _R + "biologic_text:open_biologic_eis", biologic_text.EIS.description),
    Format("biologic_mpr", "samples", "extra:biologic", biologic_mpr.is_mpr,
           _R + "biologic_mpr:open_mpr", "BioLogic EC-Lab binary .mpr (galvani, GPL extra)",
           gzip=False, forced=biologic_mpr.is_any_mpr),
    Format(biologic_mpr.EIS_FORMAT, "eis", "extra:biologic", biologic_mpr.is_mpr_eis,
           _R + "biologic_mpr:open_mpr_eis", "BioLogic EC-Lab binary .mpr of a PEIS/GEIS "
           "technique (galvani, GPL extra); forced on a cycling .mpr: its impedance records",
           gzip=False, forced=biologic_mpr.has_mpr_eis),
    Format("neware_nda", "samples", "", neware_binary.is_nda,
           _R + "neware_binary:open_neware_binary", "Neware BTS binary .nda (fastnda)",
           gzip=False),
    Format("neware_ndax", "samples", "", neware_binary.is_ndax,
           _R + "neware_binary:open_neware_binary", "Neware BTS binary .ndax (fastnda)",
           gzip=False),
    Format("indigo_h5", "samples", "", indigo.is_indigo, _R + "indigo:open_indigo",
           "Indigo HDF5 (time_series_data frame)",
           gzip=False),
    Format("landt_xlsx", "samples", "", excel.is_sample_workbook, _R + "excel:open_xlsx",
           "cycler Excel workbook, .xlsx or legacy .xls (Landt/Arbin/Neware-style data sheets)",
           gzip=False),
    Format("xlsx_cycles", "cycles", "", excel.is_cycle_workbook,
           _R + "excel:open_xlsx_cycles", "Excel workbook (.xlsx/.xls) of per-cycle rows only (Arbin "
           "Statistics, Neware cycle sheet): cycle and discharge capacity columns; no time "
           "column needs --hours-per-cycle / --c-rate", gzip=False),
    Format("arbin_res", "samples", "tool:mdbtools", arbin_res.is_res,
           _R + "arbin_res:open_arbin_res", "Arbin .res (MS-Access; mdb-export)",
           gzip=False),
    Format("biologic_mpl", "samples", "unsupported", refused.is_biologic_log, "",
           "BioLogic .mpl acquisition log (settings only): ingest the .mpr or the text export "
           "beside it"),
    Format("matlab_mat", "samples", "unsupported", refused.is_matlab, "",
           "MATLAB .mat file (variables in MATLAB's own structs, no fixed layout): export the "
           "cycling data to CSV (e.g. writetable) and ingest that; NASA PCoE cells: ingest their "
           "metadata.csv (per-cycle capacities of every cell; --cell-column battery_id)"),
    Format("legacy_excel_xls", "samples", "unsupported", refused.is_legacy_excel, "",
           "legacy Office (OLE2) file that does not open as an Excel workbook (an .xls "
           "workbook is read like an .xlsx one): save the data as .xlsx or CSV"),
    Format("prime_instrument_csv", "samples", "unsupported", refused.is_prime_instrument, "",
           "PRIME instrument custom CSV: current and capacity have no units and 2 decimals "
           "(all 0.00 in practice), so no usable samples"),
)

FORMAT_NAMES = tuple(f.name for f in FORMATS)
#: formats of files that may ALSO hold EIS spectra, and the EIS format that reads them
#: (``fadecast warburg --eis`` of such a file reads its spectra)
EIS_PART: dict[str, str] = {"biologic_mpr": biologic_mpr.EIS_FORMAT}


def get_format(name: str) -> Format:
    """The :class:`Format` called ``name``; the error lists the known names."""
    for f in FORMATS:
        if f.name == name:
            return f
    import difflib
    near = difflib.get_close_matches(name, FORMAT_NAMES, n=3)
    raise UnknownFormatError(
        f"unknown format '{name}'" + (f"; did you mean {near}?" if near else ""),
        code="unknown_format", expected=f"one of {list(FORMAT_NAMES)}", found=repr(name))


def candidates(head: Head) -> list[Format]:
    """Every format whose detector accepts ``head`` (vendor formats shadow generic ones)."""
    hits = []
    for f in FORMATS:
        try:
            if f.detector(head):
                hits.append(f)
        except Exception:  # noqa: BLE001 - a detector must never break detection of others
            continue
    vendor = [f for f in hits if not f.generic]
    return vendor or hits


#: how an unknown-format error about a headerless numeric matrix begins (callers that would
#: otherwise report a missing column report this instead)
MATRIX_MESSAGE = "unknown file format: a headerless table of numbers"
#: fewest columns that make a numeric table a matrix (one cell or quantity per line)
MATRIX_MIN_COLUMNS = 10
def detect_head(head: Head) -> Format:
    """Detect the format of an already-read head (see :func:`detect`)."""
    hits = candidates(head)
    if len(hits) == 1:
        return hits[0]
    if not hits:
        shape = numeric_matrix_shape(head, MATRIX_MIN_COLUMNS)
        if shape is not None:
            raise UnknownFormatError(
                f"{MATRIX_MESSAGE} ({shape[1]} numbers on each of the "
                f"first {shape[0]} lines); a matrix with one cell per line (cycles across) is "
                "not read: for one cell, write two named columns 'cycle,capacity' (add "
                "test_time_second if you have it) or one capacity per line "
                "(capacity_list_txt, with --hours-per-cycle)", code="unknown_format",
                file=head.name, expected="named columns (cycle_index, test_time_second, "
                "discharge_capacity_ah …) or one capacity per line",
                found=f"{shape[0]}+ lines of {shape[1]} numbers, first "
                      f"{head.lines[0][:60]!r}")
        what = ("binary data" if not head.is_text else
                f"first line {head.lines[0][:80]!r}" if head.lines else "no line of text")
        table = generic_csv.table_diagnosis(head)
        raise UnknownFormatError(
            "unknown file format: no reader recognises it" + (f": {table}" if table else ""),
            code="unknown_format", file=head.name, expected=f"one of {list(FORMAT_NAMES)}",
            found=what)
    raise UnknownFormatError(
        "ambiguous file format: several readers recognise it; pass --format",
        code="ambiguous_format", file=head.name,
        expected="exactly one format", found=f"candidates {[f.name for f in hits]}")


def detect(path: str | Path) -> str:
    """Name of the format of ``path``, detected by content (magic bytes, header lines).

    Raises :class:`UnknownFormatError` listing the candidates when none or several match,
    :class:`InputFormatError` (``empty_file``) for an empty file.
    """
    return detect_head(read_head(path)).name


def opener(fmt: Format) -> Callable:
    """Import the format's open function (lazily)."""
    if fmt.needs == "unsupported" or not fmt.opener:
        raise InputFormatError(
            f"recognised but not supported: {fmt.description}", code="unsupported_format",
            expected="a supported format", found=fmt.name)
    module, _, func = fmt.opener.partition(":")
    return getattr(importlib.import_module(module), func)
