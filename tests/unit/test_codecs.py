"""Codec specs (short forms and store-URI query strings) and real-library round trips."""

from __future__ import annotations

import hashlib
import lzma
import os
import subprocess

import pytest

from profiler.codecs import CodecSpec, make_codec, parse_spec
from profiler.errors import UsageError
from tests.conftest import require_tool

CORES = len(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def nar_bytes() -> bytes:
    """A real, mixed NAR of ~3 MiB: this repo's sources plus random and repeated data."""
    from profiler import nar

    here = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    data = nar.dump_bytes(os.path.join(here, "profiler"))
    return data + os.urandom(1 << 20) + data * 3


@pytest.mark.parametrize(
    ("text", "label", "threads", "writer"),
    [
        ("xz:6", "xz:6", 1, "nix"),
        ("xz", "xz:6", 1, "nix"),
        ("xz:9e", "xz:9e", 1, "nix"),
        ("xz:6:extreme", "xz:6e", 1, "nix"),
        ("xz:6:parallel", f"xz:6{'' if CORES == 1 else f':threads={CORES}'}", CORES, "nix"),
        ("xz:6:threads=4", "xz:6:threads=4", 4, "nix"),
        ("zstd:19", "zstd:19", 1, "nix"),
        ("zst:3", "zstd:3", 1, "nix"),
        ("zstd:19:long=27", "zstd:19:long=27", 1, "nix"),
        ("zstd:19:long", "zstd:19:long=27", 1, "nix"),
        ("zstd:3:threads=2", "zstd:3:threads=2", 2, "nix"),
        ("zstd:3:frames=16M", "zstd:3:frames=16M", 1, "nix"),
        ("zstd:22", "zstd:22", 1, "nix"),
        ("gzip:6", "gzip:6", 1, "nix"),
        ("bzip2:9", "bzip2:9", 1, "nix"),
        ("br:6", "br:6", 1, "nix"),
        ("none", "none", 1, "nix"),
        ("compression=zstd&compression-level=19", "zstd:19", 1, "nix"),
        (
            "compression=zstd&compression-level=19&parallel-compression=true",
            f"zstd:19{'' if CORES == 1 else f':threads={CORES}'}",
            CORES,
            "nix",
        ),
        ("compression=xz", "xz:6", 1, "nix"),
        ("compression-level=9", "xz:9", 1, "nix"),
        ("compression=zstd&compression-level=-1", "zstd:3", 1, "nix"),
        (
            "s3://nix-cache?region=eu-west-1&compression=zstd&compression-level=19&write-nar-listing=1",
            "zstd:19",
            1,
            "nix",
        ),
        ("compression=zstd&compression-level=19&as=rust-presigned", "zstd:3", 1, "rust-presigned"),
        ("compression=zstd&compression-level=5&as=rust-presigned", "zstd:5", 1, "rust-presigned"),
        ("compression=xz&compression-level=9&as=rust-presigned", "xz:9", 1, "rust-presigned"),
        ("compression=xz&as=rust", "xz:5", 1, "rust"),
        ("compression=xz&parallel-compression=true&as=rust", "xz:5:threads=4", 4, "rust"),
        ("compression=zstd&compression-level=30&as=rust", "zstd:22", 1, "rust"),
    ],
)
def test_spec_forms(text: str, label: str, threads: int, writer: str) -> None:
    spec = parse_spec(text)
    assert (spec.label, spec.threads, spec.writer) == (label, threads, writer)


def test_nix235_layout_is_16mib_frames_and_parallel_by_default() -> None:
    spec = parse_spec("compression=zstd&compression-level=19&as=nix235")
    assert spec.frame_bytes == 16 << 20
    assert spec.threads == min(CORES, 4)
    off = parse_spec("compression=zstd&parallel-compression=false&as=nix235")
    assert off.threads == 1


def test_parallel_xz_uses_blocks_of_three_dictionaries() -> None:
    assert parse_spec("xz:6:threads=2").block_bytes == 24 << 20
    assert parse_spec("xz:9:threads=2").block_bytes == 192 << 20


@pytest.mark.parametrize(
    ("text", "writer"),
    [
        ("xz:6", "rust"),
        ("zstd:19", "rust-presigned"),
        ("none", "rust"),
        ("compression=zstd&compression-level=19", "rust-presigned"),
        ("s3://cache?compression=xz&parallel-compression=true", "rust"),
        ("zstd:19:long=27", "rust"),  # an option's '=' is no query string
    ],
)
def test_default_writer_is_the_writer_the_text_does_not_name(text: str, writer: str) -> None:
    """The testbed says who writes (its Rust generation) without editing the spec text."""
    sep = "&" if "=" in text.split(":", 1)[0] or "?" in text else ":"
    assert parse_spec(text, default_writer=writer) == parse_spec(f"{text}{sep}as={writer}")
    assert parse_spec(text, default_writer=None) == parse_spec(text)
    assert parse_spec(f"{text}{sep}as=nix235", default_writer=writer).writer == "nix235"


def test_notes_explain_reinterpretation() -> None:
    assert (
        "Nix ignores compression-level for br"
        in parse_spec("compression=br&compression-level=6").notes[0]
    )
    assert parse_spec("compression=br&compression-level=6").level == 11
    assert parse_spec("br:6").level == 6  # a short form means what it says
    assert any(
        "maps level 19 to 3" in n
        for n in parse_spec("compression=zstd&compression-level=19&as=rust-presigned").notes
    )
    assert not parse_spec("zstd:19:long=28").client_compatible


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lz4", "unknown method 'lz4'; valid: xz, zstd, br, gzip, bzip2, none"),
        ("xz:10", "level 10 out of range for xz (valid: xz 0-9, zstd 1-22"),
        ("zstd:23", "level 23 out of range for zstd"),
        ("gzip:0", "level 0 out of range for gzip"),
        ("zstd:x", "level must be an integer, got 'x'"),
        ("zstd:3:fast", "unknown option 'fast'"),
        ("xz:6:long=27", "long=N is a zstd option"),
        ("zstd:3:long=40", "long=40 out of range (10-31)"),
        ("zstd:3:extreme", "extreme is an xz option"),
        ("zstd:3:as=lix", "unknown writer as='lix'; valid: nix, nix235, rust, rust-presigned"),
        ("compression=zstd&compresion-level=19", "unknown store setting(s) 'compresion-level'"),
        ("compression=lzip", "unknown method 'lzip'"),
        ("zstd:3:threads=0", "threads must be at least 1"),
    ],
)
def test_bad_specs_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_spec(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "xz:0",
        "xz:6",
        "xz:3e",
        "xz:1:threads=2",
        "zstd:1",
        "zstd:19",
        "zstd:19:long=27",
        "zstd:3:threads=2",
        "zstd:3:frames=1M",
        "zstd:3:as=nix235",
        "br:5",
        "gzip:6",
        "bzip2:9",
        "none",
        "compression=zstd&compression-level=19&as=rust-presigned",
    ],
)
def test_every_codec_round_trips(nar_bytes: bytes, text: str) -> None:
    codec = make_codec(parse_spec(text))
    blob = codec.compress(nar_bytes)
    if text != "none":
        assert len(blob) < len(nar_bytes)
    assert hashlib.sha256(codec.decompress(blob)).digest() == hashlib.sha256(nar_bytes).digest()


