"""Prometheus ``/metrics`` of both generations: the families and their values.

C++: prometheus-cpp, families in registration order, ``%.16g`` numbers. Rust:
rust-prometheus, families sorted by name, ``f64`` Display numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from profiler.testbed.state import MachineState, RunnerState
from profiler.testbed.status.counters import (
    DEFAULT_MACHINE_TYPE,
    avg_ms,
    queue_early_exits,
    queue_stats,
    rust_idle_since,
    rust_last_ping,
    rust_runnable,
    s3_doc,
)
from profiler.testbed.status.exposition import Family, Labels, labelled, one, render
from profiler.testbed.status.numbers import cpp_number, rust_number

JOB_WAIT_BUCKETS_S = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 7200.0, 86400.0)
INPUT_DRVS_BUCKETS = (0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0)
CLOSURE_SIZE_BUCKETS_BYTES = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)


def _quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile; NaN for no values (as prometheus-cpp's summary shows)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _parse_table(text: str) -> dict[str, tuple[str, str]]:
    """Parse a metric table: ``name type`` lines, each followed by an indented help line."""
    rows = [line for line in text.strip("\n").splitlines() if line.strip()]
    table: dict[str, tuple[str, str]] = {}
    for head, help_line in zip(rows[::2], rows[1::2], strict=True):
        name, kind = head.split()
        table[name] = (kind, help_line.strip())
    return table


def _families(
    prefix: str, table: Mapping[str, tuple[str, str]], values: Mapping[str, float]
) -> list[Family]:
    """Unlabelled families of ``table`` (name -> (type, help)) with ``values`` by name."""
    return [
        one(prefix + name, help_text, kind, values[name])
        for name, (kind, help_text) in table.items()
    ]


def _cpp_exposer_families(latencies_us: Sequence[float], nbytes: int) -> list[Family]:
    """prometheus-cpp's own endpoint metrics (served before the application's registry)."""
    summary = Family(
        "exposer_request_latencies",
        "Latencies of serving scrape requests, in microseconds",
        "summary",
        [("_count", (), float(len(latencies_us))), ("_sum", (), float(sum(latencies_us)))],
    )
    for q in (0.5, 0.9, 0.99):
        summary.samples.append(("", (("quantile", cpp_number(q)),), _quantile(latencies_us, q)))
    table = _parse_table(_CXX_EXPOSER_TABLE)
    values = {"transferred_bytes_total": nbytes, "scrapes_total": len(latencies_us)}
    return [*_families("exposer_", table, values), summary]


_CXX_EXPOSER_TABLE = """
transferred_bytes_total counter
    Transferred bytes to metrics services
scrapes_total counter
    Number of times metrics were scraped
"""


# The final C++ families, in registration order (prometheus-cpp keeps it)
_CXX_TABLE = """
queue_checks_started_total counter
    Number of times State::getQueuedBuilds() was started
queue_build_loads_total counter
    Number of builds loaded
queue_steps_created_total counter
    Number of steps created
queue_checks_early_exits_total counter
    Number of times State::getQueuedBuilds() yielded to potential bumps
queue_checks_finished_total counter
    Number of times State::getQueuedBuilds() was completed
dispatcher_time_spent_running counter
    Time (in micros) spent running the dispatcher
dispatcher_time_spent_waiting counter
    Time (in micros) spent waiting for the dispatcher to obtain work
queue_monitor_time_spent_running counter
    Time (in micros) spent running the queue monitor
queue_monitor_time_spent_waiting counter
    Time (in micros) spent waiting for the queue monitor to obtain work
