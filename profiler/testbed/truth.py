"""``truth.json``: every step's true phase times and bytes, and the attribution they imply.

The attribution uses the categories of ``analyze --format json`` (DESIGN.md): the share of
total step wall time (runnable to done, summed over steps) spent in scheduling, io,
compression, build and post. Waiting for a local worker slot (C++ busy=35) counts as
compression: the wait exists only because every compression permit is taken.
"""

from __future__ import annotations

import json
from typing import Any

from profiler.analyze.verdict import CLOSE, LATENCY_SHARE, RESOURCE_OF, SATURATED_SHARE
from profiler.testbed.engine import CATEGORIES, CATEGORY, Knobs, StepRun

FORMAT_VERSION = 1


def attribution(runs: list[StepRun]) -> dict[str, float]:
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for r in runs:
        for name, start, end in r.phases:
            totals[CATEGORY[name]] += end - start
    wall = sum(totals.values())
    return {k: (v / wall if wall else 0.0) for k, v in totals.items()}


def document(
    runs: list[StepRun],
    knobs: Knobs,
    codec_label: str,
    started: float,
    finished: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    steps = []
    for r in runs:
        steps.append(
            {
                "index": r.spec.index,
                "name": r.spec.name,
                "drv_path": r.spec.drv_path,
                "output_path": r.spec.output.path,
                "build_id": r.build_id,
                "step_nr": r.step_nr,
                "machine": r.machine,
                "deps": list(r.spec.deps),
                "runnable_at": r.runnable_at,
                "finished_at": r.finished_at,
                "wall_seconds": r.finished_at - r.runnable_at,
                "build_start": r.build_start,
                "build_stop": r.build_stop,
                "status": r.status,
                "phases": [
                    {"phase": n, "category": CATEGORY[n], "start": s, "end": e}
                    for n, s, e in r.phases
                ],
                "nar_bytes": r.nar_bytes,
                "compressed_bytes": r.compressed_bytes,
                "input_bytes": r.input_bytes,
                "compress_seconds": r.compress_seconds,
                "compress_cpu_seconds": r.compress_cpu_seconds,
            }
        )
    return {
        "format_version": FORMAT_VERSION,
        "kind": "hydra-profiler-testbed-truth",
        "emulator": "hydra-profiler testbed (an emulator, not Hydra)",
        "generation": knobs.generation,
        "codec": codec_label,
        "knobs": {
            k: sorted(v) if isinstance(v, frozenset) else v
            for k in knobs.__dataclass_fields__
            for v in [getattr(knobs, k)]
        },
        "started_at": started,
        "finished_at": finished,
        "steps": steps,
        "attribution": attribution(runs),
        **extra,
    }


def write(path: str, doc: dict[str, Any]) -> None:
    from profiler import atomic

    atomic.write_text(path, json.dumps(doc, indent=1) + "\n")


# Phases during which a step holds its machine slot (C++ releases it once it holds a local
# worker permit, engine._step_cxx; Rust holds it through upload, post-processing and the step
# row's write).
SLOT_PHASES = {
    "cxx": {
        "preparing", "updating-step", "connecting", "sending-inputs", "building",
        "waiting-for-local-slot", "failed-attempt",
    },
    "rust": {
        "preparing", "updating-step", "dispatch", "importing", "building", "reading-outputs",
        "compressing", "writing-cache", "uploading", "post-processing", "finishing-step",
        "failed-attempt",
    },
}  # fmt: skip
# the questions are the analysis's (profiler.analyze.verdict): saturated at SATURATED_SHARE of
# step wall time queued with every usable slot taken; a cause worth naming from LATENCY_SHARE;
# a close call from CLOSE; RESOURCE_OF: what each category's time means for the headline
RESOURCE = RESOURCE_OF


def _ranked(shares: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(shares.items(), key=lambda kv: -kv[1])


def _permit_use(
    permits: list[tuple[float, float, str]], start: float, end: float
) -> dict[str, float]:
    """While a step waited for a local worker permit (start..end), what the permit holders
    were doing: shares of compressing vs moving bytes (receive, write, upload)."""
    count = {"compression": 0.0, "io": 0.0}
    for t in (start + (end - start) * (i + 0.5) / 8 for i in range(8)):
        for a, b, c in permits:
            if a <= t < b:
                count[c] += 1
    total = sum(count.values())
    return {k: v / total for k, v in count.items()} if total else {"compression": 1.0}


def answers(doc: dict[str, Any]) -> dict[str, Any]:
    """The true answers of a run: makespan and p50 step wall time, whether the farm was
    saturated (steps queued while every usable slot was taken) and what held the slots,
    what added most latency besides the build, and the headline (the one thing to fix first)
    with the runner-up when it is a close call. A C++ step waiting for a local worker permit
    holds its machine slot because of what the permit holders are doing (compressing, or
    receiving and uploading bytes): its wait is shared between those.
    """
    import numpy as np

    steps = doc["steps"]
    gen = doc["generation"]
    k = doc["knobs"]
    wall = np.array([s["wall_seconds"] for s in steps], float)
    makespan = max(s["finished_at"] for s in steps) - min(s["runnable_at"] for s in steps)
    capacity = (k["machines"] - k.get("pressure_machines", 0)) * k["max_jobs"]
    slots = [
        (p["start"], p["end"], p["category"])
        for s in steps
        for p in s["phases"]
        if p["phase"] in SLOT_PHASES[gen]
    ]
    starts = np.array([a for a, _, _ in slots] or [0.0])
    ends = np.array([b for _, b, _ in slots] or [0.0])

    def busy_at(t: float) -> int:
        return int(np.sum((starts <= t) & (ends > t)))

    queued_full = queued_free = 0.0
    for s in steps:
        for p in s["phases"]:
            if p["phase"] != "queued" or p["end"] <= p["start"]:
                continue
            # sample the queued interval: was every slot taken?
            ts = np.linspace(p["start"], p["end"], 9)[:-1] + (p["end"] - p["start"]) / 16
            full = np.mean([busy_at(t) >= capacity for t in ts])
            span = p["end"] - p["start"]
            queued_full += span * full
            queued_free += span * (1 - full)
    total = float(wall.sum()) or 1.0
    held: dict[str, float] = {}
    permits = [  # C++ local worker permits: what each holder was doing, when
        (p["start"], p["end"], "compression" if p["phase"] == "compressing" else "io")
        for s in steps
        for p in s["phases"]
        if p["phase"] in ("receiving-outputs", "compressing", "writing-cache", "uploading")
    ]
    for a, b, c in slots:
        if c == "compression" and gen == "cxx" and permits:  # a wait for a permit: held by
            for resource, share in _permit_use(permits, a, b).items():  # what holders did
                held[resource] = held.get(resource, 0.0) + (b - a) * share
            continue
        held[RESOURCE[c]] = held.get(RESOURCE[c], 0.0) + (b - a)
    held_total = sum(held.values()) or 1.0
    holders = {r: v / held_total for r, v in held.items()}
    shares = doc["attribution"]
    latency = {RESOURCE[c]: v for c, v in shares.items() if c != "build"}
    saturated = queued_full / total >= SATURATED_SHARE and queued_full >= queued_free
    saturated_ranking = _ranked(holders)
    # steps waiting with slots free are part of the scheduling latency
    idle_ranking = [kv for kv in _ranked(latency) if kv[1] >= LATENCY_SHARE] or [("idle", 1.0)]
    ranking = saturated_ranking if saturated else idle_ranking
    top, top_v = ranking[0]
    close = [r for r, v in ranking[1:2] if top_v > 0 and v / top_v >= CLOSE]
    # the same rule on the saturation line: the wait with every slot taken and with a slot
    # free within CLOSE of each other (both sides large) is a close call between the sides
    lo, hi = sorted((queued_full, queued_free))
    if hi > 0 and lo / hi >= CLOSE and queued_full / total >= SATURATED_SHARE:
        other = (idle_ranking if saturated else saturated_ranking)[:1]
        close += [r for r, _ in other if r != top and r not in close]
    lat_top = _ranked(latency)[0]
    return {
        "makespan_seconds": makespan,
        "p50_wall_seconds": float(np.median(wall)),
        "shares": shares,
        "saturated": saturated,
        "queued_full_share": queued_full / total,
        "queued_free_share": queued_free / total,
        "slot_holders": holders,
        "latency": lat_top[0] if lat_top[1] >= LATENCY_SHARE else "build",
        "headline": top,
        "close": close,
    }
