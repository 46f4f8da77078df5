"""Rust status JSON: ``GET /status`` (``DumpResponse``) and the other ``/status/...``
endpoints. Step times are ms, loop timers µs, ``time`` is an RFC 3339 string.

The host facts the runner and its builders report come in as a :class:`HostFacts` value;
:func:`rust_status` and :func:`rust_endpoint` read this host only when none is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from profiler.testbed.state import MachineState, RunnerState
from profiler.testbed.status.counters import (
    DEFAULT_MACHINE_TYPE,
    machine_counters,
    queue_stats,
    rust_counters,
    rust_runnable,
    s3_doc,
)
from profiler.testbed.status.host import Cgroup, HostFacts, read_host
from profiler.testbed.status.numbers import f32, f32_short

RUST_BUILDER_NIX_VERSION = "2.34.0"
# hydra-builder defaults: free-space thresholds in percent, load1, PSI thresholds in percent
RUST_BUILDER_THRESHOLDS = {
    "buildDirAvailThreshold": 10.0,
    "storeAvailThreshold": 10.0,
    "load1Threshold": 8.0,
    "cpuPsiThreshold": 75.0,
    "memPsiThreshold": 80.0,
}


def rfc3339(epoch: float) -> str:
    """jiff ``Timestamp`` display: UTC, ``Z``, fractional seconds only when non-zero (≤ µs)."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _rust_machine_stats(machine: MachineState, now: float, host: HostFacts) -> dict[str, Any]:
    """``machines.<host>.stats``: ms totals and integer ms averages, epoch s, f32 loads."""
    return {
        **machine_counters(machine, now),
        "load1": f32_short(host.load[0]),
        "load5": f32_short(host.load[1]),
        "load15": f32_short(host.load[2]),
        "memUsage": host.mem_usage,
        "pressure": _pressure(machine, host),
        "buildDirFreePercent": host.build_dir_free,
        "storeFreePercent": host.store_free,
        "currentUploadingPathCount": machine.uploading_paths,
        "currentDownloadingPathCount": machine.downloading_paths,
        "jobsInLast30sStart": 0,
        "jobsInLast30sCount": 0,
        "failedBuilds": machine.failed_builds,
        "succeededBuilds": machine.succeeded_builds,
    }


def _pressure(machine: MachineState, host: HostFacts) -> dict[str, Any]:
    """``stats.pressure``: the host's PSI lines; an emulated CPU pressure replaces its avg10."""
    doc = {k: v._asdict() for k, v in host.pressure.items()}
    if machine.cpu_pressure_avg10 is not None:
        doc["cpuSome"] = {**doc.get("cpuSome", {}), "avg10": machine.cpu_pressure_avg10}
    return doc


def has_dynamic_capacity(machine: MachineState) -> bool:
    """hydra 14332fbf state/machine.rs:731-757: CPU PSI some avg10 (then memory/IO PSI full)
    under the builder's thresholds; the emulator's pressure is the CPU one."""
    if machine.cpu_pressure_avg10 is None:
        return True
    return machine.cpu_pressure_avg10 <= RUST_BUILDER_THRESHOLDS["cpuPsiThreshold"]


def _rust_machine(machine: MachineState, now: float, host: HostFacts) -> dict[str, Any]:
    """``machines.<hostname>`` (``io::Machine``): config, state and ``stats``."""
    bogomips = f32(host.bogomips)
    score = f32(f32(machine.speed_factor * max(bogomips, 1.0)) * machine.cpu_count)
    has_static = machine.current_jobs < machine.max_jobs
    has_dynamic = has_dynamic_capacity(machine)
    free_fn = {"Static": has_static, "Dynamic": has_dynamic}
    # state/machine.rs:762-780: DynamicWithMaxJobLimit needs both
    has_capacity = free_fn.get(machine.free_fn, has_static and has_dynamic)
    doc: dict[str, Any] = {
        "systems": list(machine.systems),
        "hostname": machine.hostname,
        "uptime": max(0.0, now - machine.joined_at),
        "cpuCount": machine.cpu_count,
        "bogomips": f32_short(bogomips),
        "speedFactor": f32_short(machine.speed_factor),
        "maxJobs": machine.max_jobs,
    }
    doc.update(RUST_BUILDER_THRESHOLDS)
    doc.update(
        {
            "ioPsiThreshold": None,
            "score": f32_short(score),
            "totalMem": host.total_mem,
            "supportedFeatures": list(machine.supported_features),
            "mandatoryFeatures": list(machine.mandatory_features),
            "cgroups": False,
            "substituters": [],
            "useSubstitutes": False,
            "nixVersion": RUST_BUILDER_NIX_VERSION,
            "stats": _rust_machine_stats(machine, now, host),
            "jobs": list(machine.jobs),
            "hasCapacity": has_capacity,
            "hasDynamicCapacity": has_dynamic,
            "hasStaticCapacity": has_static,
        }
    )
    return doc


