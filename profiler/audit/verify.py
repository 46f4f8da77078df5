"""Fetch one narinfo's NAR and check it against the narinfo, with bounded memory.

The stored object is streamed to a spool file while its SHA-256 and size are taken
(``FileHash``, ``FileSize``); the spool is then decoded into a second spool, taking the NAR's
hash and size (``NarHash``, ``NarSize``) and the decoding's CPU time (what a client pays per
download, on this machine). Every disagreement is one :class:`Fault` line; the spools stay
for the writer inference and the projections, and go when the :class:`Fetched` is closed.

What a client checks is the model: Nix's local store refuses a substituted path whose
decoded NAR has another hash or size ("hash mismatch importing path", "size mismatch
importing path": NixOS/nix 88b09c64 src/libstore/local-store.cc:1113-1127); ``FileHash`` and
``FileSize`` are the cache's record of the stored object, checked here as well.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, Protocol

from profiler.codecs.streams import decode_errors, open_decompressed, sniff
from profiler.errors import PayloadError
from profiler.nar.hashes import Hash
from profiler.payloads.binary_cache import NarInfo

CHUNK_BYTES = 1 << 20
_SNIFFABLE = {"xz", "zstd", "gzip"}


class Store(Protocol):
    url: str

    def open(self, key: str) -> IO[bytes]: ...


@dataclass
class Fault:
    """One thing wrong with one object: ``kind`` is a short tag, ``message`` one line."""

    kind: str
    key: str
    message: str

    def line(self) -> str:
        return f"{self.kind}: {self.key}: {self.message}"


@dataclass
class Fetched:
    """A NAR fetched and decoded: its spools (mapped read-only) and what was measured."""

    info: NarInfo
    stored_path: str
    nar_path: str
    file_size: int
    nar_size: int
    fetch_seconds: float
    decompress_cpu_seconds: float
    faults: list[Fault] = field(default_factory=list)
    _maps: list[mmap.mmap] = field(default_factory=list)

    def stored(self) -> mmap.mmap | bytes:
        return self._map(self.stored_path)

    def nar(self) -> mmap.mmap | bytes:
        return self._map(self.nar_path)

    def _map(self, path: str) -> mmap.mmap | bytes:
        if os.path.getsize(path) == 0:
            return b""
        with open(path, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._maps.append(m)
        return m

    def close(self) -> None:
        for m in self._maps:
            m.close()
        self._maps.clear()
        for path in (self.stored_path, self.nar_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _hash_matches(expected: Hash | None, digest: bytes) -> bool:
    return expected is None or expected.algo != "sha256" or expected.digest == digest


def _check(
    faults: list[Fault],
    url: str,
    names: tuple[str, str],
    sizes: tuple[int | None, int],
    hashes: tuple[Hash | None, bytes],
) -> None:
    """A fault when the size (``<File|Nar>Size``, when recorded) or else the SHA-256 of what
    was read (``object`` or ``decoded``) is not what the narinfo says."""
    field, what = names
    (want, got), (expected, digest) = sizes, hashes
    if want is not None and got != want:
        faults.append(Fault(f"{field.lower()}-size", url, f"{field}Size {want}, {what} {got}"))
    elif not _hash_matches(expected, digest):
        faults.append(Fault(f"{field.lower()}-hash", url, f"{field}Hash {expected}, {what} "
                            f"sha256:{Hash('sha256', digest).nix32}"))  # fmt: skip


def fetch(store: Store, info: NarInfo, scratch: str) -> Fetched:
    """Download ``info.url`` to a spool under ``scratch``, decode it, and check both against
    ``info``. A missing or unreadable object raises ``PayloadError`` (one line); a mismatch is
    a fault on the result."""
    fd, stored_path = tempfile.mkstemp(dir=scratch, suffix=".stored")
    t0 = time.perf_counter()
    file_sha = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out, store.open(info.url) as src:
            while chunk := src.read(CHUNK_BYTES):
                file_sha.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        os.unlink(stored_path)
        raise
    fetched_in = time.perf_counter() - t0
    faults: list[Fault] = []
    _check(faults, info.url, ("File", "object"), (info.file_size, size),
           (info.file_hash, file_sha.digest()))  # fmt: skip
    nar_path, nar_size, cpu = _decode(stored_path, info, scratch, faults)
    return Fetched(info, stored_path, nar_path, size, nar_size, fetched_in, cpu, faults)


def _decode(
    stored_path: str, info: NarInfo, scratch: str, faults: list[Fault]
) -> tuple[str, int, float]:
    """Decode the spool into a NAR spool: (its path, its size, CPU seconds decoding)."""
    fd, nar_path = tempfile.mkstemp(dir=scratch, suffix=".nar")
    nar_sha = hashlib.sha256()
    size = 0
    cpu = 0.0
    with open(stored_path, "rb") as raw, os.fdopen(fd, "wb") as out:
        head = raw.read(8)
        raw.seek(0)
        found = sniff(head)
        if info.compression in _SNIFFABLE and found != info.compression and head:
            faults.append(
                Fault("method", info.url, f"Compression {info.compression}, object is {found}")
            )
            return nar_path, 0, 0.0
        try:
            reader = open_decompressed(raw, info.compression, info.url)
        except PayloadError as exc:
            faults.append(Fault("method", info.url, str(exc).split(": ", 1)[-1]))
            return nar_path, 0, 0.0
        try:
            while True:
                c0 = time.process_time()
                chunk = reader.read(CHUNK_BYTES)
                cpu += time.process_time() - c0
                if not chunk:
                    break
                nar_sha.update(chunk)
                out.write(chunk)
                size += len(chunk)
        except decode_errors() as exc:
            faults.append(
                Fault("decode", info.url, f"{info.compression} data damaged after {size} bytes "
                      f"of NAR: {exc or type(exc).__name__}")
            )  # fmt: skip
            return nar_path, size, cpu
    _check(faults, info.url, ("Nar", "decoded"), (info.nar_size, size),
           (info.nar_hash, nar_sha.digest()))  # fmt: skip
    return nar_path, size, cpu
