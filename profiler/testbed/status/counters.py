"""The counters the status documents and ``/metrics`` both report, from a
:class:`RunnerState` snapshot: one table for both, keyed by the status JSON field.

The Rust ``queueRunner`` object is :func:`rust_counters` (in its order) and its
``machines.<host>.stats`` start with :func:`machine_counters`; ``/metrics`` of both
generations names, for each family, the key of the number it reports. The ``s3`` object is
shared by both generations' JSON and the Rust metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from profiler.testbed.state import MachineState, RunnerState, S3Stats

MIB = 1024.0 * 1024.0
GIB = 1024.0 * 1024.0 * 1024.0
RUST_PING_INTERVAL_S = 10  # hydra-builder default ping interval (s)
DEFAULT_MACHINE_TYPE = "x86_64-linux"


def speed_mib_s(nbytes: int, ms: int) -> float:
    """Throughput in MiB/s from bytes and milliseconds; 0.0 when no time was spent."""
    return nbytes / ms * 1000.0 / MIB if ms else 0.0


def _s3_cost_dollars(s3: S3Stats) -> float:
    """Nix's ``costDollarApprox`` ($): requests plus egress (GiB downloaded)."""
    return (
        (s3.get + s3.head) / 10000.0 * 0.004 + s3.put / 1000.0 * 0.005 + (s3.get_bytes / GIB * 0.09)
    )


def _queue_system(machine_type: str) -> str:
    """System part of a machine type key ``system[:feature,...]``."""
    return machine_type.split(":", 1)[0]


def s3_doc(s3: S3Stats) -> dict[str, Any]:
    """``s3`` object: counts, bytes, ms; speeds in MiB/s; cost in $."""
    return {
        "put": s3.put,
        "putBytes": s3.put_bytes,
        "putTimeMs": s3.put_time_ms,
        "putSpeed": speed_mib_s(s3.put_bytes, s3.put_time_ms),
        "get": s3.get,
        "getBytes": s3.get_bytes,
        "getTimeMs": s3.get_time_ms,
        "getSpeed": speed_mib_s(s3.get_bytes, s3.get_time_ms),
        "head": s3.head,
        "costDollarApprox": _s3_cost_dollars(s3),
    }


def queue_early_exits(state: RunnerState) -> int:
    """Queue checks that yielded early: started = finished + early exits + (0 or 1 running)."""
    return max(0, state.queue_checks_started - state.queue_checks_finished - 1)


def queue_stats(state: RunnerState) -> dict[str, dict[str, int]]:
    """Per-system queue stats: counts of steps, ``waitTimeMs`` in ms, avg always 0.

    A queue holds the runnable steps of its system plus the scheduled (running) ones;
    runnable steps that no machine can take are ``nrRunnableDisabled``.
    """
    offered = {system for m in state.machines for system in m.systems}
    totals: dict[str, list[int]] = {}
    for machine_type, (runnable, running) in state.machine_types.items():
        entry = totals.setdefault(_queue_system(machine_type), [0, 0])
        entry[0] += runnable
        entry[1] += running
    for system in state.wait_time_ms:
        totals.setdefault(system, [0, 0])
    out: dict[str, dict[str, int]] = {}
    for system, (runnable, running) in sorted(totals.items()):
        disabled = 0 if system in offered else runnable
        out[system] = {
            "activeRunnable": running,
            "totalRunnable": runnable + running,
            "nrRunnableWaiting": runnable - disabled,
            "nrRunnableDisabled": disabled,
            "avgRunnableTime": 0,
            "waitTimeMs": state.wait_time_ms.get(system, 0),
        }
    return out


def rust_runnable(state: RunnerState) -> int:
    """Rust ``nrStepsRunnable``/``steps_runnable``: every live step whose runnable flag is
    set, and the flag is never cleared on dispatch, so the steps being built count too
    (hydra 14332fbf hydra-queue-runner/src/state/step.rs:451, :659)."""
    return state.nr_runnable_steps + state.nr_active_steps


def _last_ping(machine: MachineState, now: float) -> int:
    """Epoch s of the builder's latest ping: pings every 10 s since it joined."""
    since_join = max(0.0, now - machine.joined_at)
    return int(now - since_join % RUST_PING_INTERVAL_S)


def _idle_since(machine: MachineState) -> int:
    """Epoch s the machine went idle; 0 while it holds jobs."""
    return int(machine.idle_since) if machine.current_jobs == 0 else 0


def avg_ms(total: int, count: int) -> int:
    """Integer average in ms (u64 division); 0 before the first step."""
    return total // count if count else 0


