"""Read and validate a NAR stream, the way Nix's ``parseDump`` does, with byte offsets.

:func:`iter_entries` walks a NAR from any binary stream (file, pipe, decompressor) in
bounded memory and yields one :class:`NarEntry` per node in NAR order. Everything Nix
rejects is rejected here with a :class:`~profiler.errors.NarFormatError` that carries the
byte offset: bad magic, unknown or misplaced tags, non-zero padding, invalid, unsorted or
duplicate names, over-long names and symlink targets, truncation and trailing bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from profiler.errors import NarFormatError

NAME_MAX_BYTES = 255
TARGET_MAX_BYTES = 4095
TAG_MAX_BYTES = 32
_READ_BYTES = 1 << 20


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


@dataclass(frozen=True, slots=True)
class NarDir:
    """A directory on the way from the root to an entry: its name, its parent (``None``
    under the root) and its depth (1 for the root's children). Entries share these links, so
    a reader holds one name per open directory, whatever the depth: memory linear in it."""

    parent: NarDir | None
    name: bytes
    depth: int


@dataclass(frozen=True, slots=True)
class NarEntry:
    """One node of a NAR.

    ``name`` is its own name (``b""`` for the root), ``parent`` the directory holding it
    (``None`` for the root and its children); :attr:`path` joins the names on demand.
    ``offset`` is where a regular file's contents start in the NAR stream.
    """

    name: bytes
    parent: NarDir | None
    type: str  # "regular" | "symlink" | "directory"
    size: int = 0
    executable: bool = False
    target: bytes = b""
    offset: int = 0

    @property
    def depth(self) -> int:
        """0 for the root, 1 for its children, ..."""
        if not self.name:
            return 0
        return self.parent.depth + 1 if self.parent is not None else 1

    def components(self) -> list[bytes]:
        """The names from the root down to this entry (``[]`` for the root)."""
        if not self.name:
            return []
        names = [self.name]
        up = self.parent
        while up is not None:
            names.append(up.name)
            up = up.parent
        names.reverse()
        return names

    @property
    def path(self) -> bytes:
        """Relative to the root, ``/``-joined raw bytes (``b""`` for the root)."""
        return b"/".join(self.components())


@dataclass(frozen=True, slots=True)
class NarSummary:
    nar_size: int
    files: int
    directories: int
    symlinks: int
    content_bytes: int


ContentSink = Callable[[NarEntry, memoryview], object]


class _Stream:
    """Buffered reads with an absolute offset; every byte read is fed to ``hasher``."""

    def __init__(self, raw: BinaryIO, source: str, hasher: _Hasher | None) -> None:
        self.raw = raw
        self.source = source
        self.hasher = hasher
        self.buf = b""
        self.pos = 0
        self.base = 0  # stream offset of buf[0]

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def error(self, message: str, offset: int | None = None) -> NarFormatError:
        return NarFormatError(message, self.offset if offset is None else offset, self.source)

    def _read_raw(self, n: int) -> bytes:
        data = self.raw.read(n)
        if data and self.hasher is not None:
            self.hasher.update(data)
        return data or b""

    def take(self, n: int, what: str) -> bytes:
        if len(self.buf) - self.pos < n:
            parts = [self.buf[self.pos :]]
            have = len(parts[0])
            self.base += self.pos
            while have < n:
                data = self._read_raw(max(n - have, _READ_BYTES))
                if not data:
                    self.buf, self.pos = b"".join(parts), 0
                    raise self.error(
                        f"truncated: {what} needs {n} bytes, stream ends after {have}",
                        self.base + have,
                    )
                parts.append(data)
                have += len(data)
            self.buf, self.pos = b"".join(parts), 0
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def u64(self, what: str) -> int:
        return int.from_bytes(self.take(8, what), "little")

    def padding(self, length: int) -> None:
        pad = -length % 8
        if pad:
            at = self.offset
            if self.take(pad, "padding").strip(b"\0"):
                raise self.error("non-zero padding", at)

    def string(self, limit: int, what: str) -> bytes:
        at = self.offset
        length = self.u64(f"length of {what}")
        if length > limit:
            raise self.error(f"{what} is {length} bytes long, at most {limit} allowed", at)
        data = self.take(length, what)
        self.padding(length)
        return data

    def expect(self, token: bytes) -> None:
        at = self.offset
        got = self.string(TAG_MAX_BYTES, "tag")
        if got != token:
            raise self.error(f"expected {token.decode()!r}, found {got!r}", at)

    def contents(self, size: int, entry: NarEntry, sink: ContentSink | None) -> None:
        left = size
        while left:
            if self.pos == len(self.buf):
                self.base += self.pos
                self.buf, self.pos = (
                    self._read_raw(min(left, _READ_BYTES) if sink else _READ_BYTES),
                    0,
                )
                if not self.buf:
                    raise self.error(f"truncated: file contents end {left} bytes early")
            n = min(left, len(self.buf) - self.pos)
            if sink is not None:
                sink(entry, memoryview(self.buf)[self.pos : self.pos + n])
            self.pos += n
            left -= n
        self.padding(size)

    def at_end(self) -> bool:
        return self.pos == len(self.buf) and not self._peek()

    def _peek(self) -> bytes:
        self.base += self.pos
        self.buf, self.pos = self._read_raw(_READ_BYTES), 0
        return self.buf


def _check_name(s: _Stream, name: bytes, prev: bytes | None, at: int) -> None:
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise s.error(f"invalid file name {name!r}", at)
    if prev is not None and name <= prev:
        word = "duplicate" if name == prev else "unsorted"
        raise s.error(f"{word} directory entry {name!r} after {prev!r}", at)


def _node(s: _Stream, name: bytes, parent: NarDir | None, sink: ContentSink | None) -> NarEntry:
    """Parse a node up to its body; a directory's entries are left to the caller."""
    s.expect(b"(")
    s.expect(b"type")
    at = s.offset
    kind = s.string(TAG_MAX_BYTES, "node type")
    if kind == b"directory":
        return NarEntry(name, parent, "directory")
    if kind == b"symlink":
        s.expect(b"target")
        at = s.offset
        target = s.string(TARGET_MAX_BYTES, "symlink target")
        if not target or b"\0" in target:
            raise s.error(f"invalid symlink target {target!r}", at)
        s.expect(b")")
        return NarEntry(name, parent, "symlink", target=target)
    if kind != b"regular":
        raise s.error(f"unknown node type {kind!r}", at)
    at = s.offset
    tag = s.string(TAG_MAX_BYTES, "tag")
    executable = tag == b"executable"
    if executable:
        s.expect(b"")
        at = s.offset
        tag = s.string(TAG_MAX_BYTES, "tag")
    if tag != b"contents":
        raise s.error(f"expected 'contents', found {tag!r}", at)
    size = s.u64("file size")
    entry = NarEntry(name, parent, "regular", size=size, executable=executable, offset=s.offset)
    s.contents(size, entry, sink)
    s.expect(b")")
    return entry


def iter_entries(
    stream: BinaryIO,
    *,
    source: str = "",
    sink: ContentSink | None = None,
    hasher: _Hasher | None = None,
) -> Iterator[NarEntry]:
    """Yield the entries of the NAR read from ``stream``, validating as it goes.

    ``sink(entry, chunk)`` receives file contents (chunks valid only during the call);
    ``hasher.update`` receives every byte of the stream. ``source`` names the input in errors.
    The stream must end exactly where the NAR ends.
    """
    s = _Stream(stream, source, hasher)
    at = s.offset
    if s.string(TAG_MAX_BYTES, "magic") != b"nix-archive-1":
        raise s.error("bad magic: not a NAR (expected 'nix-archive-1')", at)
    root = _node(s, b"", None, sink)
    yield root
    # per open directory: its link (None for the root) and the last name read in it; never
    # a whole path, so memory stays linear in the depth
    stack: list[tuple[NarDir | None, bytes | None]] = (
        [(None, None)] if root.type == "directory" else []
    )
    while stack:
        here, prev = stack[-1]
        at = s.offset
        tag = s.string(TAG_MAX_BYTES, "tag")
        if tag == b")":
            stack.pop()
            if stack:
                s.expect(b")")  # closes the entry that held this directory
            continue
        if tag != b"entry":
            raise s.error(f"expected 'entry' or ')', found {tag!r}", at)
        s.expect(b"(")
        s.expect(b"name")
        at = s.offset
        name = s.string(NAME_MAX_BYTES, "file name")
        _check_name(s, name, prev, at)
        stack[-1] = (here, name)
        s.expect(b"node")
        entry = _node(s, name, here, sink)
        yield entry
        if entry.type == "directory":
            stack.append((NarDir(here, name, here.depth + 1 if here else 1), None))
        else:
            s.expect(b")")
    end = s.offset
    if not s.at_end():
        raise s.error("trailing data after the end of the NAR", end)


class _Counting:
    """A hasher stand-in that counts the bytes it sees and forwards them."""

    def __init__(self, inner: _Hasher | None) -> None:
        self.nbytes = 0
        self.inner = inner

    def update(self, data: bytes, /) -> None:
        self.nbytes += len(data)
        if self.inner is not None:
            self.inner.update(data)


def validate(stream: BinaryIO, *, source: str = "", hasher: _Hasher | None = None) -> NarSummary:
    """Check a whole NAR stream; return its size and entry counts."""
    counts = {"regular": 0, "directory": 0, "symlink": 0}
    content = 0
    counter = _Counting(hasher)
    for entry in iter_entries(stream, source=source, hasher=counter):
        counts[entry.type] += 1
        content += entry.size
    return NarSummary(
        counter.nbytes, counts["regular"], counts["directory"], counts["symlink"], content
    )
