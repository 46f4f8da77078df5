"""The message catalogue: every entry is a well-formed call site whose pattern reads what its
own format string prints, and no other message's text is taken for it."""

from __future__ import annotations

import re

import pytest

from profiler.collect.journal.rules import PLAIN, TRACING, compile_rule
from profiler.hydra import CATALOGUE, Message, facts
from profiler.hydra.catalogue import (
    CONVERTERS,
    fill,
    rust_duration_text,
    rust_line,
    rust_timestamp,
    store_base,
)
from profiler.hydra.sources import HYDRA_CXX, HYDRA_RUST

HASH = "0c2zv5rr4qy3c8rqd4s1dw8dbg8wfrqn"
_PLACEHOLDER = re.compile(
    r"%%|%(\d+)%|%(?:(\d+)\$)?[-+ #0]*\d*(?:\.\d+)?([sdifgu])"
    r"|\{\{|\}\}|\{([A-Za-z_][\w.]*|\d*)(:\??[^}]*)?\}"
)


def _sample(name: str, kind: str, rust: bool) -> str:
    """A value a real program could print for a field called ``name``."""
    if kind == "int" or name in ("build_id", "step_nr", "stepnr", "paths", "pid", "count"):
        return "42"
    if kind == "float":
        return "12.5"
    if kind == "duration":
        return rust_duration_text(41.234567891)
    if kind == "json":
        return '{"status":"up"}'
    if "drv" in name or "path" in name or name in ("resolved", "output", "out"):
        base = f"{HASH}-hello-2.12.1" + (".drv" if "drv" in name else "")
        return base if rust else f"/nix/store/{base}"
    if name in ("url",):
        return f"s3://nix-cache/nar/{HASH}.nar.xz"
    if name in ("unit",):
        return "hydra-queue-runner.service"
    return "x1"


def example(m: Message) -> str:
    """The message as its program prints it, from its own format string (or the entry's own
    example, where one group of the pattern spans several placeholders)."""
    if m.example:
        return m.example
    names = list(re.compile(m.pattern).groupindex)
    positional: list[str] = []
    named: dict[str, str] = {}
    count = 0
    for ph in _PLACEHOLDER.finditer(m.format):
        if ph.group(0) in ("%%", "{{", "}}"):
            continue
        inline = ph.group(4)
        name = names[count] if count < len(names) else f"arg{count}"
        count += 1
        kind = m.types.get(name, "str")
        if kind == "upload_mode":
            return m.format  # the mode is literal text in these formats
        if inline and not inline.isdigit():
            named[inline] = _sample(inline, m.types.get(inline, "str"), m.rust)
        else:
            positional.append(_sample(name, kind, m.rust))
    return fill(m.format, *positional, **named)


ENTRIES = list(CATALOGUE)


def test_entries_are_well_formed_and_cite_their_source() -> None:
    assert len(ENTRIES) > 250  # every call site of both generations, not a sample
    for m in ENTRIES:
        assert m.format and m.event and m.level, m
        re.compile(m.pattern)
        if m.program in ("cxx-runner", "rust-runner", "rust-builder"):
            assert m.source.repo == "NixOS/hydra" and m.source.line > 0, m
        if m.program == "rust-runner" or m.program == "rust-builder":
            assert m.source.commit == HYDRA_RUST
            assert m.target and " " not in m.target, m
        if m.program == "cxx-runner" and not m.era:
            assert m.source.commit == HYDRA_CXX
        for kind in m.types.values():
            assert kind in CONVERTERS


@pytest.mark.parametrize("m", ENTRIES, ids=lambda m: f"{m.program}:{m.source.line}:{m.event}")
def test_the_pattern_reads_what_the_format_prints(m: Message) -> None:
    text = example(m)
    rules = TRACING if m.rust else PLAIN
    rule = compile_rule(m)
    tail = " drv=Some(ProtoStorePath(StorePath(x)))" if m.rust else ""
    assert rule.match(text + tail) is not None, (m.pattern, text)
    found = rules.find(text + tail)
    assert found is not None
    other = found[0].message
    # the parser may take the text for another call site only if it prints the same event
    assert other.event == m.event or other.format == m.format, (text, other.event, m.event)


def test_rust_lines_in_the_compact_layout() -> None:
    """tracing-subscriber 0.3.23 Format<Compact>: level padded to 5, span names, target,
    message, then the spans' fields."""
    line = rust_line(
        rust_timestamp(1_795_900_000.25),
        "INFO",
        [("process_build", "drv=Some(ProtoStorePath(StorePath(x)))"), ("upload_nars", "")],
        "hydra_builder::state",
        "Finished building y",
    )
    assert line == (
        "2026-11-28T21:06:40.250000Z  INFO process_build:upload_nars: hydra_builder::state: "
        "Finished building y drv=Some(ProtoStorePath(StorePath(x)))"
    )
    assert rust_duration_text(41.234567891) == "41.234567891s"
    assert rust_duration_text(0.85) == "850ms" and rust_duration_text(3.0) == "3s"


def test_store_paths_in_every_spelling_give_one_key() -> None:
    full = f"/nix/store/{HASH}-hello-2.12.1.drv"
    for spelling in (
        full,
        f"{HASH}-hello-2.12.1.drv",
        f"Some(ProtoStorePath(StorePath({HASH}-hello-2.12.1.drv)))",
    ):
        assert store_base(spelling) == f"{HASH}-hello-2.12.1.drv"
    assert store_base("ssh://builder") is None and store_base(None) is None


def test_presigned_level_mapping() -> None:
    """hydra 14332fbf crates/binary-cache/src/presigned.rs:42-46."""
    got = {n: facts.presigned_level(n) for n in (None, 0, 1, 2, 8, 9, 19)}
    assert got == {None: "default", 0: "default", 1: "fastest", 2: "precise:2",
                   8: "precise:8", 9: "best", 19: "default"}  # fmt: skip


def test_the_coverage_document_is_up_to_date() -> None:
    """docs/hydra-coverage.md is what scripts/hydra_coverage.py prints from the code."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    made = subprocess.run(
        [sys.executable, str(root / "scripts" / "hydra_coverage.py")],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    committed = (root / "docs" / "hydra-coverage.md").read_text(encoding="utf-8")
    assert made == committed, "run: python3 scripts/hydra_coverage.py > docs/hydra-coverage.md"
