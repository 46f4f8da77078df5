"""One bench suite fanned out over a fleet of builders with Dask distributed.

Each host of a :class:`~profiler.bench.fleet_hosts.FleetSpec` gets one task, pinned to its
own worker (``workers=[address]``, ``allow_other_workers=False``: a host's suite never runs
elsewhere, and a host never runs two). The task (:func:`measure_on_host`) is what ``bench``
does for one machine, on that machine: the host's own payloads if it lists any, else the
suite's (the shared corpus, resolved there), through :func:`profiler.bench.harness.run_bench`,
which records the environment there. Results come back as data and are written under
``OUT/<host>/`` as ordinary bench results, with ``OUT/fleet.json`` indexing them
(:mod:`profiler.bench.fleet_view` reads and tabulates a fleet directory).

A host that fails (no worker for it, the worker lost, a payload missing there) is one line
in the progress and in ``fleet.json``; the other hosts' results are kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from profiler.bench.fleet_cluster import open_cluster
from profiler.bench.fleet_hosts import FleetSpec, Host
from profiler.errors import ProfilerError

if TYPE_CHECKING:
    from distributed import Client, Future

Progress = Callable[[str], object]
WATCH_SECONDS = 2.0  # how often the scheduler is asked whether a busy host's worker is alive


@dataclass
class HostOutcome:
    """What one host did: its result directory, or why it has none."""

    host: Host
    worker: str | None
    status: str = "pending"  # "ok" or "failed"
    error: str | None = None
    directory: str | None = None
    corpus_digest: str | None = None
    payload_hashes: dict[str, str] = field(default_factory=dict)  # name -> NarHash
    elapsed_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.host.name,
            "address": self.host.address,
            "worker": self.worker,
            "payloads": list(self.host.payloads) or "shared",
            "status": self.status,
            "error": self.error,
            "result": self.host.name if self.status == "ok" else None,
            "corpus_digest": self.corpus_digest,
            "payload_hashes": self.payload_hashes,
            "elapsed_seconds": self.elapsed_seconds,
        }


@dataclass
class FleetRun:
    """A fleet bench: the request and each host's outcome (``fleet.json``'s content)."""

    spec: FleetSpec
    request: dict[str, Any]
    started_utc: str
    outcomes: list[HostOutcome] = field(default_factory=list)


def corpus_digest(manifest: Sequence[dict[str, Any]]) -> str:
    """One digest of a result's payloads (names, NarSizes, NarHashes, in order): equal on two
    hosts exactly when they measured byte-equal payloads under the same names."""
    h = hashlib.sha256()
    for row in manifest:
        h.update(f"{row['name']}\t{row['nar_size_bytes']}\t{row['nar_hash']}\n".encode())
    return "sha256:" + h.hexdigest()


def measure_on_host(request: dict[str, Any]) -> dict[str, Any]:
    """Run one host's suite where it is called (a fleet worker): a result as data.

    ``request``: ``payloads`` (specifications, resolved on this host), ``codecs``,
    ``options`` (:class:`~profiler.bench.harness.BenchOptions` fields) and ``suite``. Returns
    ``{"meta", "rows", "samples", "corpus_digest"}``, or ``{"error"}`` (one line) when the
    host cannot run it (a payload missing there, a bad codec).
    """
    from profiler.bench import harness
    from profiler.payloads.resolve import resolve

    try:
        found = resolve(request["payloads"])
        result = harness.run_bench(
            found,
            request["codecs"],
            harness.BenchOptions(**request["options"]),
            corpus_name=" ".join(request["payloads"]),
        )
    except ProfilerError as exc:
        return {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    result.meta["suite"] = request["suite"]
    digest = corpus_digest(result.meta["manifest"]["payloads"])
    return {"meta": result.meta, "rows": result.rows, "samples": result.samples,
            "corpus_digest": digest, "ran_on": _this_worker()}  # fmt: skip


def _this_worker() -> str | None:
    """The address of the Dask worker running this, if one is."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return None


