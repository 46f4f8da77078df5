"""``collect cpu``: sample a target's threads, classify the samples, write them into a run.

perf (or py-spy) runs in its own session, so a Ctrl-C or SIGTERM reaches this process only;
the collector then stops the sampler with SIGINT, which makes it write what it has, and
classifies that. ``--duration`` ends it the same way; so does the target exiting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from profiler.atomic import remove_quietly
from profiler.collect.control import Log, quiet
from profiler.collect.cpu import perf, pyspy
from profiler.collect.cpu.samples import Sample
from profiler.collect.cpu.tables import Aggregate, Meta, write_files
from profiler.collect.cpu.targets import Target
from profiler.errors import CollectorError, ToolMissing
from profiler.store import Run

SAMPLERS = ("auto", "perf", "py-spy")
_STARTUP_SECONDS = 0.5  # a perf that fails (permissions, options) exits within this
_STOP_SECONDS = 60.0  # for the sampler to write its file after SIGINT
# perf record's exits with a complete file: done (its targets exited) or stopped by SIGINT,
# which it re-raises once the file is written
_STOPPED_CODES = (0, -signal.SIGINT, 128 + signal.SIGINT)


@dataclass(frozen=True)
class CpuOptions:
    """How to sample: rate, length, the sampler and call-graph method, the time buckets."""

    frequency_hz: int = 99
    duration_seconds: float | None = None
    bucket_seconds: float = 1.0
    sampler: str = "auto"
    call_graph: str = "fp"  # fp, falling back to dwarf, then leaf
    generation: str | None = None
    keep_raw: bool = False


@dataclass
class CpuResult:
    """What a collection produced."""

    sampler: str
    call_graph: str
    samples: int = 0
    cpu_seconds_by_class: dict[str, float] = field(default_factory=dict)
    unresolved_share: float = 0.0
    files: tuple[str, ...] = ()


def choose_sampler(requested: str, target: Target) -> str:
    """``perf`` when asked or installed; py-spy for a Python target without perf."""
    if requested != "auto":
        return requested
    try:
        perf.find_perf()
        return "perf"
    except ToolMissing:
        if target.python:
            return "py-spy"
        raise


def _wait(procs: list[subprocess.Popen[bytes]], stop: threading.Event, until: float) -> None:
    """Until ``stop``, the deadline, or every sampler exits (their targets gone)."""
    while not stop.is_set() and time.monotonic() < until:
        if all(p.poll() is not None for p in procs):
            return
        stop.wait(0.1)


def _interrupt(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _spawn(argv: list[str], err_path: str) -> subprocess.Popen[bytes]:
    with open(err_path, "wb") as err:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,
        )  # fmt: skip


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class CpuCollector:
    """Samples ``target`` into ``run`` (see :class:`CpuOptions`)."""

    def __init__(
        self,
        run: Run,
        target: Target,
        options: CpuOptions,
        *,
        stop: threading.Event | None = None,
        log: Log = quiet,
    ) -> None:
        self.run = run
        self.target = target
        self.options = options
        self.stop = stop or threading.Event()
        self.log = log
        self.dir = os.path.join(run.path, "cpu")

    def collect(self) -> CpuResult:
        """Sample until stopped, then classify and write; the result's figures."""
        sampler = choose_sampler(self.options.sampler, self.target)
        os.makedirs(self.dir, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        source = self.run.add_source("cpu", self.target.label, self.options.generation)
        try:
            if sampler == "perf":
                call_graph, samples = self._perf(stamp)
                meta = Meta(sampler, self.target.label, call_graph, self.options.bucket_seconds)
            else:  # py-spy's raw output has no times: the recording is one bucket
                started = time.time()
                samples = self._pyspy(stamp)
                elapsed = max(time.time() - started, 1e-3)
                meta = Meta(sampler, self.target.label, "py-spy", elapsed, started)
            return self._write(meta, samples)
        finally:
            self.run.end_source(source)

    # --- perf --------------------------------------------------------------------------------

    def _start_perf(self, exe: str, data: str, err: str) -> tuple[str, subprocess.Popen[bytes]]:
        order = perf.CALL_GRAPHS[perf.CALL_GRAPHS.index(self.options.call_graph) :]
        message = ""
        for call_graph in order:
            argv = perf.record_argv(
                exe,
                self.target.pids,
                frequency_hz=self.options.frequency_hz,
                call_graph=call_graph,
                out=data,
            )
            proc = _spawn(argv, err)
            try:
                proc.wait(timeout=_STARTUP_SECONDS)
            except subprocess.TimeoutExpired:
                return call_graph, proc  # sampling
            if proc.returncode == 0:  # the target exited already: a short recording
                return call_graph, proc
            message = _read_text(err)
            if not _call_graph_refused(message):
                break
            self.log(f"collect cpu: perf refused --call-graph {call_graph}; trying the next")
        raise self._failure(message)

    def _failure(self, stderr: str) -> CollectorError:
        """Why perf failed; when every target is gone, that is why (perf may say nothing)."""
        if not any(os.path.exists(f"/proc/{pid}") for pid in self.target.pids):
            return CollectorError(
                f"collect cpu: the target exited before sampling began ({self.target.label})"
            )
        return perf.explain_failure(stderr, paranoid=perf.paranoid_level(), uid=os.getuid())

    def _perf(self, stamp: str) -> tuple[str, Iterable[Sample]]:
        exe = perf.find_perf()
        data = os.path.join(self.dir, f"perf-{stamp}.data")
        err = os.path.join(self.dir, f"perf-{stamp}.stderr")
        call_graph, proc = self._start_perf(exe, data, err)
        self.log(
            f"collect cpu: perf sampling {self.target.label} at {self.options.frequency_hz} Hz "
            f"(call graphs: {call_graph}; Ctrl-C to stop)"
        )
        _wait([proc], self.stop, self._deadline())
        _interrupt([proc])
        stopped = proc.returncode in _STOPPED_CODES  # by itself or by our SIGINT
        if not stopped or not os.path.exists(data):
            raise self._failure(_read_text(err))
        return call_graph, self._script(exe, data, err)

    def _script(self, exe: str, data: str, err: str) -> Iterable[Sample]:
        with open(err, "ab") as errors:
            done = subprocess.Popen(
                perf.script_argv(exe, data), stdout=subprocess.PIPE, stderr=errors,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            assert done.stdout is not None
            with done.stdout as out:
                lines = (b.decode("utf-8", "replace") for b in out)
                yield from perf.parse_script(lines)
            if done.wait() != 0:
                message = " ".join(_read_text(err).split())[-300:]
                raise CollectorError(f"collect cpu: perf script failed on {data}: {message}")
        if not self.options.keep_raw:
            for path in (data, err):
                remove_quietly(path)

    # --- py-spy ------------------------------------------------------------------------------

    def _pyspy(self, stamp: str) -> list[Sample]:
        exe = pyspy.find_pyspy()
        started = time.time()
        outs, procs = [], []
        for pid in self.target.pids:
            out = os.path.join(self.dir, f"py-spy-{stamp}-{pid}.txt")
            argv = pyspy.record_argv(
                exe, pid, frequency_hz=self.options.frequency_hz,
                duration_seconds=self.options.duration_seconds, out=out,
            )  # fmt: skip
            outs.append((pid, out))
            procs.append(_spawn(argv, out + ".stderr"))
        self.log(f"collect cpu: py-spy sampling {self.target.label} (Ctrl-C to stop)")
        _wait(procs, self.stop, self._deadline())
        _interrupt(procs)
        samples: list[Sample] = []
        for pid, out in outs:
            if not os.path.exists(out):
                raise CollectorError(
                    f"collect cpu: py-spy failed: {_read_text(out + '.stderr')[:300]}"
                )
            with open(out, encoding="utf-8", errors="replace") as f:
                rate = self.options.frequency_hz
                samples += pyspy.parse_raw(f, pid=pid, ts=started, frequency_hz=rate)
            if not self.options.keep_raw:
                remove_quietly(out)
                remove_quietly(out + ".stderr")
        return samples

    # --- both --------------------------------------------------------------------------------

    def _deadline(self) -> float:
        d = self.options.duration_seconds
        return time.monotonic() + (d if d is not None else float("inf"))

    def _write(self, meta: Meta, samples: Iterable[Sample]) -> CpuResult:
        agg = Aggregate(meta, self.target.comms)
        for s in samples:
            agg.add(s)
        result = CpuResult(meta.sampler, meta.call_graph, agg.samples)
        if agg.samples == 0:
            self.run.note(f"collect cpu: no samples of {self.target.label} (idle, or it exited)")
            return result
        for table, rows in (
            ("cpu_classes", agg.class_rows()),
            ("cpu_stacks", agg.stack_rows()),
            ("cpu_unknown", agg.unknown_rows()),
        ):
            if rows:
                self.run.write_part(table, rows)
        result.files = write_files(self.dir, agg, self.target.label)
        for row in agg.class_rows():
            by = result.cpu_seconds_by_class
            by[row["class"]] = by.get(row["class"], 0.0) + row["cpu_seconds"]
        result.unresolved_share = agg.unresolved_frames / max(1, agg.user_frames)
        self._note_stripped(result)
        return result

    def _note_stripped(self, result: CpuResult) -> None:
        if result.call_graph != "py-spy" and result.unresolved_share > 0.5:
            self.log(
                f"collect cpu: {result.unresolved_share:.0%} of user-space frames have no "
                "symbol (stripped binaries): classified by mapped library; install debug "
                "symbols (Debian: the -dbgsym packages or DEBUGINFOD_URLS) for functions"
            )
            self.run.note(f"cpu: {result.unresolved_share:.0%} of frames unsymbolised")


def _call_graph_refused(message: str) -> bool:
    lower = message.lower()
    return "call-graph" in lower or "callchain" in lower or "dwarf" in lower
