"""Status JSON and Prometheus metrics of the emulated queue runner, for both generations.

Pure builders over a :class:`~profiler.testbed.state.RunnerState` snapshot (the caller holds
``state.lock``) and ``now`` in epoch seconds. They reproduce the real runner's output field
for field, with its units (see ``hydra.md`` sections 1 and 5):

* C++ (until 2026): :func:`cxx_status` is ``State::dumpStatus`` in its final form; counters
  of time are ms (``...Ms``) except ``totalStep*``/``avgStep*``, which are **seconds**; some
  averages are C ``float`` (single precision). :func:`cxx_status_text` gives the two text
  forms (``--status`` and the web ``/queue-runner-status``). :func:`cxx_metrics` is the
  prometheus-cpp ``/metrics`` text.
* Rust: :func:`rust_status` is ``GET /status`` (``DumpResponse``), :func:`rust_endpoint` the
  other ``/status/...`` endpoints, :func:`rust_metrics` the rust-prometheus ``/metrics`` text.
  Step times are ms, loop timers µs, ``time`` is an RFC 3339 string.

Host facts the Rust runner reads live (``/proc/self/statm``, cgroup v2 files, PSI files,
load, memory) are read from this host when readable, zeros otherwise: the emulated builders
run here too.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from profiler.testbed.state import MachineState, RunnerState, S3Stats, StoreStats

MIB = 1024.0 * 1024.0
GIB = 1024.0 * 1024.0 * 1024.0
CONSECUTIVE_FAILURES_CAP = 4  # C++ caps Machine::ConnectInfo::consecutiveFailures at 4
RUST_PING_INTERVAL_S = 10  # hydra-builder default ping interval (s)
RUST_BUILDER_NIX_VERSION = "2.34.0"
# hydra-builder defaults: free-space thresholds in percent, load1, PSI thresholds in percent
RUST_BUILDER_THRESHOLDS = {
    "buildDirAvailThreshold": 10.0,
    "storeAvailThreshold": 10.0,
    "load1Threshold": 8.0,
    "cpuPsiThreshold": 75.0,
    "memPsiThreshold": 80.0,
}
JOB_WAIT_BUCKETS_S = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 7200.0, 86400.0)
INPUT_DRVS_BUCKETS = (0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0)
CLOSURE_SIZE_BUCKETS_BYTES = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)
DEFAULT_MACHINE_TYPE = "x86_64-linux"

# --------------------------------------------------------------------------------------------
# number helpers


def f32(value: float) -> float:
    """``value`` rounded to IEEE single precision, widened back (what C++ ``(float)`` gives)."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def f32_short(value: float) -> float:
    """Shortest decimal that rounds to the same f32: how serde_json prints a Rust ``f32``."""
    target = f32(value)
    if target == 0.0 or not math.isfinite(target):
        return target
    for digits in range(1, 10):
        candidate = float(f"{target:.{digits}g}")
        if f32(candidate) == target:
            return candidate
    return target


def _cxx_float_avg(total: int, count: int) -> float:
    """C++ ``(float) total / count``: a single-precision quotient."""
    return f32(f32(float(total)) / f32(float(count)))


def _speed_mib_s(nbytes: int, ms: int) -> float:
    """Throughput in MiB/s from bytes and milliseconds; 0.0 when no time was spent."""
    return nbytes / ms * 1000.0 / MIB if ms else 0.0


def _s3_cost_dollars(s3: S3Stats) -> float:
    """Nix's ``costDollarApprox`` ($): requests plus egress (GiB downloaded)."""
    return (
        (s3.get + s3.head) / 10000.0 * 0.004 + s3.put / 1000.0 * 0.005 + (s3.get_bytes / GIB * 0.09)
    )


