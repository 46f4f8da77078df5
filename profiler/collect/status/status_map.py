"""Where each field of a queue-runner status document goes: the status JSON mappings.

Each status kind (C++ ``dumpStatus`` of every era, Rust ``GET /status``, the other Rust
``/status/...`` endpoints) has a documented MAPPING from a field path to
``Field(metric, kind, factor, unit)``; ``*`` in a path stands for a key of a keyed object
(a machine, machine type, jobset or S3 bucket) that becomes that sample's label, named by the
LABELS table. Fields in an IGNORED table are known and deliberately not stored (derived
averages, configuration strings); any other field is ignored but listed in
``Samples.unknown``. :mod:`profiler.collect.status.normalize` walks a document along them.
"""

from __future__ import annotations

from profiler.collect.samples import MS, UP, US, Field, counter, gauge

_S3: dict[str, Field] = {
    "put": counter("s3_put_total"),
    "putBytes": counter("s3_put_bytes_total", "bytes"),
    "putTimeMs": counter("s3_put_seconds_total", "seconds", MS),
    "get": counter("s3_get_total"),
    "getBytes": counter("s3_get_bytes_total", "bytes"),
    "getTimeMs": counter("s3_get_seconds_total", "seconds", MS),
    "head": counter("s3_head_total"),
}
_S3_IGNORED = {
    "putSpeed": "derived: putBytes / putTimeMs (MiB/s)",
    "getSpeed": "derived: getBytes / getTimeMs (MiB/s)",
    "costDollarApprox": "derived: request and egress cost estimate from the counters ($)",
}
_STORE: dict[str, Field] = {
    "narInfoRead": counter("narinfo_reads_total"),
    "narInfoReadAverted": counter("narinfo_reads_averted_total"),
    "narInfoMissing": counter("narinfo_missing_total"),
    "narInfoWrite": counter("narinfo_writes_total"),
    "narInfoCacheSize": gauge("narinfo_cache_size"),
    "narRead": counter("nar_reads_total"),
    "narReadBytes": counter("nar_read_bytes_total", "bytes"),
    "narReadCompressedBytes": counter("nar_read_compressed_bytes_total", "bytes"),
    "narWrite": counter("nar_writes_total"),
    "narWriteAverted": counter("nar_writes_averted_total"),
    "narWriteBytes": counter("nar_write_bytes_total", "bytes"),
    "narWriteCompressedBytes": counter("nar_write_compressed_bytes_total", "bytes"),
    "narWriteCompressionTimeMs": counter("nar_write_compression_seconds_total", "seconds", MS),
}
_STORE_IGNORED = {
    "narCompressionSavings": "derived: 1 - narWriteCompressedBytes / narWriteBytes",
    "narCompressionSpeed": "derived: narWriteBytes / narWriteCompressionTimeMs (MiB/s)",
}
_DERIVED = "derived average (total / count); store the totals"

