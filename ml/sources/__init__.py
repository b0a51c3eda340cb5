"""Public and shared battery data as per-cycle tables (CONTRACTS column names).

Each source is one module with a ``load(root, **kw) -> list[CellRecord]`` function; the closed
table :data:`SOURCES` maps the public name to that module and to the folder it needs under
``../shared/data``. Data are read IN PLACE (never copied); nothing is downloaded.

>>> cells = load_source("pybamm-dev")            # doctest: +SKIP
>>> cells[0].cycles[["cycle_index", "discharge_capacity_ah"]]  # doctest: +SKIP
"""
from __future__ import annotations

import difflib
import importlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from data_registry.errors import FadecastError, NotFoundError
from data_registry.home import shared_data_dir

__all__ = ["CellRecord", "SOURCES", "SourceSpec", "available_sources", "load_source",
           "split_by_cell"]


@dataclass(frozen=True)
class CellRecord:
    """One cell of a source.

    Attributes
    ----------
    cell_id:
        Identifier, unique within the source (prefixed by the source, e.g. ``dev_001``,
        ``severson-train-07``).
    cycles:
        Per-cycle table, one row per cycle, CONTRACTS column names (``cycle_index``,
        ``test_time_second`` at the END of the cycle, ``discharge_capacity_ah`` …) plus
        ``test_time_estimated`` (1 where the clock was reconstructed from the protocol).
    truth:
        Per-cycle ground truth where the source has it (pybamm-dev: ``loss_time_frac``,
        ``loss_cycle_frac`` …, same ``cycle_index``), else None.
    meta:
        Cell-level facts: ``source``, ``nominal_capacity_ah``, protocol fields, labels such as
        ``cycle_life`` (cycles to 80 % of nominal), ``split_group`` (stratum for splitting).
    """

    cell_id: str
    cycles: pd.DataFrame
    truth: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceSpec:
    """Where a source lives: ``module:function`` to call and the folder it needs."""

    loader: str
    folder: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    description: str = ""
    #: a file (path inside ``folder``) the source needs besides the folder: a split that not
    #: every copy of the data carries is available only where its file is
    needs: str = ""


SOURCES: dict[str, SourceSpec] = {
    "pybamm-dev": SourceSpec("ml.sources.pybamm_dev:load", "pybamm-dev",
                             description="48 simulated cells with known time/cycle split"),
    "pybamm-cohorts-dev": SourceSpec("ml.sources.pybamm_cohorts:load", "pybamm-cohorts-dev",
                                     description="48 simulated sibling cells in 12 cohorts, "
                                                 "known time/cycle split"),
    "severson-train": SourceSpec("ml.sources.severson:load", "severson2019",
                                 (("split", "train"),), "Severson 2019 LFP, train split"),
    "severson-test1": SourceSpec("ml.sources.severson:load", "severson2019",
                                 (("split", "test1"),), "Severson 2019 LFP, test1 split"),
    # Severson's secondary test set ("test2", batch 2019-01-24): not in ../shared/data, read
    # the same way wherever a copy carries it
    "severson-test2": SourceSpec("ml.sources.severson:load", "severson2019",
                                 (("split", "test2"),), "Severson 2019 LFP, test2 split",
                                 needs="Qn_test2.csv"),
    "severson-qdlin-train": SourceSpec("ml.sources.severson_qdlin:load", "severson2019_qdlin",
                                       (("split", "train"),),
                                       "Severson cells, Q(V) cycles 2-100 + ΔQ(V) at 100"),
    "severson-qdlin-test1": SourceSpec("ml.sources.severson_qdlin:load", "severson2019_qdlin",
                                       (("split", "test1"),),
                                       "Severson cells, Q(V) cycles 2-100 + ΔQ(V) at 100"),
    "severson-qdlin-test2": SourceSpec("ml.sources.severson_qdlin:load", "severson2019_qdlin",
                                       (("split", "test2"),),
                                       "Severson cells, Q(V) cycles 2-100 + ΔQ(V) at 100",
                                       needs="test2_cycle_lives.csv"),
    "geslin2024": SourceSpec("ml.sources.geslin:load", "geslin2024",
                             description="Geslin 2024 dynamic vs CC cycling with storage"),
    "nasa-pcoe": SourceSpec("ml.sources.nasa_pcoe:load", "nasa_pcoe",
                            description="NASA Ames PCoE 18650 cells (metadata.csv)"),
    "zhang2020": SourceSpec("ml.sources.zhang2020:load", "zhang2020_eis",
                            description="Zhang 2020 LCO coin cells, capacity + EIS"),
}


