"""The audit's pure parts: what headers say, which writer reproduces the bytes, the Rust
presigned level mapping, sampling, and the bill's intervals."""

from __future__ import annotations

import bz2
import lzma
import os
import random
import zlib
from dataclasses import dataclass
from datetime import datetime

import brotli
import numpy as np
import pandas as pd
import pytest
import zstandard

from profiler.audit import bill as billing
from profiler.audit.headers import read_layout
from profiler.audit.infer import infer
from profiler.audit.run import AuditOptions, choose, versus_configured
from profiler.audit.writers import presigned_level
from profiler.codecs import make_codec, parse_spec, xzmt
from profiler.errors import PayloadError


def payload(n: int, seed: int = 1) -> bytes:
    """Text-like data that compresses, different at every level (not random, not constant)."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(range(97, 123), k=rng.randint(2, 9))) for _ in range(400)]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + (b"\n" if rng.random() < 0.1 else b" ")
        if rng.random() < 0.02:
            out += os.urandom(rng.randint(1, 40))
    return bytes(out[:n])


DATA = payload(600_000)


def test_xz_single_thread_and_multithreaded_layouts() -> None:
    st = lzma.compress(DATA, preset=6, check=lzma.CHECK_CRC64)
    lay = read_layout("xz", st)
    assert (lay.dict_bytes, lay.blocks, lay.sized_blocks, lay.check) == (8 << 20, 1, False, "crc64")
    enc = xzmt.MtEncoder(0, block_bytes=0)
    mt = enc.compress(DATA) + enc.flush()
    lay = read_layout("xz", mt)
    assert lay.dict_bytes == 256 << 10 and lay.sized_blocks and lay.blocks == 1
    enc = xzmt.MtEncoder(0, block_bytes=200_000)
    lay = read_layout("xz", enc.compress(DATA) + enc.flush())
    assert lay.blocks == 3 and lay.block_bytes == 200_000
    with pytest.raises(PayloadError, match="truncated"):
        read_layout("xz", st[:-20], "x.nar.xz")


def test_zstd_layouts_streamed_sized_and_framed() -> None:
    cobj = zstandard.ZstdCompressor(level=19).compressobj()
    streamed = cobj.compress(DATA) + cobj.flush()
    lay = read_layout("zstd", streamed)
    assert lay.frames == 1 and lay.window_log == 23 and lay.frame_content_bytes == (None,)
    framed = make_codec(parse_spec("zstd:3:frames=256K")).compress(DATA)
    lay = read_layout("zstd", framed)
    assert lay.frames == 3 and lay.frame_content_bytes == (262144, 262144, 600_000 - 524288)
    checked = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(DATA)
    assert read_layout("zstd", checked).check == "xxh64"
    skippable = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"abcd"
    assert read_layout("zstd", skippable + streamed).extras == {"skippable_frames": 1}
    with pytest.raises(PayloadError, match="truncated"):
        read_layout("zstd", streamed[: len(streamed) // 2])


def test_other_headers() -> None:
    assert read_layout("bzip2", bz2.compress(DATA, 4)).level_hint == 4
    assert read_layout("br", brotli.compress(b"x" * 1000, lgwin=22)).window_log == 22
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    assert read_layout("gzip", c.compress(DATA) + c.flush()).level_hint == 9
    with pytest.raises(PayloadError, match="no gzip header"):
        read_layout("gzip", b"nope" * 10)


@pytest.mark.parametrize(
    "spec",
    ["xz:5", "xz:6", "xz:9", "xz:3e", "xz:1:parallel", "zstd:1", "zstd:3", "zstd:12",
     "zstd:19", "zstd:3:frames=256K", "zstd:3:long=27", "br:11", "bzip2:9", "gzip:6", "gzip:1"],
)  # fmt: skip
def test_the_writer_is_reproduced(spec: str) -> None:
    """Each writer this tool knows is found from its own bytes, at its own level."""
    s = parse_spec(spec)
    if s.method == "xz" and s.threads > 1:
        s = parse_spec(f"xz:{s.level}:threads=2")  # 2 threads and more write the same bytes
    stored = make_codec(s).compress(DATA)
    r = infer(s.method, read_layout(s.method, stored), DATA, stored)
    assert r.exact, r.writer
    expected = f"xz:{s.level}:parallel" if s.threads > 1 else s.label
    assert expected in r.matches, r.matches
    # a level, or a tie that says so (a tiny input that several levels write alike)
    assert r.level == s.level or (r.level is None and "tie" in r.writer), r.matches
    assert r.tried >= 1 and r.compared_bytes == len(DATA)


def test_a_tiny_nar_ties_and_says_so() -> None:
    tiny = b"nix-archive-1\0\0\0" * 4
    stored = make_codec(parse_spec("xz:6")).compress(tiny)
    r = infer("xz", read_layout("xz", stored), tiny, stored)
    assert r.exact and len(r.matches) > 1 and r.level is None
    assert "tie" in r.writer


def test_an_unknown_writer_is_not_claimed() -> None:
    """Bytes no candidate writes (an xz CRC32 stream from another program): no level."""
    stored = lzma.compress(DATA, preset=6, check=lzma.CHECK_CRC32)
    r = infer("xz", read_layout("xz", stored), DATA, stored)
    assert not r.exact and r.level is None and "no known writer" in r.writer


def test_a_prefix_match_is_labelled() -> None:
    stored = make_codec(parse_spec("zstd:3")).compress(DATA)
    r = infer("zstd", read_layout("zstd", stored), DATA, stored, max_bytes=300_000)
    assert r.exact and r.level == 3 and r.compared_bytes == 300_000
    assert "first" in r.writer


def test_presigned_level_mapping() -> None:
    """hydra 14332fbf presigned.rs:42-47: 1 fastest, 2-8 as given, 9 best, else default."""
    assert [presigned_level("zstd", n) for n in (None, 0, 1, 2, 8, 9, 10, 19)] == [
        3, 3, 1, 2, 8, 22, 3, 3
    ]  # fmt: skip
    assert [presigned_level("xz", n) for n in (None, 1, 6, 9, 19)] == [5, 0, 6, 9, 5]
    assert versus_configured("zstd", 3, "compression=zstd&compression-level=19") == (
        "not the configured 19: the Rust builders (presigned upload) write 19 as 3 "
        "(hydra 14332fbf subprojects/crates/binary-cache/src/presigned.rs:42-47)"
    )
    assert versus_configured("zstd", 19, "zstd:19").startswith("as configured (level 19")
    assert "no known writer" in versus_configured("zstd", 7, "zstd:19")
    assert "not the configured xz" in versus_configured("zstd", 3, "compression=xz")
    # no level: Nix writes xz 6, the Rust runner 5; both are "as configured"
    assert "Rust runner" in versus_configured("xz", 5, "compression=xz")
    assert "Nix" in versus_configured("xz", 6, "compression=xz")
    assert versus_configured("xz", 0, "compression=xz&compression-level=1").endswith(
        "presigned.rs:42-47)"
    )


@dataclass
class _Item:
    key: str
    last_modified: datetime | None = None


def test_sampling_is_seeded_uniform_and_bounded() -> None:
    items = [_Item(f"{i:04d}.narinfo") for i in range(1000)]
    a, n = choose(iter(items), AuditOptions(sample=50, seed=3))
    b, _ = choose(iter(items), AuditOptions(sample=50, seed=3))
    c, _ = choose(iter(items), AuditOptions(sample=50, seed=4))
    assert n == 1000 and len(a) == 50 and [x.key for x in a] == [x.key for x in b]
    assert {x.key for x in a} != {x.key for x in c}
    first, _ = choose(iter(items), AuditOptions(sample=5, order="listing"))
    assert [x.key for x in first] == [f"{i:04d}.narinfo" for i in range(5)]
    said: list[str] = []
    everything, _ = choose(iter(items * 25), AuditOptions(sample=None), said.append)
    assert len(everything) == 25_000
    assert said == [
        "audit: listing: 10000 narinfos so far",
        "audit: listing: 20000 narinfos so far",
    ]
    # uniform: over many seeds every decile is drawn about equally
    counts = np.zeros(10)
    for seed in range(200):
        got, _ = choose(iter(items), AuditOptions(sample=10, seed=seed))
        for x in got:
            counts[int(x.key[:4]) // 100] += 1
    assert counts.min() > 0.7 * counts.mean()


def test_bill_intervals_cover_and_say_when_too_few() -> None:
    rng = np.random.default_rng(0)
    n = 200
    nar = rng.integers(10_000, 5_000_000, n)
    rows = pd.DataFrame(
        {
            "nar_size": nar,
            "file_size": (nar * rng.uniform(0.2, 0.3, n)).astype(int),
            "decompress_cpu_seconds": rng.uniform(0.001, 0.01, n),
            "zstd:3|bytes": (nar * 0.28).astype(int),
            "zstd:3|compress_cpu_seconds": 0.01,
            "zstd:3|decompress_cpu_seconds": 0.002,
        }
    )
    b = billing.bill(rows, ["zstd:3"], listed=10_000)
    ratio = b["overall"]["ratio"]  # type: ignore[index]
    assert ratio["low"] < ratio["value"] < ratio["high"]
    assert abs(ratio["value"] - 0.25) < 0.01 and ratio["high"] - ratio["low"] < 0.03
    proj = b["overall"]["projections"]["zstd:3"]  # type: ignore[index]
    assert proj["bytes_vs_stored"]["low"] < proj["bytes_vs_stored"]["value"] < 0.2
    assert b["cache"]["narinfos"] == 10_000  # type: ignore[index]
    few = billing.bill(rows.head(3), [])
    assert few["overall"]["ratio"]["low"] is None  # type: ignore[index]
    assert not any(c["ci"] for c in few["classes"])  # type: ignore[union-attr]
    assert billing.size_class(1000) == "< 64 KiB" and billing.size_class(1 << 30) == ">= 256 MiB"
