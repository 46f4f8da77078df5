"""Prometheus ``/metrics`` of both generations: the families and their values.

C++: prometheus-cpp, families in registration order, ``%.16g`` numbers. Rust:
rust-prometheus, families sorted by name, ``f64`` Display numbers.

Each family is declared once, keyed by the status field whose number it reports (see
``counters``): the families and the status JSON are fed by the same counters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from profiler.hydra import facts
from profiler.testbed.state import RunnerState
from profiler.testbed.status.counters import (
    DEFAULT_MACHINE_TYPE,
    loop_counters,
    machine_counters,
    queue_stats,
    rust_counters,
    s3_doc,
)
from profiler.testbed.status.exposition import (
    COUNTER,
    GAUGE,
    HISTOGRAM,
    SUMMARY,
    Family,
    Labels,
    Sample,
    render,
)
from profiler.testbed.status.numbers import cpp_number, rust_number

PREFIX = "hydraqueuerunner_"
INPUT_DRVS_BUCKETS = (0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0)
CLOSURE_SIZE_BUCKETS_BYTES = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)
# The final C++ families, in registration order (prometheus-cpp keeps it), keyed by the
# counter each reports; the four loop timers are µs counters without _total
CXX_FAMILIES: Mapping[str, Family] = {
    "queueChecksStarted": Family(
        "queue_checks_started_total",
        COUNTER,
        "Number of times State::getQueuedBuilds() was started",
    ),
    "queueBuildLoads": Family("queue_build_loads_total", COUNTER, "Number of builds loaded"),
    "queueStepsCreated": Family("queue_steps_created_total", COUNTER, "Number of steps created"),
    "queueChecksEarlyExits": Family(
        "queue_checks_early_exits_total",
        COUNTER,
        "Number of times State::getQueuedBuilds() yielded to potential bumps",
    ),
    "queueChecksFinished": Family(
        "queue_checks_finished_total",
        COUNTER,
        "Number of times State::getQueuedBuilds() was completed",
    ),
    "dispatcherTimeSpentRunning": Family(
        "dispatcher_time_spent_running", COUNTER, "Time (in micros) spent running the dispatcher"
    ),
    "dispatcherTimeSpentWaiting": Family(
        "dispatcher_time_spent_waiting",
        COUNTER,
        "Time (in micros) spent waiting for the dispatcher to obtain work",
    ),
    "queueMonitorTimeSpentRunning": Family(
        "queue_monitor_time_spent_running",
        COUNTER,
        "Time (in micros) spent running the queue monitor",
    ),
    "queueMonitorTimeSpentWaiting": Family(
        "queue_monitor_time_spent_waiting",
        COUNTER,
        "Time (in micros) spent waiting for the queue monitor to obtain work",
    ),
}
CXX_EXPOSER_BYTES = Family(
    "exposer_transferred_bytes_total", COUNTER, "Transferred bytes to metrics services"
)
CXX_EXPOSER_SCRAPES = Family(
    "exposer_scrapes_total", COUNTER, "Number of times metrics were scraped"
)
CXX_EXPOSER_LATENCIES = Family(
    "exposer_request_latencies", SUMMARY, "Latencies of serving scrape requests, in microseconds"
)


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
    values = loop_counters(state)
    families = [fam.with_value(values[key], PREFIX) for key, fam in CXX_FAMILIES.items()]
    if exposer_latencies_us is not None:
        families = _cpp_exposer_families(exposer_latencies_us, exposer_bytes) + families
    return render(families, cpp_number)


def _quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile; NaN for no values (as prometheus-cpp's summary shows)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _cpp_exposer_families(latencies_us: Sequence[float], nbytes: int) -> list[Family]:
    """prometheus-cpp's own endpoint metrics (served before the application's registry)."""
    quantiles = (
        Sample("", (("quantile", cpp_number(q)),), _quantile(latencies_us, q))
        for q in (0.5, 0.9, 0.99)
    )
    summary = CXX_EXPOSER_LATENCIES._replace(
        samples=(
            Sample("_count", (), float(len(latencies_us))),
            Sample("_sum", (), float(sum(latencies_us))),
            *quantiles,
        )
    )
    return [
        CXX_EXPOSER_BYTES.with_value(nbytes),
        CXX_EXPOSER_SCRAPES.with_value(len(latencies_us)),
        summary,
    ]


# Unlabelled Rust families (metrics.rs), after the prefix, keyed by the queueRunner field they
# report; "time" and "uptime" are its clock fields in whole seconds, and the two path gauges
# sum the machines' path counts (paths, not steps)
RUST_FAMILIES: Mapping[str, Family] = {
    "queueChecksStarted": Family(
        "queue_checks_started_total",
        COUNTER,
        "Number of times State::get_queued_builds() was started",
    ),
    "queueBuildLoads": Family("queue_build_loads_total", COUNTER, "Number of builds loaded"),
    "queueStepsCreated": Family("queue_steps_created_total", COUNTER, "Number of steps created"),
    "queueChecksEarlyExits": Family(
        "queue_checks_early_exits_total",
        COUNTER,
        "Number of times State::get_queued_builds() yielded to potential bumps",
    ),
    "queueChecksFinished": Family(
        "queue_checks_finished_total",
        COUNTER,
        "Number of times State::get_queued_builds() was completed",
    ),
    "dispatcherTimeSpentRunning": Family(
        "dispatcher_time_spent_running_total",
        COUNTER,
        "Time (in micros) spent running the dispatcher",
    ),
    "dispatcherTimeSpentWaiting": Family(
        "dispatcher_time_spent_waiting_total",
        COUNTER,
        "Time (in micros) spent waiting for the dispatcher to obtain work",
    ),
    "queueMonitorTimeSpentRunning": Family(
        "monitor_time_spent_running_total",
        COUNTER,
        "Time (in micros) spent running the queue monitor",
    ),
    "queueMonitorTimeSpentWaiting": Family(
        "monitor_time_spent_waiting_total",
        COUNTER,
        "Time (in micros) spent waiting for the queue monitor to obtain work",
    ),
    "nrBuildsRead": Family("builds_read", COUNTER, "Number of builds read from database"),
    "buildReadTimeMs": Family(
        "builds_read_time_ms", COUNTER, "Time in milliseconds spent reading builds from database"
    ),
    "nrBuildsUnfinished": Family(
        "builds_unfinished", GAUGE, "Number of unfinished builds in the queue"
    ),
    "nrBuildsDone": Family("builds_finished", COUNTER, "Number of finished builds in the queue"),
    "nrBuildsSucceeded": Family(
        "builds_succeeded", COUNTER, "Number of successful builds in the queue"
    ),
    "nrBuildsFailed": Family("builds_failed", COUNTER, "Number of failed builds in the queue"),
    "nrStepsStarted": Family(
        "steps_started", COUNTER, "Number of build steps that have been started"
    ),
    "nrStepsDone": Family(
        "steps_finished", COUNTER, "Number of build steps that have been completed"
    ),
    "nrStepsBuilding": Family(
        "steps_building", GAUGE, "Number of build steps currently being built"
    ),
    "nrStepsWaiting": Family("steps_waiting", GAUGE, "Number of build steps waiting to be built"),
    "nrStepsRunnable": Family(
        "steps_runnable", GAUGE, "Number of build steps that are ready to run"
    ),
    "nrStepsUnfinished": Family("steps_unfinished", GAUGE, "Number of unfinished build steps"),
    "nrUnsupportedSteps": Family("steps_unsupported", GAUGE, "Number of unsupported build steps"),
    "nrUnsupportedStepsAborted": Family(
        "steps_unsupported_aborted", COUNTER, "Number of unsupported build steps that were aborted"
    ),
    "nrSubstitutesStarted": Family(
        "substitutes_started", COUNTER, "Number of substitute downloads that have been started"
    ),
    "nrSubstitutesFailed": Family(
        "substitutes_failed", COUNTER, "Number of substitute downloads that have failed"
    ),
    "nrSubstitutesSucceeded": Family(
        "substitutes_succeeded", COUNTER, "Number of substitute downloads that have succeeded"
    ),
    "nrRetries": Family("steps_retries", COUNTER, "Number of retries for build steps"),
    "maxNrRetries": Family(
        "steps_max_retries", GAUGE, "Maximum number of retries allowed for build steps"
    ),
    "currentUploadingPathCount": Family(
        "steps_copying_to", GAUGE, "Number of build steps currently copying inputs to machines"
    ),
    "currentDownloadingPathCount": Family(
        "steps_copying_from", GAUGE, "Number of build steps currently copying outputs from machines"
    ),
    "avgStepTimeMs": Family(
        "steps_avg_total_time_ms", GAUGE, "Average time in milliseconds for build steps to complete"
    ),
    "avgStepImportTimeMs": Family(
        "steps_avg_import_time_ms", GAUGE, "Average time in milliseconds for importing build steps"
    ),
    "avgStepBuildTimeMs": Family(
        "steps_avg_build_time_ms", GAUGE, "Average time in milliseconds for building build steps"
    ),
    "avgStepUploadTimeMs": Family(
        "steps_avg_upload_time_ms", GAUGE, "Average time in milliseconds for uploading build steps"
    ),
    "totalStepTimeMs": Family(
        "steps_total_time_ms", COUNTER, "Total time in milliseconds spent on all build steps"
    ),
    "totalStepImportTimeMs": Family(
        "steps_total_import_time_ms",
        COUNTER,
        "Total time in milliseconds spent importing all build steps",
    ),
    "totalStepBuildTimeMs": Family(
        "steps_total_build_time_ms",
        COUNTER,
        "Total time in milliseconds spent building all build steps",
    ),
    "totalStepUploadTimeMs": Family(
        "steps_total_upload_time_ms",
        COUNTER,
        "Total time in milliseconds spent uploading all build steps",
    ),
    "nrQueueWakeups": Family(
        "monitor_checks", COUNTER, "Number of times the queue monitor has been woken up"
    ),
    "nrDispatcherWakeups": Family(
        "dispatch_wakeup", COUNTER, "Number of times the dispatcher has been woken up"
    ),
    "dispatchTimeMs": Family(
        "dispatch_time_ms", COUNTER, "Time in milliseconds spent dispatching build steps"
    ),
    "machinesTotal": Family(
        "machines_total", GAUGE, "Total number of machines available for building"
    ),
    "machinesInUse": Family(
        "machines_in_use", GAUGE, "Number of machines currently in use for building"
    ),
    "s3UploadsPending": Family(
        "s3_uploads_pending", GAUGE, "Pending upload count to all remote stores."
    ),
    "time": Family("current_time_seconds", GAUGE, "Current Unix timestamp in seconds"),
    "uptime": Family("uptime_seconds", GAUGE, "Queue runner uptime in seconds"),
}
# Families the emulator never changes: the store gauges are never updated (no store stats
# over the daemon protocol); overflow copies, queue sorting and aborts are not emulated
RUST_ZERO_FAMILIES = (
    Family(
        "overflow_copies_queued_total", COUNTER, "Number of copies queued to the overflow store"
    ),
    Family(
        "overflow_copies_succeeded_total",
        COUNTER,
        "Number of copies to the overflow store that succeeded",
    ),
    Family(
        "overflow_copies_failed_total",
        COUNTER,
        "Number of copies to the overflow store that failed",
    ),
    Family(
        "sort_duration_ms_total", COUNTER, "Total time in milliseconds spent sorting jobs in queues"
    ),
    Family("aborted_jobs_total", COUNTER, "Total number of jobs that were aborted"),
    *(
        Family(f"store_{name}", GAUGE, help_text)
        for name, help_text in {
            "nar_info_read": "Number of NAR info reads from store",
            "nar_info_read_averted": "Number of NAR info reads averted from store",
            "nar_info_missing": "Number of missing NAR info in store",
            "nar_info_write": "Number of NAR info writes to store",
            "path_info_cache_size": "Size of path info cache in store",
            "nar_read": "Number of NAR reads from store",
            "nar_read_bytes": "Number of bytes read from NARs in store",
            "nar_read_compressed_bytes": "Number of compressed bytes read from NARs in store",
            "nar_write": "Number of NAR writes to store",
            "nar_write_averted": "Number of NAR writes averted to store",
            "nar_write_bytes": "Number of bytes written to NARs in store",
            "nar_write_compressed_bytes": "Number of compressed bytes written to NARs in store",
            "nar_write_compression_time_ms": "Time in milliseconds spent compressing NARs in store",
            "nar_compression_savings": "Compression savings ratio for NARs in store",
            "nar_compression_speed": "Compression speed for NARs in store",
        }.items()
    ),
)
# Labelled gauges: label -> the status field each family reports -> family. The label values
# are the machine types of queueStats, the hostnames of machines (their stats), the bucket of
# s3 and the names of jobsets
RUST_LABELLED: Mapping[str, Mapping[str, Family]] = {
    "machine_type": {
        "totalRunnable": Family(
            "machine_type_runnable", GAUGE, "Number of runnable build steps per machine type"
        ),
        "activeRunnable": Family(
            "machine_type_running", GAUGE, "Number of running build steps per machine type"
        ),
        "nrRunnableWaiting": Family(
            "machine_type_waiting", GAUGE, "Number of waiting build steps per machine type"
        ),
        "nrRunnableDisabled": Family(
            "machine_type_disabled", GAUGE, "Number of disabled build steps per machine type"
        ),
        "avgRunnableTime": Family(
            "machine_type_avg_runnable_time",
            GAUGE,
            "Average runnable time for build steps per machine type",
        ),
        "waitTimeMs": Family(
            "machine_type_wait_time", GAUGE, "Wait time for build steps per machine type"
        ),
    },
    "hostname": {
        "currentJobs": Family(
            "machine_current_jobs", GAUGE, "Number of currently running jobs on each machine"
        ),
        "nrStepsDone": Family(
            "machine_steps_done", GAUGE, "Total number of steps completed by each machine"
        ),
        "totalStepTimeMs": Family(
            "machine_total_step_time_ms",
            GAUGE,
            "Total time in milliseconds spent on all steps by each machine",
        ),
        "totalStepImportTimeMs": Family(
            "machine_total_step_import_time_ms",
            GAUGE,
            "Total time in milliseconds spent importing steps by each machine",
        ),
        "totalStepBuildTimeMs": Family(
            "machine_total_step_build_time_ms",
            GAUGE,
            "Total time in milliseconds spent building steps by each machine",
        ),
        "totalStepUploadTimeMs": Family(
            "machine_total_step_upload_time_ms",
            GAUGE,
            "Total time in milliseconds spent uploading steps by each machine",
        ),
        "consecutiveFailures": Family(
            "machine_consecutive_failures",
            GAUGE,
            "Number of consecutive failures for each machine",
        ),
        "lastPing": Family(
            "machine_last_ping_timestamp",
            GAUGE,
            "Unix timestamp of the last ping received from each machine",
        ),
        "idleSince": Family(
            "machine_idle_since_timestamp",
            GAUGE,
            "Unix timestamp since when each machine has been idle (0 if currently busy)",
        ),
    },
    "remote_store": {
        "put": Family("s3_put", GAUGE, "Number of S3 put operations"),
        "putBytes": Family("s3_put_bytes", GAUGE, "Number of bytes put to S3"),
        "putTimeMs": Family(
            "s3_put_time_ms", GAUGE, "Time in milliseconds spent on S3 put operations"
        ),
        "putSpeed": Family("s3_put_speed", GAUGE, "Speed of S3 put operations"),
        "get": Family("s3_get", GAUGE, "Number of S3 get operations"),
        "getBytes": Family("s3_get_bytes", GAUGE, "Number of bytes gotten from S3"),
        "getTimeMs": Family(
            "s3_get_time_ms", GAUGE, "Time in milliseconds spent on S3 get operations"
        ),
        "getSpeed": Family("s3_get_speed", GAUGE, "Speed of S3 get operations"),
        "head": Family("s3_head", GAUGE, "Number of S3 head operations"),
        "costDollarApprox": Family(
            "s3_cost_dollar_approx", GAUGE, "Approximate cost in dollars for S3 operations"
        ),
    },
    "jobset_name": {
        # sic: the Rust runner sets jobset_share_used to the shares, not the share used
        "shares": Family("jobset_share_used", GAUGE, "Share used by jobset"),
        "seconds": Family("jobset_seconds", GAUGE, "Seconds allocated to jobset"),
    },
}
RUST_HISTOGRAMS = {
    "input_drvs": Family(
        "build_input_drvs_seconds",
        HISTOGRAM,
        "Distribution of number of input derivations per build",
    ),
    "closure_size": Family(
        "build_closure_size_bytes", HISTOGRAM, "Distribution of build closure sizes in bytes"
    ),
    "job_wait": Family(
        "job_wait_time_seconds",
        HISTOGRAM,
        "Distribution of time jobs wait in queue before being scheduled",
    ),
}


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
    queues = queue_stats(state)
    fams = _rust_scalars(state, queues, now, len(uploads))
    fams += _rust_labelled(state, queues, now)
    fams += _rust_histograms(queues, wait_seconds)
    kept = [f for f in fams if f.samples]
    return render(sorted(kept, key=lambda f: f.name), rust_number)


def _rust_scalars(
    state: RunnerState, queues: Mapping[str, Mapping[str, int]], now: float, uploads: int
) -> list[Family]:
    """Every unlabelled Rust family (counts, ms, µs, epoch s, s)."""
    values = {
        **rust_counters(state, queues, uploads),
        "currentUploadingPathCount": sum(m.uploading_paths for m in state.machines),
        "currentDownloadingPathCount": sum(m.downloading_paths for m in state.machines),
        "time": int(now),
        "uptime": int(max(0.0, now - state.started_at)),
    }
    counted = [fam.with_value(values[key], PREFIX) for key, fam in RUST_FAMILIES.items()]
    return counted + [fam.with_value(0, PREFIX) for fam in RUST_ZERO_FAMILIES]


def _rust_labelled(
    state: RunnerState, queues: Mapping[str, Mapping[str, int]], now: float
) -> list[Family]:
    """The labelled gauges, each reading its field from the status object of a label value."""
    objects: dict[str, Mapping[str, Mapping[str, float]]] = {
        "machine_type": queues,
        "hostname": {m.hostname: machine_counters(m, now) for m in state.machines},
        "remote_store": {state.s3_bucket: s3_doc(state.s3)},
        "jobset_name": {
            name: {"seconds": seconds, "shares": shares}
            for name, (seconds, shares) in state.jobsets.items()
        },
    }
    return [
        fam.by_label(label, {v: obj[key] for v, obj in sorted(objects[label].items())}, PREFIX)
        for label, families in RUST_LABELLED.items()
        for key, fam in families.items()
    ]


def _histogram(
    fam: Family, buckets: Sequence[float], observed: Mapping[str, Sequence[float]]
) -> Family:
    """A ``machine_type``-labelled histogram: cumulative buckets, ``+Inf``, sum, count."""
    samples: list[Sample] = []
    for machine_type, values in sorted(observed.items()):
        labels: Labels = (("machine_type", machine_type),)
        for bound in buckets:
            count = sum(1 for v in values if v <= bound)
            samples.append(Sample("_bucket", (*labels, ("le", rust_number(bound))), count))
        samples.append(Sample("_bucket", (*labels, ("le", "+Inf")), float(len(values))))
        samples.append(Sample("_sum", labels, float(sum(values))))
        samples.append(Sample("_count", labels, float(len(values))))
    return fam._replace(name=PREFIX + fam.name, samples=tuple(samples))


def _rust_histograms(
    queues: Mapping[str, Mapping[str, int]],
    wait_seconds: Sequence[float] | Mapping[str, Sequence[float]] | None,
) -> list[Family]:
    """The three histograms; the input-drv and closure-size ones carry zero counts."""
    types = sorted(queues) or [DEFAULT_MACHINE_TYPE]
    if isinstance(wait_seconds, Mapping):
        waits = {t: list(v) for t, v in wait_seconds.items()}
    else:
        busiest = max(types, key=lambda t: queues.get(t, {}).get("totalRunnable", 0))
        waits = {busiest: list(wait_seconds or [])}
    for machine_type in types:
        waits.setdefault(machine_type, [])
    empty: dict[str, Sequence[float]] = {t: [] for t in types}
    return [
        _histogram(RUST_HISTOGRAMS["input_drvs"], INPUT_DRVS_BUCKETS, empty),
        _histogram(RUST_HISTOGRAMS["closure_size"], CLOSURE_SIZE_BUCKETS_BYTES, empty),
        _histogram(RUST_HISTOGRAMS["job_wait"], facts.RUST_JOB_WAIT_BUCKETS, waits),
    ]
