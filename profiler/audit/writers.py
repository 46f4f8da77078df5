"""The writers a stored NAR may come from, as encoders that reproduce their bytes.

A :class:`Candidate` is one way of writing a method (level, threads, window, frames) and
names who writes that way. :func:`candidates` lists those that the headers
(:mod:`profiler.audit.headers`) leave possible, most likely first; :meth:`Candidate.encoder`
makes a streaming encoder (``compress(chunk)``, ``flush()``) over the real library, fed in
chunks as the writers feed theirs (the output of these encoders does not depend on how the
input is cut, so any chunking reproduces them).

Who writes what (sources pinned):

* Nix 2.4-2.34 compresses xz, zstd, bzip2 and gzip through libarchive's raw filters with the
  level passed as ``compression-level`` and ``threads=0`` for ``parallel-compression``
  (NixOS/nix 2.8.0 (69c6fb12ee) src/libutil/compression.cc:70-83), so zstd is one streamed
  frame of unknown size, xz one stream (one block, or the multithreaded encoder's sized
  blocks); br goes through libbrotli's stream encoder at its defaults, quality 11 and window
  22, whatever the level (:215-265).
* libarchive v3.6.2 (ba80276c)'s filters (what Debian's Nix 2.8 links): zstd through
  ``ZSTD_initCStream(level)`` and ``ZSTD_compressStream``, so no checksum and no content size
  (libarchive/archive_write_add_filter_zstd.c:264-335); gzip writes its own header, XFL 2
  at level 9, 4 at level 1, else 0 (archive_write_add_filter_gzip.c:224-231).
* Nix 2.35+ writes zstd itself: a new frame every 16 MiB of input, each pledged its exact
  size (so its header records it) and compressed in one ``ZSTD_e_end`` call, with
  ``ZSTD_c_nbWorkers`` = min(cores, 4) when parallel, which it is by default for zstd
  (NixOS/nix 88b09c64 src/libutil/compression.cc:354-454, the frame at :410-427).
* The Rust queue runner (hydra 14332fbf subprojects/crates/binary-cache/src/compression.rs:
  67-85) streams through async-compression: xz via liblzma's easy encoder (or the
  multithreaded one with 4 threads when parallel), zstd one frame of unknown size. Its
  default level is xz 5 and zstd 3; with presigned uploads the builder maps the configured
  level 1 -> fastest, 2-8 -> as given, 9 -> best, anything else -> default
  (src/presigned.rs:42-47), so a configured zstd 19 is written at 3.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from profiler.audit import zstdlib
from profiler.audit.headers import Layout
from profiler.codecs import xzmt
from profiler.codecs.spec import (
    _RUST_BEST,
    _RUST_DEFAULT,
    _RUST_FASTEST,
    XZ_DICT_BYTES,
    _size_label,
)

MiB = 1 << 20
NIX235_FRAME_BYTES = 16 * MiB


class Encoder(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


@dataclass(frozen=True)
class Candidate:
    """One way of writing: ``label`` is a codec spec in this tool's grammar."""

    method: str
    level: int | None
    label: str
    layout: str  # how the bytes are laid out, for people: "one stream", "16 MiB frames"...
    make: Callable[[], Encoder]
    # 0: what Nix and Hydra write; 1: what only other programs write (xz extreme, zstd long
    # windows), tried only when no tier-0 candidate reproduces the bytes
    tier: int = 0

    def encoder(self) -> Encoder:
        return self.make()


def presigned_level(method: str, configured: int | None) -> int | None:
    """The level the Rust builder compresses at when ``configured`` is the farm's
    ``compression_level`` (hydra 14332fbf src/presigned.rs:42-47; async-compression's Default,
    Fastest and Best per method as in :mod:`profiler.codecs.spec`)."""
    if method not in _RUST_DEFAULT:
        return None
    if configured == 1:
        return _RUST_FASTEST[method]
    if configured is not None and 2 <= configured <= 8:
        return configured
    if configured == 9:
        return _RUST_BEST[method]
    return _RUST_DEFAULT[method]


