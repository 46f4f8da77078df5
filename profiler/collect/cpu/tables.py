"""Samples into the run's tables and files: ``cpu_classes`` per time bucket, ``cpu_stacks``,
``cpu_unknown``, folded stacks and a speedscope profile (docs/ and the interface of issue 18).

Everything is summed as samples arrive, so memory grows with distinct stacks and buckets,
not with samples. Speedscope gets one ``sampled`` profile per thread holding each distinct
stack once, weighted by its CPU seconds: its left-heavy and sandwich views are exact, its
time order is not kept (``cpu_classes`` has the time).
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from typing import Any, NamedTuple

from profiler.collect.cpu.classify import Frame, classify, frame_class
from profiler.collect.cpu.rules import DOMAINS
from profiler.collect.cpu.samples import Sample

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


class Meta(NamedTuple):
    """What every ``cpu_classes`` row repeats about the recording."""

    sampler: str  # perf | py-spy
    target: str
    call_graph: str  # fp | dwarf | leaf | py-spy
    bucket_seconds: float
    origin_seconds: float = 0.0  # buckets start here (perf: epoch multiples of the width)


class _Sum:
    __slots__ = ("cpu_seconds", "samples")

    def __init__(self) -> None:
        self.samples = 0
        self.cpu_seconds = 0.0

    def add(self, sample: Sample) -> None:
        self.samples += sample.samples
        self.cpu_seconds += sample.cpu_seconds


class Aggregate:
    """Sums of classified samples; ``process_names`` maps pid to the process' comm."""

    def __init__(self, meta: Meta, process_names: dict[int, str]) -> None:
        self.meta = meta
        self.process_names = dict(process_names)
        self.classes: dict[tuple[float, int, int, str, str], _Sum] = defaultdict(_Sum)
        # (pid, tid, thread, frames, class): cpu_stacks merges the tids, speedscope does not
        self.stacks: dict[tuple[int, int, str, tuple[Frame, ...], str], _Sum] = defaultdict(_Sum)
        self.unknown: dict[Frame, _Sum] = defaultdict(_Sum)
        self.threads: dict[int, str] = {}
        self.samples = 0
        self.unresolved_frames = 0
        self.user_frames = 0
        self.orphans = 0  # samples classed by their thread's previous sample
        self._last: dict[int, str] = {}

    def process(self, pid: int) -> str:
        return self.process_names.get(pid) or self.threads.get(pid) or str(pid)

    def _classify(self, sample: Sample) -> str:
        """The sample's class; an orphan (see :func:`is_orphan`) takes its thread's last."""
        if is_orphan(sample.frames) and sample.tid in self._last:
            self.orphans += sample.samples
            return self._last[sample.tid]
        cls = classify(sample.frames)
        self._last[sample.tid] = cls
        return cls

    def add(self, sample: Sample) -> None:
        """Classify ``sample`` and add it to every sum."""
        cls = self._classify(sample)
        width, origin = self.meta.bucket_seconds, self.meta.origin_seconds
        bucket = origin + math.floor((sample.ts - origin) / width) * width
        self.classes[(bucket, sample.pid, sample.tid, sample.thread, cls)].add(sample)
        self.threads.setdefault(sample.tid, sample.thread)
        self.stacks[(sample.pid, sample.tid, sample.thread, sample.frames, cls)].add(sample)
        if cls == "other" and sample.frames:
            self.unknown[sample.frames[-1]].add(sample)
        self.samples += sample.samples
        for f in sample.frames:
            if not f.dso.startswith("[kernel"):
                self.user_frames += 1
                self.unresolved_frames += f.symbol is None

    def class_rows(self) -> list[dict[str, Any]]:
        """The ``cpu_classes`` rows, in time order."""
        m = self.meta
        return [
            {
                "ts": ts,
                "bucket_seconds": m.bucket_seconds,
                "pid": pid,
                "tid": tid,
                "process": self.process(pid),
                "thread": thread,
                "class": cls,
                "samples": s.samples,
                "cpu_seconds": s.cpu_seconds,
                "sampler": m.sampler,
                "target": m.target,
                "call_graph": m.call_graph,
            }
            for (ts, pid, tid, thread, cls), s in sorted(self.classes.items())
        ]

    def _stack_items(self) -> list[tuple[str, int, str, tuple[Frame, ...], str, _Sum]]:
        return [
            (self.process(pid), tid, thread, frames, cls, s)
            for (pid, tid, thread, frames, cls), s in self.stacks.items()
        ]

    def stack_rows(self) -> list[dict[str, Any]]:
        """The ``cpu_stacks`` rows, one per (process, thread, stack), most CPU first; an
        orphan stack classed differently over time gets the class of most of its CPU."""
        merged: dict[tuple[str, str, str], list[Any]] = {}
        for process, _tid, thread, frames, cls, s in self._stack_items():
            key = (process, thread, ";".join(f.text() for f in frames))
            row = merged.setdefault(key, [defaultdict(float), 0, 0.0])
            row[0][cls] += s.cpu_seconds
            row[1] += s.samples
            row[2] += s.cpu_seconds
        rows = [
            {
                "process": p, "thread": t, "class": max(by, key=lambda c: (by[c], c)),
                "stack": st, "samples": n, "cpu_seconds": cs,
            }
            for (p, t, st), (by, n, cs) in merged.items()
        ]  # fmt: skip
        return sorted(rows, key=lambda r: (-r["cpu_seconds"], r["stack"]))

    def unknown_rows(self) -> list[dict[str, Any]]:
        """The ``cpu_unknown`` rows: leaf frames of ``other`` samples, most CPU first."""
        rows = [
            {"frame": f.text(), "dso": f.dso, "samples": s.samples, "cpu_seconds": s.cpu_seconds}
            for f, s in self.unknown.items()
        ]
        return sorted(rows, key=lambda r: (-r["cpu_seconds"], r["frame"]))

    def folded_lines(self) -> list[str]:
        """Brendan Gregg's folded stacks: ``process;thread;root;...;leaf COUNT``."""
        return [
            f"{_fold(r['process'])};{_fold(r['thread'])};{_fold(r['stack'])} {r['samples']}"
            for r in self.stack_rows()
        ]

    def speedscope(self, name: str) -> dict[str, Any]:
        """A speedscope document: one ``sampled`` profile (seconds) per thread (tid)."""
        frames: list[dict[str, str]] = []
        index: dict[Frame, int] = {}
        profiles: dict[tuple[str, int], dict[str, Any]] = {}
        for process, tid, thread, stack, _cls, s in self._stack_items():
            title = f"{process} / {thread} ({tid})"
            prof = profiles.setdefault((process, tid), _profile(title))
            ids = [index.setdefault(f, len(index)) for f in stack]
            prof["samples"].append(ids)
            prof["weights"].append(s.cpu_seconds)
            prof["endValue"] += s.cpu_seconds
        for f in index:
            frames.append({"name": f.text(), "file": f.dso})
        return {
            "$schema": SPEEDSCOPE_SCHEMA,
            "name": name,
            "exporter": "hydra-profiler collect cpu",
            "activeProfileIndex": 0,
            "shared": {"frames": frames},
            "profiles": list(profiles.values()),
        }


