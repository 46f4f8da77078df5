"""Sampling with Linux ``perf``: the ``perf record`` command line, its errors, and the
parser of ``perf script`` text.

``perf record -e cpu-clock`` is a software event, so it works without a hardware PMU (VMs,
containers); each sample carries its period, the nanoseconds of CPU it stands for. Times
are taken on ``CLOCK_REALTIME`` (``-k realtime``, perf-record(1)) so they are epoch seconds.
``-p PID`` follows the threads the process has and, events being inherited, those it starts
while sampled (checked by tests/integration/test_collect_cpu.py).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator

from profiler.collect.cpu.classify import Frame
from profiler.collect.cpu.samples import Sample
from profiler.errors import CollectorError, ToolMissing

CALL_GRAPHS = ("fp", "dwarf", "leaf")
SCRIPT_FIELDS = "comm,pid,tid,time,period,ip,sym,dso"
# `comm pid/tid time: period [ip sym (dso)]`; a comm may hold spaces
_HEADER = re.compile(
    r"^\s*(?P<comm>.*?)\s+(?P<pid>-?\d+)/(?P<tid>-?\d+)\s+(?P<time>\d+\.\d+):\s+"
    r"(?P<period>\d+)\s*(?P<rest>.*)$"
)
_FRAME = re.compile(r"^\s*(?P<ip>[0-9a-f]+)\s+(?P<where>.*)$")


def find_perf() -> str:
    """The ``perf`` program; ToolMissing (with the remedy) when it is not installed."""
    found = shutil.which("perf")
    if found is None:
        raise ToolMissing(
            "collect cpu: perf not found; install it (Debian: apt-get install linux-perf; "
            "Fedora: dnf install perf; NixOS: environment.systemPackages = [ pkgs.perf ])"
        )
    return found


def record_argv(
    perf: str, pids: Iterable[int], *, frequency_hz: int, call_graph: str, out: str
) -> list[str]:
    """The ``perf record`` command sampling ``pids`` (all their threads) into ``out``."""
    argv = [perf, "record", "-q", "-e", "cpu-clock", "-F", str(frequency_hz), "-k", "realtime"]
    if call_graph == "fp":
        argv += ["--call-graph", "fp"]
    elif call_graph == "dwarf":
        argv += ["--call-graph", "dwarf,16384"]
    return [*argv, "-p", ",".join(str(p) for p in pids), "-o", out]


def script_argv(perf: str, data: str) -> list[str]:
    """The ``perf script`` command printing each sample of ``data`` with its frames."""
    return [perf, "script", "-i", data, "-F", SCRIPT_FIELDS]


def paranoid_level(proc: str = "/proc") -> int | None:
    """``kernel.perf_event_paranoid`` (None if unreadable)."""
    try:
        with open(os.path.join(proc, "sys/kernel/perf_event_paranoid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def explain_failure(stderr: str, *, paranoid: int | None, uid: int) -> CollectorError:
    """One line saying why ``perf record`` failed and what to do about it."""
    text = " ".join(stderr.split())
    lower = text.lower()
    if "perf_event_paranoid" in lower or "permission" in lower or "not permitted" in lower:
        level = "unknown" if paranoid is None else str(paranoid)
        return CollectorError(
            f"collect cpu: sampling not permitted (kernel.perf_event_paranoid={level}, uid "
            f"{uid}): run as root or as the target's user with "
            "`sysctl kernel.perf_event_paranoid=1`, or grant perf CAP_PERFMON and "
            "CAP_SYS_PTRACE (setcap cap_perfmon,cap_sys_ptrace+ep $(command -v perf)); in a "
            "container, allow perf_event_open (e.g. docker run --cap-add PERFMON "
            "--security-opt seccomp=unconfined)"
        )
    if "function not implemented" in lower or "not supported" in lower:
        return CollectorError(
            "collect cpu: perf_event_open is not available here (a container's seccomp "
            "profile or a kernel without CONFIG_PERF_EVENTS); allow it, or sample on the "
            f"host: {text[:200]}"
        )
    if "no such process" in lower or "couldn't find" in lower or "invalid pid" in lower:
        return CollectorError(f"collect cpu: the target exited before sampling began: {text[:200]}")
    return CollectorError(f"collect cpu: perf record failed: {text[:300] or 'no message'}")


def _frame(where: str) -> Frame:
    """``sym (dso)`` -> Frame; ``[unknown]`` symbols are None."""
    symbol, sep, dso = where.rpartition(" (")
    if not sep:
        return Frame(None if where in ("", "[unknown]") else where, "[unknown]")
    dso = dso[:-1] if dso.endswith(")") else dso
    symbol = symbol.strip()
    return Frame(None if symbol in ("", "[unknown]") else symbol, dso)


def _frames(lines: list[str]) -> tuple[Frame, ...]:
    out = []
    for line in lines:
        m = _FRAME.match(line)
        if m is not None:
            out.append(_frame(m["where"]))
    out.reverse()  # perf prints the leaf first
    return tuple(out)


def _sample(m: re.Match[str], body: list[str], offset: float) -> Sample:
    frames = _frames(body) if body else _frames([m["rest"]]) if m["rest"] else ()
    return Sample(
        ts=float(m["time"]) + offset,
        pid=int(m["pid"]),
        tid=int(m["tid"]),
        thread=m["comm"],
        cpu_seconds=int(m["period"]) / 1e9,
        frames=frames,
    )


def parse_script(lines: Iterable[str], *, offset_seconds: float = 0.0) -> Iterator[Sample]:
    """Samples from ``perf script -F comm,pid,tid,time,period,ip,sym,dso`` text.

    With call graphs, a header line is followed by one tab-indented line per frame (leaf
    first) and a blank line; without, the one frame is on the header line. ``offset_seconds``
    is added to perf's times (0 when recorded with ``-k realtime``).
    """
    head: re.Match[str] | None = None
    body: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        m = None if line.startswith("\t") else _HEADER.match(line)  # frames are tabbed
        if m is not None:
            if head is not None:
                yield _sample(head, body, offset_seconds)
            head, body = m, []
        elif head is not None:
            body.append(line)
    if head is not None:
        yield _sample(head, body, offset_seconds)
