"""Running a :class:`~profiler.codecs.spec.CodecSpec`: Nix's NAR compression methods over the
real libraries, run the way Nix and Hydra run them.

:func:`make_codec` turns a spec into a :class:`Codec` with ``compress(data) -> bytes`` and
``decompress(data) -> bytes`` over the real libraries (liblzma, libzstd via zstandard,
libbrotli, zlib, libbz2). These work on whole buffers in memory, for the benchmark's timed
round trips; files and streams are read by :mod:`profiler.codecs.streams`.
"""

from __future__ import annotations

import bz2
import lzma
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from profiler.codecs import xzmt
from profiler.codecs.spec import CodecSpec


@dataclass(frozen=True)
class Codec:
    """A runnable codec: ``compress`` and ``decompress`` whole buffers in memory."""

    spec: CodecSpec
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


def make_codec(spec: CodecSpec) -> Codec:
    """The real-library implementation of ``spec``."""
    makers = {"xz": _xz, "zstd": _zstd, "br": _br, "gzip": _gzip, "bzip2": _bzip2, "none": _none}
    return makers[spec.method](spec)


def _split(data: bytes, size: int) -> list[memoryview]:
    view = memoryview(data)
    return [view[i : i + size] for i in range(0, len(data), size)] or [view]


def _xz(spec: CodecSpec) -> Codec:
    preset = (spec.level if spec.level is not None else 6) | (
        lzma.PRESET_EXTREME if spec.extreme else 0
    )

    def one(block: bytes | memoryview) -> bytes:
        return lzma.compress(block, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=preset)

    def compress(data: bytes) -> bytes:
        if spec.threads == 1 or not xzmt.available():
            return one(data)
        # liblzma's multithreaded encoder, as Nix (libarchive) and the Rust runner call it:
        # one stream of independent blocks that record their sizes
        enc = xzmt.MtEncoder(
            preset & ~lzma.PRESET_EXTREME,
            extreme=spec.extreme,
            block_bytes=spec.block_bytes,
            threads=spec.threads,
        )
        return enc.compress(data) + enc.flush()

    return Codec(spec, compress, _xz_decompress)


def _xz_decompress(data: bytes) -> bytes:
    out = []
    while data:
        dec = lzma.LZMADecompressor(lzma.FORMAT_XZ)
        out.append(dec.decompress(data))
        if not dec.eof:
            raise lzma.LZMAError("xz stream is truncated")
        data = dec.unused_data.lstrip(b"\0")
    return b"".join(out)


def zstd_compressor(spec: CodecSpec) -> Any:
    """A ``zstandard.ZstdCompressor`` for ``spec`` (level, workers, long window)."""
    import zstandard

    level = spec.level if spec.level is not None else 3
    threads = spec.threads if spec.threads > 1 else 0
    if spec.long_log:
        params = zstandard.ZstdCompressionParameters.from_level(
            level, window_log=spec.long_log, enable_ldm=True, threads=threads
        )
        return zstandard.ZstdCompressor(compression_params=params)
    return zstandard.ZstdCompressor(level=level, threads=threads)


def _zstd(spec: CodecSpec) -> Codec:
    import zstandard

    # zstandard's contexts are not thread-safe: each thread gets its own (the testbed
    # compresses in many threads; a shared context crashes the process)
    local = threading.local()

    def contexts() -> tuple[Any, Any]:
        if not hasattr(local, "cctx"):
            local.cctx = zstd_compressor(spec)
            local.dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
        return local.cctx, local.dctx

    def compress(data: bytes) -> bytes:
        cctx, _ = contexts()
        if not spec.frame_bytes:
            # a streaming encoder that was not told the size, as libarchive and the Rust
            # builder run it
            cobj = cctx.compressobj()
            return bytes(cobj.compress(data) + cobj.flush())
        # Nix 2.35: independent frames of 16 MiB input, each recording its content size
        return b"".join(cctx.compress(part) for part in _split(data, spec.frame_bytes))

    def decompress(data: bytes) -> bytes:
        _, dctx = contexts()
        return bytes(dctx.decompressobj(read_across_frames=True).decompress(data))

    return Codec(spec, compress, decompress)


def _br(spec: CodecSpec) -> Codec:
    import brotli

    quality = spec.level if spec.level is not None else 11
    return Codec(
        spec,
        lambda d: bytes(brotli.compress(d, quality=quality, lgwin=22)),
        lambda d: bytes(brotli.decompress(d)),
    )


def _gzip(spec: CodecSpec) -> Codec:
    level = spec.level if spec.level is not None else 6

    def compress(data: bytes) -> bytes:
        c = zlib.compressobj(level, zlib.DEFLATED, 31)  # gzip wrapper, as libarchive writes
        return c.compress(data) + c.flush()

    return Codec(spec, compress, lambda d: zlib.decompress(d, 31))


def _bzip2(spec: CodecSpec) -> Codec:
    level = spec.level if spec.level is not None else 9
    return Codec(spec, lambda d: bz2.compress(d, level), bz2.decompress)


def _none(spec: CodecSpec) -> Codec:
    return Codec(spec, bytes, bytes)