def writers_for(method: str, level: int | None, layout: str) -> list[str]:
    """Who writes ``method`` at ``level`` with ``layout``: short names for a report."""
    out: list[str] = []
    if method == "zstd" and layout.startswith("frames"):
        return [f"Nix >=2.35 (level {level}{', parallel' if 'workers' in layout else ''})"]
    if method == "zstd" and layout.startswith("one sized frame"):
        return [f"Nix >=2.35, a NAR under 16 MiB (level {level})", "a one-shot zstd call"]
    if method in ("xz", "zstd", "bzip2", "gzip"):
        parallel = "multithreaded" in layout
        nix = "Nix <=2.34" if method == "zstd" else "Nix"
        default = {"xz": 6, "zstd": 3, "bzip2": 9, "gzip": 6}[method]
        out.append(f"{nix}{' parallel' if parallel else ''} (level {level}"
                   f"{', its default' if level == default else ''})")  # fmt: skip
    if method == "br" and level == 11:
        out.append("Nix (br is always quality 11)")
    if method in _RUST_DEFAULT and not (method == "xz" and "multithreaded" in layout):
        rust_default = _RUST_DEFAULT[method]
        mapped = sorted(
            {str(c) for c in range(0, 23) if presigned_level(method, c) == level}
            - {str(c) for c in range(2, 9) if c != level}
        )
        if level == rust_default:
            out.append("Rust runner, presigned (its default: any level but 1-9 configured)")
        elif mapped:
            out.append(f"Rust runner, presigned (configured {'/'.join(mapped)})")
        out.append(
            f"Rust runner, direct upload (level {level}"
            f"{', its default' if level == rust_default else ''})"
        )
    elif method == "xz" and "multithreaded" in layout:
        out.append(f"Rust runner, direct upload with parallel (level {level})")
    return out


class _Frames:
    """Nix 2.35's writer: each ``frame_bytes`` of input compressed as one frame pledged its
    size (``ZSTD_CCtx_setPledgedSrcSize``, then ``ZSTD_e_end``) by ``one``."""

    def __init__(self, one: Callable[[bytes], bytes], frame_bytes: int) -> None:
        self._one = one
        self._frame = frame_bytes
        self._buf = bytearray()
        self._any = False

    def compress(self, data: bytes) -> bytes:
        self._buf += data
        out = []
        while len(self._buf) >= self._frame:
            out.append(self._one(bytes(self._buf[: self._frame])))
            del self._buf[: self._frame]
            self._any = True
        return b"".join(out)

    def flush(self) -> bytes:
        if self._buf or not self._any:
            return self._one(bytes(self._buf))
        return b""


class _OneShot:
    """A whole input in one pledged call (a NAR under one frame): buffers, then compresses."""

    def __init__(self, make: Callable[[bytes], bytes]) -> None:
        self._make = make
        self._buf = bytearray()

    def compress(self, data: bytes) -> bytes:
        self._buf += data
        return b""

    def flush(self) -> bytes:
        return self._make(bytes(self._buf))


class _Gzip:
    """libarchive's gzip filter: its own 10-byte header (given: the stored one, as its mtime
    is the write time), a raw deflate stream at the level, then CRC32 and size."""

    def __init__(self, level: int, header: bytes) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, -15, 8)
        self._header: bytes | None = header
        self._crc = 0
        self._size = 0

    def compress(self, data: bytes) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        head, self._header = self._header or b"", None
        return head + self._z.compress(data)

    def flush(self) -> bytes:
        head, self._header = self._header or b"", None
        tail = self._crc.to_bytes(4, "little") + (self._size & 0xFFFFFFFF).to_bytes(4, "little")
        return head + self._z.flush() + tail


