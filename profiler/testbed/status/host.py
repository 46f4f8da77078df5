"""Host facts the Rust runner and its builders read live: ``/proc/self/statm``, cgroup v2
files, PSI files, load, memory and free space; zeros where a file cannot be read."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from profiler.testbed.status.numbers import f32_short


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


def proc_doc(pid: int) -> dict[str, Any]:
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
class Host:
    """Host facts shared by the emulated builders (they run on this machine)."""

    bogomips: float = 0.0
    total_mem: int = 0
    mem_usage: int = 0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pressure: dict[str, Any] = field(default_factory=dict)
    build_dir_free: float = 0.0
    store_free: float = 0.0


def read_host() -> Host:
    """Read bogomips, memory (bytes), load averages, PSI and free space once."""
    host = Host()
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
