"""Deeply nested NARs (an untrusted NAR can nest 4,000 directories with 255-byte names in
1.7 MB): reading one costs memory linear in its size, not quadratic (reliability D16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from profiler import nar
from profiler.nar.dump import nar_str
from tests.conftest import NIX_ENV, require_tool


def write_deep_nar(path: Path, depth: int, name: bytes) -> None:
    opening = b"".join(
        nar_str(t) for t in (b"(", b"type", b"directory", b"entry", b"(", b"name", name, b"node")
    )
    leaf = b"".join(nar_str(t) for t in (b"(", b"type", b"regular", b"contents", b"hi\n", b")"))
    with open(path, "wb") as f:
        f.write(nar_str(b"nix-archive-1") + opening * depth + leaf)
        f.write((nar_str(b")") + nar_str(b")")) * depth)


def test_entries_carry_names_not_whole_paths(tmp_path: Path) -> None:
    deep = tmp_path / "d.nar"
    write_deep_nar(deep, 5, b"ab")
    with open(deep, "rb") as f:
        entries = list(nar.iter_entries(f))
    # the root and 4 directories, then the file at depth 5
    assert [e.depth for e in entries] == [0, 1, 2, 3, 4, 5]
    assert [e.type for e in entries] == ["directory"] * 5 + ["regular"]
    assert entries[0].path == b"" and entries[0].components() == []
    assert entries[3].path == b"ab/ab/ab" and entries[3].name == b"ab"
    assert entries[-1].path == b"/".join([b"ab"] * 5)
    # each open directory is one link (parent, name, depth), shared by everything under it
    parent = entries[-1].parent
    assert parent is not None and parent.depth == 4 and parent.name == b"ab"
    assert parent.parent is not None and parent.parent.depth == 3


PEAK = """
import sys
from profiler.cli import main
codes = [main(["nar", "ls", sys.argv[1]]), main(["payloads", sys.argv[1]])]
hwm = next(x for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(codes, int(hwm.split()[1]), file=sys.stderr)
"""


def test_listing_a_4000_deep_nar_stays_under_100_mb(tmp_path: Path) -> None:
    deep = tmp_path / "deep.nar"
    write_deep_nar(deep, 4000, b"n" * 255)
    assert deep.stat().st_size == 1_664_120
    # VmHWM of the process running the commands (ru_maxrss would carry the forking parent's)
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(deep)], capture_output=True, text=True, timeout=120
    )
    codes, peak_kib = done.stderr.strip().splitlines()[-1].rsplit(" ", 1)
    assert codes == "[0, 0]", done.stderr
    assert done.stdout.startswith("./" + "n" * 255 + "\n")
    assert "1.6 MiB" in done.stdout  # payloads validated the whole NAR
    assert int(peak_kib) < 100 << 10, f"peak {int(peak_kib) >> 10} MiB (was 4 GiB before D16)"


def test_deep_recursive_listing_is_every_path(tmp_path: Path) -> None:
    deep = tmp_path / "deep.nar"
    write_deep_nar(deep, 60, b"x" * 20)
    done = subprocess.run(
        [sys.executable, "-m", "profiler", "nar", "ls", "-lR", str(deep)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 60  # 59 directories under the root, then the file
    assert lines[0] == b"dr-xr-xr-x" + b" " * 20 + b"0 ./" + b"x" * 20
    assert lines[59] == b"-r--r--r--" + b" " * 20 + b"3 ./" + b"/".join([b"x" * 20] * 60)
    inner = "/" + "/".join(["x" * 20] * 58)
    done = subprocess.run(
        [sys.executable, "-m", "profiler", "nar", "ls", str(deep), inner],
        capture_output=True,
        timeout=60,
    )
    assert done.stdout == b"./" + b"x" * 20 + b"\n"


@pytest.mark.needs_nix
@pytest.mark.parametrize("flags", [[], ["-R"], ["-lR"]])
def test_deep_listing_is_byte_identical_to_nix(tmp_path: Path, flags: list[str]) -> None:
    require_tool("nix", "nix-bin")
    deep = tmp_path / "deep.nar"
    write_deep_nar(deep, 300, b"n" * 200)
    ours = subprocess.run(
        [sys.executable, "-m", "profiler", "nar", "ls", *flags, str(deep)],
        capture_output=True,
        timeout=60,
    )
    theirs = subprocess.run(
        ["nix", "nar", "ls", *flags, str(deep), "/"], capture_output=True, env=NIX_ENV, timeout=60
    )
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0 and ours.stdout == theirs.stdout
