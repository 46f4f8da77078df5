"""C++ status JSON: ``State::dumpStatus`` in its final (2025) form.

Counters of time are ms (``...Ms``) except ``totalStep*``/``avgStep*``, which are
**seconds**; some averages are C ``float`` (single precision).
"""

from __future__ import annotations

from typing import Any

from profiler.testbed.state import MachineState, RunnerState, StoreStats
from profiler.testbed.status.counters import s3_doc, speed_mib_s
from profiler.testbed.status.numbers import cxx_float_avg

CONSECUTIVE_FAILURES_CAP = 4  # C++ caps Machine::ConnectInfo::consecutiveFailures at 4


def _store_doc(store: StoreStats) -> dict[str, Any]:
    """C++ ``store`` object (Nix ``Store::Stats``): counts, bytes, ms, ratio, MiB/s."""
    savings = (
        1.0 - store.nar_write_compressed_bytes / store.nar_write_bytes
        if store.nar_write_bytes
        else 0.0
    )
    return {
        "narInfoRead": store.nar_info_read,
        "narInfoReadAverted": store.nar_info_read_averted,
        "narInfoMissing": store.nar_info_missing,
        "narInfoWrite": store.nar_info_write,
        "narInfoCacheSize": store.nar_info_cache_size,
        "narRead": store.nar_read,
        "narReadBytes": store.nar_read_bytes,
        "narReadCompressedBytes": store.nar_read_compressed_bytes,
        "narWrite": store.nar_write,
        "narWriteAverted": store.nar_write_averted,
        "narWriteBytes": store.nar_write_bytes,
        "narWriteCompressedBytes": store.nar_write_compressed_bytes,
        "narWriteCompressionTimeMs": store.nar_write_compression_time_ms,
        "narCompressionSavings": savings,
        "narCompressionSpeed": speed_mib_s(
            store.nar_write_bytes, store.nar_write_compression_time_ms
        ),
    }


def _cxx_machine(machine: MachineState) -> dict[str, Any]:
    """One ``machines."ssh://user@host"`` entry; times are epoch s, totals s."""
    doc: dict[str, Any] = {
        "enabled": True,
        "systemTypes": sorted(set(machine.systems)),
        # parseMachines adds the mandatory features to the supported ones (std::set: sorted)
        "supportedFeatures": sorted(
            set(machine.supported_features) | set(machine.mandatory_features)
        ),
        "mandatoryFeatures": sorted(set(machine.mandatory_features)),
        "nrStepsDone": machine.nr_steps_done,
        "currentJobs": machine.current_jobs,
        "disabledUntil": int(machine.disabled_until),
        "lastFailure": int(machine.last_failure),
        "consecutiveFailures": min(machine.consecutive_failures, CONSECUTIVE_FAILURES_CAP),
    }
    if machine.current_jobs == 0:
        doc["idleSince"] = int(machine.idle_since)
    if machine.nr_steps_done > 0:
        doc["totalStepTime"] = machine.total_step_seconds
        doc["totalStepBuildTime"] = machine.total_step_build_seconds
        doc["avgStepTime"] = cxx_float_avg(machine.total_step_seconds, machine.nr_steps_done)
        doc["avgStepBuildTime"] = cxx_float_avg(
            machine.total_step_build_seconds, machine.nr_steps_done
        )
    return doc


def _cxx_phase_gauges(state: RunnerState, max_local_worker_threads: int) -> dict[str, int]:
    """Thread gauges; receiving outputs needs a ``localWorkThrottler`` permit, so at most
    ``max_local_worker_threads`` threads copy from builders and the rest wait for a slot."""
    copying_from = min(state.nr_steps_copying_from, max_local_worker_threads)
    waiting = state.nr_steps_waiting_for_download_slot + (
        state.nr_steps_copying_from - copying_from
    )
    return {
        "nrActiveSteps": state.nr_active_steps,
        "nrStepsBuilding": state.nr_steps_building,
        "nrStepsCopyingTo": state.nr_steps_copying_to,
        "nrStepsWaitingForDownloadSlot": waiting,
        "nrStepsCopyingFrom": copying_from,
        "nrStepsWaiting": 0,  # vestigial since 2017: incremented and decremented at once
    }


