"""FROZEN copy of ml.features at commit 309665f (before the issue-13 speed work): the
reference that tests/test_features_equivalence.py compares the current path against, value
for value. Never edit it; it is not imported by the package.

Per-cycle descriptors (pure numpy/pandas/scipy; no torch, no I/O).

``build_cycle_table`` (samples → per-cycle table) and ``complete_cycle_table`` (a per-cycle
table a user brings → the same derived columns) are the one feature path every consumer uses.
``delta_q_summary`` gives Severson's ΔQ(V) summaries from two Q(V) arrays on one grid;
``fit_warburg`` / ``warburg_table`` give A_w per EIS spectrum.
"""
from reference.features_v1.cycle_table import build_cycle_table, complete_cycle_table
from reference.features_v1.voltage_curves import delta_q_summary
from reference.features_v1.warburg import fit_warburg, warburg_table

__all__ = ["build_cycle_table", "complete_cycle_table", "delta_q_summary", "fit_warburg",
           "warburg_table"]