def rfc3339(epoch: float) -> str:
    """jiff ``Timestamp`` display: UTC, ``Z``, fractional seconds only when non-zero (≤ µs)."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _queue_system(machine_type: str) -> str:
    """System part of a machine type key ``system[:feature,...]``."""
    return machine_type.split(":", 1)[0]


# --------------------------------------------------------------------------------------------
# shared sections


def _s3_doc(s3: S3Stats) -> dict[str, Any]:
    """``s3`` object: counts, bytes, ms; speeds in MiB/s; cost in $."""
    return {
        "put": s3.put,
        "putBytes": s3.put_bytes,
        "putTimeMs": s3.put_time_ms,
        "putSpeed": _speed_mib_s(s3.put_bytes, s3.put_time_ms),
        "get": s3.get,
        "getBytes": s3.get_bytes,
        "getTimeMs": s3.get_time_ms,
        "getSpeed": _speed_mib_s(s3.get_bytes, s3.get_time_ms),
        "head": s3.head,
        "costDollarApprox": _s3_cost_dollars(s3),
    }


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
        "narCompressionSpeed": _speed_mib_s(
            store.nar_write_bytes, store.nar_write_compression_time_ms
        ),
    }


def _queue_early_exits(state: RunnerState) -> int:
    """Queue checks that yielded early: started = finished + early exits + (0 or 1 running)."""
    return max(0, state.queue_checks_started - state.queue_checks_finished - 1)


# --------------------------------------------------------------------------------------------
# C++ status JSON


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
        doc["avgStepTime"] = _cxx_float_avg(machine.total_step_seconds, machine.nr_steps_done)
        doc["avgStepBuildTime"] = _cxx_float_avg(
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
        "buildReadTimeAvgMs": (
            _cxx_float_avg(state.build_read_time_ms, state.nr_builds_read)
            if state.nr_builds_read
            else 0.0
        ),
        "nrBuildsDone": state.nr_builds_done,
        "nrStepsStarted": state.nr_steps_started,
        "nrStepsDone": state.nr_steps_done,
        "nrRetries": state.nr_retries,
        "maxNrRetries": state.max_nr_retries,
        "nrQueueWakeups": state.nr_queue_wakeups,
        "nrDispatcherWakeups": state.nr_dispatcher_wakeups,
        "dispatchTimeMs": state.dispatch_time_ms,
        "dispatchTimeAvgMs": (
            _cxx_float_avg(state.dispatch_time_ms, state.nr_dispatcher_wakeups)
            if state.nr_dispatcher_wakeups
            else 0.0
        ),
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
        "avgStepTime": _cxx_float_avg(state.total_step_seconds, state.nr_steps_done),
        "avgStepBuildTime": _cxx_float_avg(state.total_step_build_seconds, state.nr_steps_done),
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
        doc["s3"] = _s3_doc(state.s3)
    return doc


# --------------------------------------------------------------------------------------------
# JSON text: nlohmann dump (compact) and Perl JSON pretty+canonical


def _nlohmann_float(value: float) -> str:
    """nlohmann::json's double format: shortest round-trip digits, ``.0``, ``e+NN``."""
    if not math.isfinite(value):
        return "null"
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + exponent
    if k <= n <= 15:
        body = digits + "0" * (n - k) + ".0"
    elif 0 < n <= 15:
        body = digits[:n] + "." + digits[n:]
    elif -4 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        e = n - 1
        body = f"{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    return ("-" if sign else "") + body


def _perl_float(value: float) -> str:
    """Perl's number stringification (``%.15g``), which JSON::XS uses for NVs."""
    if not math.isfinite(value):
        return "null"
    return f"{value:.15g}"


