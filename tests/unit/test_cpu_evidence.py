"""Sampled CPU (``collect cpu``'s tables, written here as the interface says) in the
analysis: the compression split takes the compressing process' measured seconds where the
samples cover a step's copy phase and the profile's elsewhere, the verdict gets the
evidence line, and a run without the tables or without samples of the compressing process
claims no measurement. The runs are frozen testbed runs (tests/data/run-v1) with cpu tables
added to a copy."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profiler.analyze.analysis import Analysis, analyze
from profiler.analyze.cpu import same_process, sampled_machine
from profiler.analyze.cpu_split import _phases
from profiler.bench.profiles import from_result
from profiler.bench.results import load_result
from profiler.report.flame import call_tree, layout
from profiler.report.terminal import render
from profiler.store import Run

DATA = Path(__file__).parent.parent / "data"
PROFILES = from_result(load_result(str(DATA / "bench-v1")))
BUCKET_S = 0.05


def frozen(name: str, tmp_path: Path) -> str:
    run = tmp_path / name
    shutil.copytree(DATA / "run-v1" / name, run)
    return str(run)


def plain(run: str, **kw: object) -> Analysis:
    return analyze(run, profiles=PROFILES, runner_cores=2, **kw)  # type: ignore[arg-type]


def class_row(ts: float, cls: str, seconds: float, process: str, tid: int = 11) -> dict:
    """One ``cpu_classes`` row as the interface between the halves of issue 18 says."""
    return {"ts": ts, "bucket_seconds": BUCKET_S, "pid": 10, "tid": tid, "process": process,
            "thread": f"t{tid}", "class": cls, "samples": max(1, round(seconds * 1000)),
            "cpu_seconds": seconds, "sampler": "perf", "target": f"pid 10 ({process})",
            "call_graph": "dwarf"}  # fmt: skip


def write_cpu(run: str, classes: list[dict], stacks: list[dict] | None = None,
              unknown: list[dict] | None = None) -> None:  # fmt: skip
    with Run.open(run, command="test") as r:
        r.add_source("cpu", classes[0]["target"], "cxx")
        r.write_part("cpu_classes", classes)
        r.write_part("cpu_stacks", stacks or [
            {"process": classes[0]["process"], "thread": "t11", "class": "compression",
             "stack": "main;copyPathFromRemote;lzma_code", "samples": 5, "cpu_seconds": 0.005}
        ])  # fmt: skip
        r.write_part("cpu_unknown", unknown or [
            {"frame": "mystery", "dso": "libm.so", "samples": 1, "cpu_seconds": 0.001}
        ])  # fmt: skip


def compressing_buckets(
    base: Analysis, until: float, process: str, machine: str | None = None
) -> tuple[list[dict], dict]:
    """Buckets from the run's start to ``until`` where each step compresses at k NAR bytes
    per second of phase (k x its NAR rate, so its measured share is k x its NAR bytes),
    plus 0.01 CPU-s of network per bucket; and each step's expected seconds."""
    s = base.steps
    a, b, limit = _phases(s)
    nar = s["nar_bytes"].astype(float).to_numpy()
    ok = (b - a > 0) & np.isfinite(nar) & (nar > 0)
    if machine is not None:  # only that machine's builder compresses what is sampled
        ok &= (s["machine"] == machine).to_numpy()
    k = 0.5 * float(np.min(limit[ok] / nar[ok]))
    lo = base.table.window[0]
    rows, expected = [], {}
    for t in np.arange(lo, until, BUCKET_S):
        over = np.clip(np.minimum(b, t + BUCKET_S) - np.maximum(a, t), 0, None)
        cpu = float(np.sum(np.where(ok, k * nar / np.where(ok, b - a, 1) * over, 0.0)))
        rows.append(class_row(float(t), "network", 0.01, process))
        if cpu > 0:
            rows.append(class_row(float(t), "compression", cpu, process))
    for i, idx in enumerate(s.index):
        if ok[i] and a[i] >= lo and b[i] <= rows[-1]["ts"] + BUCKET_S:
            expected[idx] = k * nar[i]
    return rows, expected