def _rust_supported_features(state: RunnerState) -> list[str]:
    """Union of the machines' features (sorted)."""
    return sorted(
        {f for m in state.machines for f in (*m.supported_features, *m.mandatory_features)}
    )


def _cgroup_doc(cgroup: Cgroup) -> dict[str, Any]:
    """``proc.cgroup``: memory bytes, io bytes, cpu µs from the cgroup v2 files."""
    return {
        "memory": {
            "currentBytes": cgroup.memory_current,
            "peakBytes": cgroup.memory_peak,
            "swapCurrentBytes": cgroup.swap_current,
            "zswapCurrentBytes": cgroup.zswap_current,
        },
        "io": {"totalReadBytes": cgroup.read_bytes, "totalWriteBytes": cgroup.write_bytes},
        "cpu": {
            "usageUsec": cgroup.usage_usec,
            "userUsec": cgroup.user_usec,
            "systemUsec": cgroup.system_usec,
        },
    }


def _proc_doc(pid: int, host: HostFacts) -> dict[str, Any]:
    """``queueRunner.proc``: sizes in bytes from ``/proc/self/statm`` plus the cgroup."""
    return {
        "pid": pid,
        "vsizeBytes": host.vsize_bytes,
        "rssBytes": host.rss_bytes,
        "sharedBytes": host.shared_bytes,
        "cgroup": _cgroup_doc(host.cgroup),
    }


def _rust_queue_runner(
    state: RunnerState, now: float, uploads_pending: int, host: HostFacts
) -> dict[str, Any]:
    """``queueRunner`` (``QueueRunnerStats``): loop timers µs, step times ms, uptime s."""
    queues = queue_stats(state)
    doc: dict[str, Any] = {
        "status": "up",
        "time": rfc3339(now),
        "uptime": max(0.0, now - state.started_at),
        "proc": _proc_doc(state.pid, host),
        "supportedFeatures": _rust_supported_features(state),
        "buildCount": state.nr_queued_builds,
        "jobsetCount": len(state.jobsets),
        "stepCount": state.nr_unfinished_steps,
        "runnableCount": rust_runnable(state),
        "queueStats": queues,
    }
    doc.update(rust_counters(state, queues, uploads_pending))
    return doc


def _rust_jobsets(state: RunnerState) -> dict[str, Any]:
    """``jobsets`` keyed ``project:jobset``: ids numbered in key order, seconds, shares."""
    out: dict[str, Any] = {}
    for jobset_id, name in enumerate(sorted(state.jobsets), start=1):
        seconds, shares = state.jobsets[name]
        project, _, jobset = name.partition(":")
        out[name] = {
            "id": jobset_id,
            "projectName": project,
            "name": jobset,
            "seconds": seconds,
            "shares": shares,
        }
    return out


def _rust_machines(state: RunnerState, now: float, host: HostFacts) -> dict[str, Any]:
    """All machines keyed by hostname."""
    return {m.hostname: _rust_machine(m, now, host) for m in state.machines}


def _facts(host: HostFacts | None) -> HostFacts:
    """``host``, or this host's facts read now (the emulated builders run here)."""
    return host if host is not None else read_host()


def rust_status(
    state: RunnerState,
    now: float,
    *,
    host: HostFacts | None = None,
    uploads: Sequence[str] = (),
) -> dict[str, Any]:
    """Rust ``GET /status`` (``DumpResponse``); ``uploads`` are store paths queued for S3.

    ``host``: the host facts the runner and its builders report (read here when None).
    """
    facts = _facts(host)
    return {
        "queueRunner": _rust_queue_runner(state, now, len(uploads), facts),
        "machines": _rust_machines(state, now, facts),
        "jobsets": _rust_jobsets(state),
        "store": None,  # "not available via daemon protocol"
        "s3": {state.s3_bucket: s3_doc(state.s3)},
    }


def _scheduled_paths(state: RunnerState) -> set[str]:
    """Drv paths currently held by a machine."""
    return {job for m in state.machines for job in m.jobs}


def _rust_step(step: Mapping[str, Any]) -> dict[str, Any]:
    """``io::Step`` from an engine step dict (``created`` is a bool in the real runner)."""
    return {
        "drvPath": step["drvPath"],
        "runnable": bool(step.get("runnable", False)),
        "finished": bool(step.get("finished", False)),
        "previousFailure": bool(step.get("previousFailure", False)),
        "created": bool(step.get("created", True)),
        "tries": int(step.get("tries", 0)),
        "highestGlobalPriority": int(step.get("highestGlobalPriority", 0)),
        "highestLocalPriority": int(step.get("highestLocalPriority", 0)),
        "lowestBuildId": int(step.get("lowestBuildId", 0)),
        "depsCount": int(step.get("depsCount", 0)),
    }


