"""Where the NARs to measure come from.

A :class:`Payload` yields the exact NAR bytes of something the user has: a path on disk
(serialised like ``nix-store --dump``), a ``/nix/store`` path picked by glob, closure or
seeded sample, an existing ``.nar`` / ``.nar.xz`` / ``.nar.zst`` / ``.nar.bz2`` / ``.nar.br``
file, or an entry of a local binary cache (checked against its narinfo's NarHash,
NarSize, FileHash and FileSize). Every NAR read is validated; a payload that is not a
valid NAR, or not the NAR its narinfo promises, raises :class:`PayloadError`.

Payload specifications on the command line (see :func:`resolve`)::

    PATH                      a file, directory or symlink (or a .nar*, .narinfo, cache dir)
    store:GLOB                /nix/store paths whose name matches GLOB (e.g. store:*python3*)
    closure:PATH              the closure of a store path (nix-store -qR)
    sample:N[:SEED]           N store paths picked at random with a fixed seed (default 0)
    default | full            the built-in corpus, quick or full (see profiler.corpus)
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import random
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from profiler import nar
from profiler.codecs import decode_errors, open_decompressed
from profiler.errors import NarError, PayloadError, ToolMissing, UsageError
from profiler.nar.hashes import Hash

STORE_DIR = os.environ.get("NIX_STORE_DIR", "/nix/store")
NAR_SUFFIXES = {
    ".nar": "none",
    ".nar.xz": "xz",
    ".nar.zst": "zstd",
    ".nar.bz2": "bzip2",
    ".nar.br": "br",
    ".nar.gz": "gzip",
}
_STORE_NAME = re.compile(r"^[0-9abcdfghijklmnpqrsvwxyz]{32}-.+")


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


def nar_file(path: str) -> NarFilePayload:
    """A payload for a ``.nar`` or compressed ``.nar.*`` file, by its suffix."""
    for suffix, method in sorted(NAR_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if path.endswith(suffix):
            name = os.path.basename(path)[: -len(suffix)] or os.path.basename(path)
            return NarFilePayload(name, "nar-file", path, path=path, compression=method)
    raise PayloadError(
        f"{path}: not a NAR file (expected one of {', '.join(sorted(NAR_SUFFIXES))})"
    )


def tree(path: str, klass: str = "user", name: str | None = None) -> TreePayload:
    if not os.path.lexists(path):
        raise PayloadError(f"{path}: no such file or directory")
    label = name or os.path.basename(os.path.normpath(path)) or path
    return TreePayload(label, klass, path, root=path)


def store_paths_by_glob(glob: str, store_dir: str = STORE_DIR) -> list[str]:
    """Store paths whose name (the part after ``<hash>-``) matches ``glob``, sorted."""
    return [
        os.path.join(store_dir, n)
        for n in _store_names(store_dir)
        if fnmatch.fnmatchcase(n[33:], glob)
    ]


def store_sample(count: int, seed: int = 0, store_dir: str = STORE_DIR) -> list[str]:
    """``count`` store paths (no .drv files) drawn with ``random.Random(seed)``, sorted."""
    names = [n for n in _store_names(store_dir) if not n.endswith(".drv")]
    if count > len(names):
        raise PayloadError(f"sample:{count}: the store {store_dir} has only {len(names)} paths")
    return sorted(os.path.join(store_dir, n) for n in random.Random(seed).sample(names, count))


def store_closure(path: str) -> list[str]:
    """The closure of ``path`` as ``nix-store -qR`` reports it."""
    try:
        done = subprocess.run(
            ["nix-store", "-qR", path], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise ToolMissing("closure: needs nix-store (Debian package nix-bin)") from None
    if done.returncode:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise PayloadError(f"closure:{path}: nix-store -qR: {message}")
    return sorted(done.stdout.split())


def _store_names(store_dir: str) -> list[str]:
    try:
        names = os.listdir(store_dir)
    except OSError as exc:
        raise PayloadError(f"{store_dir}: cannot list the Nix store: {exc.strerror}") from None
    return sorted(n for n in names if _STORE_NAME.match(n))


def _store_payloads(paths: Iterable[str]) -> list[Payload]:
    return [tree(p, "store", os.path.basename(p)[33:] or os.path.basename(p)) for p in paths]


def resolve(specs: Iterable[str]) -> list[Payload]:
    """Turn command-line payload specifications into payloads (see the module docstring)."""
    from profiler import binary_cache, corpus

    out: list[Payload] = []
    for spec in specs:
        kind, _, arg = spec.partition(":")
        if spec in ("default", "full"):
            out.extend(corpus.default_corpus(full=spec == "full"))
        elif kind == "store" and arg:
            found = store_paths_by_glob(arg)
            if not found:
                raise PayloadError(f"{spec}: no store path in {STORE_DIR} matches {arg!r}")
            out.extend(_store_payloads(found))
        elif kind == "closure" and arg:
            out.extend(_store_payloads(store_closure(arg)))
        elif kind == "sample" and arg:
            out.extend(_store_payloads(_sample(spec, arg)))
        elif os.path.isdir(spec) and os.path.exists(os.path.join(spec, "nix-cache-info")):
            out.extend(binary_cache.cache_payloads(spec))
        elif spec.endswith(".narinfo"):
            out.append(binary_cache.narinfo_payload(spec))
        elif any(spec.endswith(s) for s in NAR_SUFFIXES) and os.path.isfile(spec):
            out.append(nar_file(spec))
        elif os.path.lexists(spec):
            out.append(tree(spec))
        else:
            raise UsageError(
                f"payload {spec!r}: no such path, and not one of store:GLOB, "
                "closure:PATH, sample:N[:SEED], default, full"
            )
    return _unique_names(out)


def _sample(spec: str, arg: str) -> list[str]:
    count_text, _, seed_text = arg.partition(":")
    try:
        count = int(count_text)
    except ValueError:
        raise UsageError(
            f"{spec!r}: expected sample:N[:SEED]: N must be a whole number, got {count_text!r}"
        ) from None
    try:
        seed = int(seed_text or 0)
    except ValueError:
        raise UsageError(
            f"{spec!r}: expected sample:N[:SEED]: SEED must be a whole number, got {seed_text!r}"
        ) from None
    if count < 1:
        raise UsageError(f"{spec!r}: N must be positive (how many store paths), got {count}")
    return store_sample(count, seed)


def _unique_names(payloads: list[Payload]) -> list[Payload]:
    """Suffix repeated names with ``#2``, ``#3`` so every result row is distinct."""
    import dataclasses

    seen: dict[str, int] = {}
    out = []
    for p in payloads:
        seen[p.name] = seen.get(p.name, 0) + 1
        out.append(
            p if seen[p.name] == 1 else dataclasses.replace(p, name=f"{p.name}#{seen[p.name]}")
        )
    return out