def test_measured_split_where_covered_profile_elsewhere(tmp_path: Path) -> None:
    run = frozen("cxx-all", tmp_path)
    base = plain(run)
    lo, hi = base.table.window
    rows, expected = compressing_buckets(base, lo + 0.6 * (hi - lo), "hydra-queue-run")
    write_cpu(run, rows)
    a = plain(run)
    assert 3 <= len(expected) < len(a.steps)
    measured = a.steps["compress_source"].str.startswith("measured")
    assert set(a.steps.index[measured]) == set(expected)
    for idx, seconds in expected.items():
        assert a.steps.loc[idx, "compress_s"] == pytest.approx(seconds, rel=1e-6, abs=1e-9)
        assert a.steps.loc[idx, "compress_cpu_s"] == a.steps.loc[idx, "compress_s"]
    rest = ~measured
    assert np.allclose(a.steps.loc[rest, "compress_s"], base.steps.loc[rest, "compress_s"])
    assert (a.steps["wall_s"] - base.steps["wall_s"]).abs().max() < 1e-9  # only moved
    how = a.attribution.how("compression")
    phase_steps = a.cpu_split.phase_steps if a.cpu_split else 0
    assert how == (f"measured (hydra-queue-runner CPU samples) for {len(expected)} steps, "
                   f"estimated for {phase_steps - len(expected)}")  # fmt: skip
    note = next(n for n in a.attribution.notes if n.startswith("compression split measured"))
    assert "cover 60% of the run's window" in note
    doc = a.as_dict()
    assert doc["cpu"]["compression_split"]["covered_steps"] == len(expected)
    assert json.dumps(doc, allow_nan=True)


def test_evidence_line_shares_and_cores(tmp_path: Path) -> None:
    run = frozen("cxx-all", tmp_path)
    lo = plain(run).table.window[0]
    rows = []
    for i in range(40):  # 2 s: 0.6 compression, 0.3 hashing, 0.1 network CPU-s per s
        t = lo + i * BUCKET_S
        rows += [class_row(t, "compression", 0.03, "hydra-queue-run"),
                 class_row(t, "hashing", 0.015, "hydra-queue-run", tid=12),
                 class_row(t, "network", 0.005, "hydra-queue-run")]  # fmt: skip
    rows.append(class_row(lo, "runtime", 0.05, "postgres"))
    write_cpu(run, rows)
    a = plain(run)
    line = a.verdict.evidence[-1]
    assert line.startswith("hydra-queue-runner CPU (perf samples, 2.0 s")
    assert "compression 60%, hashing 30%, network 10%; 1.00 cores busy on average" in line
    assert a.cpu is not None and a.cpu.cores_busy() == pytest.approx(1.025)
    over = a.cpu.over_time("hydra-queue-runner")
    assert len(over) == 40 and over["compression"].to_numpy() == pytest.approx(0.6)
    threads = a.cpu.by_thread()
    assert list(threads["thread"]) == ["t11", "t12", "t11"]
    assert list(threads["class"]) == ["compression", "hashing", "runtime"]
    assert threads["cores"].iloc[0] == pytest.approx(0.7)  # (0.6 + 0.1) CPU-s per s
    text = render(a, [])
    assert "cpu (perf (dwarf call graphs) of pid 10 (hydra-queue-run), pid 10 (postgres)" in text
    assert re.search(r"hydra-queue-run\s+compression\s+1\.20\s+60\.0%", text)


def test_no_samples_of_the_compressing_process_claims_nothing(tmp_path: Path) -> None:
    run = frozen("cxx-all", tmp_path)
    base = plain(run)
    lo = base.table.window[0]
    write_cpu(run, [class_row(lo + i * BUCKET_S, "compression", 0.04, "nix-daemon")
                    for i in range(100)])  # fmt: skip
    a = plain(run)
    assert a.attribution.how("compression") == base.attribution.how("compression")
    assert not a.steps["compress_source"].str.startswith("measured").any()
    assert a.steps["compress_s"].equals(base.steps["compress_s"])
    assert "no hydra-queue-runner samples" in " ".join(a.attribution.notes)
    assert a.verdict.evidence[:-1] == base.verdict.evidence
    assert a.verdict.evidence[-1].startswith("nix-daemon CPU")


