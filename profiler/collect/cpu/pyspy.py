"""Sampling Python processes with py-spy: its command line and its ``raw`` output.

``py-spy record --format raw --threads`` writes folded stacks, one line per distinct stack:
``thread (TID): NAME;frame;...;frame COUNT`` (``thread (TID);...`` for an unnamed thread),
frames root to leaf, each ``function (file:line)``; ``--native`` adds C frames, as
``SHA256_Update (libcrypto.so.3)`` or, unnamed, ``0x7f844c89c2be (libcrypto.so.3)``. The raw
format has no times and no periods: each sample stands for 1/rate seconds, and the whole
recording is one time bucket.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Iterator

from profiler.collect.cpu.classify import Frame
from profiler.collect.cpu.samples import Sample
from profiler.errors import ToolMissing

_THREAD = re.compile(r"^thread \((?P<tid>\d+)\)(?::\s*(?P<name>[^;]*))?$")
_PYFRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def find_pyspy() -> str:
    """The ``py-spy`` program; ToolMissing with the remedy when absent."""
    found = shutil.which("py-spy")
    if found is None:
        raise ToolMissing("collect cpu: py-spy not found; install it (pip install py-spy)")
    return found


def record_argv(
    pyspy: str, pid: int, *, frequency_hz: int, duration_seconds: float | None, out: str
) -> list[str]:
    """``py-spy record`` of ``pid``'s threads with native frames into ``out`` (raw)."""
    argv = [pyspy, "record", "--pid", str(pid), "--format", "raw", "--rate", str(frequency_hz)]
    argv += ["--threads", "--native", "--output", out]
    if duration_seconds is not None:
        argv += ["--duration", str(max(1, round(duration_seconds)))]
    return argv


def _frame(text: str) -> Frame:
    m = _PYFRAME.match(text)
    func, where = (text, "[unknown]") if m is None else (m["func"], m["file"])
    if _ADDRESS.fullmatch(func):  # a native frame py-spy could not name
        return Frame(None, where)
    return Frame(func or None, where)


def parse_raw(lines: Iterable[str], *, pid: int, ts: float, frequency_hz: int) -> Iterator[Sample]:
    """Samples (one per folded line, ``cpu_seconds`` = count / rate) of process ``pid``."""
    for raw in lines:
        line = raw.rstrip("\n")
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        head, *rest = stack.split(";")
        m = _THREAD.match(head)
        if m is None:  # recorded without --threads: the frames start at once
            tid, thread, rest = pid, "", [head, *rest]
        else:
            tid, thread = int(m["tid"]), (m["name"] or "").strip()
        frames = tuple(_frame(f) for f in rest)
        yield Sample(ts, pid, tid, thread, int(count) / frequency_hz, frames, int(count))
