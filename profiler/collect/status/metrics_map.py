"""Where each Prometheus family of a queue runner's ``/metrics`` goes: the metrics mapping.

:data:`PROM_MAPPING` maps each family of ``hydra.md`` §5.1/§5.2, by its exposed name, to
our metric; the same quantity gets the same name as in the status JSON, whatever the
generation called it (C++ ``queue_monitor_time_spent_running`` and Rust
``monitor_time_spent_running_total`` are both ``queue_monitor_running_seconds_total``). It
joins the families both generations expose (:data:`PROM_SHARED`), the C++ ones
(:data:`PROM_CXX`) and the Rust ones (:data:`PROM_RUST`), which also tell the generations
apart. Labels become sample columns (:data:`PROM_LABELS`); :data:`PROM_IGNORED` lists the
families known and deliberately not stored. :mod:`profiler.collect.status.prometheus` reads
a text along them.
"""

from __future__ import annotations

from profiler.collect.samples import MS, UP, US, Field, counter, gauge

P = "hydraqueuerunner_"
_SECONDS = "seconds"

# Families with the same name and meaning in both generations
PROM_SHARED: dict[str, Field] = {
    f"{P}queue_checks_started_total": counter("queue_checks_started_total"),
    f"{P}queue_build_loads_total": counter("queue_build_loads_total"),
    f"{P}queue_steps_created_total": counter("queue_steps_created_total"),
    f"{P}queue_checks_early_exits_total": counter("queue_checks_early_exits_total"),
    f"{P}queue_checks_finished_total": counter("queue_checks_finished_total"),
}
PROM_CXX: dict[str, Field] = {
    "hydra_queue_runner_running": UP,  # 2022-03 only
    f"{P}queue_max_build_id_info": gauge("queue_max_build_id", ""),  # 2022-04 .. 2025-04
    # µs counters without the _total suffix
    f"{P}dispatcher_time_spent_running": counter("dispatcher_running_seconds_total", _SECONDS, US),
    f"{P}dispatcher_time_spent_waiting": counter("dispatcher_waiting_seconds_total", _SECONDS, US),
    f"{P}queue_monitor_time_spent_running": counter(
        "queue_monitor_running_seconds_total", _SECONDS, US
    ),
    f"{P}queue_monitor_time_spent_waiting": counter(
        "queue_monitor_waiting_seconds_total", _SECONDS, US
    ),
}
PROM_RUST: dict[str, Field] = {
    f"{P}dispatcher_time_spent_running_total": counter(
        "dispatcher_running_seconds_total", _SECONDS, US
    ),
    f"{P}dispatcher_time_spent_waiting_total": counter(
        "dispatcher_waiting_seconds_total", _SECONDS, US
    ),
    f"{P}monitor_time_spent_running_total": counter(
        "queue_monitor_running_seconds_total", _SECONDS, US
    ),
    f"{P}monitor_time_spent_waiting_total": counter(
        "queue_monitor_waiting_seconds_total", _SECONDS, US
    ),
    f"{P}builds_read": counter("builds_read_total"),
    f"{P}builds_read_time_ms": counter("build_read_seconds_total", _SECONDS, MS),
    f"{P}builds_unfinished": gauge("builds_queued"),
    f"{P}builds_finished": counter("builds_done_total"),
    f"{P}builds_succeeded": counter("builds_succeeded_total"),
    f"{P}builds_failed": counter("builds_failed_total"),
    f"{P}steps_started": counter("steps_started_total"),
    f"{P}steps_finished": counter("steps_done_total"),
    f"{P}steps_building": gauge("steps_building"),
    f"{P}steps_waiting": gauge("steps_runnable_waiting"),
    f"{P}steps_runnable": gauge("steps_runnable"),
    f"{P}steps_unfinished": gauge("steps_unfinished"),
    f"{P}steps_unsupported": gauge("steps_unsupported"),
    f"{P}steps_unsupported_aborted": counter("steps_unsupported_aborted_total"),
    f"{P}substitutes_started": counter("substitutes_started_total"),
    f"{P}substitutes_failed": counter("substitutes_failed_total"),
    f"{P}substitutes_succeeded": counter("substitutes_succeeded_total"),
    f"{P}steps_retries": counter("retries_total"),
    f"{P}steps_max_retries": gauge("max_retries"),
    # paths, not steps, and the direction is the reverse of C++'s steps_copying_*
    f"{P}steps_copying_to": gauge("uploading_paths", "paths"),
    f"{P}steps_copying_from": gauge("downloading_paths", "paths"),
    f"{P}steps_total_time_ms": counter("step_seconds_total", _SECONDS, MS),
    f"{P}steps_total_import_time_ms": counter("step_import_seconds_total", _SECONDS, MS),
    f"{P}steps_total_build_time_ms": counter("step_build_seconds_total", _SECONDS, MS),
    f"{P}steps_total_upload_time_ms": counter("step_upload_seconds_total", _SECONDS, MS),
    f"{P}monitor_checks": counter("queue_wakeups_total"),
    f"{P}dispatch_wakeup": counter("dispatcher_wakeups_total"),
    f"{P}dispatch_time_ms": counter("dispatch_seconds_total", _SECONDS, MS),
    f"{P}machines_total": gauge("machines_known"),
    f"{P}machines_in_use": gauge("machines_in_use"),
    f"{P}s3_uploads_pending": gauge("s3_uploads_pending"),
    f"{P}overflow_copies_queued_total": counter("overflow_copies_queued_total"),
    f"{P}overflow_copies_succeeded_total": counter("overflow_copies_succeeded_total"),
    f"{P}overflow_copies_failed_total": counter("overflow_copies_failed_total"),
    f"{P}sort_duration_ms_total": counter("queue_sort_seconds_total", _SECONDS, MS),
    f"{P}aborted_jobs_total": counter("jobs_aborted_total"),
    f"{P}current_time_seconds": gauge("status_time_seconds", _SECONDS),
    f"{P}uptime_seconds": gauge("uptime_seconds", _SECONDS),
    # label machine_type (a system)
    f"{P}machine_type_runnable": gauge("machine_type_queued"),  # = queueStats totalRunnable
    f"{P}machine_type_running": gauge("machine_type_running"),
    f"{P}machine_type_waiting": gauge("machine_type_waiting"),
    f"{P}machine_type_disabled": gauge("machine_type_disabled"),
    # runnable -> insertion into the scheduling queue, NOT the wait for a machine (that is
    # job_wait_time_seconds): facts.RUST_QUEUE_INSERT_WAIT_SOURCE
    f"{P}machine_type_wait_time": counter(
        "machine_type_queue_insert_wait_seconds_total", _SECONDS, MS
    ),
    # label hostname
    f"{P}machine_current_jobs": gauge("machine_current_jobs"),
    f"{P}machine_steps_done": counter("machine_steps_done_total"),
    f"{P}machine_total_step_time_ms": counter("machine_step_seconds_total", _SECONDS, MS),
    f"{P}machine_total_step_import_time_ms": counter(
        "machine_step_import_seconds_total", _SECONDS, MS
    ),
    f"{P}machine_total_step_build_time_ms": counter(
        "machine_step_build_seconds_total", _SECONDS, MS
    ),
    f"{P}machine_total_step_upload_time_ms": counter(
        "machine_step_upload_seconds_total", _SECONDS, MS
    ),
    f"{P}machine_consecutive_failures": gauge("machine_consecutive_failures"),
    f"{P}machine_last_ping_timestamp": gauge("machine_last_ping_timestamp_seconds", _SECONDS),
    f"{P}machine_idle_since_timestamp": gauge("machine_idle_since_timestamp_seconds", _SECONDS),
    # label remote_store (bucket)
    f"{P}s3_put": counter("s3_put_total"),
    f"{P}s3_put_bytes": counter("s3_put_bytes_total", "bytes"),
    f"{P}s3_put_time_ms": counter("s3_put_seconds_total", _SECONDS, MS),
    f"{P}s3_get": counter("s3_get_total"),
    f"{P}s3_get_bytes": counter("s3_get_bytes_total", "bytes"),
    f"{P}s3_get_time_ms": counter("s3_get_seconds_total", _SECONDS, MS),
    f"{P}s3_head": counter("s3_head_total"),
    # label jobset_name; sic: the Rust runner sets jobset_share_used to the shares
    f"{P}jobset_share_used": gauge("jobset_shares", "shares"),
    f"{P}jobset_seconds": gauge("jobset_seconds", _SECONDS),
    # histograms (label machine_type): <name>_bucket / _count / _sum
    f"{P}build_input_drvs_seconds": counter("build_input_drvs", "drvs"),  # a count, sic
    f"{P}build_closure_size_bytes": counter("build_closure_size_bytes", "bytes"),
    # each step's wait runnable -> dispatch, observed at dispatch: facts.RUST_JOB_WAIT_SOURCE
    f"{P}job_wait_time_seconds": counter("job_wait_seconds", _SECONDS),
    # the runner process itself: hydra-queue-runner/Cargo.toml:51 enables rust-prometheus's
    # "process" feature and metrics.rs:1142 encodes prometheus::gather(), the default registry,
    # which registers a ProcessCollector (rust-prometheus v0.14.0 src/registry.rs:281-301,
    # src/process_collector.rs:43-115). CPU is an IntCounter: whole seconds.
    "process_cpu_seconds_total": counter("process_cpu_seconds_total", _SECONDS),
    "process_resident_memory_bytes": gauge("process_resident_memory_bytes", "bytes"),
    "process_virtual_memory_bytes": gauge("process_virtual_memory_bytes", "bytes"),
    "process_start_time_seconds": gauge("process_start_time_seconds", _SECONDS),
    "process_open_fds": gauge("process_open_fds"),
    "process_max_fds": gauge("process_max_fds"),
    "process_threads": gauge("process_threads"),
}
PROM_MAPPING: dict[str, Field] = {**PROM_SHARED, **PROM_CXX, **PROM_RUST}

