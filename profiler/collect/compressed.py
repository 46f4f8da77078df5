"""Compressed logs (gzip, xz, zstd by their magic bytes) read so that damage loses nothing
before it: every byte the decompressor could produce from the input before a truncation or
a corrupt block is delivered, and only then does the stream report the damage.

``gzip.GzipFile`` and ``lzma.LZMAFile`` decompress a read's worth and raise on truncation,
dropping what that read had decoded (a 16 KB journal cut in half lost all its lines), so
each method is driven here through its incremental decompressor, whose output is handed on
before the next input is fed. Concatenated members (gzip), streams (xz, with their zero
padding) and frames (zstd) are read one after another, as the command-line tools do.
"""

from __future__ import annotations

import io
import lzma
import zlib
from collections.abc import Callable
from typing import IO, Any, Protocol

import zstandard

CHUNK_BYTES = 1 << 16


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


def _gzip() -> _Decompressor:
    return zlib.decompressobj(wbits=31)


def _xz() -> _Decompressor:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)


def _zstd() -> _Decompressor:
    return zstandard.ZstdDecompressor().decompressobj()


class TruncatedInput(EOFError):
    """The compressed input ended inside a member, stream or frame."""


class Decompressed(io.RawIOBase):
    """The decompressed bytes of ``raw`` (one compression method, members concatenated).

    Reads return everything decoded so far before a damaged or truncated input raises:
    :class:`TruncatedInput` when the input ends inside a member, or the decompressor's own
    error (``zlib.error``, ``lzma.LZMAError``, ``zstandard.ZstdError``) on corrupt data."""

    def __init__(self, raw: IO[bytes], new: Callable[[], _Decompressor], method: str) -> None:
        self.raw = raw
        self.new = new
        self.method = method
        self.dobj = new()
        self.pending = b""
        self.started = False  # the current member has had input
        self.failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            if self.failure is not None:
                raise self.failure
            try:
                self._feed()
            except (zlib.error, lzma.LZMAError, zstandard.ZstdError) as exc:
                self.failure = exc  # raised once what was decoded before it is read
                continue
            if not self.pending and self.failure is None and self._at_end:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    _at_end = False

    def _feed(self) -> None:
        chunk = self.raw.read(CHUNK_BYTES)
        if not chunk:
            if self.started and not self.dobj.eof:
                self.failure = TruncatedInput(
                    f"compressed input ended before the end of the {self.method} data"
                )
            else:
                self._at_end = True
            return
        while chunk:
            if self.dobj.eof:  # the next member, stream or frame
                if self.method == "xz":
                    chunk = chunk.lstrip(b"\0")  # stream padding between xz streams
                    if not chunk:
                        return
                self.dobj = self.new()
                self.started = False
            self.started = True
            self.pending += self.dobj.decompress(chunk)
            chunk = self.dobj.unused_data if self.dobj.eof else b""


def decompressed(raw: IO[bytes]) -> IO[bytes]:
    """The bytes of a binary file that may be gzip, xz or zstd (by its magic bytes), else
    the file itself. ``raw`` must be seekable (its first bytes are peeked). Read it through
    :class:`Guarded`: a buffer between the two would drop what it had read when the damage
    is reached."""
    magic = raw.read(6)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return Decompressed(raw, _gzip, "gzip")  # type: ignore[return-value]
    if magic == b"\xfd7zXZ\x00":
        return Decompressed(raw, _xz, "xz")  # type: ignore[return-value]
    if magic[:4] == b"\x28\xb5\x2f\xfd":
        return Decompressed(raw, _zstd, "zstd")  # type: ignore[return-value]
    return raw


DAMAGE = (EOFError, OSError, ValueError, zlib.error, lzma.LZMAError, zstandard.ZstdError)
"""What reading a damaged compressed file can raise (``TruncatedInput`` is an EOFError)."""


class Guarded(io.RawIOBase):
    """Reads ``inner`` until it fails; the failure is kept in :attr:`error` and reads as
    end of input, so the buffers above deliver every line before the damage. With
    ``raise_at_end`` the failure is raised on the read after that end (a reader that only
    iterates lines then sees it after the last line)."""

    def __init__(self, inner: IO[bytes], raise_at_end: bool = False) -> None:
        self.inner = inner
        self.raise_at_end = raise_at_end
        self.error: BaseException | None = None
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.error is not None:
            if self.raise_at_end and self.ended:
                raise self.error
            self.ended = True
            return 0
        try:
            data = self.inner.read(len(buffer))
        except DAMAGE as exc:
            self.error = exc
            self.ended = True
            return 0
        if not data:
            return 0
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_text(path: str, *, raise_at_end: bool = True) -> io.TextIOWrapper:
    """A (possibly compressed) log as text, UTF-8 with replacement, lines split on ``\\n``;
    a damaged file gives every line before the damage, then raises (``raise_at_end``)."""
    raw = open(path, "rb")
    guard = Guarded(decompressed(raw), raise_at_end)
    return io.TextIOWrapper(
        io.BufferedReader(guard, 1 << 20), encoding="utf-8", errors="replace", newline="\n"
    )