@dataclass(frozen=True)
class _ZstdLib:
    """One libzstd build: python-zstandard's bundled one, or the system's (ctypes)."""

    version: str
    system: bool

    def stream(self, level: int, checksum: bool, long_log: int | None = None) -> Encoder:
        """One frame of unknown size (a streaming writer: libarchive, async-compression)."""
        if self.system:
            return zstdlib.SystemEncoder(level, checksum=checksum, long_log=long_log)
        import zstandard

        if long_log:
            params = zstandard.ZstdCompressionParameters.from_level(
                level, window_log=long_log, enable_ldm=True, write_checksum=checksum
            )
            cctx = zstandard.ZstdCompressor(compression_params=params)
        else:
            cctx = zstandard.ZstdCompressor(level=level, write_checksum=checksum)
        return cctx.compressobj()

    def one(self, level: int, checksum: bool, workers: int = 0) -> Callable[[bytes], bytes]:
        """Compress a whole input as one frame pledged its size."""
        if self.system:

            def call(data: bytes) -> bytes:
                enc = zstdlib.SystemEncoder(
                    level, checksum=checksum, workers=workers, pledged=len(data)
                )
                return enc.compress_all(data)

            return call
        import zstandard

        cctx = zstandard.ZstdCompressor(level=level, write_checksum=checksum, threads=workers)
        return cctx.compress


def zstd_libs() -> list[_ZstdLib]:
    """The libzstd builds at hand: the system's first (what the writers link), then the one
    python-zstandard bundles when it is another version."""
    import zstandard

    bundled = ".".join(map(str, zstandard.ZSTD_VERSION))
    system = zstdlib.system_version()
    libs = [_ZstdLib(system, True)] if system else []
    if bundled != system:
        libs.append(_ZstdLib(bundled, False))
    return libs


def _xz_candidates(layout: Layout) -> list[Candidate]:
    presets = [p for p, d in XZ_DICT_BYTES.items() if d == layout.dict_bytes] or list(range(10))
    # the writers' defaults first: Nix 6, Rust 5
    presets.sort(key=lambda p: (p not in (6, 5), p))
    out = []
    for extreme in (False, True):
        for p in presets:
            name = f"xz:{p}{'e' if extreme else ''}"
            if layout.sized_blocks and xzmt.available():
                block = layout.block_bytes or 0

                def mt(p: int = p, e: bool = extreme, b: int = block) -> Encoder:
                    return xzmt.MtEncoder(p, extreme=e, block_bytes=b)

                blocks = "multithreaded blocks"
                out.append(Candidate("xz", p, f"{name}:parallel", blocks, mt, int(extreme)))
            else:

                def st(p: int = p, e: bool = extreme) -> Encoder:
                    preset = p | (lzma.PRESET_EXTREME if e else 0)
                    return lzma.LZMACompressor(lzma.FORMAT_XZ, lzma.CHECK_CRC64, preset)

                out.append(Candidate("xz", p, name, "one stream, one block", st, int(extreme)))
    return out


def _zstd_candidates(layout: Layout) -> list[Candidate]:
    out: list[Candidate] = []
    for lib in zstd_libs():
        out += _zstd_lib_candidates(layout, lib)
    return out


def _zstd_lib_candidates(layout: Layout, lib: _ZstdLib) -> list[Candidate]:
    import zstandard

    checksum = layout.check == "xxh64"
    levels = list(range(1, 23))
    contents = layout.frame_content_bytes
    tag = f" (libzstd {lib.version})"
    out: list[Candidate] = []
    if contents and contents[0] is not None:
        return _zstd_sized(contents, layout.window_log, lib, checksum, tag)
    by_window = [
        lvl
        for lvl in levels
        if zstandard.ZstdCompressionParameters.from_level(lvl).window_log == layout.window_log
    ]
    for lvl in _likely(by_window, 3, 19):

        def streamed(lv: int = lvl) -> Encoder:
            return lib.stream(lv, checksum)

        out.append(Candidate("zstd", lvl, f"zstd:{lvl}", "one streamed frame" + tag, streamed))
    if layout.window_log and (layout.window_log > 23 or not by_window):
        w = layout.window_log
        for lvl in _likely(levels, 19, 3):

            def long(lv: int = lvl, w: int = w) -> Encoder:
                return lib.stream(lv, checksum, w)

            kind = "one streamed frame, long window" + tag
            out.append(Candidate("zstd", lvl, f"zstd:{lvl}:long={w}", kind, long, tier=1))
    return out


