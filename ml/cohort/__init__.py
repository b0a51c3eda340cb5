"""Cohort attribution: one degradation law shared by sibling cells, fitted jointly (numpy/scipy).

Sibling cells (same design, different protocols) separate time-driven from cycle-driven fade
the way a lab does: elapsed hours and cycle counts grow at different paces across them.
Modules: ``histories`` (a cell's protocol arrays), ``law`` (the shared law), ``prior``
(population prior JSON), ``posterior`` (MAP + Laplace), ``reference`` (plain joint least
squares), ``design`` (which sibling to run next), ``plans`` (what-if forecasts), ``document``
(the CONTRACTS answer), ``training`` (learns the prior and interval scale offline),
``commands`` (CLI). Nothing here imports torch.
"""
