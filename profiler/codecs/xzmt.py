"""liblzma's multithreaded xz encoder (``lzma_stream_encoder_mt``), which Python's ``lzma``
module does not expose, through ``ctypes`` on the same system liblzma.

Its output is what Nix writes with ``parallel-compression=true`` (libarchive 3.6's xz filter
calls ``lzma_stream_encoder_mt`` with ``block_size`` left 0, CRC64, a 300 ms timeout and
the preset's filters: libarchive v3.6.2 (ba80276c) libarchive/archive_write_add_filter_xz.c:
233-243) and what the Rust queue runner writes with ``parallel`` (async-compression's
``XzEncoder::parallel``, 4 threads, hydra 14332fbf subprojects/crates/binary-cache/src/
compression.rs:74-79): one
stream, blocks of ``block_size`` (0: max(3 x dictionary, 1 MiB), liblzma's default), each
block header recording its sizes. The bytes depend on the block size and the preset, not on
the number of threads, so two threads reproduce any writer's output.

The struct layouts are liblzma's public ``lzma_stream`` and ``lzma_mt`` (lzma/base.h,
lzma/container.h), whose sizes are fixed by their reserved fields across 5.x.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

LZMA_OK, LZMA_STREAM_END = 0, 1
LZMA_RUN, LZMA_FINISH = 0, 3
LZMA_CHECK_CRC64 = 4
LZMA_PRESET_EXTREME = 0x80000000
_OUT_BYTES = 1 << 16


class _Stream(ctypes.Structure):
    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_size_t),
        ("total_in", ctypes.c_uint64),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_size_t),
        ("total_out", ctypes.c_uint64),
        ("allocator", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
        ("reserved_ptr", ctypes.c_void_p * 4),
        ("reserved_int12", ctypes.c_uint64 * 2),
        ("reserved_int34", ctypes.c_size_t * 2),
        ("reserved_enum", ctypes.c_int * 2),
    ]


class _Mt(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint32),
        ("threads", ctypes.c_uint32),
        ("block_size", ctypes.c_uint64),
        ("timeout", ctypes.c_uint32),
        ("preset", ctypes.c_uint32),
        ("filters", ctypes.c_void_p),
        ("check", ctypes.c_int),
        ("reserved_enum", ctypes.c_int * 3),
        ("reserved_int", ctypes.c_uint32 * 4),
        ("reserved_int64", ctypes.c_uint64 * 4),
        ("reserved_ptr", ctypes.c_void_p * 4),
    ]


@functools.cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("lzma") or "liblzma.so.5"
    lib = ctypes.CDLL(name)
    lib.lzma_stream_encoder_mt.argtypes = [ctypes.POINTER(_Stream), ctypes.POINTER(_Mt)]
    lib.lzma_stream_encoder_mt.restype = ctypes.c_int
    lib.lzma_code.argtypes = [ctypes.POINTER(_Stream), ctypes.c_int]
    lib.lzma_code.restype = ctypes.c_int
    lib.lzma_end.argtypes = [ctypes.POINTER(_Stream)]
    lib.lzma_end.restype = None
    return lib


def available() -> bool:
    """True when this machine's liblzma has the multithreaded encoder."""
    try:
        return hasattr(_lib(), "lzma_stream_encoder_mt")
    except OSError:
        return False


class MtEncoder:
    """``compress(chunk) -> bytes`` and ``flush() -> bytes``, like ``lzma.LZMACompressor``."""

    def __init__(
        self, preset: int, *, extreme: bool = False, block_bytes: int = 0, threads: int = 2
    ) -> None:
        self._lib = _lib()
        self._strm = _Stream()
        mt = _Mt(
            threads=threads,
            block_size=block_bytes,
            preset=preset | (LZMA_PRESET_EXTREME if extreme else 0),
            check=LZMA_CHECK_CRC64,
        )
        ret = self._lib.lzma_stream_encoder_mt(ctypes.byref(self._strm), ctypes.byref(mt))
        if ret != LZMA_OK:
            raise OSError(f"lzma_stream_encoder_mt failed: {ret}")
        self._out = ctypes.create_string_buffer(_OUT_BYTES)
        self._closed = False

    def _code(self, data: bytes, action: int) -> bytes:
        src = ctypes.create_string_buffer(data, len(data)) if data else None
        self._strm.next_in = ctypes.cast(src, ctypes.c_void_p) if src is not None else None
        self._strm.avail_in = len(data)
        parts: list[bytes] = []
        while True:
            self._strm.next_out = ctypes.cast(self._out, ctypes.c_void_p)
            self._strm.avail_out = _OUT_BYTES
            ret = self._lib.lzma_code(ctypes.byref(self._strm), action)
            produced = _OUT_BYTES - self._strm.avail_out
            if produced:
                parts.append(self._out.raw[:produced])
            if ret == LZMA_STREAM_END:
                break
            if ret != LZMA_OK:
                raise OSError(f"lzma_code failed: {ret}")
            if action == LZMA_RUN and self._strm.avail_in == 0 and self._strm.avail_out:
                break
        return b"".join(parts)

    def compress(self, data: bytes) -> bytes:
        return self._code(data, LZMA_RUN)

    def flush(self) -> bytes:
        try:
            return self._code(b"", LZMA_FINISH)
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._lib.lzma_end(ctypes.byref(self._strm))
            self._closed = True

    def __del__(self) -> None:
        self.close()