CXX_STATUS_MAPPING: dict[str, Field] = {
    "status": UP,  # "up" -> 1; "down", "unknown", "unreachable" -> 0 and nothing else
    "time": gauge("status_time_seconds", "seconds"),
    "uptime": gauge("uptime_seconds", "seconds"),
    "pid": gauge("process_id", ""),
    "nrQueuedBuilds": gauge("builds_queued"),
    "nrActiveSteps": gauge("steps_active"),
    "nrStepsBuilding": gauge("steps_building"),
    "nrStepsCopyingTo": gauge("steps_copying_to"),
    "nrStepsWaitingForDownloadSlot": gauge("steps_waiting_for_download_slot"),
    "nrStepsCopyingFrom": gauge("steps_copying_from"),
    "nrUnsupportedSteps": gauge("steps_unsupported"),
    "bytesSent": counter("bytes_sent_total", "bytes"),
    "bytesReceived": counter("bytes_received_total", "bytes"),
    "nrBuildsRead": counter("builds_read_total"),
    "buildReadTimeMs": counter("build_read_seconds_total", "seconds", MS),
    "nrBuildsDone": counter("builds_done_total"),
    "nrStepsStarted": counter("steps_started_total"),
    "nrStepsDone": counter("steps_done_total"),
    "nrRetries": counter("retries_total"),
    "maxNrRetries": gauge("max_retries"),
    "nrQueueWakeups": counter("queue_wakeups_total"),
    "nrDispatcherWakeups": counter("dispatcher_wakeups_total"),
    "dispatchTimeMs": counter("dispatch_seconds_total", "seconds", MS),
    "nrDbConnections": gauge("db_connections"),
    "nrActiveDbUpdates": gauge("db_updates_active"),
    "nrUnfinishedSteps": gauge("steps_unfinished"),
    "nrRunnableSteps": gauge("steps_runnable"),
    # only when nrStepsDone > 0: absent means no sample, not zero
    "totalStepTime": counter("step_seconds_total", "seconds"),
    "totalStepBuildTime": counter("step_build_seconds_total", "seconds"),
    # 2016-03 .. 2020-07
    "memoryTokensInUse": gauge("memory_tokens_in_use_bytes", "bytes"),
    # 2017-07 .. 2019-08
    "nrNotificationsDone": counter("notifications_done_total"),
    "nrNotificationsFailed": counter("notifications_failed_total"),
    "nrNotificationsInProgress": gauge("notifications_in_progress"),
    "nrNotificationsPending": gauge("notifications_pending"),
    "nrNotificationTimeMs": counter("notification_seconds_total", "seconds", MS),
    # machines keyed by sshName (before 2024-05) or store URI ("ssh://user@host")
    "machines.*.enabled": gauge("machine_enabled", "boolean"),
    "machines.*.nrStepsDone": counter("machine_steps_done_total"),
    "machines.*.currentJobs": gauge("machine_current_jobs"),
    "machines.*.idleSince": gauge("machine_idle_since_timestamp_seconds", "seconds"),
    "machines.*.disabledUntil": gauge("machine_disabled_until_timestamp_seconds", "seconds"),
    "machines.*.lastFailure": gauge("machine_last_failure_timestamp_seconds", "seconds"),
    "machines.*.consecutiveFailures": gauge("machine_consecutive_failures"),
    "machines.*.totalStepTime": counter("machine_step_seconds_total", "seconds"),
    "machines.*.totalStepBuildTime": counter("machine_step_build_seconds_total", "seconds"),
    "jobsets.*.seconds": gauge("jobset_seconds", "seconds"),  # 24 h sliding window
    "jobsets.*.shareUsed": gauge("jobset_share_used", "seconds_per_share"),
    "machineTypes.*.runnable": gauge("machine_type_runnable"),
    "machineTypes.*.running": gauge("machine_type_running"),
    # before 2022-11 only
    "machineTypes.*.waitTime": gauge("machine_type_wait_seconds", "seconds"),
    "machineTypes.*.lastActive": gauge("machine_type_last_active_timestamp_seconds", "seconds"),
    **{f"store.{k}": v for k, v in _STORE.items()},
    # s3 nested in store before 2022-11, top level since
    **{f"store.s3.{k}": v for k, v in _S3.items()},
    **{f"s3.{k}": v for k, v in _S3.items()},
}
CXX_STATUS_IGNORED: dict[str, str] = {
    "buildReadTimeAvgMs": _DERIVED,
    "dispatchTimeAvgMs": _DERIVED,
    "avgStepTime": _DERIVED,
    "avgStepBuildTime": _DERIVED,
    "nrNotificationTimeAvgMs": _DERIVED,
    "nrStepsWaiting": "vestigial since 2017 (always 0); Rust's field of that name differs",
    "machines.*.avgStepTime": _DERIVED,
    "machines.*.avgStepBuildTime": _DERIVED,
    "machines.*.systemTypes": "configuration (strings)",
    "machines.*.supportedFeatures": "configuration (strings)",
    "machines.*.mandatoryFeatures": "configuration (strings)",
    **{f"store.{k}": v for k, v in _STORE_IGNORED.items()},
    **{f"store.s3.{k}": v for k, v in _S3_IGNORED.items()},
    **{f"s3.{k}": v for k, v in _S3_IGNORED.items()},
}
CXX_STATUS_LABELS = {"machines": "machine", "jobsets": "jobset", "machineTypes": "machine_type"}

