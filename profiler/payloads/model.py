"""What a payload is: a source of the exact NAR bytes of something the user has.

A :class:`Payload` yields the exact NAR bytes of something the user has: a path on disk
(serialised like ``nix-store --dump``, :class:`TreePayload`), or an existing ``.nar`` /
``.nar.xz`` / ``.nar.zst`` / ``.nar.bz2`` / ``.nar.br`` file, possibly an entry of a local
binary cache (checked against its narinfo's NarHash, NarSize, FileHash and FileSize:
:class:`NarFilePayload`). Every NAR read is validated; a payload that is not a valid NAR, or
not the NAR its narinfo promises, raises :class:`PayloadError`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from profiler import nar
from profiler.codecs import decode_errors, open_decompressed
from profiler.errors import NarError, PayloadError
from profiler.nar.hashes import Hash


@dataclass(frozen=True)
class Payload:
    """A source of one NAR.

    Attributes
    ----------
    name:
        Short label, unique within a corpus.
    klass:
        Payload class (``elf``, ``near-duplicate``, ``python``, ``docs``, ``locale``,
        ``compressed``, or ``user``/``store``/``nar-file``/``cache`` for user-given ones).
    source:
        Where the bytes come from, as a user would write it.
    """

    name: str
    klass: str
    source: str

    def read(self) -> bytes:
        """The whole NAR, validated. Raises ``PayloadError``."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.source


@dataclass(frozen=True)
class TreePayload(Payload):
    """The NAR of a path on disk, optionally restricted to a selection of its files."""

    root: str = ""
    selection: frozenset[bytes] | None = field(default=None, compare=False)
    selection_note: str = ""

    def read(self) -> bytes:
        sel = self.selection
        try:
            return nar.dump_bytes(self.root, select=None if sel is None else sel.__contains__)
        except NarError as exc:
            raise PayloadError(str(exc)) from None

    def describe(self) -> str:
        return f"{self.source} ({self.selection_note})" if self.selection_note else self.source


@dataclass(frozen=True)
class NarFilePayload(Payload):
    """An existing NAR file, possibly compressed; optionally checked against a narinfo."""

    path: str = ""
    compression: str = "none"
    nar_hash: Hash | None = None
    nar_size: int | None = None
    file_hash: Hash | None = None
    file_size: int | None = None

    def read(self) -> bytes:
        try:
            with open(self.path, "rb") as raw:
                counted = _HashingReader(raw, self.file_hash.algo if self.file_hash else "sha256")
                keep = _Keep(self.nar_hash.algo if self.nar_hash else "sha256")
                with open_decompressed(
                    cast(BinaryIO, counted), self.compression, self.path
                ) as stream:
                    nar.validate(stream, source=self.path, hasher=keep)
                    counted.drain()
        except NarError as exc:
            raise PayloadError(str(exc)) from None
        except decode_errors() as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise PayloadError(
                f"{self.path}: cannot read {self.compression} data: {detail}"
            ) from None
        self._check(len(keep.data), keep.hasher.digest(), counted)
        return bytes(keep.data)

    def _check(self, size: int, digest: bytes, raw: _HashingReader) -> None:
        where = f"{self.path} (narinfo {self.source})" if self.source != self.path else self.path
        if self.nar_size is not None and size != self.nar_size:
            raise PayloadError(
                f"{where}: NarSize mismatch: narinfo says {self.nar_size}, NAR has {size} bytes"
            )
        if self.nar_hash is not None and digest != self.nar_hash.digest:
            got = Hash(self.nar_hash.algo, digest)
            raise PayloadError(
                f"{where}: NarHash mismatch: narinfo says {self.nar_hash}, NAR hashes to {got}"
            )
        if self.file_size is not None and raw.nbytes != self.file_size:
            raise PayloadError(
                f"{where}: FileSize mismatch: narinfo says {self.file_size}, "
                f"file has {raw.nbytes} bytes"
            )
        if self.file_hash is not None and raw.hasher.digest() != self.file_hash.digest:
            got = Hash(self.file_hash.algo, raw.hasher.digest())
            raise PayloadError(
                f"{where}: FileHash mismatch: narinfo says {self.file_hash}, file hashes to {got}"
            )


class _Keep:
    """Keeps the NAR bytes the reader passes through, and hashes them."""

    def __init__(self, algo: str) -> None:
        self.hasher = hashlib.new(algo)
        self.data = bytearray()

    def update(self, data: bytes, /) -> None:
        self.hasher.update(data)
        self.data += data


class _HashingReader(io.RawIOBase):
    """Counts and hashes the raw (compressed) bytes as a decompressor pulls them."""

    def __init__(self, raw: BinaryIO, algo: str) -> None:
        self.raw = raw
        self.hasher = hashlib.new(algo)
        self.nbytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = self.raw.readinto(buf)  # type: ignore[attr-defined]
        if n:
            self.hasher.update(buf[:n])
            self.nbytes += n
        return n or 0

    def drain(self) -> None:
        """Read what the decompressor left (e.g. trailing padding) so FileHash covers it."""
        while self.read(1 << 20):
            pass
