"""A fleet's SSH cluster: what ``SSHCluster`` starts, one host at a time failing alone.

``distributed.SSHCluster`` (dask/distributed 2026.8.0, ``distributed/deploy/ssh.py``) is a
``SpecCluster`` of ``distributed.deploy.ssh.Scheduler`` and ``.Worker`` processes started over
asyncssh. Used as it is, it gives every worker the same options (so the workers are named by
their addresses, and two hosts on one machine cannot be told apart) and fails as a whole when
one host cannot be reached. Here the scheduler is started the same way (on ``ssh_scheduler``,
else the first host), then one single-threaded Nanny per host, named as the host, all at once:
a host whose start fails is one reason, and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from profiler.bench.fleet_cluster import one_line
from profiler.bench.fleet_hosts import FleetSpec, Host
from profiler.errors import BenchmarkError

if TYPE_CHECKING:
    from distributed import Client


def _scheduler(spec: FleetSpec) -> dict[str, Any]:
    return {"cls": "distributed.deploy.ssh.Scheduler", "options": {
        "address": spec.ssh_scheduler or spec.hosts[0].address,
        "connect_options": spec.ssh_options, "kwargs": {"port": 0},
        "remote_python": spec.remote_python}}  # fmt: skip


def _worker(scheduler: str, spec: FleetSpec, host: Host) -> Any:
    from distributed.deploy.ssh import Worker

    return Worker(scheduler, host.address, connect_options=spec.ssh_options,
                  kwargs={"nthreads": 1, "name": host.name}, name=host.name,
                  remote_python=spec.remote_python, worker_class="distributed.Nanny")  # fmt: skip


async def _start(procs: dict[str, Any], timeout_seconds: float) -> dict[str, str]:
    """Start every host's worker at once; each failure (one line) by host name."""

    async def start(proc: Any) -> None:
        await asyncio.wait_for(proc.start(), timeout_seconds)

    done = await asyncio.gather(*(start(p) for p in procs.values()), return_exceptions=True)
    reasons = {}
    for (name, proc), outcome in zip(procs.items(), done, strict=True):
        if isinstance(outcome, BaseException):
            reasons[name] = f"SSH start on {proc.address} failed: {one_line(outcome) or 'timeout'}"
            with contextlib.suppress(Exception):
                await proc.close()
    return reasons


async def _close(procs: list[Any]) -> None:
    await asyncio.gather(*(p.close() for p in procs), return_exceptions=True)


@contextlib.contextmanager
def ssh_cluster(
    distributed: Any, spec: FleetSpec, timeout_seconds: float
) -> Iterator[tuple[Client, dict[str, str]]]:
    """A client on the fleet's SSH cluster and, by host name, why a host has no worker."""
    if importlib.util.find_spec("asyncssh") is None:  # the transport SSHCluster uses
        raise BenchmarkError(
            f"{spec.source}: an SSH fleet needs asyncssh (pip install asyncssh), or give "
            "scheduler = 'tcp://...' for workers already running"
        )
    where = spec.ssh_scheduler or spec.hosts[0].address
    try:
        cluster = distributed.SpecCluster({}, _scheduler(spec), name="fleet")
    except Exception as exc:  # asyncssh's and the remote process's errors, in one line
        raise BenchmarkError(f"SSH scheduler on {where}: {one_line(exc)}") from None
    with cluster:
        procs = {h.name: _worker(cluster.scheduler_address, spec, h) for h in spec.hosts}
        reasons = cluster.sync(_start, procs, timeout_seconds)
        started = [p for name, p in procs.items() if name not in reasons]
        try:
            with distributed.Client(cluster, timeout=timeout_seconds) as client:
                client.wait_for_workers(len(started), timeout=timeout_seconds)
                yield client, reasons
        finally:
            cluster.sync(_close, started)