"""


def _loop_values(state: RunnerState) -> dict[str, float]:
    """Queue-monitor and dispatcher counters shared by both generations (counts, µs)."""
    return {
        "queue_checks_started_total": state.queue_checks_started,
        "queue_build_loads_total": state.queue_build_loads,
        "queue_steps_created_total": state.queue_steps_created,
        "queue_checks_early_exits_total": queue_early_exits(state),
        "queue_checks_finished_total": state.queue_checks_finished,
        "dispatcher_time_spent_running": state.dispatcher_running_us,
        "dispatcher_time_spent_waiting": state.dispatcher_waiting_us,
        "queue_monitor_time_spent_running": state.monitor_running_us,
        "queue_monitor_time_spent_waiting": state.monitor_waiting_us,
    }


def cxx_metrics(
    state: RunnerState,
    *,
    exposer_latencies_us: Sequence[float] | None = None,
    exposer_bytes: int = 0,
) -> str:
    """C++ ``/metrics`` (prometheus-cpp): the final hydra families, in registration order.

    The four loop timers are µs counters **without** ``_total``. prometheus-cpp also serves
    ``exposer_*`` families for its own scrapes; pass the latencies (µs) of the scrapes
    served so far (and the bytes sent) to include them, None to leave them out.
    """
    families = _families("hydraqueuerunner_", _parse_table(_CXX_TABLE), _loop_values(state))
    if exposer_latencies_us is not None:
        families = _cpp_exposer_families(exposer_latencies_us, exposer_bytes) + families
    return render(families, cpp_number)


# Unlabelled Rust families (metrics.rs), after the "hydraqueuerunner_" prefix
_RUST_TABLE = """
queue_checks_started_total counter
    Number of times State::get_queued_builds() was started
queue_build_loads_total counter
    Number of builds loaded
queue_steps_created_total counter
    Number of steps created
queue_checks_early_exits_total counter
    Number of times State::get_queued_builds() yielded to potential bumps
queue_checks_finished_total counter
    Number of times State::get_queued_builds() was completed
dispatcher_time_spent_running_total counter
    Time (in micros) spent running the dispatcher
dispatcher_time_spent_waiting_total counter
    Time (in micros) spent waiting for the dispatcher to obtain work
monitor_time_spent_running_total counter
    Time (in micros) spent running the queue monitor
monitor_time_spent_waiting_total counter
    Time (in micros) spent waiting for the queue monitor to obtain work
builds_read counter
    Number of builds read from database
builds_read_time_ms counter
    Time in milliseconds spent reading builds from database
builds_unfinished gauge
    Number of unfinished builds in the queue
builds_finished counter
    Number of finished builds in the queue
builds_succeeded counter
    Number of successful builds in the queue
builds_failed counter
    Number of failed builds in the queue
steps_started counter
    Number of build steps that have been started
steps_finished counter
    Number of build steps that have been completed
steps_building gauge
    Number of build steps currently being built
steps_waiting gauge
    Number of build steps waiting to be built
steps_runnable gauge
    Number of build steps that are ready to run
steps_unfinished gauge
    Number of unfinished build steps
steps_unsupported gauge
    Number of unsupported build steps
steps_unsupported_aborted counter
    Number of unsupported build steps that were aborted
substitutes_started counter
    Number of substitute downloads that have been started
substitutes_failed counter
    Number of substitute downloads that have failed
substitutes_succeeded counter
    Number of substitute downloads that have succeeded
steps_retries counter
    Number of retries for build steps
steps_max_retries gauge
    Maximum number of retries allowed for build steps
steps_copying_to gauge
    Number of build steps currently copying inputs to machines
steps_copying_from gauge
    Number of build steps currently copying outputs from machines
steps_avg_total_time_ms gauge
    Average time in milliseconds for build steps to complete
steps_avg_import_time_ms gauge
    Average time in milliseconds for importing build steps
steps_avg_build_time_ms gauge
    Average time in milliseconds for building build steps
steps_avg_upload_time_ms gauge
    Average time in milliseconds for uploading build steps
steps_total_time_ms counter
    Total time in milliseconds spent on all build steps
steps_total_import_time_ms counter
    Total time in milliseconds spent importing all build steps
steps_total_build_time_ms counter
    Total time in milliseconds spent building all build steps
steps_total_upload_time_ms counter
    Total time in milliseconds spent uploading all build steps
monitor_checks counter
    Number of times the queue monitor has been woken up
dispatch_wakeup counter
    Number of times the dispatcher has been woken up
dispatch_time_ms counter
    Time in milliseconds spent dispatching build steps
machines_total gauge
    Total number of machines available for building
machines_in_use gauge
    Number of machines currently in use for building
s3_uploads_pending gauge
    Pending upload count to all remote stores.
overflow_copies_queued_total counter
    Number of copies queued to the overflow store