def _cxx_counters(state: RunnerState, now: float) -> dict[str, Any]:
    """Top-level scalars of ``dumpStatus`` other than the phase gauges (ms, s, bytes)."""
    return {
        "status": "up",
        "time": int(now),
        "uptime": int(now) - int(state.started_at),
        "pid": state.pid,
        "nrQueuedBuilds": state.nr_queued_builds,
        "nrUnsupportedSteps": state.nr_unsupported_steps,
        "bytesSent": state.bytes_sent,
        "bytesReceived": state.bytes_received,
        "nrBuildsRead": state.nr_builds_read,
        "buildReadTimeMs": state.build_read_time_ms,
        "buildReadTimeAvgMs": cxx_float_avg(state.build_read_time_ms, state.nr_builds_read),
        "nrBuildsDone": state.nr_builds_done,
        "nrStepsStarted": state.nr_steps_started,
        "nrStepsDone": state.nr_steps_done,
        "nrRetries": state.nr_retries,
        "maxNrRetries": state.max_nr_retries,
        "nrQueueWakeups": state.nr_queue_wakeups,
        "nrDispatcherWakeups": state.nr_dispatcher_wakeups,
        "dispatchTimeMs": state.dispatch_time_ms,
        "dispatchTimeAvgMs": cxx_float_avg(state.dispatch_time_ms, state.nr_dispatcher_wakeups),
        "nrDbConnections": state.nr_db_connections,
        "nrActiveDbUpdates": state.nr_active_db_updates,
        "nrUnfinishedSteps": state.nr_unfinished_steps,
        "nrRunnableSteps": state.nr_runnable_steps,
    }


def _cxx_step_totals(state: RunnerState) -> dict[str, Any]:
    """``totalStep*`` (int s) and ``avgStep*`` (f32 s), only once a step is done."""
    if state.nr_steps_done <= 0:
        return {}
    return {
        "totalStepTime": state.total_step_seconds,
        "totalStepBuildTime": state.total_step_build_seconds,
        "avgStepTime": cxx_float_avg(state.total_step_seconds, state.nr_steps_done),
        "avgStepBuildTime": cxx_float_avg(state.total_step_build_seconds, state.nr_steps_done),
    }


def _cxx_jobsets(state: RunnerState) -> dict[str, Any]:
    """``jobsets``: seconds in the 24 h window (int s) and seconds per share (double)."""
    return {
        name: {"shareUsed": seconds / max(shares, 1), "seconds": seconds}
        for name, (seconds, shares) in state.jobsets.items()
    }


def cxx_status(
    state: RunnerState, now: float, max_local_worker_threads: int, *, include_s3: bool = True
) -> dict[str, Any]:
    """C++ ``dumpStatus`` JSON, final (2025) form; ``now`` in epoch s.

    ``include_s3=False`` gives the section-less output of C++ runners built against
    Nix >= 2.33 (no ``S3BinaryCacheStore::getS3Stats`` any more).
    """
    if max_local_worker_threads < 1:
        raise ValueError(f"max_local_worker_threads must be >= 1, not {max_local_worker_threads}")
    doc = _cxx_counters(state, now)
    doc.update(_cxx_phase_gauges(state, max_local_worker_threads))
    doc.update(_cxx_step_totals(state))
    doc["machines"] = {m.store_uri: _cxx_machine(m) for m in state.machines}
    doc["jobsets"] = _cxx_jobsets(state)
    doc["machineTypes"] = {
        name: {"runnable": runnable, "running": running}
        for name, (runnable, running) in state.machine_types.items()
    }
    doc["store"] = _store_doc(state.store)
    if include_s3:
        doc["s3"] = s3_doc(state.s3)
    return doc
