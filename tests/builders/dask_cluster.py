"""The local Dask cluster of the distributed tests: worker processes on 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def loopback_cluster(n_workers: int = 2, timeout: float = 300) -> Iterator:
    """A Client of `n_workers` single-threaded worker processes with nannies (a killed worker
    restarts), on the loopback address, no dashboard; stopped when the block ends."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster, timeout=timeout) as client,
    ):
        client.wait_for_workers(n_workers, timeout=timeout)
        yield client