def _scalar_text(value: Any, float_text: Callable[[float], str]) -> str:
    """One JSON scalar; ``float_text`` formats doubles."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"not a JSON value: {value!r}")


def _compact_text(value: Any) -> str:
    """nlohmann ``dump()``: no whitespace, keys sorted (``std::map``)."""
    if isinstance(value, Mapping):
        items = (
            f"{_scalar_text(str(k), _nlohmann_float)}:{_compact_text(value[k])}"
            for k in sorted(value)
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_compact_text(v) for v in value) + "]"
    return _scalar_text(value, _nlohmann_float)


def _pretty_text(value: Any, level: int) -> str:
    """JSON::XS ``pretty->canonical``: 3-space indent, ``"key" : value``, sorted keys."""
    pad = "   " * (level + 1)
    end = "\n" + "   " * level
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = (
            f"{pad}{_scalar_text(str(k), _perl_float)} : {_pretty_text(value[k], level + 1)}"
            for k in sorted(value)
        )
        return "{\n" + ",\n".join(items) + end + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        rows = (pad + _pretty_text(v, level + 1) for v in value)
        return "[\n" + ",\n".join(rows) + end + "]"
    return _scalar_text(value, _perl_float)


def cxx_status_text(doc: Mapping[str, Any], pretty: bool) -> str:
    """Status JSON as text, newline-terminated.

    ``pretty=False``: what ``hydra-queue-runner --status`` prints (the nlohmann dump stored in
    ``SystemStatus``: one line, sorted keys, shortest round-trip doubles). ``pretty=True``:
    the web ``/queue-runner-status`` re-encoding by Perl ``JSON->new->pretty->canonical``
    (3-space indent, ``"key" : value``, sorted keys, doubles as ``%.15g``).
    """
    if pretty:
        return _pretty_text(doc, 0) + "\n"
    return _compact_text(doc) + "\n"


# --------------------------------------------------------------------------------------------
# host facts for the Rust runner (read live; zeros when unavailable)


def _read_text(path: str) -> str | None:
    """File contents, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: str) -> int:
    """Integer file contents (cgroup ``memory.*``); 0 when unreadable or ``max``."""
    text = _read_text(path)
    try:
        return int(text.strip()) if text is not None else 0
    except ValueError:
        return 0


def _keyed_ints(text: str | None, keys: Iterable[str], *, key_value: bool) -> dict[str, int]:
    """Sum integer fields of ``text``: ``key=value`` tokens, or lines ``key value ...``."""
    sums = dict.fromkeys(keys, 0)
    for line in (text or "").splitlines():
        tokens = line.split()
        if key_value:
            pairs = [token.partition("=")[::2] for token in tokens]
        else:
            pairs = [(tokens[0], tokens[1])] if len(tokens) >= 2 else []
        for key, value in pairs:
            if key in sums and value.isdigit():
                sums[key] += int(value)
    return sums


def _cgroup_dir() -> str | None:
    """This process's cgroup v2 directory (pure v2 or the hybrid ``unified`` mount)."""
    for line in (_read_text("/proc/self/cgroup") or "").splitlines():
        if line.startswith("0::"):
            rel = line[3:].strip().lstrip("/")
            for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                path = os.path.join(root, rel)
                if os.path.exists(os.path.join(path, "cgroup.procs")):
                    return path
    return None


def _cgroup_doc() -> dict[str, Any]:
    """``proc.cgroup``: memory bytes, io bytes, cpu µs from the cgroup v2 files."""
    base = _cgroup_dir()

    def path(name: str) -> str:
        return os.path.join(base, name) if base else "/nonexistent"

    io = _keyed_ints(_read_text(path("io.stat")), ("rbytes", "wbytes"), key_value=True)
    cpu_keys = ("usage_usec", "user_usec", "system_usec")
    cpu = _keyed_ints(_read_text(path("cpu.stat")), cpu_keys, key_value=False)
    return {
        "memory": {
            "currentBytes": _read_int(path("memory.current")),
            "peakBytes": _read_int(path("memory.peak")),
            "swapCurrentBytes": _read_int(path("memory.swap.current")),
            "zswapCurrentBytes": _read_int(path("memory.zswap.current")),
        },
        "io": {"totalReadBytes": io["rbytes"], "totalWriteBytes": io["wbytes"]},
        "cpu": {
            "usageUsec": cpu["usage_usec"],
            "userUsec": cpu["user_usec"],
            "systemUsec": cpu["system_usec"],
        },
    }


