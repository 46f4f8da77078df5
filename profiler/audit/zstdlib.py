"""The system's libzstd through ``ctypes``, beside the one ``zstandard`` bundles.

zstd's output changes between library versions (a Debian Nix 2.8 NAR at level 3 is 280,791
bytes with libzstd 1.5.4, the same NAR 279,983 with 1.5.7), so a writer is reproduced only by
its own version. The writers link the system library (Nix through libarchive, the Rust
runner through zstd-sys when built against it); python-zstandard bundles another. Both are
tried, and the match names the version.

The API used is libzstd's stable advanced one (zstd.h, v1.4.0+): ``ZSTD_CCtx_setParameter``,
``ZSTD_CCtx_setPledgedSrcSize`` and ``ZSTD_compressStream2`` with ``ZSTD_e_continue`` /
``ZSTD_e_end``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

C_LEVEL, C_WINDOW_LOG, C_LDM, C_CHECKSUM, C_WORKERS = 100, 101, 160, 201, 400
E_CONTINUE, E_END = 0, 2


class _Out(ctypes.Structure):
    _fields_ = [("dst", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]


class _In(ctypes.Structure):
    _fields_ = [("src", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]


@functools.cache
def system_lib() -> ctypes.CDLL | None:
    """The system libzstd, or None when there is none."""
    name = ctypes.util.find_library("zstd")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.ZSTD_createCCtx.restype = ctypes.c_void_p
    lib.ZSTD_freeCCtx.argtypes = [ctypes.c_void_p]
    lib.ZSTD_CCtx_setParameter.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.ZSTD_CCtx_setParameter.restype = ctypes.c_size_t
    lib.ZSTD_CCtx_setPledgedSrcSize.argtypes = [ctypes.c_void_p, ctypes.c_ulonglong]
    lib.ZSTD_CCtx_setPledgedSrcSize.restype = ctypes.c_size_t
    lib.ZSTD_compressStream2.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_Out),
        ctypes.POINTER(_In),
        ctypes.c_int,
    ]
    lib.ZSTD_compressStream2.restype = ctypes.c_size_t
    lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
    lib.ZSTD_isError.restype = ctypes.c_uint
    lib.ZSTD_versionString.restype = ctypes.c_char_p
    lib.ZSTD_CStreamOutSize.restype = ctypes.c_size_t
    return lib


def system_version() -> str | None:
    lib = system_lib()
    return lib.ZSTD_versionString().decode() if lib is not None else None


class SystemEncoder:
    """A streaming encoder over the system libzstd: ``compress(chunk)``, ``flush()``.

    ``pledged``: the input's size, recorded in the frame header (a writer that knew it);
    ``frame_bytes``: start a new pledged frame every so many input bytes (Nix 2.35).
    """

    def __init__(
        self,
        level: int,
        *,
        checksum: bool = False,
        long_log: int | None = None,
        workers: int = 0,
        pledged: int | None = None,
    ) -> None:
        lib = system_lib()
        if lib is None:
            raise OSError("no system libzstd")
        self._lib = lib
        self._cctx = lib.ZSTD_createCCtx()
        self._set(C_LEVEL, level)
        if checksum:
            self._set(C_CHECKSUM, 1)
        if long_log:
            self._set(C_WINDOW_LOG, long_log)
            self._set(C_LDM, 1)
        if workers:
            lib.ZSTD_CCtx_setParameter(self._cctx, C_WORKERS, workers)  # ignored if no MT
        if pledged is not None:
            self._check(lib.ZSTD_CCtx_setPledgedSrcSize(self._cctx, pledged))
        self._out_size = int(lib.ZSTD_CStreamOutSize())
        self._out = ctypes.create_string_buffer(self._out_size)

    def _check(self, ret: int) -> int:
        if self._lib.ZSTD_isError(ret):
            raise OSError(f"libzstd error {ret}")
        return ret

    def _set(self, param: int, value: int) -> None:
        self._check(self._lib.ZSTD_CCtx_setParameter(self._cctx, param, value))

    def _stream(self, data: bytes, directive: int) -> bytes:
        src = ctypes.create_string_buffer(data, len(data)) if data else None
        inb = _In(ctypes.cast(src, ctypes.c_void_p) if src is not None else None, len(data), 0)
        parts = []
        while True:
            out = _Out(ctypes.cast(self._out, ctypes.c_void_p), self._out_size, 0)
            remaining = self._check(
                self._lib.ZSTD_compressStream2(
                    self._cctx, ctypes.byref(out), ctypes.byref(inb), directive
                )
            )
            if out.pos:
                parts.append(self._out.raw[: out.pos])
            done_input = inb.pos == inb.size
            if directive == E_CONTINUE and done_input:
                break
            if directive == E_END and remaining == 0:
                break
        return b"".join(parts)

    def compress(self, data: bytes) -> bytes:
        return self._stream(data, E_CONTINUE)

    def compress_all(self, data: bytes) -> bytes:
        """``data`` as the whole input, in one ``ZSTD_e_end`` call as Nix 2.35 compresses
        each frame (NixOS/nix 88b09c64 src/libutil/compression.cc:410-427; its bytes differ from
        the same input streamed: zstd plans a whole input it is given at once differently)."""
        try:
            return self._stream(data, E_END)
        finally:
            self.close()

    def flush(self) -> bytes:
        try:
            return self._stream(b"", E_END)
        finally:
            self.close()

    def close(self) -> None:
        if self._cctx:
            self._lib.ZSTD_freeCCtx(self._cctx)
            self._cctx = None

    def __del__(self) -> None:
        self.close()
