"""dask.distributed plumbing for fleet runs: a client (a LocalCluster by default, an existing
scheduler by address), the workers' memory budget, and one ordered map with a progress bar.

dask is imported here only, inside functions, so nothing else pays for it. Tasks are plain
module-level functions (importable by the workers); each is submitted with retries, so a task
that was running on a worker that dies is run again elsewhere — the nanny of a LocalCluster
restarts the worker.
"""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

#: Retries of a task whose worker failed (beyond dask's own rescheduling of lost tasks).
TASK_RETRIES = 2
#: glibc malloc settings of local workers (set before they start). dask's default
#: MALLOC_TRIM_THRESHOLD_=64 KiB also freezes glibc's mmap threshold at 128 KiB, and tasks run
#: on a worker thread whose arena unmaps freed heaps: every numpy temporary was a fresh mmap,
#: ~28,000 page faults and 1.6-2.2x the CPU of the same cell in one process (measured with
#: RUSAGE_THREAD). One arena, a 32 MiB mmap threshold and a 64 MiB trim threshold bring the
#: faults to ~0 and the CPU to the one-process figure; memory is still returned above 64 MiB.
WORKER_MALLOC = {"MALLOC_ARENA_MAX": 1, "MALLOC_MMAP_THRESHOLD_": 32 * 2 ** 20,
                 "MALLOC_TRIM_THRESHOLD_": 64 * 2 ** 20}


@contextmanager
def fleet_client(scheduler: str | None = None, *, workers: int | None = None,
                 memory_limit: str | int | None = "auto", threads_per_worker: int = 1
                 ) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler`` (``tcp://host:8786``) when given,
    else to a new LocalCluster of ``workers`` processes (default: one per core) with
    ``threads_per_worker`` threads and ``memory_limit`` per worker. Closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    n = workers or max(1, os.cpu_count() or 1)
    env = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v
                          for k, v in WORKER_MALLOC.items()}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker,
                               processes=True, memory_limit=memory_limit,
                               dashboard_address=None, env=env)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def worker_memory_bytes(client: Any) -> float:
    """The smallest worker memory limit of the cluster in bytes (inf when unlimited)."""
    limits = [x for x in client.run(_memory_limit).values() if x]
    return float(min(limits)) if limits else math.inf


def ordered_map(client: Any, func: Callable[..., Any], items: Sequence[Any], *args: Any,
                progress: bool = True, label: str = "cells",
                on_result: Callable[[int, Any], None] | None = None,
                priorities: Sequence[int] | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``func(item, *args)`` for every item on the cluster; yield ``(index, result)`` as
    results arrive (any order), with a tqdm progress bar on stderr. ``on_result(index,
    result)`` is called first (tests use it to kill a worker mid-run); results are released
    from the cluster as soon as they are yielded, so memory stays bounded."""
    from distributed import as_completed

    import uuid

    run = uuid.uuid4().hex[:12]  # keys unique per run: two runs on one scheduler never mix
    futures = []
    for k, item in enumerate(items):
        futures.append(client.submit(func, item, *args,
                                     key=f"{label}-{run}-{k}-{_token(item)}",
                                     retries=TASK_RETRIES, pure=False,
                                     priority=priorities[k] if priorities else 0))
    index = {f.key: k for k, f in enumerate(futures)}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(futures), unit=label[:-1] if label.endswith("s") else label,
                   file=sys.stderr, dynamic_ncols=True)
    try:
        for fut in as_completed(futures):
            k = index[fut.key]
            result = fut.result()
            fut.release()
            if on_result is not None:
                on_result(k, result)
            if bar is not None:
                bar.update(1)
            yield k, result
    finally:
        if bar is not None:
            bar.close()
        for fut in futures:
            fut.cancel()


def _token(item: Any) -> str:
    text = str(item.get("cell_id", "")) if isinstance(item, dict) else str(item)
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text)[:60]


def _memory_limit(dask_worker: Any) -> int:
    """A worker's memory limit in bytes (0 = none); run on the workers (fresh, unlike the
    client's cached scheduler info)."""
    return int(dask_worker.memory_manager.memory_limit or 0)