def _data_root(root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    found = shared_data_dir()
    if found is None:
        raise NotFoundError(
            "shared data folder not found; set FADECAST_SHARED_DATA or place it at "
            "../shared/data beside the repository", code="shared_data_missing",
            expected="a folder ../shared/data", found="nothing")
    return found


def _spec(name: str) -> SourceSpec:
    if name not in SOURCES:
        near = difflib.get_close_matches(name, list(SOURCES), n=3)
        raise FadecastError(
            f"source '{name}' not recognised" + (f"; best matches are {near}" if near else ""),
            code="unknown_source", expected=f"one of {sorted(SOURCES)}", found=repr(name))
    return SOURCES[name]


def available_sources(root: str | Path | None = None) -> list[str]:
    """Names of the sources whose folder exists under the shared data folder.

    Returns an empty list when the shared data folder itself is absent.
    """
    try:
        base = _data_root(root)
    except NotFoundError:
        return []
    return [n for n, s in SOURCES.items() if (base / s.folder).is_dir()
            and (not s.needs or (base / s.folder / s.needs).is_file())]


def load_source(name: str, *, root: str | Path | None = None, **kw: Any) -> list[CellRecord]:
    """Load every cell of source ``name`` as :class:`CellRecord` objects.

    Parameters
    ----------
    name:
        One of :data:`SOURCES` (``pybamm-dev``, ``severson-train``, ``severson-test1``,
        ``severson-qdlin-train``, ``severson-qdlin-test1``, ``geslin2024``, ``nasa-pcoe``,
        ``zhang2020``).
    root:
        The shared data folder (default: ``data_registry.home.shared_data_dir()``).
    **kw:
        Passed to the source's loader (e.g. ``cells=["dev_001"]`` for pybamm-dev).

    Raises
    ------
    NotFoundError
        The source folder is absent (the message names it).
    """
    spec = _spec(name)
    folder = _data_root(root) / spec.folder
    if not folder.is_dir():
        raise NotFoundError(f"source '{name}' needs folder {folder}, which does not exist",
                            code="source_missing", file=str(folder),
                            expected="an existing folder", found="nothing")
    module_name, func_name = spec.loader.split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    return trend_records(loader(folder, **{**dict(spec.kwargs), **kw}), name)


def trend_records(records: list[CellRecord], source: str = "") -> list[CellRecord]:
    """Each record's cycles (and truth rows, matched on ``cycle_index``) cut to the rows that
    carry the capacity trend (:func:`ml.windows.trend_subset`: no partial cycles, pulses or
    non-check rows of a labelled test) — what the served forecast reads, so training, the
    evaluations' truth and the baselines all see the capacity the forecast is about. One
    warning names the rows left out."""
    from ml.windows import trend_subset

    out, left = [], []
    for rec in records:
        cycles, rows = trend_subset(rec.cycles)
        if rows is None or not rows.changed:
            out.append(rec)
            continue
        kept = set(cycles["cycle_index"].astype("int64"))
        left.append(f"{rec.cell_id} cycle(s) "
                    f"{sorted(set(rec.cycles['cycle_index'].astype('int64')) - kept)[:5]}")
        truth = rec.truth
        if truth is not None and "cycle_index" in truth:
            truth = truth[truth["cycle_index"].astype("int64").isin(kept)].reset_index(drop=True)
        out.append(CellRecord(rec.cell_id, cycles, truth, dict(rec.meta)))
    if left:
        warnings.warn(f"{source or 'records'}: rows left out of the capacity trend (partial "
                      f"cycles, pulses, non-check rows; ml.features.cycle_kinds): "
                      f"{'; '.join(left[:8])}{' …' if len(left) > 8 else ''}", stacklevel=2)
    return out


from ml.sources.splits import split_by_cell  # noqa: E402  (re-export; splits needs CellRecord)