def _proc_doc(pid: int) -> dict[str, Any]:
    """``queueRunner.proc``: sizes in bytes from ``/proc/self/statm`` plus the cgroup."""
    pages = [int(x) for x in (_read_text("/proc/self/statm") or "0 0 0").split()[:3]]
    pages += [0] * (3 - len(pages))
    page = os.sysconf("SC_PAGE_SIZE")
    return {
        "pid": pid,
        "vsizeBytes": pages[0] * page,
        "rssBytes": pages[1] * page,
        "sharedBytes": pages[2] * page,
        "cgroup": _cgroup_doc(),
    }


def _psi(kind: str, which: str) -> dict[str, Any]:
    """One PSI line (``some``/``full``) of ``/proc/pressure/<kind>``: avg % (f32), total µs."""
    out: dict[str, Any] = {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 0}
    for line in (_read_text(f"/proc/pressure/{kind}") or "").splitlines():
        fields = line.split()
        if not fields or fields[0] != which:
            continue
        for token in fields[1:]:
            key, _, value = token.partition("=")
            if key in out:
                try:
                    out[key] = int(value) if key == "total" else f32_short(float(value))
                except ValueError:
                    continue
    return out


def _free_percent(path: str) -> float:
    """Free space of the file system holding ``path``, in percent (f64)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return 0.0
    return st.f_bavail / st.f_blocks * 100.0 if st.f_blocks else 0.0


@dataclass
class _Host:
    """Host facts shared by the emulated builders (they run on this machine)."""

    bogomips: float = 0.0
    total_mem: int = 0
    mem_usage: int = 0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pressure: dict[str, Any] = field(default_factory=dict)
    build_dir_free: float = 0.0
    store_free: float = 0.0


def _read_host() -> _Host:
    """Read bogomips, memory (bytes), load averages, PSI and free space once."""
    host = _Host()
    for line in (_read_text("/proc/cpuinfo") or "").splitlines():
        if line.lower().startswith("bogomips"):
            host.bogomips = float(line.split(":", 1)[1])
            break
    mem_keys = ("MemTotal:", "MemAvailable:")
    mem = _keyed_ints(_read_text("/proc/meminfo"), mem_keys, key_value=False)
    host.total_mem = mem["MemTotal:"] * 1024
    host.mem_usage = max(0, mem["MemTotal:"] - mem["MemAvailable:"]) * 1024
    loads = (_read_text("/proc/loadavg") or "0 0 0").split()[:3]
    host.load = (float(loads[0]), float(loads[1]), float(loads[2]))
    host.pressure = {
        "cpuSome": _psi("cpu", "some"),
        "memSome": _psi("memory", "some"),
        "memFull": _psi("memory", "full"),
        "ioSome": _psi("io", "some"),
        "ioFull": _psi("io", "full"),
        "irqFull": _psi("irq", "full"),
    }
    host.build_dir_free = _free_percent(tempfile.gettempdir())
    host.store_free = _free_percent("/nix/store" if os.path.isdir("/nix/store") else "/")
    return host


# --------------------------------------------------------------------------------------------
# Rust status JSON


def _rust_last_ping(machine: MachineState, now: float) -> int:
    """Epoch s of the builder's latest ping: pings every 10 s since it joined."""
    since_join = max(0.0, now - machine.joined_at)
    return int(now - since_join % RUST_PING_INTERVAL_S)


def _rust_idle_since(machine: MachineState) -> int:
    """Epoch s the machine went idle; 0 while it holds jobs."""
    return int(machine.idle_since) if machine.current_jobs == 0 else 0


