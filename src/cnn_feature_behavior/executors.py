"""Where the heavy work of a run goes: this process (`executor: local`) or a Dask cluster.

`--params executor=dask` sends extraction shards and statistics feature blocks to the workers of
a `distributed.Client`: the cluster at `dask.scheduler_address` (e.g. `tls://host:8786`, started
with `dask scheduler` and `dask worker`), or, when that is null, a `LocalCluster` of
`dask.n_workers` worker processes on the loopback interface, started here and closed at the end
of the node that asked for it.

`dask.tls` (CA, certificate and key files, all three or none) secures the connection with Dask's
TLS (`distributed.security.Security`, encryption required): the client, and a LocalCluster
started here, present the certificate and accept only peers whose certificate the CA signed
(docs/dask.md). A scheduler that cannot be reached within `dask.connect_timeout_s` is reported
naming the parameter, and `check_scheduler` lets a node do so before its slow setup.

HTTP: a Dask scheduler and each worker also serve plain HTTP (`/info`, `/metrics`, `/health`;
the scheduler's on port 8787), even when their cluster uses TLS. A LocalCluster started with
`dask.tls` closes these servers as it starts (`dask_setup`, a Dask preload of this module), so a
TLS cluster serves nothing unencrypted; a scheduler or worker started by hand closes them too
with `--preload cnn_feature_behavior.executors` (docs/dask.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client
    from distributed.security import Security

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "dask")
DASK_KEYS = ("scheduler_address", "n_workers", "threads_per_worker")
TLS_KEYS = ("ca_file", "cert_file", "key_file")
DEFAULT_CONNECT_TIMEOUT_S = 30


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
        dask_security(dask_params)


def dask_security(dask_params: Mapping[str, Any]) -> Security | None:
    """The TLS security of `dask.tls` (None when its files are all null), files checked."""
    tls = dict(dask_params.get("tls") or {})
    given = {key: tls.get(key) for key in TLS_KEYS if tls.get(key)}
    if not given:
        return None
    missing = [key for key in TLS_KEYS if key not in given]
    if missing:
        raise ValueError(
            f"params:dask.tls lacks {missing}: TLS needs the CA, certificate and key files"
        )
    for key, path in given.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"params:dask.tls.{key}: no file {Path(path).resolve()}")
    from distributed.security import Security

    files = {
        f"tls_{role}_{kind}": given[f"{kind}_file"]
        for role in ("client", "scheduler", "worker")
        for kind in ("cert", "key")
    }
    return Security(tls_ca_file=given["ca_file"], require_encryption=True, **files)


def check_scheduler(executor: str, dask_params: Mapping[str, Any] | None) -> None:
    """Connect to `dask.scheduler_address` once (executor dask), or raise naming the parameter."""
    check_executor(executor, dask_params)
    if executor == "dask" and dask_params.get("scheduler_address"):
        with _connected(dask_params):
            pass


@contextmanager
def dask_client(executor: str, dask_params: Mapping[str, Any] | None) -> Iterator[Client | None]:
    """A Dask client for `executor: dask`, None for `local`; a LocalCluster it started is closed."""
    check_executor(executor, dask_params)
    if executor == "local":
        yield None
        return
    if dask_params.get("scheduler_address"):
        with _connected(dask_params) as client:
            yield client
        return
    with _local_cluster(dask_params) as client:
        yield client


@contextmanager
def _connected(dask_params: Mapping[str, Any]) -> Iterator[Client]:
    from distributed import Client

    address = str(dask_params["scheduler_address"])
    security = dask_security(dask_params)
    timeout = float(dask_params.get("connect_timeout_s") or DEFAULT_CONNECT_TIMEOUT_S)
    if address.startswith("tls://") and security is None:
        raise ConnectionError(
            f"params:dask.scheduler_address {address} is a tls:// address: set params:dask.tls "
            "(ca_file, cert_file, key_file; docs/dask.md)"
        )
    logger.info("Dask: connecting to the scheduler at %s", address)
    try:
        client = Client(address, security=security, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as error:
        tls_hint = "" if security is None else " with the certificates of params:dask.tls"
        raise ConnectionError(
            f"params:dask.scheduler_address {address}: no Dask scheduler answered{tls_hint} "
            f"within {timeout:g} s ({type(error).__name__}: {error}); check the address, that "
            "`dask scheduler` runs there and that this machine may reach it"
        ) from error
    with client:
        yield client


@contextmanager
def _local_cluster(dask_params: Mapping[str, Any]) -> Iterator[Client]:
    from distributed import Client, LocalCluster

    n_workers = int(dask_params["n_workers"])
    threads = int(dask_params["threads_per_worker"])
    security = dask_security(dask_params)
    logger.info(
        "Dask: starting a LocalCluster of %d worker process(es), %d thread(s) each%s",
        n_workers,
        threads,
        ", TLS" if security else "",
    )
    # Loopback only and no dashboard: a run never opens a port beyond this machine; with TLS, the
    # scheduler's and the workers' plain HTTP servers are closed as they start.
    secure = (
        {
            "protocol": "tls://",
            "security": security,
            "scheduler_kwargs": {"preload": [__name__]},
            "preload": [__name__],
        }
        if security
        else {}
    )
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            **secure,
        ) as cluster,
        Client(cluster, security=security) as client,
    ):
        yield client


def dask_setup(server: Any) -> None:
    """A Dask preload: close the scheduler's or worker's HTTP server (`/info`, `/metrics`,
    `/health` in plain HTTP, whatever the cluster's TLS) before it serves anything."""
    http_server = getattr(server, "http_server", None)
    if http_server is not None:
        http_server.stop()
    getattr(server, "services", {}).pop("dashboard", None)
    logger.info("Dask %s: its HTTP server is closed", type(server).__name__)