def is_orphan(frames: tuple[Frame, ...]) -> bool:
    """A sample whose one user-space frame names no domain: a leaf (glibc's memcmp, memset)
    called from code without frame pointers, so perf's fp unwinding lost every caller.
    Debian builds without frame pointers: zstd -19 spends 15% of its CPU in such memcmp
    leaves. Its thread's previous sample is the best guess of what called it."""
    user = [f for f in frames if not f.dso.startswith("[kernel") and f.dso != "[unknown]"]
    return len(user) == 1 and frame_class(user[0]) not in DOMAINS


def _fold(text: str) -> str:
    """A folded-format field: no newlines, and a space cannot end it before the count."""
    return text.replace("\n", " ")


def _profile(name: str) -> dict[str, Any]:
    return {
        "type": "sampled",
        "name": name,
        "unit": "seconds",
        "startValue": 0.0,
        "endValue": 0.0,
        "samples": [],
        "weights": [],
    }


def merge_speedscope(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s profiles appended to ``old``'s (a second ``collect cpu`` into one run)."""
    frames = list(old["shared"]["frames"])
    where = {(f["name"], f.get("file")): i for i, f in enumerate(frames)}
    remap = []
    for f in new["shared"]["frames"]:
        key = (f["name"], f.get("file"))
        if key not in where:
            where[key] = len(frames)
            frames.append(f)
        remap.append(where[key])
    profiles = list(old["profiles"])
    for p in new["profiles"]:
        profiles.append({**p, "samples": [[remap[i] for i in s] for s in p["samples"]]})
    return {**old, "shared": {"frames": frames}, "profiles": profiles}


def write_files(directory: str, agg: Aggregate, name: str) -> tuple[str, str]:
    """Write (or add to) ``stacks.folded`` and ``profile.speedscope.json`` in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    folded = os.path.join(directory, "stacks.folded")
    with open(folded, "a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in agg.folded_lines())
    path = os.path.join(directory, "profile.speedscope.json")
    doc = agg.speedscope(name)
    try:
        with open(path, encoding="utf-8") as f:
            doc = merge_speedscope(json.load(f), doc)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError):
        os.replace(path, path + ".unreadable")  # keep it; write ours beside it
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    os.replace(tmp, path)
    return folded, path