def _rust_machine_stats(machine: MachineState, now: float, host: _Host) -> dict[str, Any]:
    """``machines.<host>.stats``: ms totals and integer ms averages, epoch s, f32 loads."""
    done = machine.nr_steps_done
    last_ping = _rust_last_ping(machine, now)
    return {
        "currentJobs": machine.current_jobs,
        "nrStepsDone": done,
        "avgStepTimeMs": machine.total_step_ms // done if done else 0,
        "avgStepImportTimeMs": machine.total_step_import_ms // done if done else 0,
        "avgStepBuildTimeMs": machine.total_step_build_ms // done if done else 0,
        "avgStepUploadTimeMs": machine.total_step_upload_ms // done if done else 0,
        "totalStepTimeMs": machine.total_step_ms,
        "totalStepImportTimeMs": machine.total_step_import_ms,
        "totalStepBuildTimeMs": machine.total_step_build_ms,
        "totalStepUploadTimeMs": machine.total_step_upload_ms,
        "idleSince": _rust_idle_since(machine),
        "lastFailure": int(machine.last_failure),
        "disabledUntil": int(machine.disabled_until),
        "consecutiveFailures": machine.consecutive_failures,
        "lastPing": last_ping,
        "sinceLastPing": int(now) - last_ping,
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


def _pressure(machine: MachineState, host: _Host) -> dict[str, Any]:
    doc = {k: dict(v) for k, v in host.pressure.items()}
    if machine.cpu_pressure_avg10 is not None:
        doc["cpuSome"] = {**doc.get("cpuSome", {}), "avg10": machine.cpu_pressure_avg10}
    return doc


def has_dynamic_capacity(machine: MachineState) -> bool:
    """hydra 14332fbf state/machine.rs:731-757: CPU PSI some avg10 (then memory/IO PSI full)
    under the builder's thresholds; the emulator's pressure is the CPU one."""
    if machine.cpu_pressure_avg10 is None:
        return True
    return machine.cpu_pressure_avg10 <= RUST_BUILDER_THRESHOLDS["cpuPsiThreshold"]


def _rust_machine(machine: MachineState, now: float, host: _Host) -> dict[str, Any]:
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


def _queue_stats(state: RunnerState) -> dict[str, dict[str, int]]:
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


def _rust_supported_features(state: RunnerState) -> list[str]:
    """Union of the machines' features (sorted)."""
    return sorted(
        {f for m in state.machines for f in (*m.supported_features, *m.mandatory_features)}
    )


def rust_runnable(state: RunnerState) -> int:
    """Rust ``nrStepsRunnable``/``steps_runnable``: every live step whose runnable flag is
    set, and the flag is never cleared on dispatch, so the steps being built count too
    (hydra 14332fbf hydra-queue-runner/src/state/step.rs:451, :659)."""
    return state.nr_runnable_steps + state.nr_active_steps


def _rust_step_counters(
    state: RunnerState, queues: Mapping[str, Mapping[str, int]]
) -> dict[str, Any]:
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
        "avgStepTimeMs": state.total_step_ms // done if done else 0,
        "avgStepImportTimeMs": state.total_step_import_ms // done if done else 0,
        "avgStepBuildTimeMs": state.total_step_build_ms // done if done else 0,
        "avgStepUploadTimeMs": state.total_step_upload_ms // done if done else 0,
        "totalStepTimeMs": state.total_step_ms,
        "totalStepImportTimeMs": state.total_step_import_ms,
        "totalStepBuildTimeMs": state.total_step_build_ms,
        "totalStepUploadTimeMs": state.total_step_upload_ms,
    }


