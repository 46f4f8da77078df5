"""The NAR reader: listing, and rejection of corrupt input with the byte offset."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from profiler import nar
from profiler.errors import NarFormatError
from profiler.nar import nar_str

S = nar_str
OPEN, CLOSE = S(b"("), S(b")")


def regular(contents: bytes, executable: bool = False) -> bytes:
    exe = S(b"executable") + S(b"") if executable else b""
    return OPEN + S(b"type") + S(b"regular") + exe + S(b"contents") + S(contents) + CLOSE


def directory(*entries: tuple[bytes, bytes]) -> bytes:
    body = b"".join(
        S(b"entry") + OPEN + S(b"name") + S(n) + S(b"node") + node + CLOSE for n, node in entries
    )
    return OPEN + S(b"type") + S(b"directory") + body + CLOSE


def symlink(target: bytes) -> bytes:
    return OPEN + S(b"type") + S(b"symlink") + S(b"target") + S(target) + CLOSE


MAGIC = S(b"nix-archive-1")


def entries(data: bytes) -> list[nar.NarEntry]:
    return list(nar.iter_entries(io.BytesIO(data), source="x.nar"))


def reject(data: bytes) -> NarFormatError:
    with pytest.raises(NarFormatError) as info:
        nar.validate(io.BytesIO(data), source="x.nar")
    return info.value


def test_lists_the_reference_example(example_tree: Path) -> None:
    data = nar.dump_bytes(example_tree)
    got = [(e.path, e.type, e.size, e.executable, e.target) for e in entries(data)]
    assert got == [
        (b"", "directory", 0, False, b""),
        (b"a.txt", "regular", 6, False, b""),
        (b"empty", "regular", 0, False, b""),
        (b"emptydir", "directory", 0, False, b""),
        (b"link", "symlink", 0, False, b"a.txt"),
        (b"sub", "directory", 0, False, b""),
        (b"sub/run.sh", "regular", 18, True, b""),
    ]
    a = entries(data)[1]
    assert data[a.offset : a.offset + a.size] == b"hello\n"
    summary = nar.validate(io.BytesIO(data))
    assert (
        summary.nar_size,
        summary.files,
        summary.directories,
        summary.symlinks,
        summary.content_bytes,
    ) == (1240, 3, 3, 1, 24)


def test_contents_sink_and_hasher_see_everything() -> None:
    data = MAGIC + directory((b"a", regular(b"x" * 5000)), (b"b", regular(b"yz", True)))
    seen: dict[bytes, bytes] = {}
    h = hashlib.sha256()
    for _ in nar.iter_entries(
        io.BytesIO(data),
        hasher=h,
        sink=lambda e, c: seen.__setitem__(e.path, seen.get(e.path, b"") + c),
    ):
        pass
    assert seen == {b"a": b"x" * 5000, b"b": b"yz"}
    assert h.digest() == hashlib.sha256(data).digest()


def test_root_can_be_a_file_or_symlink() -> None:
    assert entries(MAGIC + regular(b"hi"))[0].size == 2
    assert entries(MAGIC + symlink(b"/x"))[0].target == b"/x"


def test_bad_magic() -> None:
    err = reject(S(b"nix-archive-2") + regular(b""))
    assert err.offset == 0 and "bad magic" in str(err)
    assert "x.nar: corrupt NAR at byte 0" in str(err)


def test_non_zero_padding_reports_its_offset() -> None:
    good = MAGIC + regular(b"abc")
    pos = good.index(b"abc") + 3
    bad = good[:pos] + b"\x01" + good[pos + 1 :]
    err = reject(bad)
    assert err.offset == pos and "non-zero padding" in str(err)


def test_unsorted_and_duplicate_names() -> None:
    data = MAGIC + directory((b"b", regular(b"")), (b"a", regular(b"")))
    err = reject(data)
    assert "unsorted directory entry b'a' after b'b'" in str(err)
    assert data[err.offset + 8 : err.offset + 9] == b"a"
    err = reject(MAGIC + directory((b"a", regular(b"")), (b"a", regular(b""))))
    assert "duplicate directory entry" in str(err)


def test_sort_order_is_bytewise() -> None:
    # 'é' (C3 A9) sorts after 'z' and before 0xFF; a str sort would disagree for these
    ok = MAGIC + directory(
        (b"z", regular(b"")), ("é".encode(), regular(b"")), (b"\xff", regular(b""))
    )
    assert len(entries(ok)) == 4


@pytest.mark.parametrize("name", [b"", b".", b"..", b"a/b", b"a\0b", b"x" * 256])
def test_invalid_names(name: bytes) -> None:
    err = reject(MAGIC + directory((name, regular(b""))))
    assert "file name" in str(err)


def test_symlink_targets_must_be_non_empty() -> None:
    assert "invalid symlink target" in str(reject(MAGIC + symlink(b"")))


def test_unknown_type_and_misplaced_tag() -> None:
    bad = MAGIC + OPEN + S(b"type") + S(b"fifo") + CLOSE
    err = reject(bad)
    assert "unknown node type b'fifo'" in str(err) and err.offset == len(MAGIC) + 32
    err = reject(MAGIC + OPEN + S(b"type") + S(b"regular") + S(b"size") + CLOSE)
    assert "expected 'contents'" in str(err)


def test_every_truncation_is_rejected_with_an_offset(example_tree: Path) -> None:
    data = nar.dump_bytes(example_tree)
    for cut in range(len(data)):
        err = reject(data[:cut])
        assert "truncated" in str(err), cut
        assert err.offset <= cut


def test_trailing_data_is_rejected() -> None:
    data = MAGIC + regular(b"x")
    err = reject(data + b"\0" * 8)
    assert err.offset == len(data) and "trailing data" in str(err)


def test_huge_length_is_rejected_before_allocating() -> None:
    bad = MAGIC + (1 << 62).to_bytes(8, "little")
    err = reject(bad)
    assert "at most 32 allowed" in str(err) and err.offset == len(MAGIC)
