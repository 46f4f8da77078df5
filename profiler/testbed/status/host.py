"""Host facts the Rust runner and its builders read live: ``/proc/self/statm``, cgroup v2
files, PSI files, load, memory and free space; zeros where a file cannot be read.

:func:`read_host` reads them once into a :class:`HostFacts` value, which the status builders
take as an argument. Every root is injectable (the ``ProcessCollector(proc='/proc')`` habit
of prometheus client_python), so the tests read a checked-in tree (``tests/data/proc/``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from profiler.testbed.status.numbers import f32_short

# The builder's pressure fields: name -> (/proc/pressure file, line)
PSI_LINES: Mapping[str, tuple[str, str]] = {
    "cpuSome": ("cpu", "some"),
    "memSome": ("memory", "some"),
    "memFull": ("memory", "full"),
    "ioSome": ("io", "some"),
    "ioFull": ("io", "full"),
    "irqFull": ("irq", "full"),
}


class Pressure(NamedTuple):
    """One PSI line: stall averages in percent (parsed as the builder's ``f32``), total µs."""

    avg10: float = 0.0
    avg60: float = 0.0
    avg300: float = 0.0
    total: int = 0


class Cgroup(NamedTuple):
    """The runner's cgroup v2 counters: memory and io in bytes, cpu in µs."""

    memory_current: int = 0
    memory_peak: int = 0
    swap_current: int = 0
    zswap_current: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    usage_usec: int = 0
    user_usec: int = 0
    system_usec: int = 0


def _no_pressure() -> dict[str, Pressure]:
    return dict.fromkeys(PSI_LINES, Pressure())


@dataclass(frozen=True)
class HostFacts:
    """What the runner reads of its host; the emulated builders run here and share it.

    Memory in bytes (``mem_usage`` is MemTotal - MemAvailable), load averages as read,
    free space in percent; the process sizes are ``/proc/self/statm`` pages in bytes.
    ``HostFacts()`` is a host where nothing could be read.
    """

    bogomips: float = 0.0
    total_mem: int = 0
    mem_usage: int = 0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pressure: Mapping[str, Pressure] = field(default_factory=_no_pressure)
    build_dir_free: float = 0.0
    store_free: float = 0.0
    vsize_bytes: int = 0
    rss_bytes: int = 0
    shared_bytes: int = 0
    cgroup: Cgroup = field(default_factory=Cgroup)


def read_host(
    proc_root: str = "/proc",
    cgroup_root: str = "/sys/fs/cgroup",
    *,
    build_dir: str | None = None,
    store_dir: str | None = None,
    page_size: int | None = None,
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
) -> HostFacts:
    """Read bogomips, memory (bytes), load averages, PSI, free space and the process once.

    ``build_dir`` defaults to the temporary directory, ``store_dir`` to ``/nix/store`` (``/``
    without Nix), ``page_size`` to this system's; ``statvfs`` measures free space.
    """
    total_kib, available_kib = _memory_kib(proc_root)
    vsize, rss, shared = _statm_bytes(proc_root, page_size or os.sysconf("SC_PAGE_SIZE"))
    if store_dir is None:
        store_dir = "/nix/store" if os.path.isdir("/nix/store") else "/"
    return HostFacts(
        bogomips=_bogomips(proc_root),
        total_mem=total_kib * 1024,
        mem_usage=max(0, total_kib - available_kib) * 1024,
        load=_load(proc_root),
        pressure={name: _psi(proc_root, kind, which) for name, (kind, which) in PSI_LINES.items()},
        build_dir_free=_free_percent(build_dir or tempfile.gettempdir(), statvfs),
        store_free=_free_percent(store_dir, statvfs),
        vsize_bytes=vsize,
        rss_bytes=rss,
        shared_bytes=shared,
        cgroup=_cgroup(proc_root, cgroup_root),
    )


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


def _bogomips(proc_root: str) -> float:
    """The first ``bogomips`` line of ``cpuinfo``; 0.0 without one."""
    for line in (_read_text(os.path.join(proc_root, "cpuinfo")) or "").splitlines():
        if line.lower().startswith("bogomips"):
            return float(line.split(":", 1)[1])
    return 0.0


def _memory_kib(proc_root: str) -> tuple[int, int]:
    """``MemTotal`` and ``MemAvailable`` of ``meminfo``, in KiB."""
    keys = ("MemTotal:", "MemAvailable:")
    mem = _keyed_ints(_read_text(os.path.join(proc_root, "meminfo")), keys, key_value=False)
    return mem["MemTotal:"], mem["MemAvailable:"]


def _load(proc_root: str) -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages of ``loadavg``."""
    loads = (_read_text(os.path.join(proc_root, "loadavg")) or "0 0 0").split()[:3]
    return (float(loads[0]), float(loads[1]), float(loads[2]))


def _psi(proc_root: str, kind: str, which: str) -> Pressure:
    """One PSI line (``some``/``full``) of ``pressure/<kind>``: avg % (f32), total µs."""
    out: dict[str, float] = Pressure()._asdict()
    for line in (_read_text(os.path.join(proc_root, "pressure", kind)) or "").splitlines():
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
    return Pressure(out["avg10"], out["avg60"], out["avg300"], int(out["total"]))


def _free_percent(path: str, statvfs: Callable[[str], os.statvfs_result]) -> float:
    """Free space of the file system holding ``path``, in percent (f64)."""
    try:
        st = statvfs(path)
    except OSError:
        return 0.0
    return st.f_bavail / st.f_blocks * 100.0 if st.f_blocks else 0.0


def _statm_bytes(proc_root: str, page_size: int) -> tuple[int, int, int]:
    """Virtual, resident and shared size of the process (``self/statm`` pages), in bytes."""
    text = _read_text(os.path.join(proc_root, "self", "statm"))
    pages = [int(x) for x in (text or "0 0 0").split()[:3]]
    pages += [0] * (3 - len(pages))
    return pages[0] * page_size, pages[1] * page_size, pages[2] * page_size


def _cgroup_dir(proc_root: str, cgroup_root: str) -> str | None:
    """This process's cgroup v2 directory (pure v2 or the hybrid ``unified`` mount)."""
    for line in (_read_text(os.path.join(proc_root, "self", "cgroup")) or "").splitlines():
        if line.startswith("0::"):
            rel = line[3:].strip().lstrip("/")
            for root in (cgroup_root, os.path.join(cgroup_root, "unified")):
                path = os.path.join(root, rel)
                if os.path.exists(os.path.join(path, "cgroup.procs")):
                    return path
    return None


def _cgroup(proc_root: str, cgroup_root: str) -> Cgroup:
    """Memory bytes, io bytes and cpu µs from the cgroup v2 files; zeros without a cgroup."""
    base = _cgroup_dir(proc_root, cgroup_root)
    if base is None:
        return Cgroup()

    def path(name: str) -> str:
        return os.path.join(base, name)

    io = _keyed_ints(_read_text(path("io.stat")), ("rbytes", "wbytes"), key_value=True)
    cpu_keys = ("usage_usec", "user_usec", "system_usec")
    cpu = _keyed_ints(_read_text(path("cpu.stat")), cpu_keys, key_value=False)
    return Cgroup(
        memory_current=_read_int(path("memory.current")),
        memory_peak=_read_int(path("memory.peak")),
        swap_current=_read_int(path("memory.swap.current")),
        zswap_current=_read_int(path("memory.zswap.current")),
        read_bytes=io["rbytes"],
        write_bytes=io["wbytes"],
        usage_usec=cpu["usage_usec"],
        user_usec=cpu["user_usec"],
        system_usec=cpu["system_usec"],
    )