def _rust_queue_runner(state: RunnerState, now: float, uploads_pending: int) -> dict[str, Any]:
    """``queueRunner`` (``QueueRunnerStats``): loop timers µs, step times ms, uptime s."""
    queues = _queue_stats(state)
    doc: dict[str, Any] = {
        "status": "up",
        "time": rfc3339(now),
        "uptime": max(0.0, now - state.started_at),
        "proc": _proc_doc(state.pid),
        "supportedFeatures": _rust_supported_features(state),
        "buildCount": state.nr_queued_builds,
        "jobsetCount": len(state.jobsets),
        "stepCount": state.nr_unfinished_steps,
        "runnableCount": rust_runnable(state),
        "queueStats": queues,
        "queueChecksStarted": state.queue_checks_started,
        "queueBuildLoads": state.queue_build_loads,
        "queueStepsCreated": state.queue_steps_created,
        "queueChecksEarlyExits": _queue_early_exits(state),
        "queueChecksFinished": state.queue_checks_finished,
        "dispatcherTimeSpentRunning": state.dispatcher_running_us,
        "dispatcherTimeSpentWaiting": state.dispatcher_waiting_us,
        "queueMonitorTimeSpentRunning": state.monitor_running_us,
        "queueMonitorTimeSpentWaiting": state.monitor_waiting_us,
    }
    doc.update(_rust_step_counters(state, queues))
    doc.update(
        {
            "nrQueueWakeups": state.nr_queue_wakeups,
            "nrDispatcherWakeups": state.nr_dispatcher_wakeups,
            "dispatchTimeMs": state.dispatch_time_ms,
            "machinesTotal": len(state.machines),
            "machinesInUse": sum(1 for m in state.machines if m.current_jobs > 0),
            "s3UploadsPending": uploads_pending,
        }
    )
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


def _rust_machines(state: RunnerState, now: float) -> dict[str, Any]:
    """All machines keyed by hostname."""
    host = _read_host()
    return {m.hostname: _rust_machine(m, now, host) for m in state.machines}


def rust_status(state: RunnerState, now: float, *, uploads: Sequence[str] = ()) -> dict[str, Any]:
    """Rust ``GET /status`` (``DumpResponse``); ``uploads`` are store paths queued for S3."""
    return {
        "queueRunner": _rust_queue_runner(state, now, len(uploads)),
        "machines": _rust_machines(state, now),
        "jobsets": _rust_jobsets(state),
        "store": None,  # "not available via daemon protocol"
        "s3": {state.s3_bucket: _s3_doc(state.s3)},
    }


# --------------------------------------------------------------------------------------------
# Rust /status/* endpoints


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
    uploads: Sequence[str] = (),
) -> dict[str, Any] | None:
    """Body of a Rust ``GET /status...`` endpoint, or None for an unknown path (404).

    ``steps``: the engine's steps (drvPath, runnable, finished, created epoch s, tries,
    lowestBuildId, system); ``uploads``: store paths waiting in the S3 uploader queue.
    """
    all_steps = list(steps or [])
    scheduled = _scheduled_paths(state)
    key = path.split("?", 1)[0].rstrip("/") or "/"
    if key.startswith("/status/build/") and key.endswith("/active"):
        return _build_active(key, all_steps)
    queued = _queued_steps(all_steps, scheduled)
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "/status": lambda: rust_status(state, now, uploads=uploads),
        "/status/machines": lambda: _counted("machines", _rust_machines(state, now)),
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


# --------------------------------------------------------------------------------------------
# Prometheus text exposition 0.0.4

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Family:
    """One metric family: name, help, type and samples ``(suffix, labels, value)``."""

    name: str
    help: str
    type: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)


def _one(name: str, help_text: str, kind: str, value: float) -> _Family:
    """A family with a single unlabelled sample."""
    return _Family(name, help_text, kind, [("", (), float(value))])


def _labelled(
    name: str, help_text: str, label: str, values: Mapping[str, float], kind: str = "gauge"
) -> _Family:
    """A family with one sample per label value."""
    return _Family(
        name, help_text, kind, [("", ((label, k),), float(v)) for k, v in values.items()]
    )


def _escape_label(value: str) -> str:
    """Label value escaping of the text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _render(families: Iterable[_Family], number: Callable[[float], str]) -> str:
    """Text exposition: ``# HELP``, ``# TYPE``, then samples; ``number`` formats values."""
    lines: list[str] = []
    for fam in families:
        help_text = fam.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {fam.name} {help_text}")
        lines.append(f"# TYPE {fam.name} {fam.type}")
        for suffix, labels, value in fam.samples:
            label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
            braces = "{" + label_text + "}" if labels else ""
            lines.append(f"{fam.name}{suffix}{braces} {number(float(value))}")
    return "\n".join(lines) + "\n"


