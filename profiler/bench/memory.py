"""Peak working memory of a codec, measured on a streaming run that discards its output.

A NAR is compressed and decompressed in 1 MiB pieces (as Nix streams it), so the peak is
the codec's own state (xz-6's ~94 MiB encoder, a long window's decoder), not the size of
the output buffer. The peak comes from the kernel: ``/proc/self/clear_refs`` resets the
resident-set high-water mark (``VmHWM``) before the run, and the rise above the resident
set at that moment is the figure. Where the kernel refuses the reset the run is reported
without a peak (``None``), never with a guess.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from profiler.codecs import Codec, CodecSpec

PIECE_BYTES = 1 << 20


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def peak_bytes(fn: Callable[[], object]) -> int | None:
    """Bytes of resident memory ``fn`` added at its peak, or None if unmeasurable here."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        base = _status_kib("VmRSS")
    except OSError:
        fn()
        return None
    fn()
    return max(0, _status_kib("VmHWM") - base) * 1024


def _pieces(data: bytes) -> Iterator[memoryview]:
    view = memoryview(data)
    for i in range(0, len(data), PIECE_BYTES):
        yield view[i : i + PIECE_BYTES]


def stream_compress(codec: Codec, data: bytes) -> int:
    """Compress ``data`` piece by piece, dropping the output; return the compressed size.

    Parallel xz and framed zstd run their in-memory path (their blocks and frames are
    whole buffers by design), so their peak includes the pieces in flight.
    """
    spec = codec.spec
    enc = _encoder(spec)
    if enc is None:
        return len(codec.compress(data))
    total = 0
    for piece in _pieces(data):
        total += len(enc.compress(piece))
    return total + len(enc.flush())


def _encoder(spec: CodecSpec) -> Any:
    level = spec.level
    if spec.method == "xz" and spec.threads == 1:
        preset = (level or 0) | (lzma.PRESET_EXTREME if spec.extreme else 0)
        return lzma.LZMACompressor(lzma.FORMAT_XZ, lzma.CHECK_CRC64, preset)
    if spec.method == "zstd" and not spec.frame_bytes:
        from profiler.codecs.run import zstd_compressor

        return zstd_compressor(spec).compressobj()
    if spec.method == "gzip":
        return zlib.compressobj(level or 6, zlib.DEFLATED, 31)
    if spec.method == "bzip2":
        return bz2.BZ2Compressor(level or 9)
    if spec.method == "br":
        import brotli

        return _Brotli(brotli.Compressor(quality=11 if level is None else level, lgwin=22))
    return None


class _Brotli:
    def __init__(self, enc: Any) -> None:
        self.enc = enc

    def compress(self, piece: memoryview) -> bytes:
        return self.enc.process(bytes(piece))

    def flush(self) -> bytes:
        return self.enc.finish()


def stream_decompress(codec: Codec, blob: bytes) -> int:
    """Decompress ``blob`` into 1 MiB pieces, dropping them; return the NAR size."""
    method = codec.spec.method
    if method == "none":
        return len(blob)
    if method == "zstd":
        import zstandard

        dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
        reader = dctx.stream_reader(io.BytesIO(blob), read_across_frames=True)
        return _drain(reader.read)
    if method == "br":
        import brotli

        dec = brotli.Decompressor()
        return sum(len(dec.process(bytes(p))) for p in _pieces(blob))
    if method == "gzip":
        return _drain(io.BufferedReader(_GzipPieces(blob)).read)
    opener = lzma.LZMAFile if method == "xz" else bz2.BZ2File
    return _drain(opener(io.BytesIO(blob)).read)


def _drain(read: Callable[[int], bytes]) -> int:
    total = 0
    while piece := read(PIECE_BYTES):
        total += len(piece)
    return total


class _GzipPieces(io.RawIOBase):
    def __init__(self, blob: bytes) -> None:
        self.dec = zlib.decompressobj(31)
        self.tail = blob

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        out = self.dec.decompress(self.tail, len(buf))
        self.tail = self.dec.unconsumed_tail
        buf[: len(out)] = out
        return len(out)