_PSI = {
    "cpuSome": "cpu_some",
    "memSome": "memory_some",
    "memFull": "memory_full",
    "ioSome": "io_some",
    "ioFull": "io_full",
    "irqFull": "irq_full",
}
_RUST_MACHINE: dict[str, Field] = {
    "uptime": gauge("machine_uptime_seconds", "seconds"),
    "cpuCount": gauge("machine_cpus"),
    "bogomips": gauge("machine_bogomips", "bogomips"),
    "speedFactor": gauge("machine_speed_factor", ""),
    "maxJobs": gauge("machine_max_jobs"),
    "buildDirAvailThreshold": gauge("machine_build_dir_avail_threshold_percent", "percent"),
    "storeAvailThreshold": gauge("machine_store_avail_threshold_percent", "percent"),
    "load1Threshold": gauge("machine_load1_threshold", ""),
    "cpuPsiThreshold": gauge("machine_cpu_psi_threshold_percent", "percent"),
    "memPsiThreshold": gauge("machine_memory_psi_threshold_percent", "percent"),
    "ioPsiThreshold": gauge("machine_io_psi_threshold_percent", "percent"),
    "score": gauge("machine_score", ""),
    "totalMem": gauge("machine_memory_total_bytes", "bytes"),
    "hasCapacity": gauge("machine_has_capacity", "boolean"),
    "hasDynamicCapacity": gauge("machine_has_dynamic_capacity", "boolean"),
    "hasStaticCapacity": gauge("machine_has_static_capacity", "boolean"),
    "stats.currentJobs": gauge("machine_current_jobs"),
    "stats.nrStepsDone": counter("machine_steps_done_total"),
    "stats.totalStepTimeMs": counter("machine_step_seconds_total", "seconds", MS),
    "stats.totalStepImportTimeMs": counter("machine_step_import_seconds_total", "seconds", MS),
    "stats.totalStepBuildTimeMs": counter("machine_step_build_seconds_total", "seconds", MS),
    "stats.totalStepUploadTimeMs": counter("machine_step_upload_seconds_total", "seconds", MS),
    "stats.idleSince": gauge("machine_idle_since_timestamp_seconds", "seconds"),
    "stats.lastFailure": gauge("machine_last_failure_timestamp_seconds", "seconds"),
    "stats.disabledUntil": gauge("machine_disabled_until_timestamp_seconds", "seconds"),
    "stats.lastPing": gauge("machine_last_ping_timestamp_seconds", "seconds"),
    "stats.sinceLastPing": gauge("machine_since_last_ping_seconds", "seconds"),
    "stats.consecutiveFailures": gauge("machine_consecutive_failures"),
    "stats.load1": gauge("machine_load1", ""),
    "stats.load5": gauge("machine_load5", ""),
    "stats.load15": gauge("machine_load15", ""),
    "stats.memUsage": gauge("machine_memory_used_bytes", "bytes"),
    "stats.buildDirFreePercent": gauge("machine_build_dir_free_percent", "percent"),
    "stats.storeFreePercent": gauge("machine_store_free_percent", "percent"),
    # paths, not steps: outputs being uploaded / inputs being downloaded by the builder
    "stats.currentUploadingPathCount": gauge("machine_uploading_paths", "paths"),
    "stats.currentDownloadingPathCount": gauge("machine_downloading_paths", "paths"),
    "stats.jobsInLast30sStart": gauge("machine_jobs_window_start_timestamp_seconds", "seconds"),
    "stats.jobsInLast30sCount": gauge("machine_jobs_in_last_30s"),
    "stats.failedBuilds": counter("machine_builds_failed_total"),
    "stats.succeededBuilds": counter("machine_builds_succeeded_total"),
    **{
        f"stats.pressure.{key}.{avg}": gauge(f"machine_pressure_{name}_{avg}", "percent")
        for key, name in _PSI.items()
        for avg in ("avg10", "avg60", "avg300")
    },
    **{
        f"stats.pressure.{key}.total": counter(
            f"machine_pressure_{name}_seconds_total", "seconds", US
        )
        for key, name in _PSI.items()
    },
}
_RUST_MACHINE_CONFIG = (
    "systems", "hostname", "supportedFeatures", "mandatoryFeatures", "cgroups",
    "substituters", "useSubstitutes", "nixVersion",
)  # fmt: skip
_RUST_MACHINE_IGNORED = {
    **dict.fromkeys(_RUST_MACHINE_CONFIG, "configuration (strings, lists)"),
    "jobs": "drv paths being built (their number is stats.currentJobs)",
    **{f"stats.avgStep{p}TimeMs": _DERIVED for p in ("", "Import", "Build", "Upload")},
}
_RUST_JOBSET: dict[str, Field] = {
    "seconds": gauge("jobset_seconds", "seconds"),  # 24 h sliding window
    "shares": gauge("jobset_shares", "shares"),
}
_RUST_JOBSET_IGNORED = dict.fromkeys(("id", "projectName", "name"), "identity (id, names)")
_RUST_QUEUE: dict[str, Field] = {
    "activeRunnable": gauge("machine_type_running"),
    # the queue holds runnable steps and the scheduled ones until they finish
    "totalRunnable": gauge("machine_type_queued"),
    "nrRunnableWaiting": gauge("machine_type_waiting"),
    "nrRunnableDisabled": gauge("machine_type_disabled"),
    # runnable -> queue insertion, not the wait for a machine (facts.RUST_QUEUE_INSERT_WAIT_SOURCE)
    "waitTimeMs": counter("machine_type_queue_insert_wait_seconds_total", "seconds", MS),
}
_Q = "queueRunner."
RUST_STATUS_MAPPING: dict[str, Field] = {
    f"{_Q}status": UP,
    f"{_Q}time": gauge("status_time_seconds", "seconds"),  # RFC 3339 string
    f"{_Q}uptime": gauge("uptime_seconds", "seconds"),
    f"{_Q}proc.pid": gauge("process_id", ""),
    f"{_Q}proc.vsizeBytes": gauge("process_virtual_memory_bytes", "bytes"),
    f"{_Q}proc.rssBytes": gauge("process_resident_memory_bytes", "bytes"),
    f"{_Q}proc.sharedBytes": gauge("process_shared_memory_bytes", "bytes"),
    f"{_Q}proc.cgroup.memory.currentBytes": gauge("cgroup_memory_bytes", "bytes"),
    f"{_Q}proc.cgroup.memory.peakBytes": gauge("cgroup_memory_peak_bytes", "bytes"),
    f"{_Q}proc.cgroup.memory.swapCurrentBytes": gauge("cgroup_swap_bytes", "bytes"),
    f"{_Q}proc.cgroup.memory.zswapCurrentBytes": gauge("cgroup_zswap_bytes", "bytes"),
    f"{_Q}proc.cgroup.io.totalReadBytes": counter("cgroup_io_read_bytes_total", "bytes"),
    f"{_Q}proc.cgroup.io.totalWriteBytes": counter("cgroup_io_write_bytes_total", "bytes"),
    f"{_Q}proc.cgroup.cpu.usageUsec": counter("cgroup_cpu_seconds_total", "seconds", US),
    f"{_Q}proc.cgroup.cpu.userUsec": counter("cgroup_cpu_user_seconds_total", "seconds", US),
    f"{_Q}proc.cgroup.cpu.systemUsec": counter("cgroup_cpu_system_seconds_total", "seconds", US),
    f"{_Q}jobsetCount": gauge("jobsets_known"),
    **{f"{_Q}queueStats.*.{k}": v for k, v in _RUST_QUEUE.items()},
    f"{_Q}queueChecksStarted": counter("queue_checks_started_total"),
    f"{_Q}queueBuildLoads": counter("queue_build_loads_total"),
    f"{_Q}queueStepsCreated": counter("queue_steps_created_total"),
    f"{_Q}queueChecksEarlyExits": counter("queue_checks_early_exits_total"),
    f"{_Q}queueChecksFinished": counter("queue_checks_finished_total"),
    f"{_Q}dispatcherTimeSpentRunning": counter("dispatcher_running_seconds_total", "seconds", US),
    f"{_Q}dispatcherTimeSpentWaiting": counter("dispatcher_waiting_seconds_total", "seconds", US),
    f"{_Q}queueMonitorTimeSpentRunning": counter(
        "queue_monitor_running_seconds_total", "seconds", US
    ),
    f"{_Q}queueMonitorTimeSpentWaiting": counter(
        "queue_monitor_waiting_seconds_total", "seconds", US
    ),
    f"{_Q}nrBuildsRead": counter("builds_read_total"),
    f"{_Q}buildReadTimeMs": counter("build_read_seconds_total", "seconds", MS),
    f"{_Q}nrBuildsUnfinished": gauge("builds_queued"),
    f"{_Q}nrBuildsDone": counter("builds_done_total"),
    f"{_Q}nrBuildsSucceeded": counter("builds_succeeded_total"),
    f"{_Q}nrBuildsFailed": counter("builds_failed_total"),
    f"{_Q}nrStepsStarted": counter("steps_started_total"),
    f"{_Q}nrStepsDone": counter("steps_done_total"),
    f"{_Q}nrStepsBuilding": gauge("steps_building"),
    f"{_Q}nrStepsWaiting": gauge("steps_runnable_waiting"),
    f"{_Q}nrStepsRunnable": gauge("steps_runnable"),
    f"{_Q}nrStepsUnfinished": gauge("steps_unfinished"),
    f"{_Q}nrUnsupportedSteps": gauge("steps_unsupported"),
    f"{_Q}nrUnsupportedStepsAborted": counter("steps_unsupported_aborted_total"),
    f"{_Q}nrSubstitutesStarted": counter("substitutes_started_total"),
    f"{_Q}nrSubstitutesFailed": counter("substitutes_failed_total"),
    f"{_Q}nrSubstitutesSucceeded": counter("substitutes_succeeded_total"),
    f"{_Q}nrRetries": counter("retries_total"),
    f"{_Q}maxNrRetries": gauge("max_retries"),
    f"{_Q}totalStepTimeMs": counter("step_seconds_total", "seconds", MS),
    f"{_Q}totalStepImportTimeMs": counter("step_import_seconds_total", "seconds", MS),
    f"{_Q}totalStepBuildTimeMs": counter("step_build_seconds_total", "seconds", MS),
    f"{_Q}totalStepUploadTimeMs": counter("step_upload_seconds_total", "seconds", MS),
    f"{_Q}nrQueueWakeups": counter("queue_wakeups_total"),
    f"{_Q}nrDispatcherWakeups": counter("dispatcher_wakeups_total"),
    f"{_Q}dispatchTimeMs": counter("dispatch_seconds_total", "seconds", MS),
    f"{_Q}machinesTotal": gauge("machines_known"),
    f"{_Q}machinesInUse": gauge("machines_in_use"),
    f"{_Q}s3UploadsPending": gauge("s3_uploads_pending"),
    **{f"machines.*.{k}": v for k, v in _RUST_MACHINE.items()},
    **{f"jobsets.*.{k}": v for k, v in _RUST_JOBSET.items()},
    **{f"s3.*.{k}": v for k, v in _S3.items()},
    # always null ("not available via daemon protocol"); mapped in case it is ever filled
    **{f"store.{k}": v for k, v in _STORE.items()},
}
RUST_STATUS_IGNORED: dict[str, str] = {
    f"{_Q}supportedFeatures": "configuration (strings)",
    f"{_Q}buildCount": "same quantity as nrBuildsUnfinished (builds_queued)",
    f"{_Q}stepCount": "same quantity as nrStepsUnfinished (steps_unfinished)",
    f"{_Q}runnableCount": "same quantity as nrStepsRunnable (steps_runnable)",
    f"{_Q}queueStats.*.avgRunnableTime": "never updated (always 0)",
    **{f"{_Q}avgStep{p}TimeMs": _DERIVED for p in ("", "Import", "Build", "Upload")},
    **{f"machines.*.{k}": v for k, v in _RUST_MACHINE_IGNORED.items()},
    **{f"jobsets.*.{k}": v for k, v in _RUST_JOBSET_IGNORED.items()},
    **{f"s3.*.{k}": v for k, v in _S3_IGNORED.items()},
    **{f"store.{k}": v for k, v in _STORE_IGNORED.items()},
}
RUST_STATUS_LABELS = {
    "machines": "machine",
    "jobsets": "jobset",
    "s3": "bucket",
    f"{_Q}queueStats": "machine_type",
}

