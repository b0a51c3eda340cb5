"""Fleet scale: the per-cell feature and forecast code mapped over a registry's cells on
dask.distributed (``ml.fleet.cluster``), with cells larger than a worker's memory budget
processed in cycle blocks (``ml.fleet.cell_stream``). dask is imported only when a fleet run
starts; nothing here is imported by the service."""