def loop_counters(state: RunnerState) -> dict[str, int]:
    """Queue-monitor and dispatcher counters (counts, µs) of both generations' ``/metrics``
    and the Rust ``queueRunner``."""
    return {
        "queueChecksStarted": state.queue_checks_started,
        "queueBuildLoads": state.queue_build_loads,
        "queueStepsCreated": state.queue_steps_created,
        "queueChecksEarlyExits": queue_early_exits(state),
        "queueChecksFinished": state.queue_checks_finished,
        "dispatcherTimeSpentRunning": state.dispatcher_running_us,
        "dispatcherTimeSpentWaiting": state.dispatcher_waiting_us,
        "queueMonitorTimeSpentRunning": state.monitor_running_us,
        "queueMonitorTimeSpentWaiting": state.monitor_waiting_us,
    }


def _step_counters(state: RunnerState, queues: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Build/step counters and step-time totals (ms) and integer averages (ms)."""
    done = state.nr_steps_done
    return {
        "nrBuildsRead": state.nr_builds_read,
        "buildReadTimeMs": state.build_read_time_ms,
        "nrBuildsUnfinished": state.nr_queued_builds,
        "nrBuildsDone": state.nr_builds_done,
        "nrBuildsSucceeded": state.nr_builds_succeeded,
        "nrBuildsFailed": state.nr_builds_failed,
        "nrStepsStarted": state.nr_steps_started,
        "nrStepsDone": done,
        "nrStepsBuilding": state.nr_steps_building,
        "nrStepsWaiting": sum(q["nrRunnableWaiting"] for q in queues.values()),
        "nrStepsRunnable": rust_runnable(state),
        "nrStepsUnfinished": state.nr_unfinished_steps,
        "nrUnsupportedSteps": state.nr_unsupported_steps,
        "nrUnsupportedStepsAborted": 0,
        "nrSubstitutesStarted": 0,
        "nrSubstitutesFailed": 0,
        "nrSubstitutesSucceeded": 0,
        "nrRetries": state.nr_retries,
        "maxNrRetries": state.max_nr_retries,
        "avgStepTimeMs": avg_ms(state.total_step_ms, done),
        "avgStepImportTimeMs": avg_ms(state.total_step_import_ms, done),
        "avgStepBuildTimeMs": avg_ms(state.total_step_build_ms, done),
        "avgStepUploadTimeMs": avg_ms(state.total_step_upload_ms, done),
        "totalStepTimeMs": state.total_step_ms,
        "totalStepImportTimeMs": state.total_step_import_ms,
        "totalStepBuildTimeMs": state.total_step_build_ms,
        "totalStepUploadTimeMs": state.total_step_upload_ms,
    }


def rust_counters(
    state: RunnerState, queues: Mapping[str, Mapping[str, int]], uploads_pending: int
) -> dict[str, int]:
    """Every counter of the Rust ``queueRunner``, in its order: the loop counters (µs), the
    build and step counters (counts, ms), wakeups, machines and pending S3 uploads.

    ``queues`` is :func:`queue_stats` of the same state.
    """
    return {
        **loop_counters(state),
        **_step_counters(state, queues),
        "nrQueueWakeups": state.nr_queue_wakeups,
        "nrDispatcherWakeups": state.nr_dispatcher_wakeups,
        "dispatchTimeMs": state.dispatch_time_ms,
        "machinesTotal": len(state.machines),
        "machinesInUse": sum(1 for m in state.machines if m.current_jobs > 0),
        "s3UploadsPending": uploads_pending,
    }


def machine_counters(machine: MachineState, now: float) -> dict[str, int]:
    """The counters of Rust ``machines.<host>.stats`` (the part before the host facts):
    counts, ms totals and integer ms averages, epoch s."""
    done = machine.nr_steps_done
    last_ping = _last_ping(machine, now)
    return {
        "currentJobs": machine.current_jobs,
        "nrStepsDone": done,
        "avgStepTimeMs": avg_ms(machine.total_step_ms, done),
        "avgStepImportTimeMs": avg_ms(machine.total_step_import_ms, done),
        "avgStepBuildTimeMs": avg_ms(machine.total_step_build_ms, done),
        "avgStepUploadTimeMs": avg_ms(machine.total_step_upload_ms, done),
        "totalStepTimeMs": machine.total_step_ms,
        "totalStepImportTimeMs": machine.total_step_import_ms,
        "totalStepBuildTimeMs": machine.total_step_build_ms,
        "totalStepUploadTimeMs": machine.total_step_upload_ms,
        "idleSince": _idle_since(machine),
        "lastFailure": int(machine.last_failure),
        "disabledUntil": int(machine.disabled_until),
        "consecutiveFailures": machine.consecutive_failures,
        "lastPing": last_ping,
        "sinceLastPing": int(now) - last_ping,
    }