overflow_copies_succeeded_total counter
    Number of copies to the overflow store that succeeded
overflow_copies_failed_total counter
    Number of copies to the overflow store that failed
sort_duration_ms_total counter
    Total time in milliseconds spent sorting jobs in queues
aborted_jobs_total counter
    Total number of jobs that were aborted
current_time_seconds gauge
    Current Unix timestamp in seconds
uptime_seconds gauge
    Queue runner uptime in seconds
store_nar_info_read gauge
    Number of NAR info reads from store
store_nar_info_read_averted gauge
    Number of NAR info reads averted from store
store_nar_info_missing gauge
    Number of missing NAR info in store
store_nar_info_write gauge
    Number of NAR info writes to store
store_path_info_cache_size gauge
    Size of path info cache in store
store_nar_read gauge
    Number of NAR reads from store
store_nar_read_bytes gauge
    Number of bytes read from NARs in store
store_nar_read_compressed_bytes gauge
    Number of compressed bytes read from NARs in store
store_nar_write gauge
    Number of NAR writes to store
store_nar_write_averted gauge
    Number of NAR writes averted to store
store_nar_write_bytes gauge
    Number of bytes written to NARs in store
store_nar_write_compressed_bytes gauge
    Number of compressed bytes written to NARs in store
store_nar_write_compression_time_ms gauge
    Time in milliseconds spent compressing NARs in store
store_nar_compression_savings gauge
    Compression savings ratio for NARs in store
store_nar_compression_speed gauge
    Compression speed for NARs in store
"""


# Labelled gauges: name -> (label, help); values come from _rust_labelled_values
_RUST_LABELLED_TABLE = """
machine_type_runnable machine_type
    Number of runnable build steps per machine type
machine_type_running machine_type
    Number of running build steps per machine type
machine_type_waiting machine_type
    Number of waiting build steps per machine type
machine_type_disabled machine_type
    Number of disabled build steps per machine type
machine_type_avg_runnable_time machine_type
    Average runnable time for build steps per machine type
machine_type_wait_time machine_type
    Wait time for build steps per machine type
machine_current_jobs hostname
    Number of currently running jobs on each machine
machine_steps_done hostname
    Total number of steps completed by each machine
machine_total_step_time_ms hostname
    Total time in milliseconds spent on all steps by each machine
machine_total_step_import_time_ms hostname
    Total time in milliseconds spent importing steps by each machine
machine_total_step_build_time_ms hostname
    Total time in milliseconds spent building steps by each machine
machine_total_step_upload_time_ms hostname
    Total time in milliseconds spent uploading steps by each machine
machine_consecutive_failures hostname
    Number of consecutive failures for each machine
machine_last_ping_timestamp hostname
    Unix timestamp of the last ping received from each machine
machine_idle_since_timestamp hostname
    Unix timestamp since when each machine has been idle (0 if currently busy)
s3_put remote_store
    Number of S3 put operations
s3_put_bytes remote_store
    Number of bytes put to S3
s3_put_time_ms remote_store
    Time in milliseconds spent on S3 put operations
s3_put_speed remote_store
    Speed of S3 put operations
s3_get remote_store
    Number of S3 get operations
s3_get_bytes remote_store
    Number of bytes gotten from S3
s3_get_time_ms remote_store
    Time in milliseconds spent on S3 get operations
s3_get_speed remote_store
    Speed of S3 get operations
s3_head remote_store
    Number of S3 head operations
s3_cost_dollar_approx remote_store
    Approximate cost in dollars for S3 operations
jobset_share_used jobset_name
    Share used by jobset
jobset_seconds jobset_name
    Seconds allocated to jobset
