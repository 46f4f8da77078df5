"""The emulated queue runner: dispatcher, per-step builder threads, and the true timeline.

Each step runs the phases of its generation (reference ``hydra.md`` §4), doing the real
thing where it can, and records every phase's true start and end:

C++ (busy codes in brackets): preparing [1] -> connecting [10] -> sending-inputs [20]
(input NARs read from the cache, decompressed, sent over loopback) -> building [30] ->
waiting-for-local-slot [35] (only when ``max_local_worker_threads`` permits are all taken;
the machine slot is released once a permit is held) -> receiving-outputs, compressing,
writing-cache, uploading [40] -> post-processing [50] -> db-update.

Rust: preparing (the step's row) -> dispatch [10] -> importing [20] (the builder fetches inputs
from the cache) -> building [30] -> compressing, writing-cache, uploading [40] (the builder
compresses, as with presigned uploads; the slot stays held) -> post-processing [50] ->
finishing-step (the step row, slot still held) -> db-update (the builds' rows, slot free).

A step's wall time runs from when it became runnable to its end; the phases (with
``queued`` first) tile it exactly, so the attribution in ``truth.json`` sums to 1.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from profiler import nar
from profiler.codecs import Codec, make_codec, parse_spec
from profiler.errors import ProfilerError
from profiler.hydra import facts
from profiler.testbed import agent, journal, status
from profiler.testbed.cache import BinaryCache
from profiler.testbed.state import MachineState, RunnerState
from profiler.testbed.workload import StepSpec, Workload, output_selection

CATEGORY = {
    "queued": "scheduling",
    "connecting": "scheduling",
    "dispatch": "scheduling",
    "preparing": "post",
    "sending-inputs": "io",
    "importing": "io",
    "building": "build",
    "waiting-for-local-slot": "compression",
    "receiving-outputs": "io",
    "reading-outputs": "io",
    "compressing": "compression",
    "writing-cache": "io",
    "uploading": "io",
    "post-processing": "post",
    # a phase's own row update before its work, with the slot held: C++ updateStep
    # (builder.cc:201-205, build-remote.cc:431,512,532,562) and Rust's Connecting update
    # (hydra 14332fbf state/mod.rs:1134-1142); after the release such writes are db-update
    "updating-step": "post",
    "finishing-step": "post",  # Rust: the step row, written while the slot is held
    "db-update": "post",
    # a failed attempt and the back-off before its retry: time the step did not progress
    "failed-attempt": "build",
    "retry-wait": "scheduling",
}
CATEGORIES = facts.CATEGORIES
_COUNTED_WRITES = frozenset({"start_step", "finish_step"})  # Engine._txn
SWITCH_INTERVAL_SECONDS = 0.0005  # the GIL's, while a run is emulated (Engine.run)


@dataclass(frozen=True)
class Knobs:
    """What the run emulates; every bottleneck can be created on purpose."""

    generation: str = "cxx"
    codec: str = "compression=xz"
    machines: int = 2
    max_jobs: int = 2
    local_workers: int | None = None  # C++ max_local_worker_threads
    link_bytes_per_second: float | None = None
    upload_bytes_per_second: float | None = None
    dispatch_delay_seconds: float = 0.0
    db_latency_seconds: float = 0.0
    connect_seconds: float = 0.05
    post_seconds: float = 0.05
    burn: bool = False
    # steps (workload indexes) whose build fails, as real farms see every day: the runner
    # marks the build failed and writes no sizes (Builds.size/closureSize stay NULL)
    fail_steps: frozenset[int] = frozenset()
    # Rust builders' upload mode (facts.UPLOAD_MODES): presigned = the builder compresses and
    # PUTs (production); direct = the builder streams the NAR to the runner, whose uploader
    # task compresses and uploads it afterwards, outside the step (state/uploader.rs)
    upload_mode: str = "presigned"
    # Rust: the first N builders report CPU pressure above their threshold all run long, and
    # the runner's machineFreeFn is DynamicWithMaxJobLimit (production's): they take no work
    # although their slots are free (state/machine.rs:731-780)
    pressure_machines: int = 0
    # steps whose first build attempt fails transiently and is retried after a back-off
    # (C++ builder.cc:261 and :63; Rust state/mod.rs:2224 and :2256), scaled for the emulator
    retry_steps: frozenset[int] = frozenset()
    retry_seconds: float = 0.5

    def workers(self) -> int:
        """Hydra's default: min(1024, max(4, hardware threads) - 2)."""
        if self.local_workers is not None:
            return self.local_workers
        return min(1024, max(4, os.cpu_count() or 1) - 2)


@dataclass
class StepRun:
    """The true timeline of one step."""

    spec: StepSpec
    build_id: int = 0
    step_nr: int = 0
    runnable_at: float = 0.0
    dispatched_at: float = 0.0  # the latest dispatch (a retried step is dispatched again)
    machine: str = ""
    phases: list[tuple[str, float, float]] = field(default_factory=list)
    finished_at: float = 0.0
    nar_bytes: int = 0
    compressed_bytes: int = 0
    input_bytes: int = 0
    compress_seconds: float = 0.0
    # the compressing thread's CPU over the same call (time.thread_time: a codec's own worker
    # threads are not in it); what a CPU sampler's compression class can be checked against
    compress_cpu_seconds: float = 0.0
    build_start: float = 0.0
    build_stop: float = 0.0
    status: int = 0  # BuildSteps.status: 0 success, 1 failed
    tries: int = 0  # failed attempts before this one
    not_before: float = 0.0  # a retry's back-off: not dispatched before this time
    retrying: bool = False
    async_compress_seconds: float = 0.0  # Rust direct mode: the runner's, after the step
    busy_update: threading.Thread | None = None  # Rust: the last phase update in flight
    _open: tuple[str, float] | None = None

    def mark(self, phase: str, now: float) -> None:
        """Close the current phase at ``now`` and open ``phase``."""
        if self._open is not None:
            self.phases.append((self._open[0], self._open[1], now))
        self._open = (phase, now)

    def end(self, now: float) -> None:
        self.mark("", now)
        self._open = None
        self.finished_at = now

    def seconds(self, *names: str) -> float:
        return sum(e - s for n, s, e in self.phases if n in names)


