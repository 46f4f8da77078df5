"""What a sampler hands on: one stack sample with the CPU time it stands for."""

from __future__ import annotations

from typing import NamedTuple

from profiler.collect.cpu.classify import Frame


class Sample(NamedTuple):
    """One sample of one thread.

    ``cpu_seconds`` is what the sample stands for: perf's ``cpu-clock`` period (the
    nanoseconds of CPU since the thread's previous sample), or 1/rate for py-spy.
    ``frames`` run root to leaf; ``samples`` is how many samples the record is.
    """

    ts: float  # epoch seconds, UTC
    pid: int
    tid: int
    thread: str  # the thread's comm when sampled
    cpu_seconds: float
    frames: tuple[Frame, ...]
    samples: int = 1  # py-spy's raw lines count identical samples together