"""


_RUST_SCALARS = _parse_table(_RUST_TABLE)


_RUST_LABELLED = _parse_table(_RUST_LABELLED_TABLE)


def _rust_step_values(state: RunnerState) -> dict[str, float]:
    """Build and step counters/gauges (counts) and step times (ms)."""
    done = state.nr_steps_done
    queues = queue_stats(state)
    return {
        "builds_read": state.nr_builds_read,
        "builds_read_time_ms": state.build_read_time_ms,
        "builds_unfinished": state.nr_queued_builds,
        "builds_finished": state.nr_builds_done,
        "builds_succeeded": state.nr_builds_succeeded,
        "builds_failed": state.nr_builds_failed,
        "steps_started": state.nr_steps_started,
        "steps_finished": done,
        "steps_building": state.nr_steps_building,
        "steps_waiting": sum(q["nrRunnableWaiting"] for q in queues.values()),
        "steps_runnable": rust_runnable(state),
        "steps_unfinished": state.nr_unfinished_steps,
        "steps_unsupported": state.nr_unsupported_steps,
        "steps_unsupported_aborted": 0,
        "substitutes_started": 0,
        "substitutes_failed": 0,
        "substitutes_succeeded": 0,
        "steps_retries": state.nr_retries,
        "steps_max_retries": state.max_nr_retries,
        # paths, not steps: the builders' uploading/downloading path counts
        "steps_copying_to": sum(m.uploading_paths for m in state.machines),
        "steps_copying_from": sum(m.downloading_paths for m in state.machines),
        "steps_avg_total_time_ms": avg_ms(state.total_step_ms, done),
        "steps_avg_import_time_ms": avg_ms(state.total_step_import_ms, done),
        "steps_avg_build_time_ms": avg_ms(state.total_step_build_ms, done),
        "steps_avg_upload_time_ms": avg_ms(state.total_step_upload_ms, done),
        "steps_total_time_ms": state.total_step_ms,
        "steps_total_import_time_ms": state.total_step_import_ms,
        "steps_total_build_time_ms": state.total_step_build_ms,
        "steps_total_upload_time_ms": state.total_step_upload_ms,
    }


def _rust_scalar_values(state: RunnerState, now: float, uploads: int) -> dict[str, float]:
    """Values of every unlabelled Rust family (counts, ms, µs, epoch s, s)."""
    loop = _loop_values(state)
    values: dict[str, float] = {k: v for k, v in loop.items() if k.endswith("_total")}
    values.update(
        {
            "dispatcher_time_spent_running_total": state.dispatcher_running_us,
            "dispatcher_time_spent_waiting_total": state.dispatcher_waiting_us,
            "monitor_time_spent_running_total": state.monitor_running_us,
            "monitor_time_spent_waiting_total": state.monitor_waiting_us,
            "monitor_checks": state.nr_queue_wakeups,
            "dispatch_wakeup": state.nr_dispatcher_wakeups,
            "dispatch_time_ms": state.dispatch_time_ms,
            "machines_total": len(state.machines),
            "machines_in_use": sum(1 for m in state.machines if m.current_jobs > 0),
            "s3_uploads_pending": uploads,
            "current_time_seconds": int(now),
            "uptime_seconds": int(max(0.0, now - state.started_at)),
        }
    )
    values.update(_rust_step_values(state))
    # store gauges are never updated (no store stats over the daemon protocol); overflow
    # copies, queue sorting and aborts are not emulated
    zero = ("store_", "overflow_copies_", "sort_duration_", "aborted_jobs_")
    return {name: 0 if name.startswith(zero) else values[name] for name in _RUST_SCALARS}


def _rust_labelled_values(state: RunnerState, now: float) -> dict[str, dict[str, float]]:
    """Values of the labelled gauges, by family then label value."""
    queues = queue_stats(state)
    queue_keys = {
        "runnable": "totalRunnable",
        "running": "activeRunnable",
        "waiting": "nrRunnableWaiting",
        "disabled": "nrRunnableDisabled",
        "avg_runnable_time": "avgRunnableTime",
        "wait_time": "waitTimeMs",
    }
    out: dict[str, dict[str, float]] = {
        f"machine_type_{name}": {t: q[key] for t, q in queues.items()}
        for name, key in queue_keys.items()
    }
    for m in state.machines:
        stats = _rust_machine_stats_core(m, now)
        for name, value in stats.items():
            out.setdefault(f"machine_{name}", {})[m.hostname] = value
    for key, value in s3_doc(state.s3).items():
        out[f"s3_{_snake(key)}"] = {state.s3_bucket: value}
    # sic: the Rust runner sets jobset_share_used to the shares, not the share used
    out["jobset_share_used"] = {n: shares for n, (_, shares) in state.jobsets.items()}
    out["jobset_seconds"] = {n: seconds for n, (seconds, _) in state.jobsets.items()}
    return out


def _rust_machine_stats_core(machine: MachineState, now: float) -> dict[str, float]:
    """Per-hostname gauge values: counts, ms totals, epoch s."""
    return {
        "current_jobs": machine.current_jobs,
        "steps_done": machine.nr_steps_done,
        "total_step_time_ms": machine.total_step_ms,
        "total_step_import_time_ms": machine.total_step_import_ms,
        "total_step_build_time_ms": machine.total_step_build_ms,
        "total_step_upload_time_ms": machine.total_step_upload_ms,
        "consecutive_failures": machine.consecutive_failures,
        "last_ping_timestamp": rust_last_ping(machine, now),
        "idle_since_timestamp": rust_idle_since(machine),
    }


def _snake(camel: str) -> str:
    """``putTimeMs`` -> ``put_time_ms``."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


