"""Where the heavy work of a run goes: this process (`executor: local`) or a Dask cluster.

`--params executor=dask` sends extraction shards and statistics feature blocks to the workers of
a `distributed.Client`: the cluster at `dask.scheduler_address` (e.g. `tcp://host:8786`, started
with `dask scheduler` and `dask worker`), or, when that is null, a `LocalCluster` of
`dask.n_workers` worker processes on the loopback interface, started here and closed at the end
of the node that asked for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "dask")
DASK_KEYS = ("scheduler_address", "n_workers", "threads_per_worker")


def check_executor(executor: str, dask_params: Mapping[str, Any] | None) -> None:
    """Raise with the parameter to fix unless `executor` and its `dask` block are usable."""
    if executor not in EXECUTORS:
        raise ValueError(f"params:executor must be one of {EXECUTORS}, got {executor!r}")
    if executor == "dask":
        missing = [key for key in DASK_KEYS if key not in (dask_params or {})]
        if missing:
            raise ValueError(
                f"params:dask lacks {missing} (defaults in conf/base/parameters.yml); got {dask_params}"
            )


@contextmanager
def dask_client(executor: str, dask_params: Mapping[str, Any] | None) -> Iterator[Client | None]:
    """A Dask client for `executor: dask`, None for `local`; a LocalCluster it started is closed."""
    check_executor(executor, dask_params)
    if executor == "local":
        yield None
        return
    from distributed import Client, LocalCluster

    address = dask_params.get("scheduler_address")
    if address:
        logger.info("Dask: connecting to the scheduler at %s", address)
        with Client(address) as client:
            yield client
        return
    n_workers = int(dask_params["n_workers"])
    threads = int(dask_params["threads_per_worker"])
    logger.info(
        "Dask: starting a LocalCluster of %d worker process(es), %d thread(s) each",
        n_workers,
        threads,
    )
    # Loopback only and no dashboard: a run never opens a port beyond this machine.
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
