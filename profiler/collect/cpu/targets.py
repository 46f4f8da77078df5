"""Which processes to sample: ``--pid``, ``--unit`` or ``--match``, read from ``/proc``.

Every function takes the ``/proc`` root as an argument, so tests resolve against a fake
tree. A systemd unit's processes are those whose cgroup (``/proc/PID/cgroup``, cgroup v1
or v2) is the unit's or below it: the unit's ``cgroup.procs``, without needing systemctl
(systemd.unit(5): a service's processes live in ``/system.slice/NAME.service``).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from profiler.errors import CollectorError


class Target(NamedTuple):
    """The processes to sample and what the user asked for (``target`` in the tables)."""

    pids: tuple[int, ...]
    label: str
    comms: dict[int, str]  # pid -> the process' comm when resolved
    python: bool  # every process runs a Python interpreter (py-spy can sample it)


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def comm(pid: int, proc: str = "/proc") -> str | None:
    """The comm of ``pid`` (None when it is gone)."""
    text = _read(os.path.join(proc, str(pid), "comm"))
    return None if text is None else text.strip()


def argv0(pid: int, proc: str = "/proc") -> str:
    """The basename of ``pid``'s argv[0] ('' for kernel threads or when unreadable)."""
    text = _read(os.path.join(proc, str(pid), "cmdline")) or ""
    return os.path.basename(text.split("\0", 1)[0])


def _is_python(pid: int, proc: str) -> bool:
    try:
        exe = os.path.basename(os.readlink(os.path.join(proc, str(pid), "exe")))
    except OSError:
        exe = argv0(pid, proc)
    return exe.startswith("python")


def _pids(proc: str) -> list[int]:
    try:
        return sorted(int(n) for n in os.listdir(proc) if n.isdigit())
    except OSError as exc:
        raise CollectorError(f"collect cpu: cannot list {proc}: {exc.strerror}") from None


def _target(pids: list[int], label: str, proc: str) -> Target:
    comms = {p: comm(p, proc) or str(p) for p in pids}
    return Target(tuple(pids), label, comms, all(_is_python(p, proc) for p in pids))


def by_pid(pids: list[int], proc: str = "/proc") -> Target:
    """The processes ``pids``; an error naming the first that does not exist."""
    for p in pids:
        if comm(p, proc) is None:
            raise CollectorError(f"collect cpu: no process {p} (is it running, on this host?)")
    label = ", ".join(f"pid {p} ({comm(p, proc)})" for p in pids)
    return _target(pids, label, proc)


def by_match(name: str, proc: str = "/proc", *, exclude: tuple[int, ...] = ()) -> Target:
    """Processes whose comm or argv[0] basename contains ``name`` (e.g. Hydra's C++ runner:
    comm ``hydra-queue-run``, the kernel's 15 characters; argv[0] ``hydra-queue-runner``)."""
    found = [
        p
        for p in _pids(proc)
        if p not in exclude and (name in (comm(p, proc) or "") or name in argv0(p, proc))
    ]
    if not found:
        raise CollectorError(f"collect cpu: no process matches {name!r} (comm or argv[0])")
    return _target(found, f"match {name} (pids {','.join(map(str, found))})", proc)


def _in_unit(cgroup_text: str, unit: str) -> bool:
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        if unit in path.split("/"):
            return True
    return False


def by_unit(unit: str, proc: str = "/proc") -> Target:
    """The processes in systemd unit ``unit``'s cgroup (``.service`` added if absent)."""
    if "." not in unit:
        unit += ".service"
    found = [
        p for p in _pids(proc) if _in_unit(_read(os.path.join(proc, str(p), "cgroup")) or "", unit)
    ]
    if not found:
        raise CollectorError(
            f"collect cpu: no process in unit {unit} (is it running? `systemctl status {unit}`)"
        )
    return _target(found, f"unit {unit} (pids {','.join(map(str, found))})", proc)