def test_xz6_output_size_equals_the_xz_cli(nar_bytes: bytes) -> None:
    require_tool("xz", "xz-utils")
    ours = make_codec(parse_spec("xz:6")).compress(nar_bytes)
    cli = subprocess.run(
        ["xz", "-6", "-T1", "--check=crc64", "-c"], input=nar_bytes, capture_output=True, check=True
    ).stdout
    assert len(ours) == len(cli)
    assert lzma.decompress(cli) == nar_bytes


def test_zstd_output_decodes_with_the_zstd_cli(nar_bytes: bytes) -> None:
    require_tool("zstd", "zstd")
    for text in ("zstd:19:long=27", "zstd:3:frames=1M", "zstd:3:threads=2"):
        blob = make_codec(parse_spec(text)).compress(nar_bytes)
        out = subprocess.run(
            ["zstd", "-d", "-c", "--long=27"], input=blob, capture_output=True, check=True
        ).stdout
        assert out == nar_bytes, text


def test_parallel_xz_blocks_decode_with_the_xz_cli() -> None:
    require_tool("xz", "xz-utils")
    data = os.urandom(1 << 16) * 40  # 2.5 MiB: three 1 MiB blocks at preset 0
    blob = make_codec(parse_spec("xz:0:threads=2")).compress(data)
    assert (
        subprocess.run(["xz", "-d", "-c"], input=blob, capture_output=True, check=True).stdout
        == data
    )


def test_nix235_frames_record_their_content_size(nar_bytes: bytes) -> None:
    import zstandard

    blob = make_codec(parse_spec("zstd:3:frames=1M")).compress(nar_bytes)
    params = zstandard.get_frame_parameters(blob)
    assert params.content_size == 1 << 20
    streamed = make_codec(parse_spec("zstd:19")).compress(nar_bytes)
    params = zstandard.get_frame_parameters(streamed)
    assert params.content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert params.window_size == 8 << 20  # level 19's window when the size is not pledged


def test_extension_and_compatibility() -> None:
    assert CodecSpec("zstd", 3).extension == ".zst"
    assert CodecSpec("gzip", 6).extension == ""
    assert CodecSpec("zstd", 19, long_log=27).client_compatible


def test_one_codec_is_safe_to_share_between_threads(nar_bytes: bytes) -> None:
    # the testbed compresses in many threads with one Codec; zstandard's contexts are not
    # thread-safe, so sharing one used to crash the process
    from concurrent.futures import ThreadPoolExecutor

    codec = make_codec(parse_spec("zstd:3"))
    chunks = [nar_bytes[i::7] for i in range(7)] * 4
    with ThreadPoolExecutor(4) as pool:
        blobs = list(pool.map(codec.compress, chunks))
        backs = list(pool.map(codec.decompress, blobs))
    assert backs == chunks
