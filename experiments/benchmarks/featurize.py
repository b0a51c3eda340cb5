"""Benchmark of the feature pipeline: rows/s per core and peak memory of build_cycle_table.

Generates a per-sample table of many cells (``--rows``, default 10 million), then times, on one
thread:

Times are CPU seconds on one thread (rows/s per core), best of ``--repeat``.

1. the per-cycle descriptors (capacity, CE, energies, mean voltages, polarization, timing):
   ``prepare_samples`` + the numpy ``reduceat`` kernels, against a straightforward pandas
   groupby implementation of the same descriptors (written below); also on the same rows
   as ONE cell (no ``cell_id``), where blocks start inside the cell;
2. the voltage-curve descriptors (Q(V), ΔQ(V), dQ/dV) separately;
3. the whole ``build_cycle_table`` (with and without voltage curves), with its peak memory
   (tracemalloc: numpy and pandas buffers are traced).

4. against the plain pandas groupby of capacity, time and mean voltage per cycle (the issue-13
   baseline) and against the previous implementation (``reference.features_v1`` from git history, the
   frozen copy; its tables are checked equal to today's, bit for bit, outside the sample-threshold
   columns, which are causal since issue 10).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python experiments/benchmarks/featurize.py --rows 10000000``
(issue 13's table: ``--rows 4000000 --cells 200``)
Prints one line per measurement; ``--json`` prints one JSON document instead.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import tracemalloc

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ml.features import build_cycle_table  # noqa: E402
from ml.features.capacity import charge_flows  # noqa: E402
from ml.features.catalog import SAMPLE_THRESHOLD_COLUMNS  # noqa: E402
from ml.features.sample_cycles import sample_cycles  # noqa: E402
from ml.features.sample_frame import prepare_samples  # noqa: E402
from ml.features.voltage_curves import curve_descriptors  # noqa: E402


def make_samples(rows: int, rows_per_cycle: int = 500, cycles_per_cell: int = 200,
                 seed: int = 0) -> pd.DataFrame:
    """A synthetic many-cell table: each cycle = CC charge, rest, CC discharge, rest.

    Voltage follows a smooth curve of state of charge plus IR drop and noise; capacity counters
    are cumulative within the cycle, as BDF writes them. 1 Ah cells at 0.5–1.5 A (differing
    by cell, so rest thresholds differ per cell), 500 rows per cycle.
    """
    rng = np.random.default_rng(seed)
    n_cycles = max(1, rows // rows_per_cycle)
    rows = n_cycles * rows_per_cycle
    k = np.arange(rows_per_cycle)
    q = rows_per_cycle // 4
    phase = np.select([k < q, k < 2 * q, k < 3 * q], [0, 1, 2], 3)  # charge, rest, dis, rest
    cur = np.select([phase == 0, phase == 2], [1.0, -1.0], 0.0)
    soc = np.where(phase == 0, k / q, np.where(phase == 1, 1.0, np.where(
        phase == 2, 1.0 - (k - 2 * q) / q, 0.0)))
    volt = 3.0 + 1.1 * soc - 0.2 * np.exp(-10 * soc) + 0.05 * cur
    dt = 3600.0 / q
    cycle_global = np.repeat(np.arange(n_cycles), rows_per_cycle)
    fade = 1.0 - 0.001 * (cycle_global % cycles_per_cell)
    cell = cycle_global // cycles_per_cell
    rate = (0.5 + 0.25 * (cell % 5))  # cells differ in current: per-row rest thresholds
    current = np.tile(cur, n_cycles) * fade * rate
    voltage = np.tile(volt, n_cycles) + rng.normal(0.0, 1e-3, rows)
    step_t = np.tile(np.arange(rows_per_cycle) * dt, n_cycles)
    t = (cycle_global % cycles_per_cell) * rows_per_cycle * dt + step_t
    ch = np.tile(np.where(phase == 0, (k + 1) * dt / 3600.0, np.where(phase >= 1, q * dt / 3600,
                                                                      0.0)), n_cycles) * fade * rate
    dis = np.tile(np.where(phase == 2, (k - 2 * q + 1) * dt / 3600.0,
                           np.where(phase == 3, q * dt / 3600, 0.0)), n_cycles) * fade * rate
    n_cells = int(cell.max()) + 1
    ids = np.array([f"cell{c:04d}" for c in range(n_cells)], dtype=object)
    return pd.DataFrame({
        "cell_id": pd.Categorical.from_codes(cell, categories=ids),
        "test_time_second": t, "cycle_count": (cycle_global % cycles_per_cell) + 1,
        "current_ampere": current, "voltage_volt": voltage,
        "charging_capacity_ah": ch, "discharging_capacity_ah": dis,
    })


def naive_pandas(df: pd.DataFrame) -> pd.DataFrame:
    """The same per-cycle descriptors written as a plain pandas groupby."""
    df = df.sort_values(["cell_id", "test_time_second"], kind="stable")
    g_cell = df.groupby("cell_id", observed=True)
    dt = g_cell["test_time_second"].diff().fillna(0.0)
    i = df["current_ampere"]
    v = df["voltage_volt"]
    thr = g_cell["current_ampere"].transform(lambda s: s.abs().max()) * 1e-3
    prev_i = g_cell["current_ampere"].shift().fillna(0.0)
    prev_v = g_cell["voltage_volt"].shift().fillna(v)
    p_ch = 0.5 * (v * i.clip(lower=0) + prev_v * prev_i.clip(lower=0)) * dt / 3600
    p_dis = 0.5 * (v * (-i).clip(lower=0) + prev_v * (-prev_i).clip(lower=0)) * dt / 3600
    at_rest = (i.abs() <= thr) & (prev_i.abs() <= thr)
    work = pd.DataFrame({
        "cell_id": df["cell_id"], "cycle_count": df["cycle_count"],
        "t": df["test_time_second"], "v": v,
        "ch_ah": df["charging_capacity_ah"], "dis_ah": df["discharging_capacity_ah"],
        "ch_wh": p_ch, "dis_wh": p_dis, "rest_s": dt.where(at_rest, 0.0),
        "ch_s": dt.where(i > thr, 0.0), "dis_s": dt.where(i < -thr, 0.0),
        "v_ch": v.where(i > thr), "v_dis": v.where(i < -thr),
    })
    out = work.groupby(["cell_id", "cycle_count"], observed=True).agg(
        start=("t", "first"), end=("t", "last"), charge_capacity_ah=("ch_ah", "max"),
        discharge_capacity_ah=("dis_ah", "max"), charge_energy_wh=("ch_wh", "sum"),
        discharge_energy_wh=("dis_wh", "sum"), rest_second=("rest_s", "sum"),
        charge_duration_second=("ch_s", "sum"), discharge_duration_second=("dis_s", "sum"),
        end_of_charge_voltage_volt=("v_ch", "last"),
        end_of_discharge_voltage_volt=("v_dis", "last"))
    out["mean_charge_voltage_volt"] = out["charge_energy_wh"] / out["charge_capacity_ah"]
    out["mean_discharge_voltage_volt"] = out["discharge_energy_wh"] / out[
        "discharge_capacity_ah"]
    out["coulombic_efficiency"] = out["discharge_capacity_ah"] / out["charge_capacity_ah"]
    out["polarization_volt"] = out["mean_charge_voltage_volt"] - out[
        "mean_discharge_voltage_volt"]
    out["cycle_duration_second"] = out["end"] - out.groupby(level=0, observed=True)[
        "end"].shift().fillna(out["start"])
    return out.reset_index()


def plain_groupby(df: pd.DataFrame) -> pd.DataFrame:
    """The plain pandas baseline of the issue: capacity, time and mean voltage per cycle."""
    return df.groupby(["cell_id", "cycle_count"], observed=True).agg(
        charge_capacity_ah=("charging_capacity_ah", "max"),
        discharge_capacity_ah=("discharging_capacity_ah", "max"),
        test_time_second=("test_time_second", "last"),
        mean_voltage_volt=("voltage_volt", "mean"))


def previous_build():
    """``build_cycle_table`` as it was before the issue-13 speed work (the frozen copy the
    equivalence tests compare against), or None outside a checkout with tests/."""
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parents[2] / "tests"
    if not (tests / "reference" / "__init__.py").is_file():
        return None
    sys.path.insert(0, str(tests))
    import reference

    if not reference.AVAILABLE:
        print(f"note: previous implementation unavailable: {reference.WHY_UNAVAILABLE}")
        return None
    from reference.features_v1 import build_cycle_table as old
    return old


def fast_descriptors(df: pd.DataFrame) -> pd.DataFrame:
    """prepare_samples + the reduceat kernels build_cycle_table runs (block by block)."""
    cols = sample_cycles(prepare_samples(df), voltage_curves=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["coulombic_efficiency"] = cols["discharge_capacity_ah"] / cols["charge_capacity_ah"]
    cols["polarization_volt"] = cols["mean_charge_voltage_volt"] - cols[
        "mean_discharge_voltage_volt"]
    return cols


CPU_SPLIT: dict[str, tuple[float, float]] = {}


def best_of(fn, repeat: int, label: str | None = None) -> tuple[float, object]:
    """Best CPU time (user + system s) of ``repeat`` calls — on one thread, CPU seconds are
    core seconds, and unlike wall time they are not inflated by other processes sharing the
    cores. System time is mostly the kernel zeroing pages of freshly allocated arrays."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        result = fn()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        user, sys_ = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
        if user + sys_ < best:
            best = user + sys_
            if label:
                CPU_SPLIT[label] = (user, sys_)
    return best, result


