"""The Dask cluster a fleet bench runs on, and which worker is which host.

Three ways in (:class:`~profiler.bench.fleet_hosts.FleetSpec`'s ``scheduler``):

- ``local:N``: a ``LocalCluster`` of N worker processes, one thread each, on this machine;
  host i is worker i (the tests and the demo);
- ``tcp://...``: an existing scheduler; a host is matched to the worker named as the host
  (its name or address, as ``dask worker --name`` sets it: the operator's choice), else to
  a worker on the host's machine (the address, or what it resolves to) when that machine
  serves no other host yet, so two suites never time each other's runs by accident;
- no scheduler: an SSH cluster (:mod:`profiler.bench.fleet_ssh`), one worker per host,
  named as the host.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from profiler.bench.fleet_hosts import FleetSpec, Host
from profiler.errors import BenchmarkError

if TYPE_CHECKING:
    from distributed import Client

Workers = dict[str, str]  # host name -> worker address
Reasons = dict[str, str]  # host name -> why it has no worker (when known)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise BenchmarkError(
            "bench --fleet needs Dask distributed: pip install 'hydra-profiler[cluster]'"
        ) from None
    return distributed


@contextlib.contextmanager
def open_cluster(
    spec: FleetSpec, timeout_seconds: float, client: Client | None = None
) -> Iterator[tuple[Client, Workers, Reasons]]:
    """A client on the fleet's cluster (started here for ``local:N`` and SSH, closed after),
    each host's worker, and why a host has none when that is known (an SSH start failed).

    With ``client`` (a caller's, left open), its cluster's workers are the fleet: in order
    for ``local:N``, else matched like an existing scheduler's."""
    if client is not None:
        if spec.local_workers is not None:
            yield client, _by_order(client, spec.hosts), {}
        else:
            yield client, match_workers(spec.hosts, _workers(client)), {}
        return
    distributed = _import_distributed()
    if spec.local_workers is not None:
        with _local(distributed, spec.local_workers, timeout_seconds) as client:
            yield client, _by_order(client, spec.hosts), {}
    elif spec.scheduler is not None:
        with _connect(distributed, spec.scheduler, timeout_seconds) as client:
            yield client, match_workers(spec.hosts, _workers(client)), {}
    else:
        from profiler.bench.fleet_ssh import ssh_cluster

        with ssh_cluster(distributed, spec, timeout_seconds) as (client, reasons):
            yield client, _by_name(client, spec.hosts), reasons


@contextlib.contextmanager
def _local(distributed: Any, n: int, timeout_seconds: float) -> Iterator[Client]:
    # ":0": the scheduler's HTTP server on a free port. None would still bind 8787 and warn
    # when another cluster holds it (distributed 2026.8.0 distributed/node.py,
    # start_http_server: ``dashboard_address or default_port``).
    with (
        distributed.LocalCluster(
            n_workers=n, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(n, timeout=timeout_seconds)
        yield client


@contextlib.contextmanager
def _connect(distributed: Any, address: str, timeout_seconds: float) -> Iterator[Client]:
    try:
        client = distributed.Client(address, timeout=timeout_seconds)
    except (OSError, TimeoutError, ValueError) as exc:
        raise BenchmarkError(f"scheduler {address}: cannot connect: {one_line(exc)}") from None
    with client:
        yield client


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _workers(client: Client) -> dict[str, dict[str, Any]]:
    info: dict[str, dict[str, Any]] = client.scheduler_info(n_workers=-1)["workers"]
    return info


def _by_order(client: Client, hosts: tuple[Host, ...]) -> Workers:
    """Host i -> the worker named i (LocalCluster and SSHCluster name them 0, 1, ...)."""
    by_name = {str(w["name"]): address for address, w in _workers(client).items()}
    return {h.name: by_name[str(i)] for i, h in enumerate(hosts) if str(i) in by_name}


def _by_name(client: Client, hosts: tuple[Host, ...]) -> Workers:
    """Host -> the worker named as the host (the SSH fleet names them so)."""
    by_name = {str(w["name"]): address for address, w in _workers(client).items()}
    return {h.name: by_name[h.name] for h in hosts if h.name in by_name}


def _resolved(address: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(address, None)}
    except (OSError, UnicodeError):
        return set()


def match_workers(hosts: tuple[Host, ...], workers: dict[str, dict[str, Any]]) -> Workers:
    """Each host's worker on an existing scheduler: the worker named like the host (its name
    or address: the operator's choice), else a worker on the host's machine when that
    machine serves no other host yet (two suites at once would time each other)."""
    out: Workers = {}
    machines: set[str] = set()  # worker hosts already serving a host
    for h in hosts:
        free = [a for a in sorted(workers) if a not in out.values()]
        named = [a for a in free if str(workers[a].get("name")) in (h.name, h.address)]
        ips = {h.address, *_resolved(h.address)}
        on_host = [a for a in free if workers[a].get("host") in ips - machines]
        chosen = next(iter(named or on_host), None)
        if chosen is not None:
            out[h.name] = chosen
            machines.add(str(workers[chosen].get("host")))
    return out