class Engine:
    """Runs a workload under :class:`Knobs`, writing logs, cache and rows as it goes."""

    def __init__(
        self,
        wl: Workload,
        knobs: Knobs,
        out: str,
        db: Any = None,
        progress: Callable[[str], object] = lambda _m: None,
    ) -> None:
        self.wl = wl
        self.k = knobs
        self.out = out
        self.db = db
        self.progress = progress
        if knobs.upload_mode not in facts.UPLOAD_MODES:
            raise ValueError(f"upload mode {knobs.upload_mode!r}: one of {facts.UPLOAD_MODES}")
        writer = None
        if knobs.generation == "rust":
            # presigned: the builder maps the level (presigned.rs:42); direct: the runner's
            # binary-cache crate compresses with its own levels
            writer = "rust-presigned" if knobs.upload_mode == "presigned" else "rust"
        self.codec: Codec = make_codec(parse_spec(knobs.codec, default_writer=writer))
        self.cache = BinaryCache(os.path.join(out, "cache"))
        now = time.time()
        self.state = RunnerState(knobs.generation, now, os.getpid())
        self.state.machines = [
            MachineState(
                f"builder-{i + 1}", ["x86_64-linux"], knobs.max_jobs, joined_at=now, idle_since=now
            )
            for i in range(knobs.machines)
        ]
        self.state.jobsets[f"{wl.project}:{wl.jobset}"] = (0, 100)
        if knobs.pressure_machines:
            if knobs.generation != "rust" or knobs.pressure_machines >= knobs.machines:
                raise ValueError("pressure: Rust only, and at least one builder without it")
            for i, m in enumerate(self.state.machines):
                m.free_fn = "DynamicWithMaxJobLimit"
                if i < knobs.pressure_machines:
                    m.cpu_pressure_avg10 = PRESSURE_AVG10
        # the NixOS units (facts.UNITS): one journal file per unit, per builder host
        runner_unit = facts.UNITS[knobs.generation][0].removesuffix(".service")
        self.log = journal.Journal(
            out, runner_unit, "hydra-queue-runner", "hydra", os.getpid(), knobs.generation
        )
        builder_unit = facts.UNITS["rust"][1].removesuffix(".service")
        self.builder_logs = (
            {
                m.hostname: journal.Journal(
                    out,
                    builder_unit,
                    facts.IDENTIFIERS["rust-builder"],
                    m.hostname,
                    os.getpid(),
                    "rust",
                    stem=f"{builder_unit}-{m.hostname}",
                )
                for m in self.state.machines
            }
            if knobs.generation == "rust"
            else {}
        )
        self.runs = [StepRun(s) for s in wl.steps]
        self.runner_store: dict[str, bytes] = {}  # Rust direct mode: NARs the runner holds
        self._error: BaseException | None = None
        self._error_where = ""
        self._cond = threading.Condition()
        self._done: set[int] = set()
        self._dispatched: set[int] = set()
        self._threads: list[threading.Thread] = []
        self._slots = threading.Semaphore(knobs.workers())
        self._db_active = 0
        self.agents = {
            m.hostname: agent.Agent(m.hostname, self.output_nar, knobs.link_bytes_per_second)
            for m in self.state.machines
        }

    # --- data ------------------------------------------------------------------------------

    def output_nar(self, index: int) -> bytes:
        """The real NAR of step ``index``'s output tree."""
        out = self.wl.steps[index].output
        return nar.dump_bytes(out.root, select=output_selection(out).__contains__)

    def _emit(self, line: journal.Line) -> None:
        self.log.log(line, time.time())

    def _emit_builder(self, host: str, line: journal.Line) -> None:
        self.builder_logs[host].log(line, time.time())

    def _busy_later(self, run: StepRun, busy: int) -> None:
        """A Rust builder's phase update: the builder sends ``build_step_update`` and goes on;
        the runner writes the row in a spawned task (hydra 14332fbf server/grpc.rs:472-487),
        so the database's latency is not in the step's time. Each step's updates land in
        order (a late one after the step finished is a no-op, as the real update's
        ``busy != 0`` guard makes it)."""
        before = run.busy_update

        def write() -> None:
            if before is not None:
                before.join()
            self._db("set_busy", run.build_id, run.step_nr, busy)

        t = threading.Thread(
            target=self.guarded(f"the phase update of step {run.spec.name}", write),
            name=f"busy~{run.build_id}/{run.step_nr}",
        )
        run.busy_update = t
        self._threads.append(t)
        t.start()

    def _update_step(
        self, run: StepRun, phase: str, *, slot_held: bool, busy_phase: str | None = None
    ) -> None:
        """A synchronous phase update, written before the phase's work begins (C++
        ``updateStep``: hydra a40d4286 subprojects/hydra/hydra-queue-runner/builder.cc:201-205,
        called at build-remote.cc:431, :512, :532, :562, :582 and builder.cc:226; Rust's
        Connecting, state/mod.rs:1134-1142): the write is database time, then the phase.
        The busy code is the phase's (``busy_phase``: the tracker's name when the timeline's
        differs)."""
        run.mark("updating-step" if slot_held else "db-update", time.time())
        busy = facts.BUSY_CODE[busy_phase or phase]
        self._db("set_busy", run.build_id, run.step_nr, busy)
        run.mark(phase, time.time())

    def _db(self, call: str, *args: Any, **kwargs: Any) -> Any:
        """One database write in a transaction of its own (see :meth:`_txn`)."""
        return self._txn((call, args, kwargs))[0]

    def _txn(self, *calls: tuple[str, tuple[Any, ...], dict[str, Any]]) -> list[Any]:
        """Database writes in one transaction: the latency knob applies once. Transactions
        made under C++'s ``startDbUpdate`` are counted in ``nrActiveDbUpdates``: creating the
        step, a retry, finishing the step with its builds (hydra f17273f3
        src/hydra-queue-runner/builder.cc:195, :270, :327-337, :439); ``updateStep``'s busy
        transitions are not (builder.cc:201-205, a plain transaction), nor the evaluator's
        inserts of jobsets and builds."""
        counted = any(call in _COUNTED_WRITES for call, _, _ in calls)
        if counted:
            with self.state.lock:
                self._db_active += 1
                self.state.nr_active_db_updates = self._db_active
                stalled = self._db_active
            if stalled > facts.DB_STALL_THRESHOLD and self.k.generation == "cxx":
                self._emit(journal.cxx_db_stalled(stalled))
        try:
            if self.k.db_latency_seconds:
                time.sleep(self.k.db_latency_seconds)
            if self.db is None:
                return [None for _ in calls]
            return [getattr(self.db, call)(*args, **kw) for call, args, kw in calls]
        finally:
            if counted:
                with self.state.lock:
                    self._db_active -= 1
                    self.state.nr_active_db_updates = self._db_active

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> list[StepRun]:
        """Load the queue, dispatch until every step is done; return the timelines."""
        for spec in self.wl.steps:  # the builders' outputs exist before anything is timed
            output_selection(spec.output)
        self._load_queue()
        # Hydra's threads run C++ or Rust: a compression or a hash returns at once, while a
        # Python thread waits up to the GIL's switch interval (5 ms) to resume after the C
        # call released it, which turns a 1 ms zstd call into 6. A short interval keeps the
        # emulator's phases near what the real programs take.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        try:
            dispatcher = threading.Thread(
                target=self.guarded("the dispatcher", self._dispatch_loop), name="dispatcher"
            )
            dispatcher.start()
            dispatcher.join()
            for t in self._threads:
                t.join()
        finally:
            sys.setswitchinterval(interval)
        for a in self.agents.values():
            a.close()
        self.check()
        return self.runs

    def check(self) -> None:
        """Raise the first failure of any of the emulator's threads, in one line."""
        if self._error is not None:
            exc = self._error
            reason = str(exc) if isinstance(exc, ProfilerError) else f"{type(exc).__name__}: {exc}"
            raise ProfilerError(
                f"testbed: {self._error_where} failed, so the run is void (no truth.json): "
                + " ".join(reason.split())
            )

    def fail(self, where: str, exc: BaseException) -> None:
        """A thread of the emulator died: keep the first failure and end the run (every step
        counts as done, so the dispatcher stops); :meth:`run` then raises it in one line."""
        with self._cond:
            if self._error is None:
                self._error, self._error_where = exc, where
            self._done.update(r.spec.index for r in self.runs)
            self._cond.notify_all()

    def guarded(self, where: str, fn: Callable[..., object], *args: Any) -> Callable[[], None]:
        """``fn(*args)`` for a thread: an exception fails the run instead of printing a
        traceback and letting the run go on without the thread."""

        def body() -> None:
            try:
                fn(*args)
            except BaseException as exc:
                self.fail(where, exc)

        return body

    def _load_queue(self) -> None:
        t0 = time.perf_counter()
        jobset_id = self._db("add_jobset", self.wl.project, self.wl.jobset) or 1
        if self.k.generation == "cxx":
            self._emit(journal.cxx_checking_queue())
        now = time.time()
        for run in self.runs:
            build_id = self._db(
                "add_build", jobset_id, run.spec.job, run.spec.drv_path, run.spec.system, int(now)
            )
            run.build_id = build_id or run.spec.index + 1
            if self.k.generation == "cxx":
                self._emit(journal.cxx_loading_build(run.build_id, run.spec.job))
            if not run.spec.deps:  # runnable once loaded, as the queue monitor makes it
                run.runnable_at = time.time()
                self._update_queue_gauges()
        with self.state.lock:
            s = self.state
            s.nr_queue_wakeups += 1
            s.queue_checks_started += 1
            s.queue_checks_finished += 1
            s.queue_build_loads += len(self.runs)
            s.queue_steps_created += len(self.runs)
            s.nr_builds_read += len(self.runs)
            s.build_read_time_ms += int((time.perf_counter() - t0) * 1000)
            s.nr_queued_builds = len(self.runs)
            s.nr_unfinished_steps = len(self.runs)
            s.monitor_running_us += int((time.perf_counter() - t0) * 1e6)

    def _runnable(self, *, backing_off: bool = False) -> list[StepRun]:
        """Steps the dispatcher may start now; with ``backing_off``, also those waiting out a
        retry's back-off, which both generations keep among the runnable steps (C++
        ``makeRunnable`` after setting ``after``, and the dispatcher skips them: hydra
        a40d4286 builder.cc:64-67, dispatcher.cc:184; Rust ``set_after``, skipped by the
        dispatch loop: 14332fbf state/mod.rs:2257, state/queue.rs:502-509)."""
        now = time.time()
        return [
            r
            for r in self.runs
            if r.runnable_at
            and r.spec.index not in self._dispatched
            and all(d in self._done for d in r.spec.deps)
            and (backing_off or r.not_before <= now)
        ]

    def _dispatch_loop(self) -> None:
        while True:
            wait0 = time.perf_counter()
            with self._cond:
                self._cond.wait_for(self._should_wake, timeout=1.0)
                if len(self._done) == len(self.runs):
                    return
            t0 = time.perf_counter()
            if self.k.dispatch_delay_seconds:
                time.sleep(self.k.dispatch_delay_seconds)
            with self._cond:
                self._dispatch_once()
            spent = time.perf_counter() - t0
            with self.state.lock:
                s = self.state
                s.nr_dispatcher_wakeups += 1
                s.dispatch_time_ms += int(spent * 1000)
                s.dispatcher_running_us += int(spent * 1e6)
                s.dispatcher_waiting_us += int((t0 - wait0) * 1e6)

    def dispatched(self, index: int) -> bool:
        """Has step ``index`` been handed to a machine?"""
        return index in self._dispatched

    def _should_wake(self) -> bool:
        if len(self._done) == len(self.runs):
            return True
        free = any(self._has_capacity(m) for m in self.state.machines)
        return free and bool(self._runnable())

    def _has_capacity(self, m: MachineState) -> bool:
        """Whether the dispatcher may give ``m`` work: a free slot, and for a Rust builder under
        a dynamic machineFreeFn, pressure under its thresholds (state/machine.rs:762)."""
        if m.current_jobs >= m.max_jobs:
            return False
        return m.free_fn == "Static" or status.has_dynamic_capacity(m)

    def _dispatch_once(self) -> int:
        started = 0
        for run in sorted(self._runnable(), key=lambda r: r.spec.index):
            machine = min(
                (
                    m
                    for m in self.state.machines
                    if self._has_capacity(m) and run.spec.system in m.systems
                ),
                key=lambda m: m.current_jobs,
                default=None,
            )
            if machine is None:
                break
            with self.state.lock:
                machine.current_jobs += 1
                machine.jobs.append(run.spec.drv_path)
                self.state.nr_steps_started += 1
                self.state.nr_active_steps += 1
            self._dispatched.add(run.spec.index)
            run.machine = machine.hostname
            now = time.time()
            # both generations start a step with its row: C++ createBuildStep (builder.cc:195),
            # Rust create_build_step and notify_build_started before "Submitting build"
            # (hydra 14332fbf state/mod.rs:1094-1133)
            run.mark("preparing", now)
            run.dispatched_at = now
            if self.k.generation == "rust":
                # job_wait_time_seconds is observed at dispatch: runnable -> dispatch
                # (hydra 14332fbf hydra-queue-runner/src/state/queue.rs:514-515)
                with self.state.lock:
                    self.state.job_wait_seconds.append(max(0.0, now - run.runnable_at))
            target = self._step_cxx if self.k.generation == "cxx" else self._step_rust
            t = threading.Thread(
                target=self._guard,
                args=(target, run, machine),
                name=f"bld~{os.path.basename(run.spec.drv_path)[:32]}",
            )
            self._threads.append(t)
            t.start()
            started += 1
        self._update_queue_gauges()
        return started

    def _update_queue_gauges(self) -> None:
        runnable = self._runnable(backing_off=True)
        with self.state.lock:
            s = self.state
            s.nr_runnable_steps = len(runnable)
            running = sum(m.current_jobs for m in s.machines)
            s.machine_types = {"x86_64-linux": (len(runnable), running)}

    def _guard(
        self, fn: Callable[[StepRun, MachineState], None], run: StepRun, machine: MachineState
    ) -> None:
        try:
            fn(run, machine)
        except BaseException as exc:  # the emulator broke: stop the run, report it
            self.fail(f"step {run.spec.name} on {machine.hostname}", exc)
        finally:
            with self._cond:
                if self._error is None:  # else the run is over: every step counts as done
                    if run.retrying:  # back to the queue after its back-off
                        run.retrying = False
                        self._dispatched.discard(run.spec.index)
                    else:
                        self._step_done(run)
                self._update_queue_gauges()
                self._cond.notify_all()

    def _step_done(self, run: StepRun) -> None:
        """A step ended: the steps it held back become runnable (the caller holds the lock)."""
        self._done.add(run.spec.index)
        now = time.time()
        for other in self.runs:
            if (
                other.spec.index not in self._dispatched
                and not other.runnable_at
                and all(d in self._done for d in other.spec.deps)
            ):
                other.runnable_at = now
        self.progress(
            f"step {len(self._done)}/{len(self.runs)} done: {run.spec.name} on {run.machine}"
        )

    # --- shared phase work ---------------------------------------------------------------

    def _gauge(self, name: str, delta: int) -> None:
        with self.state.lock:
            setattr(self.state, name, getattr(self.state, name) + delta)

    def _input_nars(self, run: StepRun) -> bytes:
        """The input closure: each dependency's NAR, read back from the cache."""
        parts = []
        for d in run.spec.deps:
            path = self.wl.steps[d].output.path
            local = self.runner_store.get(path)
            if local is not None:
                # Rust direct mode: the output reached the runner's store at the step's end
                # and goes to the cache later (uploader.rs); builders import it from there
                data, compressed = local, len(local)
            else:
                data, compressed = self.cache.read_nar(path)
            with self.state.lock:
                st = self.state.store
                st.nar_read += 1
                st.nar_read_bytes += len(data)
                st.nar_read_compressed_bytes += compressed
                self.state.s3.get += 1
                self.state.s3.get_bytes += compressed
            parts.append(data)
        blob = b"".join(parts)
        run.input_bytes = len(blob)
        return blob

    def _store_output(
        self,
        run: StepRun,
        data: bytes,
        on_written: Callable[[int, int, str], object] | None = None,
    ) -> tuple[int, int]:
        """Compress, write to the cache, 'upload'; returns (compress ms, upload ms).

        ``on_written(nar bytes, compressed bytes, url)`` runs between the write and the PUT,
        where Nix prints its ``copying path`` line (binary-cache-store.cc:184 at 2.34.0: the
        NAR is uploaded after it)."""
        run.mark("compressing", time.time())
        c0, cpu0 = time.perf_counter(), time.thread_time()
        blob = self.codec.compress(data)
        run.compress_seconds = time.perf_counter() - c0
        run.compress_cpu_seconds = time.thread_time() - cpu0
        run.mark("writing-cache", time.time())
        refs = [self.wl.steps[d].output.path for d in run.spec.deps]
        written = self.cache.add(
            run.spec.output.path, data, blob, self.codec, refs, run.spec.drv_path
        )
        if on_written is not None:
            on_written(len(data), len(blob), written.url)
        run.mark("uploading", time.time())
        u0 = time.perf_counter()
        if self.k.upload_bytes_per_second:
            time.sleep(len(blob) / self.k.upload_bytes_per_second)
        put_ms = int((time.perf_counter() - u0) * 1000)
        run.nar_bytes, run.compressed_bytes = len(data), len(blob)
        with self.state.lock:
            st = self.state.store
            st.nar_write += 1
            st.nar_write_bytes += len(data)
            st.nar_write_compressed_bytes += len(blob)
            st.nar_info_write += 1
            s3 = self.state.s3
            s3.put += 2  # the NAR and its narinfo
            s3.put_bytes += len(blob)
            s3.put_time_ms += put_ms
        return int(run.compress_seconds * 1000), put_ms

    def _retry(
        self,
        run: StepRun,
        machine: MachineState,
        start: int,
        release: Callable[[], None] | None = None,
    ) -> None:
        """A transient failure: the step row ends aborted (status 3) with its error, the
        runner logs it and the retry, and the step goes back to the queue after a back-off
        (retryInterval x 3^(tries-1), scaled down for the emulator). ``release`` frees the
        machine slot once the row is written (Rust fail_step writes the row, then removes
        the job: hydra 14332fbf state/mod.rs:2263-2275)."""
        run.tries += 1
        delay = self.k.retry_seconds * 3 ** (run.tries - 1)
        run.mark("failed-attempt", time.time())
        self._db(
            "finish_step", run.build_id, run.step_nr, STATUS_ABORTED, start, int(time.time()),
            self._machine_name(run), 0, error_msg=TRANSIENT_MESSAGE,
        )  # fmt: skip
        if release is not None:
            release()
        if self.k.generation == "cxx":
            self._emit(
                journal.cxx_transient_failure(
                    run.spec.drv_path, machine.store_uri, TRANSIENT_MESSAGE
                )
            )
            self._emit(journal.cxx_will_retry(run.spec.drv_path, delay))
        else:
            ids = (_machine_uuid(machine.hostname), _job_uuid(run))
            self._emit_builder(
                machine.hostname, journal.rust_build_failed(run.spec.drv_path, TRANSIENT_MESSAGE)
            )
            self._emit(journal.rust_removing_job(run.spec.drv_path, *ids))
            self._emit(journal.rust_will_retry(run.spec.drv_path, delay, *ids))
        with self.state.lock:
            self.state.nr_retries += 1
            self.state.max_nr_retries = max(self.state.max_nr_retries, run.tries)
            self.state.nr_active_steps -= 1
            if self.k.generation == "cxx":  # Rust: counted in _track_rust
                machine.failed_builds += 1
        run.mark("retry-wait", time.time())
        run.not_before = time.time() + delay
        run.retrying = True

    def _finish_db(
        self,
        run: StepRun,
        start: int,
        stop: int,
        overhead_ms: int,
        release: Callable[[], None] | None = None,
    ) -> None:
        """The step's and its builds' rows. With ``release`` (Rust succeed_step), the step
        row is written while the machine still holds the job ("finishing-step": hydra
        14332fbf state/mod.rs:1927-1936), the job is removed, freeing the slot (:1940), and
        the builds' rows follow (:2095-2108); without it the slot is already free."""
        run.mark("db-update" if release is None else "finishing-step", time.time())
        ok = run.status == 0
        # C++: one transaction, the step's row and its builds (builder.cc:327-337,
        # markSucceededBuild); only the success path writes sizes (C++
        # hydra-queue-runner.cc:458 at a40d4286)
        step_args = (run.build_id, run.step_nr, run.status, start, stop,
                     self._machine_name(run), overhead_ms)  # fmt: skip
        build_args = (
            run.build_id, run.status, start, stop, run.nar_bytes if ok else None,
            run.nar_bytes + run.input_bytes if ok else None,
            {"out": run.spec.output.path} if ok else {},
        )  # fmt: skip
        finish_step = ("finish_step", step_args, {"error_msg": None if ok else FAILURE_MESSAGE})
        if self.k.generation == "cxx":
            self._txn(finish_step, ("finish_build", build_args, {}))
        else:  # Rust: two transactions, the step row's (finish_build_step) and the builds'
            self._txn(finish_step)
            if release is not None:
                release()
                run.mark("db-update", time.time())
            self._txn(("finish_build", build_args, {}))

    def _machine_name(self, run: StepRun) -> str:
        return f"ssh://build@{run.machine}" if self.k.generation == "cxx" else run.machine

    def _release(self, machine: MachineState, run: StepRun) -> None:
        with self._cond:
            with self.state.lock:
                machine.current_jobs -= 1
                machine.jobs.remove(run.spec.drv_path)
                if machine.current_jobs == 0:
                    machine.idle_since = time.time()
            self._cond.notify_all()

    # --- C++ -------------------------------------------------------------------------------

    def _step_cxx(self, run: StepRun, machine: MachineState) -> None:
        t_start = time.time()
        self._emit(
            journal.cxx_performing_step(run.spec.drv_path, machine.store_uri, run.build_id, 0)
        )
        run.step_nr = (
            self._db(
                "start_step",
                run.build_id,
                run.spec.drv_path,
                run.spec.system,
                machine.store_uri,
                {"out": run.spec.output.path},
                int(t_start),
            )
            or 1
        )
        self._update_step(run, "connecting", slot_held=True)
        conn = agent.Connection(self.agents[machine.hostname].port, self.k.link_bytes_per_second)
        time.sleep(self.k.connect_seconds)  # ssh master + handshake
        released = False
        try:
            self._update_step(run, "sending-inputs", slot_held=True)
            self._gauge("nr_steps_copying_to", 1)
            c0 = time.perf_counter()
            inputs = self._input_nars(run)
            conn.send_inputs(inputs)
            copy_ms = int((time.perf_counter() - c0) * 1000)
            self._gauge("nr_steps_copying_to", -1)
            self._gauge("bytes_sent", len(inputs))
            self._update_step(run, "building", slot_held=True)
            self._gauge("nr_steps_building", 1)
            run.build_start, run.build_stop = conn.build(run.spec.build_seconds, self.k.burn)
            self._gauge("nr_steps_building", -1)
            if run.spec.index in self.k.fail_steps:
                run.status = 1  # the builder reports a failure: no outputs to receive
                raise _BuildFailed
            if run.spec.index in self.k.retry_steps and run.tries == 0:
                raise _Transient
            if not self._slots.acquire(blocking=False):
                self._update_step(run, "waiting-for-local-slot", slot_held=True)
                self._gauge("nr_steps_waiting_for_download_slot", 1)
                self._slots.acquire()
                self._gauge("nr_steps_waiting_for_download_slot", -1)
            self._release(machine, run)  # the permit is held: free the machine slot
            released = True
            try:
                copy_ms += self._receive_cxx(run, conn)
            finally:
                self._slots.release()
        except _BuildFailed:
            pass
        except _Transient:
            self._release(machine, run)
            released = True
            self._retry(run, machine, int(t_start))
            return
        finally:
            conn.close()
            if not released:
                self._release(machine, run)
        self._update_step(run, "post-processing", slot_held=False)
        if run.status == 0:
            self._closure_size(run)
        time.sleep(self.k.post_seconds)
        self._finish_db(run, int(run.build_start), int(run.build_stop), copy_ms)
        if run.status == 0:
            self._emit(journal.cxx_marking_succeeded(run.build_id))
        else:
            self._emit(journal.cxx_marking_failed(run.build_id))
        run.end(time.time())
        self._account_cxx(run, machine, t_start)

    def _closure_size(self, run: StepRun) -> int:
        """busy=50, ``getBuildOutput``: the closure size from ``queryPathInfo`` on the
        destination store, one narinfo read per path (hydra f17273f3
        src/hydra-queue-runner/build-result.cc:19-29). The NAR is not read back: its members
        were captured while it was received (build-remote.cc:308, ``extractNarData``), so
        "fetching NAR contents" (build-result.cc:36-42) does not happen on this path."""
        paths = [run.spec.output.path, *(self.wl.steps[d].output.path for d in run.spec.deps)]
        return sum(self.cache.query_path_info(p) for p in paths)

    def _receive_cxx(self, run: StepRun, conn: agent.Connection) -> int:
        self._update_step(run, "receiving-outputs", slot_held=False)
        self._gauge("nr_steps_copying_from", 1)
        p0 = time.perf_counter()
        data = conn.receive_output(run.spec.index)
        self._gauge("bytes_received", len(data))
        urls: list[str] = []

        def written(nar_bytes: int, compressed_bytes: int, url: str) -> None:
            # Nix times read+compress+write and prints it before the PUT
            pipeline_ms = int((time.perf_counter() - p0) * 1000)
            with self.state.lock:
                self.state.store.nar_write_compression_time_ms += pipeline_ms
            self._emit(
                journal.cxx_copying_path(
                    run.spec.output.path, nar_bytes, compressed_bytes, pipeline_ms
                )
            )
            urls.append(url)

        _, put_ms = self._store_output(run, data, written)
        total_ms = int((time.perf_counter() - p0) * 1000)
        # the S3 store's own line once the PUT is done (Nix 2.0-2.32, s3-binary-cache-store.cc)
        self._emit(journal.cxx_s3_uploaded(f"{S3_BUCKET}/{urls[0]}", run.compressed_bytes, put_ms))
        self._gauge("nr_steps_copying_from", -1)
        return total_ms

    def _account_cxx(self, run: StepRun, machine: MachineState, t_start: float) -> None:
        step_s = int(run.finished_at) - int(t_start)  # time_t differences, as in C++
        build_s = int(run.build_stop) - int(run.build_start)
        with self.state.lock:
            s = self.state
            s.nr_steps_done += 1
            s.nr_builds_done += 1
            if run.status == 0:
                s.nr_builds_succeeded += 1
            else:
                s.nr_builds_failed += 1
            s.nr_active_steps -= 1
            s.nr_queued_builds -= 1
            s.nr_unfinished_steps -= 1
            s.total_step_seconds += step_s
            s.total_step_build_seconds += build_s
            machine.nr_steps_done += 1
            machine.total_step_seconds += step_s
            machine.total_step_build_seconds += build_s
            seconds, shares = s.jobsets[f"{self.wl.project}:{self.wl.jobset}"]
            s.jobsets[f"{self.wl.project}:{self.wl.jobset}"] = (seconds + build_s, shares)

    # --- Rust ------------------------------------------------------------------------------

    def _step_rust(self, run: StepRun, machine: MachineState) -> None:
        run.step_nr = (
            self._db(
                "start_step",
                run.build_id,
                run.spec.drv_path,
                run.spec.system,
                machine.hostname,
                {"out": run.spec.output.path},
                int(run.dispatched_at),  # set_start_time_now at dispatch (state/mod.rs:880)
                build_started=False,
            )
            or 1
        )
        self._db("notify_build_started", run.build_id, run.spec.drv_path)  # :1123-1127
        machine_id, job_uuid = _machine_uuid(machine.hostname), _job_uuid(run)
        self._emit(
            journal.rust_submitting(
                run.spec.drv_path, machine_id, machine.hostname, run.build_id, run.step_nr
            )
        )
        # the Connecting update (:1134-1142)
        self._update_step(run, "dispatch", slot_held=True, busy_phase="connecting")
        time.sleep(self.k.connect_seconds)  # the job reaches the builder over gRPC
        # Rust's steps_building counts a step from the job's hand-over (after build_drv
        # returns) to its end (success or failure), not its build phase: hydra 14332fbf
        # state/mod.rs:1145-1180, metrics.rs:1191,1200
        self._gauge("nr_steps_building", 1)
        self._emit_builder(machine.hostname, journal.rust_building(run.spec.drv_path, job_uuid))
        run.mark("importing", time.time())  # no busy 20 in Rust: the next update is 30
        i0 = time.perf_counter()
        inputs = self._input_nars(run)
        if self.k.link_bytes_per_second:
            time.sleep(len(inputs) / self.k.link_bytes_per_second)
        import_ms = int((time.perf_counter() - i0) * 1000)
        run.mark("building", time.time())
        self._busy_later(
            run, facts.BUSY_CODE["building"]
        )  # hydra-builder state.rs:560-566, after the import
        run.build_start = time.time()
        (agent.burn_cpu if self.k.burn else time.sleep)(run.spec.build_seconds)
        run.build_stop = time.time()
        if run.spec.index in self.k.fail_steps:
            self._fail_rust(run, machine, import_ms, machine_id, job_uuid)
            return
        if run.spec.index in self.k.retry_steps and run.tries == 0:
            self._gauge("nr_steps_building", -1)  # fail_step: track_build_failure
            self._track_rust(run, machine, time.time(), import_ms, 0, ok=False)
            self._retry(
                run, machine, int(run.dispatched_at), release=lambda: self._release(machine, run)
            )
            return
        self._emit_builder(machine.hostname, journal.rust_finished_building(run.spec.drv_path))
        upload_ms = self._upload_rust(run, machine)
        run.mark("post-processing", time.time())
        self._busy_later(run, facts.BUSY_CODE["post-processing"])  # state.rs:641-647
        time.sleep(self.k.post_seconds)
        self._emit_builder(machine.hostname, journal.rust_completed(run.spec.drv_path))
        self._emit(journal.rust_marking_done(run.spec.drv_path, machine_id, job_uuid))
        self._gauge("nr_steps_building", -1)  # track_build_success, before the database
        stop = time.time()
        self._track_rust(run, machine, stop, import_ms, upload_ms, ok=True)
        self._finish_db(
            run, int(run.dispatched_at), int(stop), import_ms + upload_ms,
            release=lambda: self._release(machine, run),
        )  # fmt: skip
        run.end(time.time())
        self._account_rust(run)

    def _fail_rust(
        self,
        run: StepRun,
        machine: MachineState,
        import_ms: int,
        machine_id: str,
        job_uuid: str,
    ) -> None:
        """The builder reports the failure (state.rs:310) and uploads nothing; the runner
        fails the step (state/mod.rs:2224) and the build (:2438)."""
        run.status = 1
        self._emit_builder(
            machine.hostname, journal.rust_build_failed(run.spec.drv_path, FAILURE_MESSAGE)
        )
        run.mark("post-processing", time.time())
        self._busy_later(run, facts.BUSY_CODE["post-processing"])
        self._emit(journal.rust_removing_job(run.spec.drv_path, machine_id, job_uuid))
        self._emit(
            journal.rust_marking_failed(run.build_id, run.spec.drv_path, machine_id, job_uuid)
        )
        self._gauge("nr_steps_building", -1)  # fail_step: track_build_failure (:2243)
        stop = time.time()
        self._track_rust(run, machine, stop, import_ms, 0, ok=False)
        self._release(machine, run)
        self._finish_db(run, int(run.dispatched_at), int(stop), import_ms)
        run.end(time.time())
        self._account_rust(run)

    def _upload_rust(self, run: StepRun, machine: MachineState) -> int:
        """The builder's upload phase. Presigned (production): it compresses with the mapped
        level and PUTs. Direct: it streams the NAR to the runner (state.rs:1027-1062), whose
        uploader task compresses and uploads it later (uploader.rs:291-366), off the step."""
        presigned = self.k.upload_mode == "presigned"
        run.mark("reading-outputs" if presigned else "uploading", time.time())
        self._busy_later(
            run, facts.BUSY_CODE["receiving-outputs"]
        )  # state.rs:621-627, before the upload is timed
        u0 = time.perf_counter()
        ids = (run.spec.drv_path, _job_uuid(run), _machine_uuid(machine.hostname))
        outputs = (run.spec.output.path,)
        self._emit_builder(
            machine.hostname, journal.rust_upload_start(presigned, *ids, outputs=outputs)
        )
        with self.state.lock:
            machine.uploading_paths += 1
        data = self.output_nar(run.spec.index)
        if presigned:
            self._store_output(run, data)
        else:
            if self.k.link_bytes_per_second:
                time.sleep(len(data) / self.k.link_bytes_per_second)
            run.nar_bytes = len(data)
            self.runner_store[run.spec.output.path] = data
        with self.state.lock:
            machine.uploading_paths -= 1
        elapsed = time.perf_counter() - u0
        self._emit_builder(
            machine.hostname, journal.rust_upload_done(presigned, elapsed, *ids, outputs=outputs)
        )
        if not presigned:
            uploader = threading.Thread(
                target=self.guarded(
                    f"the runner's upload of {run.spec.name}", self._guard_uploader, run, data
                ),
                name="uploader",
                daemon=True,
            )
            self._threads.append(uploader)
            uploader.start()
        return int(elapsed * 1000)

    def _guard_uploader(self, run: StepRun, data: bytes) -> None:
        self._emit(journal.rust_upload_scheduled(run.spec.output.path))
        self._emit(journal.rust_runner_upload_started(1))
        c0 = time.perf_counter()
        blob = self.codec.compress(data)
        compress_seconds = time.perf_counter() - c0
        refs = [self.wl.steps[d].output.path for d in run.spec.deps]
        self.cache.add(run.spec.output.path, data, blob, self.codec, refs, run.spec.drv_path)
        if self.k.upload_bytes_per_second:
            time.sleep(len(blob) / self.k.upload_bytes_per_second)
        with self.state.lock:
            run.compressed_bytes = len(blob)
            run.async_compress_seconds = compress_seconds
            s3 = self.state.s3
            s3.put += 2
            s3.put_bytes += len(blob)
        self._emit(journal.rust_runner_upload_finished(1))

    def _track_rust(
        self,
        run: StepRun,
        machine: MachineState,
        stop: float,
        import_ms: int,
        upload_ms: int,
        *,
        ok: bool,
    ) -> None:
        """The runner's track_build_success/failure at the step's stop time, before any
        database write (hydra 14332fbf state/mod.rs:1918-1925, :2236-2243; machine.rs:186-206,
        metrics.rs:1188-1206): the step's total time runs from its dispatch (startTime) to now.
        A retried attempt is tracked as a failure too (``ok`` false)."""
        total_ms = int((stop - run.dispatched_at) * 1000)
        build_ms = int((run.build_stop - run.build_start) * 1000)
        with self.state.lock:
            s = self.state
            s.nr_steps_done += 1
            if ok:
                s.nr_builds_succeeded += 1
                machine.succeeded_builds += 1
            else:
                s.nr_builds_failed += 1
                machine.failed_builds += 1
            for obj in (s, machine):
                obj.total_step_ms += total_ms
                obj.total_step_import_ms += import_ms
                obj.total_step_build_ms += build_ms
                obj.total_step_upload_ms += upload_ms
            machine.nr_steps_done += 1

    def _account_rust(self, run: StepRun) -> None:
        """The step's end in the queue's counts, once its rows are written."""
        build_ms = int((run.build_stop - run.build_start) * 1000)
        with self.state.lock:
            s = self.state
            s.nr_builds_done += 1
            s.nr_active_steps -= 1
            s.nr_queued_builds -= 1
            s.nr_unfinished_steps -= 1
            # waitTimeMs adds runnable -> insertion into the scheduling queue (queue.rs:63-84),
            # not the wait for a machine (that is the histogram above); the emulator inserts a
            # step into its queue the moment it becomes runnable: nothing to add
            s.wait_time_ms.setdefault("x86_64-linux", 0)
            key = f"{self.wl.project}:{self.wl.jobset}"
            seconds, shares = s.jobsets[key]
            s.jobsets[key] = (seconds + build_ms // 1000, shares)


S3_BUCKET = "testbed-cache"  # the bucket the emulated C++ runner's S3 store writes to
STATUS_ABORTED = 3  # BuildSteps.status of a transient failure (hydra.sql status codes)
TRANSIENT_MESSAGE = "error: unexpected end-of-file"
PRESSURE_AVG10 = 92.5  # %: above the builders' cpuPsiThreshold (75)
FAILURE_MESSAGE = "builder for the derivation failed with exit code 2"


class _BuildFailed(Exception):
    """The build of a step in ``Knobs.fail_steps`` failed on the builder."""


class _Transient(Exception):
    """The first attempt of a step in ``Knobs.retry_steps`` failed transiently."""


def _machine_uuid(hostname: str) -> str:
    """A builder's machine id: a UUID, as the Rust builders register with (stable per host)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, hostname))


def _job_uuid(run: StepRun) -> str:
    """The runner's job id for a dispatch (BuildMessage.build_id, a UUIDv4 in Hydra)."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{run.build_id}/{run.step_nr}"))


def timelines_with_queue(runs: list[StepRun]) -> list[StepRun]:
    """Prepend each step's ``queued`` phase (runnable -> dispatch) to its timeline."""
    for r in runs:
        if r.phases and r.phases[0][0] != "queued":
            r.phases.insert(0, ("queued", r.runnable_at, r.phases[0][1]))
    return runs