# /status/machines and /status/jobsets: the same objects as in /status, plus a count
RUST_ENDPOINT_MAPPING: dict[str, Field] = {
    "machinesCount": gauge("machines_known"),
    "jobsetCount": gauge("jobsets_known"),
    **{f"machines.*.{k}": v for k, v in _RUST_MACHINE.items()},
    **{f"jobsets.*.{k}": v for k, v in _RUST_JOBSET.items()},
    # /status/queues: {queues: {system: [StepInfo, ...]}} -> the length of each list; a
    # system given as queueStats-like numbers maps like queueRunner.queueStats
    "queues.*": gauge("machine_type_queued"),
    **{f"queues.*.{k}": v for k, v in _RUST_QUEUE.items()},
}
RUST_ENDPOINT_IGNORED: dict[str, str] = {
    "queues.*.avgRunnableTime": "never updated (always 0)",
    **{f"machines.*.{k}": v for k, v in _RUST_MACHINE_IGNORED.items()},
    **{f"jobsets.*.{k}": v for k, v in _RUST_JOBSET_IGNORED.items()},
}
RUST_ENDPOINT_LABELS = {"machines": "machine", "jobsets": "jobset", "queues": "machine_type"}
RUST_ENDPOINTS = ("/status/machines", "/status/jobsets", "/status/queues")