def run_fleet(
    spec: FleetSpec,
    request: dict[str, Any],
    out: str,
    *,
    progress: Progress = lambda _m: None,
    connect_timeout_seconds: float = 30.0,
    client: Client | None = None,
) -> FleetRun:
    """Measure ``request`` (see :func:`measure_on_host`; its ``payloads`` are the shared
    corpus) on every host of ``spec`` at once, each pinned to its worker, and write each
    result to ``out/<host>/`` and the index to ``out/fleet.json`` as hosts finish.

    ``out`` is checked beforehand (:func:`profiler.bench.fleet_view.check_fleet_out`).
    Raises :class:`~profiler.errors.BenchmarkError` when no cluster can be reached; a host
    that fails is an outcome, not an exception. ``client``: run on this client's cluster
    (left open) instead of the one ``spec`` names.
    """
    from profiler.bench import fleet_view

    run = FleetRun(spec, request, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    with open_cluster(spec, connect_timeout_seconds, client) as (live, workers, reasons):
        run.outcomes = [HostOutcome(h, workers.get(h.name)) for h in spec.hosts]
        for o in run.outcomes:
            if o.worker is None:
                why = f"no worker for {o.host.address} on {spec.describe()}"
                _fail(o, reasons.get(o.host.name, why), progress)
        fleet_view.write_index(out, run)
        futures = {_submit(live, o, request): o for o in run.outcomes if o.worker}
        for future, outcome in _as_finished(live, futures):
            _collect(future, outcome, run, out, progress)
            fleet_view.write_index(out, run)
    return run


def _submit(client: Client, outcome: HostOutcome, request: dict[str, Any]) -> Future:
    own = list(outcome.host.payloads)
    req = {**request, "payloads": own or request["payloads"]}
    key = f"fleet-bench-{outcome.host.name}-{uuid.uuid4().hex[:8]}"
    return client.submit(measure_on_host, req, key=key, workers=[outcome.worker],
                         allow_other_workers=False, pure=False, retries=0)  # fmt: skip


def _as_finished(
    client: Client, futures: dict[Future, HostOutcome]
) -> Iterator[tuple[Future, HostOutcome]]:
    """Each future as it finishes; a host whose worker leaves the cluster meanwhile is
    failed (a task pinned to a worker that is gone would wait forever)."""
    from distributed import wait

    pending = dict(futures)
    while pending:
        with contextlib.suppress(TimeoutError):
            wait(list(pending), timeout=WATCH_SECONDS, return_when="FIRST_COMPLETED")
        alive = set(client.scheduler_info(n_workers=-1)["workers"])
        for future in list(pending):
            outcome = pending[future]
            if future.done() or outcome.worker not in alive:
                del pending[future]
                yield future, outcome


def _collect(
    future: Future, outcome: HostOutcome, run: FleetRun, out: str, progress: Progress
) -> None:
    from profiler.bench import fleet_view

    name = outcome.host.name
    if not future.done():
        future.cancel()
        _fail(outcome, f"worker {outcome.worker} left the cluster (died or lost)", progress)
        return
    try:
        data = future.result()
    except Exception as exc:  # a worker's death or the task's crash: this host's failure
        text = str(exc).splitlines()[0] if str(exc) else ""
        _fail(outcome, f"{type(exc).__name__}: {text}".rstrip(": "), progress)
        return
    if "error" in data:
        _fail(outcome, data["error"], progress)
        return
    directory = os.path.join(out, name)
    try:
        fleet_view.write_host_result(directory, data, run, outcome)
    except ProfilerError as exc:
        _fail(outcome, str(exc), progress)
        return
    outcome.status, outcome.directory = "ok", directory
    outcome.corpus_digest = data["corpus_digest"]
    outcome.payload_hashes = {
        p["name"]: p["nar_hash"] for p in data["meta"]["manifest"]["payloads"]
    }
    outcome.elapsed_seconds = data["meta"].get("elapsed_seconds")
    progress(fleet_view.done_line(outcome, data["rows"]))


def _fail(outcome: HostOutcome, error: str, progress: Progress) -> None:
    outcome.status, outcome.error = "failed", error
    progress(f"{outcome.host.name}: FAILED: {error}")
