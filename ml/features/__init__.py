"""Per-cycle descriptors (pure numpy/pandas/scipy; no torch, no I/O).

``build_cycle_table`` (samples → per-cycle table) and ``complete_cycle_table`` (a per-cycle
table a user brings → the same derived columns; ``complete_cycle_columns`` the same as arrays)
are the one feature path every consumer uses.
``delta_q_summary`` gives Severson's ΔQ(V) summaries from two Q(V) arrays on one grid;
``fit_warburg`` / ``warburg_table`` give A_w per EIS spectrum.
"""
from ml.features.cycle_table import build_cycle_table, complete_cycle_columns, \
    complete_cycle_table
from ml.features.voltage_curves import delta_q_summary
from ml.features.warburg import fit_warburg, warburg_table

__all__ = ["build_cycle_table", "complete_cycle_columns", "complete_cycle_table",
           "delta_q_summary", "fit_warburg", "warburg_table"]
