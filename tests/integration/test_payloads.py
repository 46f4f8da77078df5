"""Payloads from paths, NAR files, real Nix-written binary caches and the Nix store."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from profiler import nar
from profiler.errors import PayloadError, UsageError
from profiler.payloads import binary_cache, corpus
from profiler.payloads import resolve as payloads
from tests.conftest import add_to_store, nix_copy, nix_dump, nix_hash, require_tool

METHODS = ["xz", "zstd", "bzip2", "br", "gzip", "none"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real store path made with ``nix-store --add`` (its tree has every node type)."""
    require_tool("nix-store", "nix-bin")
    from tests.conftest import make_example_tree

    tree = make_example_tree(tmp_path_factory.mktemp("src"))
    (tree / "big.bin").write_bytes(os.urandom(300_000) * 3)
    return add_to_store(tree)


@pytest.mark.parametrize("method", METHODS)
def test_reads_and_checks_a_real_nix_binary_cache(
    store_path: str, tmp_path: Path, method: str
) -> None:
    cache = nix_copy(store_path, tmp_path / "cache", f"compression={method}")
    [p] = payloads.resolve([str(cache)])
    assert p.klass == "cache" and p.name == "d"
    assert p.read() == nix_dump(store_path)


def test_narinfo_fields_are_parsed(store_path: str, tmp_path: Path) -> None:
    cache = nix_copy(store_path, tmp_path / "c", "compression=xz")
    [name] = [n for n in os.listdir(cache) if n.endswith(".narinfo")]
    info = binary_cache.parse_narinfo((cache / name).read_text())
    assert info.store_path == store_path
    assert info.compression == "xz" and info.url.endswith(".nar.xz")
    assert str(info.nar_hash) == nix_hash(store_path)
    assert info.file_size == os.path.getsize(cache / info.url)
    assert info.references == ()
    assert binary_cache.read_cache_info(str(cache))["StoreDir"] == "/nix/store"


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("NarHash", "NarHash mismatch"),
        ("NarSize", "NarSize mismatch"),
        ("FileHash", "FileHash mismatch"),
        ("FileSize", "FileSize mismatch"),
    ],
)
def test_narinfo_mismatches_are_reported(
    store_path: str, tmp_path: Path, field: str, message: str
) -> None:
    cache = nix_copy(store_path, tmp_path / "c", "compression=zstd")
    [path] = list(cache.glob("*.narinfo"))
    text = path.read_text()
    lines = []
    for line in text.splitlines():
        if line.startswith(field + ": "):
            value = line.split(": ", 1)[1]
            if "Size" in field:
                value = str(int(value) + 1)
            else:
                value = str(nar.Hash("sha256", bytes(32)))
            line = f"{field}: {value}"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PayloadError, match=message):
        payloads.resolve([str(cache)])[0].read()


def test_missing_compression_means_bzip2(tmp_path: Path) -> None:
    info = binary_cache.parse_narinfo(
        "StorePath: /nix/store/nzz5fqqszmyg7qdz8k7ildfnzz8k8f28-d\nURL: nar/x.nar.bz2\n"
        "NarHash: sha256:1xc5npapmj126chywl5j4i5p7ix35ms642n8kkgxl71ci1vqj8dd\nNarSize: 1240\n"
    )
    assert info.compression == "bzip2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("StorePath: /nix/store/x\nURL: nar/x\nNarSize: 1\n", "lacks NarHash"),
        ("StorePath: x\nURL: u\nNarHash: sha256:zz\nNarSize: 1\n", ":3: NarHash: malformed"),
        (
            "StorePath: x\nURL: u\n"
            "NarHash: sha256:1xc5npapmj126chywl5j4i5p7ix35ms642n8kkgxl71ci1vqj8dd\nNarSize: big\n",
            ":4: NarSize is not an integer",
        ),
        ("garbage line\n", ":1: not a 'Key: value' line"),
    ],
)
def test_malformed_narinfo_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        binary_cache.parse_narinfo(text, "bad.narinfo")


@pytest.mark.parametrize(
    ("suffix", "command"),
    [
        (".nar", None),
        (".nar.xz", ["xz", "-T2", "--block-size=100000", "-c"]),
        (".nar.zst", ["zstd", "-q", "-c", "-19", "--long=27"]),
        (".nar.bz2", ["bzip2", "-c"]),
        (".nar.gz", ["gzip", "-c"]),
    ],
)
def test_nar_files_compressed_by_the_real_tools(
    tmp_path: Path, example_tree: Path, suffix: str, command: list[str] | None
) -> None:
    (example_tree / "big").write_bytes(os.urandom(100_000) * 4)
    data = nar.dump_bytes(example_tree)
    out = tmp_path / f"x{suffix}"
    if command is None:
        out.write_bytes(data)
    else:
        require_tool(command[0], "xz-utils" if command[0] == "xz" else command[0])
        out.write_bytes(subprocess.run(command, input=data, capture_output=True, check=True).stdout)
    [p] = payloads.resolve([str(out)])
    assert p.klass == "nar-file" and p.read() == data