def peak_mib(fn) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2 ** 20


def per_request_completion(n_cycles: int = 200, calls: int = 300) -> dict[str, float]:
    """complete_cycle_table on one 200-cycle history (the forecast path's input): every
    column vs only the columns the model reads (``ml.windows`` asks for these), thread CPU
    ms p50 over interleaved calls; the subset's values are checked equal to the full table's."""
    import time

    from ml.features import complete_cycle_table
    from ml.synthetic import make_cell
    from ml.windows import _TABLE_COLUMNS

    hist = make_cell("h", seed=7, n_cycles=n_cycles, stop_retention=0.0,
                     with_polarization=True).cycles.drop(columns=["cell_id"])
    full = complete_cycle_table(hist)
    sub = complete_cycle_table(hist, columns=_TABLE_COLUMNS)
    pd.testing.assert_frame_equal(sub, full[list(sub.columns)], check_exact=True)
    ms: dict[str, list[float]] = {"all_columns": [], "model_columns": []}
    for _ in range(calls):
        for key, cols in (("all_columns", None), ("model_columns", _TABLE_COLUMNS)):
            t0 = time.thread_time_ns()
            complete_cycle_table(hist, columns=cols)
            ms[key].append((time.thread_time_ns() - t0) / 1e6)
    return {f"complete_{n_cycles}_cycles_{k}_cpu_ms_p50": round(float(np.median(v)), 3)
            for k, v in ms.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--rows-per-cycle", type=int, default=500)
    p.add_argument("--cells", type=int, default=None,
                   help="spread the rows over this many cells (default: 200 cycles per cell)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(1)
    except ImportError:
        pass

    per_cell = (max(1, args.rows // args.rows_per_cycle // args.cells) if args.cells
                else 200)
    df = make_samples(args.rows, args.rows_per_cycle, cycles_per_cell=per_cell)
    n = len(df)
    input_mib = df.memory_usage(deep=True).sum() / 2 ** 20
    res: dict[str, object] = {"rows": n, "cells": int(df["cell_id"].nunique()),
                              "cycles": int(df.groupby(["cell_id", "cycle_count"],
                                                       observed=True).ngroups),
                              "input_mib": round(input_mib, 1)}
    # numba kernels compile (or load from their disk cache) on first use: not timed
    build_cycle_table(df.iloc[:20 * args.rows_per_cycle], voltage_curves=True)
    t_fast, fast = best_of(lambda: fast_descriptors(df), args.repeat, "fast")
    t_naive, naive = best_of(lambda: naive_pandas(df), max(1, args.repeat - 1), "naive")
    # The same rows as ONE long cell (cells laid end to end in time and cycle number).
    code = df["cell_id"].cat.codes.to_numpy().astype(np.int64)
    span = float(df["test_time_second"].max()) + 1.0
    one_cell = df.drop(columns=["cell_id"]).assign(
        test_time_second=df["test_time_second"].to_numpy() + code * span,
        cycle_count=df["cycle_count"].to_numpy() + code * int(df["cycle_count"].max()))
    t_one, _ = best_of(lambda: fast_descriptors(one_cell), args.repeat)
    one_cell = None  # free the copy before the next measurement
    # Same numbers from both (guards against benchmarking different work).
    np.testing.assert_allclose(fast["discharge_energy_wh"], naive["discharge_energy_wh"],
                               rtol=1e-9)
    np.testing.assert_allclose(fast["rest_second"], naive["rest_second"], rtol=1e-9)
    blocks = [(b, charge_flows(b)) for b in prepare_samples(df).blocks()]
    t_curves, _ = best_of(lambda: [curve_descriptors(b, f) for b, f in blocks], 1)
    blocks = []
    t_build, table = best_of(lambda: build_cycle_table(df, voltage_curves=False), args.repeat)
    t_build_all, table_all = best_of(lambda: build_cycle_table(df, voltage_curves=True), 1)
    t_plain, _ = best_of(lambda: plain_groupby(df), args.repeat)
    old = previous_build()
    t_old = t_old_all = float("nan")
    if old is not None:  # the previous implementation, same table, values checked equal
        # except the sample-threshold columns: the previous build took whole-file thresholds,
        # today's are causal (issue 10; tests/test_features_equivalence.py covers those)
        same = [c for c in table.columns if c not in SAMPLE_THRESHOLD_COLUMNS]
        t_old, old_table = best_of(lambda: old(df, voltage_curves=False), 1)
        pd.testing.assert_frame_equal(table[same], old_table[same], check_exact=True)
        t_old_all, old_table = best_of(lambda: old(df, voltage_curves=True), 1)
        pd.testing.assert_frame_equal(table_all[same], old_table[same], check_exact=True)
        old_table = None
    res.update({
        "per_cycle_descriptors_s": round(t_fast, 3),
        "per_cycle_descriptors_mrows_per_s": round(n / t_fast / 1e6, 1),
        "per_cycle_descriptors_user_s/sys_s": "/".join(f"{x:.3f}" for x in CPU_SPLIT["fast"]),
        "per_cycle_descriptors_mrows_per_user_s": round(n / CPU_SPLIT["fast"][0] / 1e6, 1),
        "per_cycle_descriptors_one_cell_mrows_per_s": round(n / t_one / 1e6, 1),
        "naive_pandas_s": round(t_naive, 3),
        "naive_pandas_mrows_per_s": round(n / t_naive / 1e6, 1),
        "naive_pandas_user_s/sys_s": "/".join(f"{x:.3f}" for x in CPU_SPLIT["naive"]),
        "speedup_vs_naive": round(t_naive / t_fast, 1),
        "voltage_curves_s": round(t_curves, 3),
        "voltage_curves_mrows_per_s": round(n / t_curves / 1e6, 1),
        "build_cycle_table_s": round(t_build, 3),
        "build_cycle_table_mrows_per_s": round(n / t_build / 1e6, 1),
        "build_cycle_table_with_curves_s": round(t_build_all, 3),
        "plain_groupby_s": round(t_plain, 3),
        "plain_groupby_mrows_per_s": round(n / t_plain / 1e6, 1),
        "build_basic_vs_plain_groupby": round(t_plain / t_build, 2),
        "build_with_curves_mrows_per_s": round(n / t_build_all / 1e6, 1),
        "curves_part_mrows_per_s": round(n / max(t_build_all - t_build, 1e-9) / 1e6, 1),
        "previous_build_basic_mrows_per_s": round(n / t_old / 1e6, 1),
        "previous_build_with_curves_mrows_per_s": round(n / t_old_all / 1e6, 1),
        "speedup_basic_vs_previous": round(t_old / t_build, 1),
        "speedup_with_curves_vs_previous": round(t_old_all / t_build_all, 1),
        "output_rows": len(table),
        "peak_mib_build_cycle_table": round(peak_mib(
            lambda: build_cycle_table(df, voltage_curves=False)), 1),
        "peak_mib_naive_pandas": round(peak_mib(lambda: naive_pandas(df)), 1),
    })
    res.update(per_request_completion())
    if args.json:
        print(json.dumps(res))
        return
    for k, v in res.items():
        print(f"{k:40s} {v}")


if __name__ == "__main__":
    main()
