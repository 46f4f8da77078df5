"""Hydra's vocabulary: one home for the facts the testbed, the collectors and the analysis share.

Every fact names the source lines it was read from (:mod:`profiler.hydra.sources`). Where
``shared/reference/hydra.md`` says otherwise, the source wins; ``docs/hydra-facts.md`` lists
the corrections.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from profiler.hydra.sources import Source, cxx, rust

GENERATIONS = ("cxx", "rust")

# --- build-step phases ---------------------------------------------------------------------
# BuildSteps.busy codes: C++ ``enum StepState`` and Rust ``db::models::StepStatus`` agree.
BUSY: Mapping[int, str] = MappingProxyType(
    {
        1: "preparing",
        10: "connecting",
        20: "sending-inputs",
        30: "building",
        35: "waiting-for-local-slot",
        40: "receiving-outputs",
        50: "post-processing",
    }
)
BUSY_CODE: Mapping[str, int] = MappingProxyType({name: code for code, name in BUSY.items()})
BUSY_SOURCES = (cxx("state.hh", 60), rust("crates/db/src/models.rs", 58))
PREPARING = BUSY_CODE["preparing"]
FINAL_PHASE = BUSY_CODE["post-processing"]  # the last busy code in both generations

CATEGORIES = ("scheduling", "io", "compression", "build", "post")
# Where a phase's time goes in the attribution ("receiving-outputs" holds receive, compress,
# write and upload together: it is split into io and compression with a codec profile).
PHASE_CATEGORY: Mapping[str, str] = MappingProxyType(
    {
        "queued": "scheduling",
        "preparing": "post",
        "connecting": "scheduling",
        "sending-inputs": "io",
        "building": "build",
        "waiting-for-local-slot": "compression",
        "receiving": "io",
        "compressing": "compression",
        "uploading": "io",
        "post-processing": "post",
        "retry-wait": "scheduling",  # a transient failure's back-off before the next attempt
    }
)

# --- what the database's times mean ---------------------------------------------------------
TIME_SEMANTICS: Mapping[str, str] = MappingProxyType(
    {
        "cxx": "C++: stop-start = the build only (builder-reported); overhead_ms = copying "
        "inputs to and outputs from the builder (incl. compression and upload)",
        "rust": "Rust: stop-start = the whole step (runner clock); overhead_ms = the builder's "
        "import + upload time",
        "unknown": "generation unknown: stop-start is the build only (C++) or the whole step "
        "(Rust); pass --generation",
    }
)
BUILD_SEMANTICS: Mapping[str, str] = MappingProxyType(
    {
        "cxx": "C++: start/stop = the top-level step's build start/stop (builder clock)",
        "rust": "Rust: start/stop = the top-level step's wall times (runner clock)",
        "unknown": "generation unknown: start/stop are build times (C++) or step wall times (Rust)",
    }
)
TIME_SEMANTICS_SOURCES = (
    cxx("build-remote.cc", 339),  # start/stop become the builder's BuildResult times
    rust("hydra-queue-runner/src/state/build.rs", 369),  # overhead = import + upload ms
)
# Builds.size and closureSize are only written for successful builds: NULL otherwise.
SIZES_NULL_WHEN_FAILED = True

# C++ warns above this many concurrent database write transactions.
DB_STALL_THRESHOLD = 6
DB_STALL_SOURCE = cxx("hydra-queue-runner.cc", 141)

# The C++ runner rewrites its SystemStatus row only when asked (NOTIFY dump_status) and at
# startup; the Rust runner never writes it (its status is the REST /status endpoint).
SYSTEM_STATUS_ROW = "queue-runner"

# --- the runner's own gauges and counters, where their meaning is not what it seems ---------
# Rust: steps_runnable / nrStepsRunnable counts steps whose runnable flag is set, and the flag
# is never cleared when a step is dispatched: it includes steps that are building.
RUNNABLE_INCLUDES_BUILDING: Mapping[str, bool] = MappingProxyType({"cxx": False, "rust": True})
RUNNABLE_SOURCES = (
    rust("hydra-queue-runner/src/state/step.rs", 451),
    rust("hydra-queue-runner/src/state/step.rs", 659),
)
# Rust: queueStats.*.waitTimeMs / machine_type_wait_time add up runnable -> insertion into the
# scheduling queue, not the wait for a machine; the per-step wait for a machine is the
# job_wait_time_seconds histogram, observed when a step is dispatched.
RUST_QUEUE_INSERT_WAIT_SOURCE = rust("hydra-queue-runner/src/state/queue.rs", 71)
RUST_JOB_WAIT_SOURCE = rust("hydra-queue-runner/src/state/queue.rs", 514)
RUST_JOB_WAIT_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 7200.0, 86400.0)
# Rust: a builder takes work only when has_capacity: disk thresholds, then by machineFreeFn
# Static (currentJobs < maxJobs), Dynamic (PSI/load below thresholds) or both.
RUST_CAPACITY_SOURCE = rust("hydra-queue-runner/src/state/machine.rs", 762)
MACHINE_FREE_FNS = ("Static", "Dynamic", "DynamicWithMaxJobLimit")

# --- NixOS units and journal identifiers -----------------------------------------------------
UNITS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "cxx": ("hydra-queue-runner.service",),
        "rust": ("hydra-queue-runner-dev.service", "hydra-queue-builder-dev.service"),
    }
)
UNIT_SOURCES = (
    Source("NixOS/hydra", cxx("x", 1).commit, "nixos-modules/hydra.nix", 338),
    Source("NixOS/hydra", rust("x", 1).commit, "nixos-modules/queue-runner-module.nix", 340),
    Source("NixOS/hydra", rust("x", 1).commit, "nixos-modules/builder-module.nix", 160),
)
# SYSLOG_IDENTIFIER: the executable's name
IDENTIFIERS: Mapping[str, str] = MappingProxyType(
    {"cxx-runner": "hydra-queue-runner", "rust-runner": "hydra-queue-runner",
     "rust-builder": "hydra-builder"}
)  # fmt: skip

# --- compression -----------------------------------------------------------------------------
# Default NAR compression when the store URI has no compression=: Nix's binary-cache store
# setting (C++ runner) and the Rust binary-cache crate's S3CacheConfig default.
DEFAULT_COMPRESSION: Mapping[str, str] = MappingProxyType({"cxx": "xz", "rust": "xz"})
DEFAULT_COMPRESSION_SOURCES = (
    Source("NixOS/nix", "2.34.0", "src/libstore/include/nix/store/binary-cache-store.hh", 24),
    rust("crates/binary-cache/src/cfg.rs", 47),
)
# Presigned uploads: the builder maps the level it is sent (async-compression Level).
PRESIGNED_LEVEL_SOURCE = rust("crates/binary-cache/src/presigned.rs", 42)
UPLOAD_MODES = ("presigned", "direct")


def presigned_level(level: int | None) -> str:
    """What a builder in presigned mode does with ``compression-level`` (presigned.rs:42-46):
    ``"fastest"``, ``"precise:N"``, ``"best"`` or ``"default"``."""
    if level == 1:
        return "fastest"
    if level is not None and 2 <= level <= 8:
        return f"precise:{level}"
    if level == 9:
        return "best"
    return "default"
