"""The emulated queue runner's live state: what status JSON, metrics and logs are made from.

One :class:`RunnerState` is shared by the engine (which updates it under ``lock``) and the
interfaces (which read a consistent snapshot under the same lock). Units follow the real
runner's: counters of milliseconds end in ``_ms``, of seconds in ``_seconds``, loop timers
in ``_us``; times are epoch seconds (float) in UTC.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class MachineState:
    """One build machine as the runner sees it."""

    hostname: str  # e.g. "builder-1"; the Rust runner keys machines by it
    systems: list[str]
    max_jobs: int
    ssh_user: str = "build"
    supported_features: list[str] = field(default_factory=list)
    mandatory_features: list[str] = field(default_factory=list)
    speed_factor: float = 1.0
    cpu_count: int = 2
    current_jobs: int = 0  # reservations (slots) held
    nr_steps_done: int = 0
    total_step_seconds: int = 0  # C++ (whole step, queue runner's clock)
    total_step_build_seconds: int = 0  # C++ (remote build)
    total_step_ms: int = 0  # Rust split
    total_step_import_ms: int = 0
    total_step_build_ms: int = 0
    total_step_upload_ms: int = 0
    idle_since: float = 0.0
    joined_at: float = 0.0
    last_failure: float = 0.0
    disabled_until: float = 0.0
    consecutive_failures: int = 0
    succeeded_builds: int = 0
    failed_builds: int = 0
    uploading_paths: int = 0
    # emulated CPU pressure (PSI some avg10, %): None = the host's own
    cpu_pressure_avg10: float | None = None
    free_fn: str = "Static"  # the Rust runner's machineFreeFn (facts.MACHINE_FREE_FNS)
    downloading_paths: int = 0
    jobs: list[str] = field(default_factory=list)  # drv paths being built

    @property
    def store_uri(self) -> str:
        """The C++ machines key since 2024-05: ``ssh://user@host``."""
        return f"ssh://{self.ssh_user}@{self.hostname}"


@dataclass
class StoreStats:
    """Nix ``Store::Stats`` of the destination store (C++ status ``store``)."""

    nar_info_read: int = 0
    nar_info_read_averted: int = 0
    nar_info_missing: int = 0
    nar_info_write: int = 0
    nar_info_cache_size: int = 0
    nar_read: int = 0
    nar_read_bytes: int = 0
    nar_read_compressed_bytes: int = 0
    nar_write: int = 0
    nar_write_averted: int = 0
    nar_write_bytes: int = 0
    nar_write_compressed_bytes: int = 0
    nar_write_compression_time_ms: int = 0


@dataclass
class S3Stats:
    """Upload counters of the (emulated) S3 bucket: the ``file://`` cache stands in."""

    put: int = 0
    put_bytes: int = 0
    put_time_ms: int = 0
    get: int = 0
    get_bytes: int = 0
    get_time_ms: int = 0
    head: int = 0


@dataclass
class RunnerState:
    """Everything the interfaces expose, for both generations."""

    generation: str
    started_at: float
    pid: int
    machines: list[MachineState] = field(default_factory=list)
    # builds and steps
    nr_queued_builds: int = 0
    nr_builds_read: int = 0
    build_read_time_ms: int = 0
    nr_builds_done: int = 0
    nr_builds_succeeded: int = 0
    nr_builds_failed: int = 0
    nr_steps_started: int = 0
    nr_steps_done: int = 0
    nr_retries: int = 0
    max_nr_retries: int = 0
    nr_unfinished_steps: int = 0
    nr_runnable_steps: int = 0
    nr_unsupported_steps: int = 0
    # phase gauges (threads / steps in each phase)
    nr_active_steps: int = 0
    nr_steps_building: int = 0
    nr_steps_copying_to: int = 0
    nr_steps_waiting_for_download_slot: int = 0
    nr_steps_copying_from: int = 0
    nr_active_db_updates: int = 0
    nr_db_connections: int = 0
    # loops
    nr_queue_wakeups: int = 0
    nr_dispatcher_wakeups: int = 0
    dispatch_time_ms: int = 0
    dispatcher_running_us: int = 0
    dispatcher_waiting_us: int = 0
    monitor_running_us: int = 0
    monitor_waiting_us: int = 0
    queue_checks_started: int = 0
    queue_checks_finished: int = 0
    queue_build_loads: int = 0
    queue_steps_created: int = 0
    # bytes over the builder links
    bytes_sent: int = 0
    bytes_received: int = 0
    # step time totals: C++ in seconds, Rust split in ms
    total_step_seconds: int = 0
    total_step_build_seconds: int = 0
    total_step_ms: int = 0
    total_step_import_ms: int = 0
    total_step_build_ms: int = 0
    total_step_upload_ms: int = 0
    # per jobset: seconds used in the 24 h window, shares
    jobsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    # per machine type: (runnable, running)
    machine_types: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Rust queueStats wait time per system, ms
    wait_time_ms: dict[str, int] = field(default_factory=dict)
    # Rust: each dispatched step's wait runnable -> dispatch (job_wait_time_seconds)
    job_wait_seconds: list[float] = field(default_factory=list)
    store: StoreStats = field(default_factory=StoreStats)
    s3: S3Stats = field(default_factory=S3Stats)
    s3_bucket: str = "testbed-cache"
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
