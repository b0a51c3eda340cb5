"""Study configuration: committed TOML -> frozen dataclasses -> constructor kwargs -> MLflow params.

A study file has a top-level ``name`` and tables ``[data]``, ``[model]``, ``[train]``; every key is
checked against the dataclass fields up front (unknown keys get a did-you-mean error naming the
file and table), and the closed option sets (time/cycle terms, sources) are validated too.
"""
from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_registry.errors import FadecastError, InputFormatError
from ml.models.cycle_terms import CYCLE_TERMS
from ml.models.options import check_option
from ml.models.time_terms import TIME_TERMS
from ml.training.loop import TrainSettings

__all__ = ["DataConfig", "ModelConfig", "StudyConfig", "load_config", "flatten"]


@dataclass(frozen=True)
class DataConfig:
    """Which cells train the model and how they are split (by cell, ``ml.sources.split_by_cell``).

    ``sources`` are ``ml.sources`` names used when their folder exists (missing ones are skipped
    with a note); ``source_weight`` repeats the training cells of sources WITH a known time/cycle
    split (pybamm-dev) that many times per epoch; other sources count once.
    """

    synthetic_cells: int = 160
    synthetic_seed: int = 0
    sources: tuple[str, ...] = ("pybamm-dev",)
    source_weight: int = 3
    split_seed: int = 0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    #: share of each source's held-out (non-train, non-test) cells kept for CALIBRATION; the
    #: rest choose the epoch and the champion (never the same cells)
    calibration_share: float = 0.5
    #: sources whose cells (with a ``cycle_life`` label) fit the early-life cycle-life heads
    #: (``ml.models.cycle_life_head``); only their TRAIN splits — test splits stay unseen
    cycle_life_sources: tuple[str, ...] = ()
    #: EXTRA synthetic cells drawn for CALIBRATION only (an independent stream of the same
    #: generator, ids ``syncal_…``; never trained on, never picking epochs or champions, not
    #: tested on): a simulated source can give its calibration as many cells as it needs, where
    #: a held-out share of a fleet leaves each fade-progress bin a handful. Drawn only when the
    #: synthetic source is in the model (``synthetic_cells > 0``).
    calibration_synthetic_cells: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """FadeNet constructor arguments plus the window length."""

    time_term: str = "power"
    cycle_term: str = "power"
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 1
    n_samples: int = 32
    max_history: int = 64
    seed: int = 0
    ensemble: int = 1  # members trained from seeds seed, seed+1, …; their samples pooled

    def fade_net_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`ml.models.fade_net.FadeNet` (besides features)."""
        return {"time_term": self.time_term, "cycle_term": self.cycle_term,
                "d_model": self.d_model, "n_heads": self.n_heads, "n_layers": self.n_layers,
                "n_samples": self.n_samples, "seed": self.seed}


@dataclass(frozen=True)
class StudyConfig:
    """One study: ``name`` (the MLflow experiment), data, model and training settings."""

    name: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    register: bool = True
    model_version_label: str = "1"
    #: folder (relative to the repository root) the model is SHIPPED to after training, e.g.
    #: "models/production"; empty = not shipped. Shipping refuses sources whose licence is not
    #: known to allow it (``ml.sources.provenance``).
    ship_to: str = ""


def _build(cls: type, table: dict, where: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key not in names:
            near = difflib.get_close_matches(key, list(names), n=3)
            hint = f" Best matches are {near}." if near else ""
            raise FadecastError(f"Option '{key}' in [{where}] not recognised.{hint}",
                                code="unknown_option", file=None, column=f"{where}.{key}",
                                expected=f"one of {sorted(names)}", found=repr(key))
        if isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise FadecastError(f"bad [{where}] table: {exc}", code="bad_config",
                            column=where) from exc


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study TOML file.

    Raises
    ------
    InputFormatError
        The file is missing or not valid TOML.
    FadecastError
        Unknown key (did-you-mean), unknown time/cycle term or source, bad value type.
    """
    from ml.sources import SOURCES

    path = Path(path)
    if not path.is_file():
        raise InputFormatError("config file not found", code="missing_file", file=str(path),
                               expected="a study TOML file", found="nothing")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputFormatError(f"not valid TOML: {exc}", code="bad_toml", file=str(path)) from exc
    top = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in raw.items() if isinstance(v, dict)}
    for key in tables:
        if key not in ("data", "model", "train"):
            near = difflib.get_close_matches(key, ["data", "model", "train"], n=2)
            raise FadecastError(f"table [{key}] not recognised." +
                                (f" Best matches are {near}." if near else ""),
                                code="unknown_option", file=str(path), column=key,
                                expected="[data], [model], [train]", found=repr(key))
    try:
        cfg = StudyConfig(**{**_build(StudyConfig, top, "top level").__dict__,
                             "data": _build(DataConfig, tables.get("data", {}), "data"),
                             "model": _build(ModelConfig, tables.get("model", {}), "model"),
                             "train": _build(TrainSettings, tables.get("train", {}), "train")})
    except FadecastError as exc:
        exc.file = str(path)
        raise
    check_option("time_term", cfg.model.time_term, TIME_TERMS)
    check_option("cycle_term", cfg.model.cycle_term, CYCLE_TERMS)
    for name in cfg.data.sources + cfg.data.cycle_life_sources:
        check_option("data.sources", name, SOURCES)
    if not 0.0 <= cfg.data.calibration_share < 1.0:
        raise FadecastError("calibration_share must lie in [0, 1)", code="bad_config",
                            file=str(path), column="data.calibration_share",
                            expected="a fraction in [0, 1)",
                            found=repr(cfg.data.calibration_share))
    if not 0 <= cfg.data.synthetic_seed < 2**32:  # the calibration fleet's stream lies above
        raise FadecastError("synthetic_seed must lie in [0, 2**32)", code="bad_config",
                            file=str(path), column="data.synthetic_seed",
                            expected="a whole number in [0, 4294967296)",
                            found=repr(cfg.data.synthetic_seed))
    if cfg.data.calibration_synthetic_cells < 0:
        raise FadecastError("calibration_synthetic_cells must be 0 or more", code="bad_config",
                            file=str(path), column="data.calibration_synthetic_cells",
                            expected="a whole number >= 0",
                            found=repr(cfg.data.calibration_synthetic_cells))
    return cfg


def flatten(cfg: StudyConfig) -> dict[str, str]:
    """``{"data.synthetic_cells": "160", "model.time_term": "power", …}`` for MLflow params."""
    out: dict[str, str] = {}

    def walk(prefix: str, obj: Any) -> None:
        if dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                walk(f"{prefix}{f.name}" if not prefix else f"{prefix}.{f.name}",
                     getattr(obj, f.name))
        elif isinstance(obj, (tuple, list)):
            out[prefix] = ",".join(str(v) for v in obj)
        else:
            out[prefix] = str(obj)

    walk("", cfg)
    return out