def _cpp_number(value: float) -> str:
    """prometheus-cpp ``WriteValue``: ``%.16g``, ``Nan``, ``+Inf``."""
    if math.isnan(value):
        return "Nan"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.16g}"


def _rust_number(value: float) -> str:
    """Rust ``f64`` Display (rust-prometheus): no exponent, integers without ``.0``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**63:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


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
) -> list[_Family]:
    """Unlabelled families of ``table`` (name -> (type, help)) with ``values`` by name."""
    return [
        _one(prefix + name, help_text, kind, values[name])
        for name, (kind, help_text) in table.items()
    ]


def _cpp_exposer_families(latencies_us: Sequence[float], nbytes: int) -> list[_Family]:
    """prometheus-cpp's own endpoint metrics (served before the application's registry)."""
    summary = _Family(
        "exposer_request_latencies",
        "Latencies of serving scrape requests, in microseconds",
        "summary",
        [("_count", (), float(len(latencies_us))), ("_sum", (), float(sum(latencies_us)))],
    )
    for q in (0.5, 0.9, 0.99):
        summary.samples.append(("", (("quantile", _cpp_number(q)),), _quantile(latencies_us, q)))
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
        "queue_checks_early_exits_total": _queue_early_exits(state),
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
    return _render(families, _cpp_number)


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


def _avg_ms(total: int, count: int) -> int:
    """Integer average in ms (u64 division); 0 before the first step."""
    return total // count if count else 0


def _rust_step_values(state: RunnerState) -> dict[str, float]:
    """Build and step counters/gauges (counts) and step times (ms)."""
    done = state.nr_steps_done
    queues = _queue_stats(state)
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
        "steps_avg_total_time_ms": _avg_ms(state.total_step_ms, done),
        "steps_avg_import_time_ms": _avg_ms(state.total_step_import_ms, done),
        "steps_avg_build_time_ms": _avg_ms(state.total_step_build_ms, done),
        "steps_avg_upload_time_ms": _avg_ms(state.total_step_upload_ms, done),
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
    queues = _queue_stats(state)
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
    s3_doc = _s3_doc(state.s3)
    for key, value in s3_doc.items():
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
        "last_ping_timestamp": _rust_last_ping(machine, now),
        "idle_since_timestamp": _rust_idle_since(machine),
    }


def _snake(camel: str) -> str:
    """``putTimeMs`` -> ``put_time_ms``."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


def _histogram(
    name: str, help_text: str, buckets: Sequence[float], observed: Mapping[str, Sequence[float]]
) -> _Family:
    """A ``machine_type``-labelled histogram: cumulative buckets, ``+Inf``, sum, count."""
    fam = _Family(name, help_text, "histogram")
    for machine_type, values in sorted(observed.items()):
        labels: Labels = (("machine_type", machine_type),)
        for bound in buckets:
            count = sum(1 for v in values if v <= bound)
            fam.samples.append(("_bucket", (*labels, ("le", _rust_number(bound))), count))
        fam.samples.append(("_bucket", (*labels, ("le", "+Inf")), float(len(values))))
        fam.samples.append(("_sum", labels, float(sum(values))))
        fam.samples.append(("_count", labels, float(len(values))))
    return fam


def _rust_histograms(
    state: RunnerState, wait_seconds: Sequence[float] | Mapping[str, Sequence[float]] | None
) -> list[_Family]:
    """The three histograms; the input-drv and closure-size ones carry zero counts."""
    queues = _queue_stats(state)
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
    labelled = _rust_labelled_values(state, now)
    for name, (label, help_text) in _RUST_LABELLED.items():
        values = labelled.get(name, {})
        fams.append(_labelled(p + name, help_text, label, dict(sorted(values.items()))))
    fams += _rust_histograms(state, wait_seconds)
    kept = [f for f in fams if f.samples]
    return _render(sorted(kept, key=lambda f: f.name), _rust_number)
