"""``truth.json``: every step's true phase times and bytes, and the attribution they imply.

The attribution uses the categories of ``analyze --format json`` (DESIGN.md): the share of
total step wall time (runnable to done, summed over steps) spent in scheduling, io,
compression, build and post. Waiting for a local worker slot (C++ busy=35) counts as
compression: the wait exists only because every compression permit is taken.
"""

from __future__ import annotations

import json
import os
from typing import Any

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
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