_RUST_STORE = (
    "nar_info_read", "nar_info_read_averted", "nar_info_missing", "nar_info_write",
    "path_info_cache_size", "nar_read", "nar_read_bytes", "nar_read_compressed_bytes",
    "nar_write", "nar_write_averted", "nar_write_bytes", "nar_write_compressed_bytes",
    "nar_write_compression_time_ms", "nar_compression_savings", "nar_compression_speed",
)  # fmt: skip
_NEVER_UPDATED = "never updated by the Rust runner (store stats unavailable): always 0"
PROM_IGNORED: dict[str, str] = {
    **{
        f"{P}steps_avg_{p}_time_ms": "derived average (total / count)"
        for p in ("total", "import", "build", "upload")
    },
    f"{P}machine_type_avg_runnable_time": "never updated (always 0)",
    f"{P}s3_put_speed": "derived: put bytes / put time",
    f"{P}s3_get_speed": "derived: get bytes / get time",
    f"{P}s3_cost_dollar_approx": "derived: cost estimate from the counters",
    **{f"{P}store_{n}": _NEVER_UPDATED for n in _RUST_STORE},
}
PROM_LABELS = {
    "hostname": "machine",
    "machine_type": "machine_type",
    "remote_store": "bucket",
    "jobset_name": "jobset",
    "le": "bucket",  # histogram bound
    "quantile": "bucket",  # summary quantile (unknown families only)
}
