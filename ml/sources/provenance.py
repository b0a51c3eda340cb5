"""Where each training source comes from, under which licence, and whether a model trained on it
may be shipped in the repository.

Licences as stated in ``../shared/data/MANIFEST.md`` and the folders' READMEs. A source whose
licence is not stated as an open one (``shippable=False``) may be used for evaluation, never for
the shipped production model: ``fadecast train`` refuses to ship a model trained on it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Provenance", "PROVENANCE", "provenance", "training_data_entry"]


@dataclass(frozen=True)
class Provenance:
    """A source's origin, citation, licence and whether a model trained on it may ship."""

    citation: str
    licence: str
    shippable: bool
    chemistry: str | None = None


PROVENANCE: dict[str, Provenance] = {
    "synthetic": Provenance("fadecast ml.synthetic (generated at training time)",
                            "project's own (generated)", True),
    "pybamm-dev": Provenance(
        "simulated with PyBaMM for this project (Sulzer et al., J. Open Res. Softw. 2021; "
        "Chen et al., J. Electrochem. Soc. 2020; O'Kane et al., PCCP 2022)",
        "no restriction beyond citing PyBaMM and the parameter sets", True, "NMC811/graphite"),
    "pybamm-cohorts-dev": Provenance(
        "simulated with PyBaMM for this project (as pybamm-dev)",
        "no restriction beyond citing PyBaMM and the parameter sets", True, "NMC811/graphite"),
    "severson-train": Provenance(
        "Severson et al., Nat. Energy 4, 383 (2019), data.matr.io", "CC-BY-4.0", True,
        "LFP/graphite"),
    "severson-test1": Provenance(
        "Severson et al., Nat. Energy 4, 383 (2019), data.matr.io", "CC-BY-4.0", True,
        "LFP/graphite"),
    "severson-qdlin-train": Provenance(
        "Attia et al. 2021 re-analysis of Severson et al. 2019 (Q(V) curves)", "MIT", True,
        "LFP/graphite"),
    "severson-qdlin-test1": Provenance(
        "Attia et al. 2021 re-analysis of Severson et al. 2019 (Q(V) curves)", "MIT", True,
        "LFP/graphite"),
    "geslin2024": Provenance(
        "Geslin et al., Nat. Energy 2024 (Stanford Digital Repository)",
        "Stanford Digital Repository terms; no open licence stated in ../shared/data", False),
    "nasa-pcoe": Provenance("Saha & Goebel 2007, NASA Ames PCoE",
                            "US-government public data", True),
    "zhang2020": Provenance("Zhang et al., Nat. Commun. 2020 (Zenodo)", "CC-BY-4.0", True,
                            "LCO/graphite"),
}


def provenance(source: str) -> Provenance:
    """The provenance of ``source``; an unknown source is NOT shippable (licence unknown)."""
    return PROVENANCE.get(source, Provenance("unknown", "unknown", False))


def training_data_entry(source: str, *, cells: int, role: str) -> dict:
    """One entry of the card's ``training_data`` list."""
    return {"source": source, "role": role, "cells": int(cells), **asdict(provenance(source))}