def _histogram(
    name: str, help_text: str, buckets: Sequence[float], observed: Mapping[str, Sequence[float]]
) -> Family:
    """A ``machine_type``-labelled histogram: cumulative buckets, ``+Inf``, sum, count."""
    fam = Family(name, help_text, "histogram")
    for machine_type, values in sorted(observed.items()):
        labels: Labels = (("machine_type", machine_type),)
        for bound in buckets:
            count = sum(1 for v in values if v <= bound)
            fam.samples.append(("_bucket", (*labels, ("le", rust_number(bound))), count))
        fam.samples.append(("_bucket", (*labels, ("le", "+Inf")), float(len(values))))
        fam.samples.append(("_sum", labels, float(sum(values))))
        fam.samples.append(("_count", labels, float(len(values))))
    return fam


def _rust_histograms(
    state: RunnerState, wait_seconds: Sequence[float] | Mapping[str, Sequence[float]] | None
) -> list[Family]:
    """The three histograms; the input-drv and closure-size ones carry zero counts."""
    queues = queue_stats(state)
    types = sorted(queues) or [DEFAULT_MACHINE_TYPE]
    if isinstance(wait_seconds, Mapping):
        waits = {t: list(v) for t, v in wait_seconds.items()}
    else:
        busiest = max(types, key=lambda t: queues.get(t, {}).get("totalRunnable", 0))
        waits = {busiest: list(wait_seconds or [])}
    for machine_type in types:
        waits.setdefault(machine_type, [])
    empty: dict[str, Sequence[float]] = {t: [] for t in types}
    p = "hydraqueuerunner_"
    return [
        _histogram(
            f"{p}build_input_drvs_seconds",
            "Distribution of number of input derivations per build",
            INPUT_DRVS_BUCKETS,
            empty,
        ),
        _histogram(
            f"{p}build_closure_size_bytes",
            "Distribution of build closure sizes in bytes",
            CLOSURE_SIZE_BUCKETS_BYTES,
            empty,
        ),
        _histogram(
            f"{p}job_wait_time_seconds",
            "Distribution of time jobs wait in queue before being scheduled",
            JOB_WAIT_BUCKETS_S,
            waits,
        ),
    ]


def rust_metrics(
    state: RunnerState,
    now: float,
    wait_seconds: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    *,
    uploads: Sequence[str] = (),
) -> str:
    """Rust ``/metrics`` (rust-prometheus): the families of metrics.rs, sorted by name.

    ``wait_seconds`` (s) feeds ``hydraqueuerunner_job_wait_time_seconds``: a list goes to
    the machine type with the most queued steps, a mapping is keyed by machine type.
    ``uploads`` are the paths in the S3 uploader queue. Label vectors without children are
    left out, as rust-prometheus does; label values are sorted within a family.
    """
    p = "hydraqueuerunner_"
    fams = _families(p, _RUST_SCALARS, _rust_scalar_values(state, now, len(uploads)))
    by_family = _rust_labelled_values(state, now)
    for name, (label, help_text) in _RUST_LABELLED.items():
        values = by_family.get(name, {})
        fams.append(labelled(p + name, help_text, label, dict(sorted(values.items()))))
    fams += _rust_histograms(state, wait_seconds)
    kept = [f for f in fams if f.samples]
    return render(sorted(kept, key=lambda f: f.name), rust_number)