def test_multi_frame_zstd_like_nix_2_35(tmp_path: Path, example_tree: Path) -> None:
    import zstandard

    data = nar.dump_bytes(example_tree) + b""
    half = len(data) // 2
    frames = b"".join(
        zstandard.ZstdCompressor(level=3, write_content_size=True).compress(part)
        for part in (data[:half], data[half:])
    )
    (tmp_path / "m.nar.zst").write_bytes(frames)
    assert payloads.resolve([str(tmp_path / "m.nar.zst")])[0].read() == data


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "cannot read xz data|truncated"),
        (lambda b: b[:20] + bytes([b[20] ^ 0xFF]) + b[21:], "cannot read xz data"),
        (lambda b: b + b"junk", "cannot read xz data"),
    ],
)
def test_corrupt_compressed_nar_is_one_clear_error(
    tmp_path: Path, example_tree: Path, damage: object, message: str
) -> None:
    import lzma

    good = lzma.compress(nar.dump_bytes(example_tree), preset=6, check=lzma.CHECK_CRC64)
    bad = tmp_path / "bad.nar.xz"
    bad.write_bytes(damage(good))  # type: ignore[operator]
    with pytest.raises(PayloadError, match=message) as info:
        payloads.resolve([str(bad)])[0].read()
    assert "bad.nar.xz" in str(info.value) and "\n" not in str(info.value)


def test_uncompressed_corrupt_nar_gives_the_offset(tmp_path: Path) -> None:
    (tmp_path / "x.nar").write_bytes(b"\x0d" + b"\0" * 7 + b"nix-archive-2\0\0\0")
    with pytest.raises(PayloadError, match=r"x.nar: corrupt NAR at byte 0: bad magic"):
        payloads.resolve([str(tmp_path / "x.nar")])[0].read()


def test_store_glob_closure_and_seeded_sample(store_path: str) -> None:
    name = os.path.basename(store_path)[33:]
    by_glob = payloads.resolve([f"store:{name}"])
    [ours] = [p for p in by_glob if p.source == store_path]
    assert ours.klass == "store" and ours.read() == nix_dump(store_path)
    closure = payloads.resolve([f"closure:{store_path}"])
    assert [p.source for p in closure] == [store_path]  # no references
    one = payloads.store_sample(1, seed=7)
    assert one == payloads.store_sample(1, seed=7)
    with pytest.raises(PayloadError, match="has only"):
        payloads.store_sample(10**6)


def test_unknown_spec_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no such path, and not one of store:GLOB"):
        payloads.resolve(["/definitely/not/here"])
    with pytest.raises(UsageError, match="sample:N"):
        payloads.resolve(["sample:x"])


def test_closure_of_a_non_store_path_is_an_error(tmp_path: Path) -> None:
    require_tool("nix-store", "nix-bin")
    with pytest.raises(PayloadError, match=r"closure:.*nix-store -qR"):
        payloads.resolve([f"closure:{tmp_path}"])


def test_default_corpus_has_its_classes_and_is_reproducible() -> None:
    quick = corpus.default_corpus()
    classes = {p.klass for p in quick}
    # these exist on any Linux machine with Python: its own stdlib, /usr/bin, /usr/share
    assert {"elf", "python", "docs", "locale", "compressed"} <= classes
    again = corpus.default_corpus()
    for a, b in zip(quick, again, strict=True):
        row_a, row_b = corpus.manifest_row(a, a.read()), corpus.manifest_row(b, b.read())
        assert row_a == row_b
        assert 0 < row_a["nar_size_bytes"] < 16 << 20  # type: ignore[operator]


def test_corpus_selection_is_a_real_nar_of_the_chosen_files(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / "d" / f"s{i}").mkdir(parents=True)
        (tmp_path / "d" / f"s{i}" / "f.so").write_bytes(bytes([i]) * 1000)
        (tmp_path / "d" / f"s{i}" / "g.txt").write_bytes(b"t" * 1000)
    sel, total = corpus.select_files(str(tmp_path / "d"), ("*.so",), 3500)
    assert total == 3000
    assert {p for p in sel if p.endswith(b".so")} == {b"s0/f.so", b"s1/f.so", b"s2/f.so"}
    # the selection's NAR equals Nix's NAR of a copy holding only those files
    copy = tmp_path / "copy"
    for i in range(3):
        (copy / f"s{i}").mkdir(parents=True)
        shutil.copy(tmp_path / "d" / f"s{i}" / "f.so", copy / f"s{i}" / "f.so")
    assert nar.dump_bytes(tmp_path / "d", select=sel.__contains__) == nix_dump(copy)
