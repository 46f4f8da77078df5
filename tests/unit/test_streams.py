"""codecs.streams: one decompressing reader, one policy for truncated and corrupt input."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from pathlib import Path

import brotli
import pytest
import zstandard

from profiler.codecs import (
    Guarded,
    TruncatedInput,
    decode_errors,
    open_decompressed,
    open_text,
    sniff,
)
from profiler.errors import PayloadError

DATA = b"".join(b"line %06d of a journal, or of a NAR\n" % i for i in range(40_000))
PACK: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "xz": lambda d: lzma.compress(d, check=lzma.CHECK_CRC64),
    "bzip2": bz2.compress,
    "zstd": zstandard.ZstdCompressor(level=3, write_checksum=True).compress,
    "br": lambda d: brotli.compress(d, quality=5),
}
MEMBERS = ["gzip", "xz", "bzip2", "zstd"]


def _read(blob: bytes, method: str, size: int = 1 << 16) -> tuple[bytes, BaseException | None]:
    """Everything the reader gives in reads of ``size``, and the error it ends with."""
    stream = open_decompressed(io.BytesIO(blob), method, "x")
    got = bytearray()
    try:
        while chunk := stream.read(size):
            got += chunk
    except decode_errors() as exc:
        return bytes(got), exc
    return bytes(got), None


@pytest.mark.parametrize("method", sorted(PACK))
@pytest.mark.parametrize("size", [1, 4096, 1 << 20])
def test_whole_streams_read_back(method: str, size: int) -> None:
    data = DATA[:200_000] if size == 1 else DATA
    assert _read(PACK[method](data), method, size) == (data, None)


@pytest.mark.parametrize("method", MEMBERS)
def test_members_follow_each_other(method: str) -> None:
    half = len(DATA) // 2
    blob = PACK[method](DATA[:half]) + PACK[method](DATA[half:])
    assert _read(blob, method) == (DATA, None)


@pytest.mark.parametrize("method", ["gzip", "xz", "bzip2"])
def test_zero_padding_after_a_member(method: str) -> None:
    half = len(DATA) // 2
    blob = PACK[method](DATA[:half]) + b"\0" * 8 + PACK[method](DATA[half:]) + b"\0" * 4
    assert _read(blob, method) == (DATA, None)


@pytest.mark.parametrize("method", sorted(PACK))
@pytest.mark.parametrize("keep", [0.0, 0.3, 0.7, 0.999])
def test_truncation_delivers_what_came_before_then_says_so(method: str, keep: float) -> None:
    packed = PACK[method](DATA)
    got, error = _read(packed[: int(len(packed) * keep)], method)
    assert isinstance(error, TruncatedInput), (method, keep, error)
    assert DATA.startswith(got)
    if method in ("gzip", "xz", "bzip2") and keep > 0.5:
        assert len(got) > len(DATA) // 4  # the decodable part was delivered


@pytest.mark.parametrize("method", sorted(PACK))
def test_bytes_after_the_last_member_are_corrupt(method: str) -> None:
    got, error = _read(PACK[method](DATA) + b"junk", method)
    assert error is not None and not isinstance(error, TruncatedInput)
    if method == "br":  # the piece holding the end is lost with the junk (module docstring)
        assert DATA.startswith(got)
    else:
        assert got == DATA


@pytest.mark.parametrize("method", MEMBERS)
def test_a_flipped_byte_is_an_error(method: str) -> None:
    packed = bytearray(PACK[method](DATA))
    packed[len(packed) // 2] ^= 0xFF
    assert _read(bytes(packed), method)[1] is not None


def test_the_error_stays() -> None:
    stream = open_decompressed(io.BytesIO(PACK["xz"](DATA)[:100]), "xz", "x")
    got = stream.read(1 << 20)  # what the 100 bytes decode to comes first
    assert DATA.startswith(got)
    for _ in range(2):
        with pytest.raises(TruncatedInput):
            stream.read(1 << 20)


def test_unknown_method_names_the_source() -> None:
    with pytest.raises(PayloadError, match=r"^f\.nar\.lz: unsupported compression 'lz' \(known"):
        open_decompressed(io.BytesIO(b""), "lz", "f.nar.lz")
    raw = io.BytesIO(b"plain")
    assert open_decompressed(raw, "none") is raw


def test_sniff_knows_the_log_methods_by_their_magic() -> None:
    for method in ("gzip", "xz", "zstd"):
        assert sniff(PACK[method](b"x")[:6]) == method
    assert sniff(b"Nov 29") == sniff(b"") == sniff(PACK["bzip2"](b"x")[:6]) == "none"


def test_guarded_reads_damage_as_the_end_and_keeps_it() -> None:
    packed = PACK["gzip"](DATA)
    cut = open_decompressed(io.BytesIO(packed[: len(packed) // 2]), "gzip")
    guard = Guarded(cut)
    text = io.BufferedReader(guard).read()
    assert DATA.startswith(text) and len(text) > 0
    assert isinstance(guard.error, TruncatedInput)


@pytest.mark.parametrize("method", ["none", "gzip", "xz", "zstd"])
def test_open_text_gives_the_lines_before_the_damage_then_raises(
    tmp_path: Path, method: str
) -> None:
    text = DATA.decode()
    packed = DATA if method == "none" else PACK[method](DATA)
    whole = tmp_path / "whole"
    whole.write_bytes(packed)
    with open_text(str(whole)) as f:
        assert f.read() == text
    if method == "none":
        return
    cut = tmp_path / "cut"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    lines: list[str] = []
    with open_text(str(cut)) as f, pytest.raises(TruncatedInput):
        lines.extend(f)
    assert lines and text.startswith("".join(lines))


def test_a_gzip_member_decodes_as_zlib_reads_it() -> None:
    """The reference the collectors' tests count with: what zlib decodes from a cut member."""
    packed = PACK["gzip"](DATA)[:5000]
    expected = zlib.decompressobj(wbits=31).decompress(packed)
    assert _read(packed, "gzip")[0] == expected