def test_without_cpu_tables_nothing_changes(tmp_path: Path) -> None:
    a = plain(frozen("cxx-all", tmp_path))
    assert a.cpu is None and a.cpu_split is None and "cpu" not in a.as_dict()
    assert not any("measured" in n or "CPU samples" in n for n in a.attribution.notes)
    assert not any(" CPU (perf samples" in e for e in a.verdict.evidence)


def test_rust_builder_whose_machine_is_unknown_is_not_used(tmp_path: Path) -> None:
    run = frozen("rust-all", tmp_path)
    base = plain(run)
    lo, hi = base.table.window
    write_cpu(run, [class_row(t, "compression", 0.04, "hydra-builder")
                    for t in np.arange(lo, hi, BUCKET_S)])  # fmt: skip
    a = plain(run)
    assert a.cpu_split is None and a.steps["compress_s"].equals(base.steps["compress_s"])
    assert "which machine's hydra-builder was sampled is not known" in " ".join(a.attribution.notes)


def test_process_names_and_machines() -> None:
    assert same_process("hydra-queue-run", "hydra-queue-runner")
    assert not same_process("hydra-queue", "hydra-queue-runner")
    machines = pd.Series(["ssh://build@b1.example:22", "b2", None])
    assert sampled_machine(machines, "b1") == "ssh://build@b1.example:22"
    assert sampled_machine(machines, "b3") is None
    assert sampled_machine(pd.Series(["only"]), None) == "only"


def test_windowed_analysis_keeps_the_buckets_of_its_window(tmp_path: Path) -> None:
    from profiler.analyze.history import Window

    run = frozen("cxx-all", tmp_path)
    lo, hi = plain(run).table.window
    write_cpu(run, [class_row(lo + i * BUCKET_S, "compression", 0.01, "hydra-queue-run")
                    for i in range(int((hi - lo) / BUCKET_S))])  # fmt: skip
    mid = (lo + hi) / 2
    a = plain(run, window=Window(since=mid))
    assert a.cpu is not None and a.cpu.window[0] >= mid


def test_flame_merges_narrow_frames() -> None:
    rows = [{"process": "p", "thread": "t", "class": "compression", "stack": "main;lzma",
             "cpu_seconds": 10.0}]  # fmt: skip
    rows += [{"process": "p", "thread": "t", "class": "hashing", "stack": f"main;h{i};sha",
              "cpu_seconds": 0.001} for i in range(5000)]  # fmt: skip
    root = call_tree(pd.DataFrame(rows))
    assert root.seconds == pytest.approx(15.0)
    boxes = layout(root)
    assert len(boxes) < 10
    merged = [b for b in boxes if b.cls == "merged"]
    assert len(merged) == 1 and merged[0].name == "[5000 narrow frames]"
    assert merged[0].width == pytest.approx(5 / 15)
    main = next(b for b in boxes if b.name == "main")
    assert main.cls == "compression" and main.width == pytest.approx(1.0)
    for depth in {b.depth for b in boxes}:
        assert sum(b.width for b in boxes if b.depth == depth) <= 1 + 1e-9


def test_overlapping_phases_share_a_bucket_by_bytes_per_second() -> None:
    from profiler.analyze.cpu_split import _share_out

    spans = (np.array([0.0, 0.5]), np.array([1.0, 1.5]))
    buckets = (np.array([0.0, 0.5, 1.0]), np.array([0.5, 1.0, 1.5]), np.array([0.2, 0.4, 0.3]))
    got = _share_out(spans, np.array([1.0, 3.0]), buckets)
    assert got == pytest.approx([0.2 + 0.1, 0.3 + 0.3])


def test_samples_outside_every_copy_phase_claim_no_measurement(tmp_path: Path) -> None:
    run = frozen("cxx-all", tmp_path)
    base = plain(run)
    after = base.table.window[1] + 3600
    write_cpu(run, [class_row(after + i * BUCKET_S, "compression", 0.04, "hydra-queue-run")
                    for i in range(20)])  # fmt: skip
    a = plain(run)
    assert a.cpu_split is None and a.steps["compress_s"].equals(base.steps["compress_s"])
    assert a.attribution.how("compression") == base.attribution.how("compression")
    assert "(0% of the run's window) cover no step's copy phase whole" in " ".join(
        a.attribution.notes
    )
    assert "0% of the run's window" in a.verdict.evidence[-1]


