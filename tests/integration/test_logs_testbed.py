"""The journal parser against the testbed's logs: every line understood, events match truth."""

from __future__ import annotations

import glob
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from profiler.collect.journal.parse import parse_file
from profiler.hydra.catalogue import store_base
from profiler.testbed import workload
from profiler.testbed.engine import Knobs
from profiler.testbed.run import run_testbed


def _parse(path: str) -> list[dict[str, Any]]:
    events, summary = parse_file(path, year=2026, strict=True)
    assert summary.unknown == Counter(), (path, summary.unknown)
    assert summary.malformed == []
    assert summary.understood == summary.lines > 0
    return events


def _by_event(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


@pytest.mark.parametrize("generation", ["cxx", "rust"])
def test_testbed_journal_matches_truth(tmp_path: Path, generation: str) -> None:
    truth = run_testbed(
        workload.generate(6, seed=4, build_scale=0.3),
        Knobs(generation, "compression=xz"),
        str(tmp_path),
    )
    steps = truth["steps"]
    assert steps
    unit = "hydra-queue-runner" if generation == "cxx" else "hydra-queue-runner-dev"
    base = os.path.join(str(tmp_path), f"{unit}.journal")
    for suffix in (".json", ".txt"):
        events = _parse(base + suffix)
        assert {e["generation"] for e in events} == {generation}
        assert not _by_event(events, "runner_restart")
        if generation == "cxx":
            _check_cxx(events, steps)
        else:
            _check_rust(events, steps)
    if generation == "rust":
        builder = [
            e
            for p in glob.glob(
                os.path.join(str(tmp_path), "hydra-queue-builder-dev-*.journal.json")
            )
            for e in _parse(p)
        ]
        finished = _by_event(builder, "upload_finished")
        assert len(finished) == len(steps)
        assert all(e["elapsed"] >= 0 for e in finished)
        built = Counter(e["drv"] for e in _by_event(builder, "build_completed"))
        assert built == Counter(store_base(s["drv_path"]) for s in steps)
        # the upload lines name their step through process_build's span fields, and the
        # paths they upload through upload_nars_presigned's (each with its narinfo)
        assert Counter(e["drv"] for e in finished) == built
        uploaded = {e["drv"]: e["outputs"] for e in finished}
        for s in steps:
            out = uploaded[store_base(s["drv_path"])]
            assert out == store_base(s["output_path"]) != store_base(s["drv_path"])[:-4]
            assert os.path.isfile(os.path.join(str(tmp_path), "cache", f"{out[:32]}.narinfo"))


def _check_cxx(events: list[dict[str, Any]], steps: list[dict[str, Any]]) -> None:
    started = Counter(e["drv"] for e in _by_event(events, "step_started"))
    assert started == Counter(s["drv_path"] for s in steps)
    copied = {e["path"]: e for e in _by_event(events, "output_copied")}
    assert len(_by_event(events, "output_copied")) == len(steps)
    for s in steps:
        ev = copied[s["output_path"]]
        assert ev["nar_bytes"] == s["nar_bytes"]
        expected = (1 - s["compressed_bytes"] / s["nar_bytes"]) * 100
        assert abs(ev["compressed_percent"] - expected) <= 0.1
    succeeded = {e["build_id"] for e in _by_event(events, "build_succeeded")}
    assert succeeded >= {s["build_id"] for s in steps}


def _check_rust(events: list[dict[str, Any]], steps: list[dict[str, Any]]) -> None:
    # the Rust runner prints base names (harmonia StorePath Display): join on them
    truth = Counter(store_base(s["drv_path"]) for s in steps)
    dispatched = _by_event(events, "dispatch")
    assert Counter(e["drv"] for e in dispatched) == truth
    assert all(not e["drv"].startswith("/") for e in dispatched)
    assert {e["build_id"] for e in dispatched} == {s["build_id"] for s in steps}
    done = Counter(e["drv"] for e in _by_event(events, "job_done"))
    assert done == truth