def _zstd_sized(
    contents: tuple[int | None, ...],
    window_log: int | None,
    lib: _ZstdLib,
    checksum: bool,
    tag: str,
) -> list[Candidate]:
    """Frames that record their content size: Nix 2.35's 16 MiB frames (one sized frame for
    a NAR under one frame), with and without workers."""
    import zstandard

    frame = contents[0] or NIX235_FRAME_BYTES
    several = len(contents) > 1
    levels = list(range(1, 23))
    if window_log is not None:  # not single-segment: the level's window for this frame size
        levels = [
            lv
            for lv in levels
            if zstandard.ZstdCompressionParameters.from_level(lv, source_size=frame).window_log
            == window_log
        ] or levels
    out = []
    for lvl in _likely(levels, 3, 19):
        for workers in (0, 4):
            extra = (", workers" if workers else "") + tag
            if several:

                def fr(lv: int = lvl, f: int = frame, w: int = workers) -> Encoder:
                    return _Frames(lib.one(lv, checksum, w), f)

                label = f"zstd:{lvl}:frames={_size_label(frame)}"
                out.append(Candidate("zstd", lvl, label, f"frames of {_mib(frame)}{extra}", fr))
            else:

                def one(lv: int = lvl, w: int = workers) -> Encoder:
                    return _OneShot(lib.one(lv, checksum, w))

                out.append(Candidate("zstd", lvl, f"zstd:{lvl}", f"one sized frame{extra}", one))
    return out


def _mib(n: int) -> str:
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"


def _likely(levels: list[int], *first: int) -> list[int]:
    """``levels`` with the usual ones first (defaults and configured values)."""
    return [lv for lv in first if lv in levels] + [lv for lv in levels if lv not in first]


def _br_candidates(layout: Layout) -> list[Candidate]:
    import brotli

    lgwin = layout.window_log or 22
    out = []
    for q in _likely(list(range(12)), 11):

        def make(q: int = q) -> Encoder:
            c = brotli.Compressor(quality=q, lgwin=lgwin)
            return _BrotliAdapter(c)

        out.append(Candidate("br", q, f"br:{q}", f"window 2^{lgwin}", make))
    return out


class _BrotliAdapter:
    def __init__(self, c: object) -> None:
        self._c = c

    def compress(self, data: bytes) -> bytes:
        return self._c.process(data)  # type: ignore[attr-defined]

    def flush(self) -> bytes:
        return self._c.finish()  # type: ignore[attr-defined]


def candidates(layout: Layout, head: bytes = b"") -> list[Candidate]:
    """The candidates ``layout`` leaves possible, most likely first; ``head`` is the stored
    object's first bytes (gzip's header is copied from it)."""
    if layout.method == "xz":
        return _xz_candidates(layout)
    if layout.method == "zstd":
        return sorted(_zstd_candidates(layout), key=lambda c: c.tier)
    if layout.method == "br":
        return _br_candidates(layout)
    if layout.method == "bzip2":
        lvl = layout.level_hint or 9
        return [
            Candidate("bzip2", lvl, f"bzip2:{lvl}", "one stream",
                      lambda lv=lvl: bz2.BZ2Compressor(lv))  # type: ignore[misc]
        ]  # fmt: skip
    if layout.method == "gzip":
        levels = [layout.level_hint] if layout.level_hint else _likely(list(range(1, 10)), 6)
        return [
            Candidate("gzip", lv, f"gzip:{lv}", "one member",
                      lambda lv=lv: _Gzip(lv, head[:10]))  # type: ignore[misc]
            for lv in levels
        ]  # fmt: skip
    return []