def test_a_lone_narrow_frame_is_drawn_as_itself() -> None:
    rows = [{"process": "p", "thread": "t", "class": "compression", "stack": "main;lzma",
             "cpu_seconds": 10.0},
            {"process": "p", "thread": "t", "class": "hashing", "stack": "main;sha",
             "cpu_seconds": 0.001}]  # fmt: skip
    names = {b.name for b in layout(call_tree(pd.DataFrame(rows)))}
    assert "sha" in names and not any("narrow" in n for n in names)


def test_rust_presigned_builder_of_the_run_host_is_measured(tmp_path: Path) -> None:
    run = frozen("rust-all", tmp_path)
    manifest = Path(run) / "manifest.json"
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**doc, "host": "builder-1"}), encoding="utf-8")
    base = plain(run)
    hi = base.table.window[1]
    rows, expected = compressing_buckets(base, hi + 1, "hydra-builder", machine="builder-1")
    write_cpu(run, rows)
    a = plain(run)
    assert a.codec_choice is not None and a.codec_choice.mode == "presigned"
    measured = a.steps["compress_source"].str.startswith("measured")
    assert set(a.steps.index[measured]) == set(expected) and expected
    assert set(a.steps.loc[measured, "machine"]) == {"builder-1"}
    for idx, seconds in expected.items():
        assert a.steps.loc[idx, "compress_s"] == pytest.approx(seconds, rel=1e-6, abs=1e-9)
    other = a.steps["machine"] == "builder-2"
    assert a.steps.loc[other, "compress_s"].equals(base.steps.loc[other, "compress_s"])
    assert a.attribution.how("compression").startswith("measured (hydra-builder CPU samples)")


def test_cpu_tables_lacking_columns_are_said_and_left_out(tmp_path: Path) -> None:
    run = frozen("cxx-all", tmp_path)
    base = plain(run)
    lo = base.table.window[0]
    rows = [{k: v for k, v in class_row(lo, "compression", 0.04, "hydra-queue-run").items()
             if k != "bucket_seconds"}]  # fmt: skip
    write_cpu(run, rows)
    a = plain(run)
    assert a.cpu is None and a.steps["compress_s"].equals(base.steps["compress_s"])
    assert "sampled CPU: table cpu_classes lacks bucket_seconds: not used" in a.attribution.notes


def test_a_chain_of_narrow_frames_ends_at_the_first() -> None:
    rows = [{"process": "p", "thread": "t", "class": "compression", "stack": "main;lzma",
             "cpu_seconds": 10.0},
            {"process": "p", "thread": "t", "class": "other",
             "stack": ";".join(f"k{i}" for i in range(40)), "cpu_seconds": 0.001}]  # fmt: skip
    boxes = layout(call_tree(pd.DataFrame(rows)))
    assert [b.name for b in boxes if b.name.startswith("k")] == ["k0"]
    assert max(b.depth for b in boxes) == 4  # all, p, t, main, lzma


def test_direct_mode_and_unknown_generation_are_not_split_by_samples(tmp_path: Path) -> None:
    from profiler.analyze.cpu import load_cpu
    from profiler.analyze.cpu_split import measured_compression

    table = plain(frozen("rust-all", tmp_path)).table
    lo, hi = table.window
    rows = [class_row(t, "compression", 0.04, "hydra-builder") for t in np.arange(lo, hi, 0.5)]
    cpu, notes = load_cpu({"cpu_classes": pd.DataFrame(rows)})
    assert cpu is not None and not notes
    split, why = measured_compression(table, "direct", cpu, "builder-1")
    assert split is None and "in direct upload mode the runner compresses after the step" in why
    assert measured_compression(table, "presigned", cpu, "builder-1")[0] is not None
    unknown = dataclasses.replace(table, generation="unknown")
    split, why = measured_compression(unknown, None, cpu, "builder-1")
    assert split is None and "which process compresses is not known" in why
