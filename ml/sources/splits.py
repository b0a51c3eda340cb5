"""THE one deterministic split of cells into train / val / test (grouped by cell: no cell's
cycles ever appear in two parts).

Each cell's place depends only on a SHA-256 hash of ``seed`` and its id, never on the order
or the number of cells given. Without strata, adding or removing cells never moves another
cell. With strata (``groups``, or ``meta["split_group"]`` of :class:`~ml.sources.CellRecord`
inputs, e.g. pybamm-dev's (C-rate, rest) groups), each group is sampled systematically: its
cells, ordered by hash, sit at evenly spaced points on a circle turned by a per-group hash
offset, and the arcs [0, test) and [test, test + val) pick test and val cells. So a group of
n cells gives floor or ceil of n·fraction to each part; adding a cell can move cells of ITS
group only.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Iterable, Mapping

from data_registry.errors import FadecastError

PARTS = ("train", "val", "test")


def _unit_hash(text: str) -> float:
    """A uniform number in [0, 1) from the first 8 bytes of SHA-256(text)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2.0**64


def _part(u: float, val_fraction: float, test_fraction: float) -> str:
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def split_by_cell(cells: Iterable, *, seed: int = 0, val_fraction: float = 0.2,
                  test_fraction: float = 0.2,
                  groups: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Split cell ids into ``{"train", "val", "test"}`` lists (each sorted).

    Parameters
    ----------
    cells:
        Cell ids, or :class:`ml.sources.CellRecord` objects (their ``meta["split_group"]``
        stratifies unless ``groups`` is given).
    seed:
        Different seeds give independent splits.
    val_fraction, test_fraction:
        Target shares in [0, 1) with a sum below 1.
    groups:
        Optional ``cell_id -> stratum``; cells missing from it form their own stratum.

    Raises
    ------
    FadecastError
        Duplicate ids or fractions out of range.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1
            and val_fraction + test_fraction < 1):
        raise FadecastError("split fractions out of range", code="bad_split_fraction",
                            expected="val, test in [0, 1) with val + test < 1",
                            found=f"val={val_fraction}, test={test_fraction}")
    ids: list[str] = []
    strata: dict[str, str] = {}
    for item in cells:
        cid = item if isinstance(item, str) else item.cell_id
        ids.append(cid)
        if not isinstance(item, str) and "split_group" in item.meta:
            strata[cid] = str(item.meta["split_group"])
    if groups is not None:
        strata = {c: str(groups[c]) for c in ids if c in groups}
    dup = sorted({c for c in ids if ids.count(c) > 1}) if len(set(ids)) != len(ids) else []
    if dup:
        raise FadecastError("duplicate cell ids in split input", code="duplicate_cell",
                            expected="unique ids", found=str(dup[:5]))
    out: dict[str, list[str]] = {p: [] for p in PARTS}
    members: dict[str, list[str]] = defaultdict(list)
    for cid in ids:
        if cid in strata:
            members[strata[cid]].append(cid)
        else:
            out[_part(_unit_hash(f"{seed}:{cid}"), val_fraction, test_fraction)].append(cid)
    for name, group in members.items():
        group.sort(key=lambda c: _unit_hash(f"{seed}:{c}"))
        offset = _unit_hash(f"{seed}:group:{name}")
        n = len(group)
        for rank, cid in enumerate(group):
            u = ((rank + 0.5) / n + offset) % 1.0
            out[_part(u, val_fraction, test_fraction)].append(cid)
    return {p: sorted(v) for p, v in out.items()}
