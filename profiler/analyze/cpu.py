"""What sampled CPU says: the ``cpu_classes`` / ``cpu_stacks`` / ``cpu_unknown`` tables of
``collect cpu`` read into a :class:`CpuProfile`, the evidence line of the verdict, and the
measured compression seconds that replace the codec profile's estimate for the steps whose
copy phase the samples cover (:func:`measured_compression`).

``cpu_seconds`` are perf's sample periods (``cpu-clock``: the nanoseconds each sample
stands for), so a class's seconds over a window are CPU time and their sum over the window
is the cores busy on average. Which process compresses a step's outputs:

- C++: the queue runner, in the step's copy phase (``copyPathFromRemote`` into the
  destination store's ``addToStore``, hydra a40d4286 build-remote.cc:582);
- Rust, presigned uploads: the builder, in the step's upload phase (the server's
  presigned upload carries the cache's compression and level to the builder, hydra
  14332fbf subprojects/hydra-builder/src/state.rs:1267-1273);
- Rust, direct uploads: the queue runner, after the step (hydra 14332fbf
  state/uploader.rs:291-366): no step time is compression, nothing to split.

A process' ``comm`` is its name cut to 15 bytes (the kernel's TASK_COMM_LEN of 16 with the
NUL): ``hydra-queue-runner`` samples are named ``hydra-queue-run``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

COMM_BYTES = 15
CPU_TABLES = ("cpu_classes", "cpu_stacks", "cpu_unknown")
CLASSES = ("compression", "decompression", "hashing", "nar", "network", "database",
           "filesystem", "allocation", "runtime", "other")  # fmt: skip
RUNNER = "hydra-queue-runner"
BUILDER = "hydra-builder"


def same_process(comm: str, name: str) -> bool:
    """Whether a sampled ``comm`` is the process ``name`` (cut to 15 bytes as the kernel does)."""
    return comm.encode()[:COMM_BYTES] == name.encode()[:COMM_BYTES]


@dataclass(frozen=True)
class CpuProfile:
    """The sampled CPU of a run: one row per (bucket, pid, tid, class) in ``classes``, the
    distinct stacks in ``stacks`` and the frames classed ``other`` in ``unknown`` (both
    over the whole sampling, not windowed)."""

    classes: pd.DataFrame
    stacks: pd.DataFrame
    unknown: pd.DataFrame

    @property
    def window(self) -> tuple[float, float]:
        """First bucket's start to last bucket's end (epoch seconds UTC)."""
        c = self.classes
        return float(c["ts"].min()), float((c["ts"] + c["bucket_seconds"]).max())

    @property
    def span_seconds(self) -> float:
        start, end = self.window
        return end - start

    @property
    def bucket_seconds(self) -> float:
        return float(self.classes["bucket_seconds"].median())

    def describe(self) -> str:
        """Sampler, call graph and target, as one phrase."""
        c = self.classes
        parts = [
            ", ".join(sorted(set(c[col].dropna().astype(str))))
            for col in ("sampler", "call_graph", "target")
        ]
        return f"{parts[0]} ({parts[1]} call graphs) of {parts[2]}"

    def processes(self) -> list[str]:
        """Processes by CPU seconds, busiest first."""
        per = self.classes.groupby("process")["cpu_seconds"].sum().sort_values(ascending=False)
        return [str(p) for p in per.index]

    def by_class(self, process: str | None = None) -> pd.Series:
        """CPU seconds per class (busiest first) of ``process`` (a name matched as
        :func:`same_process`), or of every process sampled."""
        c = self.of(process)
        return c.groupby("class")["cpu_seconds"].sum().sort_values(ascending=False)

    def of(self, process: str | None) -> pd.DataFrame:
        """The ``classes`` rows of ``process`` (all rows for None)."""
        if process is None:
            return self.classes
        names = self.classes["process"].astype(str)
        return self.classes[names.map(lambda comm: same_process(comm, process))]

    def class_table(self) -> pd.DataFrame:
        """Per (process, class): CPU seconds and the share of the process' CPU, processes
        busiest first, classes too."""
        rows = []
        for process in self.processes():
            per = self.by_class(process)
            total = float(per.sum())
            rows += [(process, c, float(s), s / total if total else 0.0) for c, s in per.items()]
        return pd.DataFrame(rows, columns=["process", "class", "cpu_seconds", "share"])

    def by_thread(self) -> pd.DataFrame:
        """Per (process, thread): CPU seconds, cores busy on average over the window and
        the class most of its CPU was in, busiest first."""
        c = self.classes
        per = c.groupby(["process", "thread", "class"])["cpu_seconds"].sum().reset_index()
        top = per.sort_values("cpu_seconds").groupby(["process", "thread"]).tail(1)
        out = per.groupby(["process", "thread"])["cpu_seconds"].sum().reset_index()
        out = out.merge(top.drop(columns="cpu_seconds"), on=["process", "thread"])
        span = self.span_seconds
        out["cores"] = out["cpu_seconds"] / span if span > 0 else math.nan
        return out.sort_values("cpu_seconds", ascending=False, ignore_index=True)

    def cores_busy(self, process: str | None = None) -> float:
        """CPU seconds over the sampled window: cores busy on average (the window is whole
        buckets: a first or last bucket sampled in part lowers it a little)."""
        span = self.span_seconds
        return float(self.of(process)["cpu_seconds"].sum()) / span if span > 0 else math.nan

    def over_time(self, process: str | None = None) -> pd.DataFrame:
        """Cores busy per class (columns) per bucket start (index), over every bucket of
        the window (empty buckets at 0)."""
        c = self.of(process)
        step = self.bucket_seconds
        start, end = self.window
        slot = ((c["ts"] - start) / step).round().astype(int)  # float starts: by position
        cores = c.assign(cores=c["cpu_seconds"] / c["bucket_seconds"], slot=slot)
        table = cores.pivot_table(index="slot", columns="class", values="cores", aggfunc="sum")
        slots = np.arange(max(1, round((end - start) / step), int(slot.max()) + 1))
        table = table.reindex(slots).fillna(0.0)
        table.index = pd.Index(start + step * slots, name="ts")
        order = [k for k in CLASSES if k in table.columns]
        return table[order + [k for k in table.columns if k not in order]]


NEEDED = {  # the columns each table cannot do without, the numbers among them
    "cpu_classes": (("ts", "bucket_seconds", "process", "thread", "class", "cpu_seconds"),
                    ("ts", "bucket_seconds", "cpu_seconds")),
    "cpu_stacks": (("process", "thread", "class", "stack", "cpu_seconds"), ("cpu_seconds",)),
    "cpu_unknown": (("frame", "cpu_seconds"), ("cpu_seconds",)),
}  # fmt: skip
LABELS = ("sampler", "call_graph", "target")  # said in descriptions; "unknown" when absent


def _usable(name: str, frame: pd.DataFrame | None, notes: list[str]) -> pd.DataFrame:
    """The table with its numbers as numbers and the rows without them dropped; empty
    (with a note) when it lacks a column it cannot do without."""
    needed, numbers = NEEDED[name]
    if frame is None:
        return pd.DataFrame(columns=list(needed))
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        notes.append(f"sampled CPU: table {name} lacks {', '.join(missing)}: not used")
        return pd.DataFrame(columns=list(needed))
    frame = frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in numbers})
    kept = frame.dropna(subset=list(numbers))
    if len(kept) < len(frame):
        notes.append(f"sampled CPU: {len(frame) - len(kept)} {name} rows without numbers skipped")
    return kept.reset_index(drop=True)


def load_cpu(tables: dict[str, pd.DataFrame | None]) -> tuple[CpuProfile | None, list[str]]:
    """The :class:`CpuProfile` of a run's cpu tables (by name), None without samples; and
    notes on what was not usable."""
    notes: list[str] = []
    classes = _usable("cpu_classes", tables.get("cpu_classes"), notes)
    classes = classes[classes["bucket_seconds"] > 0]
    if classes.empty:
        return None, notes
    for label in LABELS:
        if label not in classes:
            classes = classes.assign(**{label: "unknown"})
    stacks = _usable("cpu_stacks", tables.get("cpu_stacks"), notes)
    unknown = _usable("cpu_unknown", tables.get("cpu_unknown"), notes)
    return CpuProfile(classes.reset_index(drop=True), stacks, unknown), notes


def compressing_process(generation: str, upload_mode: str | None) -> str | None:
    """The process that compresses a step's outputs inside the step (module docstring);
    None when none does (Rust in direct mode: the runner, after the step)."""
    if generation == "cxx":
        return RUNNER
    if generation == "rust" and upload_mode != "direct":
        return BUILDER
    return None


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def evidence_line(cpu: CpuProfile, process: str | None, run_window: tuple[float, float],
                  waited_share: float = math.nan) -> str:  # fmt: skip
    """The verdict's line: the sampled process' busiest classes as shares of its CPU, the
    cores it kept busy on average, and how much of the run the samples cover."""
    name = process if process is not None and not cpu.of(process).empty else None
    shown = name or ", ".join(cpu.processes()[:3])
    per = cpu.by_class(name)
    total = float(per.sum())
    top = ", ".join(f"{k} {_pct(v / total)}" for k, v in per.head(3).items() if total > 0)
    covered = window_coverage(cpu.window, run_window)
    line = (
        f"{shown} CPU (perf samples, {cpu.span_seconds:.1f} s, {_pct(covered)} of the run's "
        f"window): {top}; {cpu.cores_busy(name):.2f} cores busy on average"
    )
    if math.isfinite(waited_share) and waited_share > 0:
        line += f", while steps waited for a local worker slot {_pct(waited_share)} of the time"
    return line


def window_coverage(sampled: tuple[float, float], run: tuple[float, float]) -> float:
    """The share of the run's window the samples cover (NaN for an unknown window)."""
    length = run[1] - run[0]
    if not (math.isfinite(length) and length > 0):
        return math.nan
    return max(0.0, min(sampled[1], run[1]) - max(sampled[0], run[0])) / length


def _host(machine: str) -> str:
    """``ssh://user@host:22`` -> ``host``."""
    return re.sub(r"^[a-z0-9+]+://", "", machine).split("@")[-1].split(":")[0].split("/")[0]


def sampled_machine(machines: pd.Series, host: str | None) -> str | None:
    """Which machine's builder was sampled: the only one, else the one whose host is the
    run's (``collect cpu`` samples a process on the host it runs on)."""
    names = sorted(set(machines.dropna().astype(str)))
    if len(names) == 1:
        return names[0]
    short = (host or "").split(".")[0]
    found = [m for m in names if short and _host(m).split(".")[0] == short]
    return found[0] if len(found) == 1 else None
