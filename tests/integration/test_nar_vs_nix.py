"""Our NAR bytes and hashes against Debian's real ``nix-store --dump`` and ``nix-hash``."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler import nar
from profiler.errors import NarError
from tests.conftest import nix_dump, nix_hash, require_tool

pytestmark = pytest.mark.needs_nix


def ours(path: Path | bytes) -> bytes:
    return nar.dump_bytes(path)


def assert_same_as_nix(path: Path | bytes) -> None:
    expected = nix_dump(path)
    assert ours(path) == expected
    digest, size = nar.hash_path(path)
    assert size == len(expected)
    assert str(digest) == nix_hash(path)


def test_reference_example(example_tree: Path) -> None:
    data = ours(example_tree)
    assert len(data) == 1240
    assert hashlib.sha256(data).hexdigest() == (
        "ad218977882c1cdadf9cc80a62742da3c7734b24b250ee213322c87ad5b585f5"
    )
    assert_same_as_nix(example_tree)


def test_single_file_symlink_and_empty_roots(tmp_path: Path) -> None:
    f = tmp_path / "hello"
    f.write_bytes(b"hello\n")
    assert len(ours(f)) == 120  # reference §1.6
    (tmp_path / "ln").symlink_to("/nonexistent/target")
    (tmp_path / "e").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    for p in ("hello", "ln", "e", "dir"):
        assert_same_as_nix(tmp_path / p)


def test_executable_is_owner_execute_bit_only(tmp_path: Path) -> None:
    for name, mode in [("u", 0o744), ("g", 0o654), ("o", 0o645), ("none", 0o600), ("all", 0o777)]:
        p = tmp_path / name
        p.write_bytes(b"#!/bin/sh\n")
        p.chmod(mode)
    assert_same_as_nix(tmp_path)
    entries = {e.path: e.executable for e in nar.iter_entries(_bytes_io(ours(tmp_path)))}
    assert entries == {
        b"": False,
        b"all": True,
        b"g": False,
        b"none": False,
        b"o": False,
        b"u": True,
    }


def test_names_sort_by_raw_bytes_including_non_utf8(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    names = [
        b"10",
        b"9",
        b"B",
        b"Z",
        b"_",
        b"a",
        "é".encode(),
        b"\xff\xfe",
        b"\x80x",
        b"-",
        b"a b",
        b"\xed\xb2\x80",
    ]
    for n in names:
        with open(root + b"/" + n, "wb") as f:
            f.write(n)
    assert_same_as_nix(root)
    listed = [e.path for e in nar.iter_entries(_bytes_io(ours(root)))][1:]
    assert listed == sorted(names)


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"x" * 100)
    (tmp_path / "to-dir").symlink_to("real")
    (tmp_path / "dangling").symlink_to("missing")
    (tmp_path / "abs").symlink_to("/etc/passwd")
    (tmp_path / "dev").symlink_to("/dev/null")
    assert_same_as_nix(tmp_path)


def test_hard_links_are_written_as_copies(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"shared contents\n" * 1000)
    os.link(tmp_path / "a", tmp_path / "b")
    data = ours(tmp_path)
    assert data.count(b"shared contents\n" * 1000) == 2
    assert_same_as_nix(tmp_path)


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 65535, 65536, 65537, (1 << 20) + 3, (3 << 20) + 5])
def test_sizes_around_padding_and_chunk_boundaries(tmp_path: Path, size: int) -> None:
    (tmp_path / "f").write_bytes(os.urandom(size))
    assert_same_as_nix(tmp_path)
    out, n = dump_through_pipe(tmp_path)
    assert out == nix_dump(tmp_path)
    assert n == len(out)


def dump_through_pipe(path: Path) -> tuple[bytes, int]:
    """Dump into the write end of a real pipe while a thread drains the read end."""
    r, w = os.pipe()
    chunks: list[bytes] = []

    def drain() -> None:
        with os.fdopen(r, "rb") as f:
            while data := f.read(1 << 16):
                chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        n = nar.dump_to_fd(path, w)
    finally:
        os.close(w)
        reader.join()
    return b"".join(chunks), n


def test_deep_tree(tmp_path: Path) -> None:
    p = tmp_path / "deep"
    leaf = p.joinpath(*["d"] * 300)
    leaf.mkdir(parents=True)
    (leaf / "bottom").write_bytes(b"bottom\n")
    assert_same_as_nix(p)


def test_wide_tree_with_many_files(tmp_path: Path) -> None:
    for i in range(2000):
        (tmp_path / f"f{i:05d}").write_bytes(str(i).encode() * (i % 13))
    assert_same_as_nix(tmp_path)


def test_dump_to_file_descriptor_of_a_regular_file(tmp_path: Path, example_tree: Path) -> None:
    big = example_tree / "big"
    big.write_bytes(os.urandom(200_000))
    out = tmp_path / "out.nar"
    with open(out, "wb") as f:
        nar.dump_to_fd(example_tree, f.fileno())
    assert out.read_bytes() == nix_dump(example_tree)


def test_threaded_sink_gives_the_same_bytes(example_tree: Path) -> None:
    (example_tree / "big").write_bytes(os.urandom(3 << 20))
    parts: list[bytes] = []
    nar.dump(example_tree, lambda v: parts.append(bytes(v)), threaded=True)
    assert b"".join(parts) == nix_dump(example_tree)


def test_special_files_are_a_clear_error(tmp_path: Path) -> None:
    fifo = tmp_path / "d" / "fifo"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with pytest.raises(NarError, match=r"d/fifo: unsupported file type \(FIFO\)"):
        ours(tmp_path / "d")
    require_tool("nix-store", "nix-bin")
    done = subprocess.run(["nix-store", "--dump", tmp_path / "d"], capture_output=True)
    assert done.returncode != 0 and b"unsupported type" in done.stderr  # Nix agrees
    sock_dir = tmp_path / "s"
    sock_dir.mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_dir / "sock"))
    try:
        with pytest.raises(NarError, match=r"sock: unsupported file type \(socket\)"):
            ours(sock_dir)
    finally:
        s.close()
    with pytest.raises(NarError, match=r"/dev/null: unsupported file type \(character device"):
        ours(Path("/dev/null"))


def test_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(NarError, match="nope: No such file or directory"):
        nar.hash_path(tmp_path / "nope")


def test_memory_stays_bounded_on_a_large_file(tmp_path: Path) -> None:
    big = tmp_path / "sparse"
    with open(big, "wb") as f:
        f.truncate(768 << 20)  # 768 MiB of holes: read as zeros, costs no disk
    # VmHWM, not ru_maxrss: after fork+exec, ru_maxrss still carries the parent's peak
    code = (
        "import sys; from profiler import nar; h, n = nar.hash_path(sys.argv[1]);"
        "hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM')][0];"
        "print(n, hwm.split()[1])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(big)], capture_output=True, text=True, check=True
    )
    size, maxrss_kib = map(int, done.stdout.split())
    assert size > 768 << 20
    assert maxrss_kib < 120 << 10, f"peak RSS {maxrss_kib} KiB while hashing 768 MiB"


# --- property-based trees -------------------------------------------------------------

_name = st.binary(min_size=1, max_size=12).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)
_file = st.tuples(st.just("file"), st.binary(max_size=300), st.booleans())
_link = st.tuples(st.just("link"), _name, st.just(False))
_tree = st.recursive(
    st.one_of(_file, _link),
    lambda children: st.dictionaries(_name, children, max_size=5).map(lambda d: ("dir", d)),
    max_leaves=25,
)


def _materialise(path: bytes, node: object) -> None:
    kind = node[0]  # type: ignore[index]
    if kind == "dir":
        os.mkdir(path)
        for name, child in node[1].items():  # type: ignore[index]
            _materialise(path + b"/" + name, child)
    elif kind == "file":
        with open(path, "wb") as f:
            f.write(node[1])  # type: ignore[index]
        os.chmod(path, 0o755 if node[2] else 0o644)  # type: ignore[index]
    else:
        os.symlink(node[1], path)  # type: ignore[index]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=st.dictionaries(_name, _tree, max_size=6).map(lambda d: ("dir", d)))
def test_random_trees_match_nix(tmp_path: Path, tree: object) -> None:
    root = os.fsencode(tmp_path) + b"/t" + os.urandom(6).hex().encode()
    _materialise(root, tree)
    assert_same_as_nix(root)
    # and our reader accepts what Nix wrote, entry for entry
    summary = nar.validate(_bytes_io(nix_dump(root)))
    assert summary.nar_size == len(ours(root))


def _bytes_io(data: bytes):  # type: ignore[no-untyped-def]
    import io

    return io.BytesIO(data)
