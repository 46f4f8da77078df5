"""Reading what a codec wrote: one decompressing reader for every method, with one policy for
damaged input.

The method is given by name (a NAR file's suffix, a narinfo's ``Compression``: Nix's names)
to :func:`open_decompressed`, or found by :func:`sniff` from the first bytes of a log, which
may be plain, gzip, xz or zstd. :func:`open_text` opens a possibly compressed log as text.

Before, three readers had three policies for a truncated or corrupt stream:

- ``payloads.open_decompressed`` (NAR files and binary-cache entries, by method name): xz and
  bzip2 through its own multi-stream reader, which (like the ``xz`` CLI, unlike
  ``lzma.open``) refused bytes after the last stream that are neither another stream nor zero
  padding; brotli through its own reader; gzip through ``gzip.open``; zstd through
  zstandard's ``stream_reader``. A truncated stream raised ``EOFError`` (xz, bzip2, br,
  gzip), except zstd's reader, which ended quietly and left the NAR reader to find the NAR
  short. Each reader sat under a buffer that drops what a read had decoded when it fails.
  Who relied on it: ``NarFilePayload.read`` turns any of these errors into one
  ``PayloadError`` ("cannot read xz data: ..."), and ``nar ls`` into "cannot decompress";
  tests/integration/test_payloads.py (a truncated, a corrupt and a junk-suffixed ``.nar.xz``
  are one clear error; concatenated and multi-frame streams read whole).
- ``collect/compressed.py`` (journals, by magic: gzip, xz, zstd, else the file as it is): the
  incremental decompressors, so that every byte decodable before the damage was delivered
  first, then ``TruncatedInput`` or the decompressor's own error; members, streams (with
  xz's zero padding) and frames were read one after another. Its ``Guarded`` turned the
  failure into an end of input and kept it, or raised it on the read after that end.
  Who relied on it: ``collect logs`` (a truncated journal gives the lines before the damage
  and one error "unreadable after line N: ...", the run keeps its events and the collector
  goes on: tests/integration/test_collect_logs.py); ``collect/logs.open_log``.
- ``collect/logs.open_log``: the latter's ``open_text`` (the lines before the damage, then
  the error), for ``logs.parse_file`` (tests/unit/test_logs.py, compressed inputs).

Now there is one reader, and its policy is the collectors' (the NAR readers lose nothing by
it: they fail on the error either way):

- everything decodable before the damage is delivered before the damage is reported;
- an input that ends inside a member, stream or frame, or before the first, raises
  :class:`TruncatedInput` (an ``EOFError``); corrupt data raises the decompressor's error;
- gzip members, xz and bzip2 streams and zstd frames are read one after another, as the
  command-line tools read them; zero bytes after a gzip, xz or bzip2 member are padding;
  any other byte after the last member is corrupt data (brotli has one stream only:
  ``ValueError``; its decoder gives nothing back from a piece of input it fails on, so up to
  one piece's output before bytes after the end, or before corrupt data, may be lost).

How a caller sees the damage is its choice, the one parameter: :func:`open_decompressed`
raises it at the read that reaches it (a NAR is whole or an error); :class:`Guarded` makes it
an end of input kept in :attr:`Guarded.error`, for a collector that keeps the lines before it
and goes on, and with ``raise_at_end`` raises it on the read after that end (:func:`open_text`).

Differences from before, all on damaged or unusual input: a truncated ``.nar.zst`` is now
"cannot read zstd data: ..." instead of a short NAR; an empty compressed NAR file is
truncated for every method (gzip and zstd read it as an empty NAR before); zero padding after
a gzip or bzip2 member is accepted wherever it is (``gzip.open`` did, the journal reader did
not); a zstd log may use a window up to 2 GiB, as a ``.nar.zst`` could.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Protocol, cast

from profiler.errors import PayloadError

CHUNK_BYTES = 1 << 16  # compressed input read at a time; also the least output asked for
PIECE_BYTES = 1 << 12  # zstd and brotli cannot bound their output: fed this much at a time
MAX_WINDOW_BYTES = 1 << 31  # Nix clients decode zstd windows up to 128 MiB; accept what libzstd can


class TruncatedInput(EOFError):
    """The compressed input ended inside a member, stream or frame."""


def decode_errors() -> tuple[type[BaseException], ...]:
    """The exceptions reading a damaged compressed file can raise (``TruncatedInput`` is an
    ``EOFError``; ``OSError`` is the file's own)."""
    import brotli
    import zstandard

    return (
        OSError,
        EOFError,
        ValueError,
        lzma.LZMAError,
        zlib.error,
        zstandard.ZstdError,
        brotli.error,
    )


# --- the decoders: lzma's interface, whatever the library -----------------------------------


class _Decoder(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Gzip:
    """One gzip member (zlib checks its CRC and length)."""

    def __init__(self) -> None:
        self.dobj = zlib.decompressobj(wbits=31)

    @property
    def eof(self) -> bool:
        return self.dobj.eof

    @property
    def needs_input(self) -> bool:
        return not self.dobj.unconsumed_tail

    @property
    def unused_data(self) -> bytes:
        return self.dobj.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        return self.dobj.decompress(self.dobj.unconsumed_tail + data, max(max_length, 0))


class _Pieces:
    """A decoder whose library has no output limit, fed small pieces of input so that one
    call gives about as much as asked for (a NAR of zeros expands a thousandfold)."""

    def __init__(self) -> None:
        self.rest = b""  # input not yet given to the library

    @property
    def eof(self) -> bool:
        raise NotImplementedError

    @property
    def needs_input(self) -> bool:
        return not self.rest

    def _piece(self, data: bytes) -> bytes:
        raise NotImplementedError

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        data = self.rest + data
        out: list[bytes] = []
        size = at = 0
        while at < len(data) and not self.eof and (max_length < 0 or size < max_length):
            piece = self._piece(data[at : at + PIECE_BYTES])
            at += PIECE_BYTES
            out.append(piece)
            size += len(piece)
        self.rest = data[at:]
        return b"".join(out)


class _Zstd(_Pieces):
    """One zstd frame."""

    def __init__(self) -> None:
        import zstandard

        super().__init__()
        self.dobj = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_BYTES).decompressobj()

    @property
    def eof(self) -> bool:
        return bool(self.dobj.eof)

    @property
    def unused_data(self) -> bytes:
        return bytes(self.dobj.unused_data) + self.rest

    def _piece(self, data: bytes) -> bytes:
        return bytes(self.dobj.decompress(data))


class _Brotli(_Pieces):
    """The one brotli stream. Its decoder says only that the stream ended, and fails on a
    piece that holds bytes after the end: what that piece decoded is lost with it."""

    def __init__(self) -> None:
        import brotli

        super().__init__()
        self.dobj = brotli.Decompressor()

    @property
    def eof(self) -> bool:
        return bool(self.dobj.is_finished())

    @property
    def unused_data(self) -> bytes:
        return self.rest

    def _piece(self, data: bytes) -> bytes:
        return bytes(self.dobj.process(data))


@dataclass(frozen=True)
class _Method:
    new: Callable[[], _Decoder]
    padding: bool  # zero bytes may follow a member
    members: bool = True  # more than one member may follow each other


_METHODS: dict[str, _Method] = {
    "gzip": _Method(_Gzip, padding=True),
    "xz": _Method(lzma.LZMADecompressor, padding=True),  # format auto: .xz (and legacy .lzma)
    "bzip2": _Method(bz2.BZ2Decompressor, padding=True),
    "zstd": _Method(_Zstd, padding=False),
    "br": _Method(_Brotli, padding=False, members=False),
}
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
MAGIC_BYTES = 6
"""How many leading bytes :func:`sniff` looks at."""


def sniff(head: bytes) -> str:
    """The compression of data starting with ``head`` (its first :data:`MAGIC_BYTES`):
    ``gzip``, ``xz`` or ``zstd`` by their magic bytes, else ``none``. (bzip2 and brotli
    files are known by their names only.)"""
    return next((method for magic, method in _MAGIC if head.startswith(magic)), "none")


# --- the reader ---------------------------------------------------------------------------


class _Decompressed(io.RawIOBase):
    """The decompressed bytes of ``raw``, under the module's policy for damaged input."""

    def __init__(self, raw: IO[bytes], method: str) -> None:
        self.raw = raw
        self.method = method
        self.kind = _METHODS[method]
        self.dec = self.kind.new()
        self.input = b""  # the next member's first bytes
        self.out = b""  # decoded, not yet read
        self.pos = 0
        self.done = False
        self.failure: BaseException | None = None
        self.errors = decode_errors()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        while self.pos >= len(self.out):
            if self.failure is not None:
                raise self.failure
            if self.done:
                return 0
            try:
                self._advance(max(len(buffer), CHUNK_BYTES))
            except self.errors as exc:
                self.failure = exc  # raised again by every later read
        n = min(len(buffer), len(self.out) - self.pos)
        buffer[:n] = memoryview(self.out)[self.pos : self.pos + n]
        self.pos += n
        return n

    def _advance(self, limit: int) -> None:
        """Decode the next piece into :attr:`out`, or move to the next member, or end."""
        if self.dec.eof:
            self._next_member()
            return
        data, self.input = self.input, b""
        if not data and self.dec.needs_input:
            data = self.raw.read(CHUNK_BYTES) or b""
            if not data:
                self._input_ended(limit)
                return
        self.out, self.pos = self.dec.decompress(data, limit), 0

    def _input_ended(self, limit: int) -> None:
        """No more input inside a member: what the decoder still holds, then truncation."""
        self.out, self.pos = self.dec.decompress(b"", limit), 0
        if not self.out and not self.dec.eof:
            self.failure = TruncatedInput(
                f"compressed input ended before the end of the {self.method} data"
            )

    def _next_member(self) -> None:
        """After a member: padding, the next member, the end, or bytes that are none."""
        rest = self.dec.unused_data
        while True:
            if self.kind.padding:
                rest = rest.lstrip(b"\0")
            if rest:
                break
            rest = self.raw.read(CHUNK_BYTES) or b""
            if not rest:
                self.done = True
                return
        if not self.kind.members:
            self.failure = ValueError(f"data after the end of the {self.method} stream")
            return
        self.dec = self.kind.new()
        self.input = rest


def open_decompressed(raw: IO[bytes], compression: str, source: str = "") -> BinaryIO:
    """A readable stream of the decompressed bytes of ``raw`` (Nix's method names; ``none``
    gives ``raw`` itself). A read that reaches damage raises, after every byte before it was
    read (see the module docstring). Closing the stream closes ``raw``."""
    if compression == "none":
        return cast(BinaryIO, raw)
    if compression not in _METHODS:
        raise PayloadError(
            f"{source}: unsupported compression {compression!r} "
            f"(known: {', '.join(sorted([*_METHODS, 'none']))})"
        )
    return cast(BinaryIO, _Decompressed(raw, compression))


def open_sniffed(raw: IO[bytes]) -> BinaryIO:
    """:func:`open_decompressed` with the method :func:`sniff` finds; ``raw`` must be seekable
    (its first bytes are peeked). Read it through :class:`Guarded` to keep the bytes before
    damage: a buffer between the two would drop what it had read when the damage is reached."""
    head = raw.read(MAGIC_BYTES)
    raw.seek(0)
    return open_decompressed(raw, sniff(head))


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
        self.errors = decode_errors()

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
        except self.errors as exc:
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
    guard = Guarded(open_sniffed(raw), raise_at_end)
    return io.TextIOWrapper(
        io.BufferedReader(guard, 1 << 20), encoding="utf-8", errors="replace", newline="\n"
    )
