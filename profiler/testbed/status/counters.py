"""Counters and sections both generations report, from a :class:`RunnerState` snapshot:
the ``s3`` object, the queue-monitor counters, the Rust queue statistics and step counts."""

from __future__ import annotations

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


def rust_last_ping(machine: MachineState, now: float) -> int:
    """Epoch s of the builder's latest ping: pings every 10 s since it joined."""
    since_join = max(0.0, now - machine.joined_at)
    return int(now - since_join % RUST_PING_INTERVAL_S)


def rust_idle_since(machine: MachineState) -> int:
    """Epoch s the machine went idle; 0 while it holds jobs."""
    return int(machine.idle_since) if machine.current_jobs == 0 else 0


def avg_ms(total: int, count: int) -> int:
    """Integer average in ms (u64 division); 0 before the first step."""
    return total // count if count else 0