def _rust_step_info(step: Mapping[str, Any], scheduled: set[str]) -> dict[str, Any]:
    """``io::StepInfo``: queue entry; ``runnableSince`` RFC 3339 (default: ``created``)."""
    since = step.get("runnableSince", step.get("created", 0))
    return {
        "drvPath": step["drvPath"],
        "alreadyScheduled": step["drvPath"] in scheduled,
        "runnable": bool(step.get("runnable", False)),
        "finished": bool(step.get("finished", False)),
        "cancelled": bool(step.get("cancelled", False)),
        "runnableSince": since if isinstance(since, str) else rfc3339(float(since)),
        "tries": int(step.get("tries", 0)),
        "lowestShareUsed": float(step.get("lowestShareUsed", 0.0)),
        "highestGlobalPriority": int(step.get("highestGlobalPriority", 0)),
        "highestLocalPriority": int(step.get("highestLocalPriority", 0)),
        "lowestBuildId": int(step.get("lowestBuildId", 0)),
    }


def _queued_steps(
    steps: Sequence[Mapping[str, Any]], scheduled: set[str]
) -> list[Mapping[str, Any]]:
    """Steps in a build queue: unfinished and runnable or scheduled on a machine."""
    return [
        s
        for s in steps
        if not s.get("finished", False) and (s.get("runnable", False) or s["drvPath"] in scheduled)
    ]


def _counted(key: str, items: dict[str, Any], count_key: str | None = None) -> dict[str, Any]:
    """``{<key>: items, <key>Count: n}`` (``jobsetCount`` is singular in the real runner)."""
    return {key: items, count_key or f"{key}Count": len(items)}


def _steps_response(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``{steps, stepCount}``."""
    return {"steps": items, "stepCount": len(items)}


def _endpoint_queues(
    state: RunnerState, steps: Sequence[Mapping[str, Any]], scheduled: set[str]
) -> dict[str, Any]:
    """``/status/queues``: ``{queues: {system: [StepInfo]}}``."""
    queues: dict[str, list[dict[str, Any]]] = {}
    for step in _queued_steps(steps, scheduled):
        system = str(step.get("system", DEFAULT_MACHINE_TYPE))
        queues.setdefault(system, []).append(_rust_step_info(step, scheduled))
    return {"queues": queues}


def _build_active(path: str, steps: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """``/status/build/<id>/active``: a build is active while it has an unfinished step."""
    build_id = path.removeprefix("/status/build/").removesuffix("/active")
    if not build_id.isdigit():
        return None
    active = any(
        int(s.get("lowestBuildId", -1)) == int(build_id) and not s.get("finished", False)
        for s in steps
    )
    return {"active": active}


def rust_endpoint(
    state: RunnerState,
    now: float,
    path: str,
    steps: Sequence[Mapping[str, Any]] | None = None,
    *,
    host: HostFacts | None = None,
    uploads: Sequence[str] = (),
) -> dict[str, Any] | None:
    """Body of a Rust ``GET /status...`` endpoint, or None for an unknown path (404).

    ``steps``: the engine's steps (drvPath, runnable, finished, created epoch s, tries,
    lowestBuildId, system); ``host``: the host facts of ``/status`` and ``/status/machines``
    (read here when None and one of them is asked for); ``uploads``: store paths waiting in
    the S3 uploader queue.
    """
    all_steps = list(steps or [])
    scheduled = _scheduled_paths(state)
    key = path.split("?", 1)[0].rstrip("/") or "/"
    if key.startswith("/status/build/") and key.endswith("/active"):
        return _build_active(key, all_steps)
    queued = _queued_steps(all_steps, scheduled)
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "/status": lambda: rust_status(state, now, host=host, uploads=uploads),
        "/status/machines": lambda: _counted("machines", _rust_machines(state, now, _facts(host))),
        "/status/jobsets": lambda: _counted("jobsets", _rust_jobsets(state), "jobsetCount"),
        "/status/builds": lambda: {"builds": [], "buildCount": 0},
        "/status/steps": lambda: _steps_response([_rust_step(s) for s in all_steps]),
        "/status/runnable": lambda: _steps_response(
            [_rust_step(s) for s in all_steps if s.get("runnable") and not s.get("finished")]
        ),
        "/status/queues": lambda: _endpoint_queues(state, all_steps, scheduled),
        "/status/queues/jobs": lambda: _steps_response(
            [_rust_step_info(s, scheduled) for s in queued]
        ),
        "/status/queues/scheduled": lambda: _steps_response(
            [_rust_step_info(s, scheduled) for s in queued if s["drvPath"] in scheduled]
        ),
        "/status/uploads": lambda: {"paths": list(uploads), "pathCount": len(uploads)},
    }
    builder = builders.get(key)
    return builder() if builder else None
