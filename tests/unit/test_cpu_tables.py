"""Samples into cpu_classes / cpu_stacks / cpu_unknown rows, folded stacks and speedscope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profiler.collect.cpu.classify import Frame
from profiler.collect.cpu.samples import Sample
from profiler.collect.cpu.tables import Aggregate, Meta, is_orphan, merge_speedscope, write_files
from profiler.store import Run, read_run

LZMA = Frame(None, "/usr/lib/x86_64-linux-gnu/liblzma.so.5.4.1")
MAIN = Frame("main", "/usr/bin/hydra-queue-runner")
STEP = Frame("nix::State::doBuildStep", "/usr/bin/hydra-queue-runner")
MEMCMP = Frame("__memcmp_evex_movbe", "/usr/lib/x86_64-linux-gnu/libc.so.6")
FAULT = Frame("asm_exc_page_fault", "[kernel.kallsyms]")
META = Meta("perf", "pid 7 (hydra-queue-run)", "fp", 1.0)


def s(ts: float, tid: int, frames: tuple[Frame, ...], cpu: float = 0.01) -> Sample:
    return Sample(ts, 7, tid, f"t{tid}", cpu, frames)


def agg(samples: list[Sample]) -> Aggregate:
    a = Aggregate(META, {7: "hydra-queue-run"})
    for x in samples:
        a.add(x)
    return a


SAMPLES = [
    s(100.2, 7, (MAIN, LZMA)),
    s(100.7, 7, (MAIN, LZMA)),
    s(100.9, 8, (MAIN, STEP)),
    s(101.1, 7, (MAIN, LZMA), cpu=0.02),
]


def test_class_rows_per_bucket_thread_and_class_add_up_to_the_periods() -> None:
    rows = agg(SAMPLES).class_rows()
    keyed = {(r["ts"], r["tid"], r["class"]): (r["samples"], r["cpu_seconds"]) for r in rows}
    assert keyed == {
        (100.0, 7, "compression"): (2, pytest.approx(0.02)),
        (100.0, 8, "other"): (1, pytest.approx(0.01)),
        (101.0, 7, "compression"): (1, pytest.approx(0.02)),
    }
    assert sum(r["cpu_seconds"] for r in rows) == pytest.approx(0.05)
    first = rows[0]
    assert (first["process"], first["thread"], first["sampler"], first["call_graph"]) == (
        "hydra-queue-run", "t7", "perf", "fp",
    )  # fmt: skip
    assert first["bucket_seconds"] == 1.0 and first["target"] == META.target


def test_buckets_start_at_the_origin() -> None:
    a = Aggregate(META._replace(bucket_seconds=7.5, origin_seconds=98.0), {})
    for x in SAMPLES:
        a.add(x)
    assert {r["ts"] for r in a.class_rows()} == {98.0}
    assert {r["bucket_seconds"] for r in a.class_rows()} == {7.5}


def test_stacks_unknown_and_folded() -> None:
    a = agg(SAMPLES)
    stacks = a.stack_rows()
    assert stacks[0] == {
        "process": "hydra-queue-run", "thread": "t7", "class": "compression",
        "stack": "main;[liblzma.so.5.4.1]", "samples": 3, "cpu_seconds": pytest.approx(0.04),
    }  # fmt: skip
    assert a.unknown_rows() == [
        {"frame": "nix::State::doBuildStep", "dso": "/usr/bin/hydra-queue-runner",
         "samples": 1, "cpu_seconds": pytest.approx(0.01)}
    ]  # fmt: skip
    assert a.folded_lines() == [
        "hydra-queue-run;t7;main;[liblzma.so.5.4.1] 3",
        "hydra-queue-run;t8;main;nix::State::doBuildStep 1",
    ]


def test_an_orphan_leaf_takes_its_threads_previous_class() -> None:
    assert is_orphan((MEMCMP,)) and is_orphan((MEMCMP, FAULT))
    assert not is_orphan((MAIN, MEMCMP)) and not is_orphan((LZMA,))
    a = agg([s(1, 7, (LZMA,)), s(2, 7, (MEMCMP,)), s(3, 8, (MEMCMP,))])
    classes = {(r["tid"], r["class"]) for r in a.class_rows()}
    assert classes == {(7, "compression"), (8, "other")}  # t8 has nothing before it
    assert a.orphans == 1


def test_speedscope_has_one_sampled_profile_per_thread_with_valid_frame_indices() -> None:
    doc = agg(SAMPLES).speedscope("pid 7")
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = doc["shared"]["frames"]
    assert {p["name"] for p in doc["profiles"]} == {
        "hydra-queue-run / t7 (7)",
        "hydra-queue-run / t8 (8)",
    }
    for p in doc["profiles"]:
        assert p["type"] == "sampled" and p["unit"] == "seconds"
        assert len(p["samples"]) == len(p["weights"])
        assert all(0 <= i < len(frames) for stack in p["samples"] for i in stack)
        assert p["endValue"] == pytest.approx(sum(p["weights"]))
    t7 = next(p for p in doc["profiles"] if p["name"].endswith("(7)"))
    assert [frames[i]["name"] for i in t7["samples"][0]] == ["main", "[liblzma.so.5.4.1]"]


def test_threads_sharing_a_name_keep_their_own_profiles() -> None:
    twins = [Sample(1.0, 7, 70, "tokio-runtime-w", 0.01, (MAIN, LZMA)),
             Sample(1.0, 7, 71, "tokio-runtime-w", 0.01, (MAIN, LZMA))]  # fmt: skip
    a = agg(twins)
    assert len(a.speedscope("x")["profiles"]) == 2
    assert [r["samples"] for r in a.stack_rows()] == [2]  # cpu_stacks: by thread name


def test_a_second_collection_adds_to_the_files(tmp_path: Path) -> None:
    write_files(str(tmp_path), agg(SAMPLES[:1]), "first")
    write_files(str(tmp_path), agg(SAMPLES[2:3]), "second")
    folded = (tmp_path / "stacks.folded").read_text().splitlines()
    assert folded == ["hydra-queue-run;t7;main;[liblzma.so.5.4.1] 1",
                      "hydra-queue-run;t8;main;nix::State::doBuildStep 1"]  # fmt: skip
    doc = json.loads((tmp_path / "profile.speedscope.json").read_text())
    assert len(doc["profiles"]) == 2
    names = [f["name"] for f in doc["shared"]["frames"]]
    assert names == ["main", "[liblzma.so.5.4.1]", "nix::State::doBuildStep"]  # main once
    second = doc["profiles"][1]
    assert [names[i] for i in second["samples"][0]] == ["main", "nix::State::doBuildStep"]


def test_merge_keeps_the_old_profiles_first() -> None:
    old = agg(SAMPLES[:1]).speedscope("a")
    merged = merge_speedscope(old, agg(SAMPLES[2:3]).speedscope("b"))
    assert merged["name"] == "a" and merged["profiles"][0] == old["profiles"][0]


def test_rows_are_stored_and_read_back_as_the_interface_says(tmp_path: Path) -> None:
    a = agg(SAMPLES)
    with Run.open(tmp_path / "run") as run:
        run.write_part("cpu_classes", a.class_rows())
        run.write_part("cpu_stacks", a.stack_rows())
        run.write_part("cpu_unknown", a.unknown_rows())
    r = read_run(str(tmp_path / "run"))
    classes = r.table("cpu_classes")
    assert list(classes.columns) == [
        "ts", "bucket_seconds", "pid", "tid", "process", "thread", "class", "samples",
        "cpu_seconds", "sampler", "target", "call_graph",
    ]  # fmt: skip
    assert str(classes["pid"].dtype).startswith("int") and str(classes["ts"].dtype) == "float64"
    assert list(r.table("cpu_stacks").columns) == [
        "process", "thread", "class", "stack", "samples", "cpu_seconds",
    ]  # fmt: skip
    assert list(r.table("cpu_unknown").columns) == ["frame", "dso", "samples", "cpu_seconds"]
