"""Serialise a filesystem path to the exact bytes of ``nix-store --dump``.

The walk is iterative (no recursion limit on deep trees), lists directories with bytes
names and sorts them bytewise, never follows symlinks, marks a file executable only by its
owner-execute bit, and writes hard links as independent copies. Memory is bounded: file
contents are streamed in fixed-size chunks (or with ``sendfile`` straight into a file
descriptor), never read whole.

Two outputs share one walker:

* :func:`dump_to_fd` writes into a pipe or a file; small tokens are batched into one
  ``write`` and file contents go through ``os.sendfile`` (no copy through Python).
* :func:`dump` calls ``sink(chunk)`` for each chunk (a hasher's ``update``, a compressor).
  A chunk is only valid during the call: the buffer behind it is reused.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import stat
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from profiler.errors import NarError, OutputError
from profiler.nar.hashes import Hash

Select = Callable[[bytes], bool]
"""Predicate on a path relative to the root (bytes, ``/``-separated); False leaves it out."""

CHUNK_BYTES = 1 << 20  # read size for file contents
_BATCH_BYTES = 256 << 10  # tokens and small files are gathered up to this size per write
_SMALL_FILE_BYTES = 64 << 10  # files up to this size are read into the batch


def nar_str(data: bytes) -> bytes:
    """Encode one NAR string: u64 little-endian length, the bytes, zero padding to 8."""
    return len(data).to_bytes(8, "little") + data + b"\0" * (-len(data) % 8)


MAGIC = nar_str(b"nix-archive-1")
_OPEN = nar_str(b"(")
_CLOSE = nar_str(b")")
_REGULAR = _OPEN + nar_str(b"type") + nar_str(b"regular")
_EXECUTABLE = nar_str(b"executable") + nar_str(b"")
_CONTENTS = nar_str(b"contents")
_SYMLINK = _OPEN + nar_str(b"type") + nar_str(b"symlink") + nar_str(b"target")
_DIRECTORY = _OPEN + nar_str(b"type") + nar_str(b"directory")
_ENTRY = nar_str(b"entry") + _OPEN + nar_str(b"name")
_NODE = nar_str(b"node")
_ZEROS = b"\0" * 8
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class _Output(Protocol):
    nar_size: int

    def put(self, data: bytes) -> None: ...

    def contents(self, fd: int, size: int, path: bytes) -> None: ...

    def finish(self) -> None: ...


def _changed(path: bytes) -> NarError:
    return NarError(f"{os.fsdecode(path)}: file changed size while being read")


class _BatchedOutput:
    """Gathers tokens and small files in a bytearray; subclasses say how to flush."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.nar_size = 0

    def put(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= _BATCH_BYTES:
            self.flush()

    def contents(self, fd: int, size: int, path: bytes) -> None:
        if size <= _SMALL_FILE_BYTES:
            data = os.read(fd, size + 1) if size else b""
            if len(data) != size:
                raise _changed(path)
            self.buf += data
        else:
            self.flush()
            self.stream(fd, size, path)
        if size % 8:
            self.buf += _ZEROS[: -size % 8]

    def finish(self) -> None:
        self.flush()

    def flush(self) -> None:
        raise NotImplementedError

    def stream(self, fd: int, size: int, path: bytes) -> None:
        raise NotImplementedError


class _SinkOutput(_BatchedOutput):
    def __init__(self, sink: Callable[[memoryview], object]) -> None:
        super().__init__()
        self.sink = sink
        self.chunk = bytearray(CHUNK_BYTES)

    def flush(self) -> None:
        if self.buf:
            self.nar_size += len(self.buf)
            self.sink(memoryview(self.buf))
            self.buf = bytearray()

    def stream(self, fd: int, size: int, path: bytes) -> None:
        view = memoryview(self.chunk)
        left = size
        with open(fd, "rb", buffering=0, closefd=False) as f:
            while left:
                n = f.readinto(view[: min(left, CHUNK_BYTES)])
                if not n:
                    raise _changed(path)
                self.sink(view[:n])
                left -= n
        self.nar_size += size


_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EBADF})


def _output_failed(exc: OSError, name: str) -> OutputError:
    return OutputError(f"{name}: cannot write: {exc.strerror or exc}")


class _FdOutput(_BatchedOutput):
    def __init__(self, fd: int, name: str = "output") -> None:
        super().__init__()
        self.fd = fd
        self.name = name
        self.can_sendfile = True

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except BrokenPipeError:
            raise
        except OSError as exc:  # the output failed, not the tree being read
            raise _output_failed(exc, self.name) from None

    def flush(self) -> None:
        self._write(self.buf)
        self.nar_size += len(self.buf)
        self.buf = bytearray()

    def stream(self, fd: int, size: int, path: bytes) -> None:
        offset = 0
        if self.can_sendfile:
            try:
                while offset < size:
                    sent = os.sendfile(self.fd, fd, offset, min(size - offset, 1 << 30))
                    if not sent:
                        raise _changed(path)
                    offset += sent
            except BrokenPipeError:
                raise
            except OSError as exc:
                if exc.errno in _OUTPUT_ERRNOS:
                    raise _output_failed(exc, self.name) from None
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                self.can_sendfile = False  # e.g. a socket type or fs that refuses it
        os.lseek(fd, offset, os.SEEK_SET)
        while offset < size:
            data = os.read(fd, min(size - offset, CHUNK_BYTES))
            if not data:
                raise _changed(path)
            self._write(data)
            offset += len(data)
        self.nar_size += size


def _unsupported(path: bytes) -> NarError:
    try:
        mode = os.lstat(path).st_mode
        kind = {
            stat.S_IFSOCK: "socket",
            stat.S_IFIFO: "FIFO",
            stat.S_IFCHR: "character device",
            stat.S_IFBLK: "block device",
        }.get(stat.S_IFMT(mode), f"mode {oct(mode)}")
    except OSError:
        kind = "unknown"
    return NarError(
        f"{os.fsdecode(path)}: unsupported file type ({kind}); NARs hold only "
        "regular files, directories and symlinks"
    )


def _regular(path: bytes, out: _Output) -> None:
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _unsupported(path)
        size = st.st_size
        header = (
            _REGULAR + _EXECUTABLE + _CONTENTS
            if st.st_mode & stat.S_IXUSR
            else (_REGULAR + _CONTENTS)
        )
        out.put(header + size.to_bytes(8, "little"))
        out.contents(fd, size, path)
        if size > _SMALL_FILE_BYTES and os.pread(fd, 1, size):
            raise _changed(path)  # grew while streamed (small files are checked on read)
    finally:
        os.close(fd)
    out.put(_CLOSE)


def _children(path: bytes, rel: bytes, select: Select | None) -> Iterator[os.DirEntry[bytes]]:
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    if select is None:
        return iter(entries)
    prefix = rel + b"/" if rel else b""
    return (e for e in entries if select(prefix + e.name))


def _walk(root: bytes, out: _Output, select: Select | None) -> None:
    """Emit the NAR of ``root``; the directory stack replaces recursion."""
    out.put(MAGIC)
    if os.path.isdir(root) and not os.path.islink(root):
        out.put(_DIRECTORY)
        stack = [(root, b"", _children(root, b"", select))]
    else:
        _leaf(root, os.lstat(root).st_mode, out)
        return
    while stack:
        dir_path, rel, children = stack[-1]
        entry = next(children, None)
        if entry is None:
            stack.pop()
            out.put(_CLOSE + _CLOSE if stack else _CLOSE)  # the directory, then its entry
            continue
        path = dir_path + b"/" + entry.name
        out.put(_ENTRY + nar_str(entry.name) + _NODE)
        if entry.is_dir(follow_symlinks=False):
            out.put(_DIRECTORY)
            child_rel = rel + b"/" + entry.name if rel else entry.name
            stack.append((path, child_rel, _children(path, child_rel, select)))
            continue
        mode = (
            stat.S_IFLNK
            if entry.is_symlink()
            else (stat.S_IFREG if entry.is_file(follow_symlinks=False) else 0)
        )
        _leaf(path, mode, out)
        out.put(_CLOSE)


def _leaf(path: bytes, mode: int, out: _Output) -> None:
    if stat.S_ISREG(mode):
        _regular(path, out)
    elif stat.S_ISLNK(mode):
        out.put(_SYMLINK + nar_str(os.readlink(path)) + _CLOSE)
    else:
        raise _unsupported(path)


def _run(path: str | bytes | os.PathLike[str], out: _Output, select: Select | None) -> int:
    root = os.fsencode(path)
    try:
        _walk(root, out, select)
        out.finish()
    except (NarError, OutputError, BrokenPipeError):
        raise  # a closed pipe is the reader's choice, not an error of the tree
    except OSError as exc:
        where = os.fsdecode(exc.filename) if exc.filename else os.fsdecode(root)
        raise NarError(f"{where}: {exc.strerror or exc}") from None
    return out.nar_size


def dump(
    path: str | bytes | os.PathLike[str],
    sink: Callable[[memoryview], object],
    *,
    select: Select | None = None,
    threaded: bool = False,
) -> int:
    """Stream the NAR of ``path`` into ``sink``; return NarSize in bytes.

    ``sink`` receives memoryviews that are only valid during the call (buffers are reused).
    With ``threaded=True`` the sink runs in a background thread on copies of the chunks, so
    reading the tree overlaps with a sink that releases the GIL (hashlib, zstandard, lzma).
    Raises ``NarError`` naming the path for special files, unreadable files, or files that
    change size while being read.
    """
    if not threaded:
        return _run(path, _SinkOutput(sink), select)
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
    failure: list[BaseException] = []

    def consume() -> None:
        while (chunk := chunks.get()) is not None:
            if not failure:
                try:
                    sink(memoryview(chunk))
                except BaseException as exc:  # handed to the caller below
                    failure.append(exc)

    worker = threading.Thread(target=consume, name="nar-sink", daemon=True)
    worker.start()
    try:
        size = _run(path, _SinkOutput(lambda view: chunks.put(bytes(view))), select)
    finally:
        chunks.put(None)
        worker.join()
    if failure:
        raise failure[0]
    return size


def dump_to_fd(
    path: str | bytes | os.PathLike[str],
    fd: int,
    *,
    select: Select | None = None,
    name: str = "output",
) -> int:
    """Write the NAR of ``path`` to file descriptor ``fd`` (pipe, file); return NarSize.

    A failed write raises ``OutputError`` naming the output ``name`` (not the tree)."""
    return _run(path, _FdOutput(fd, name), select)


def dump_bytes(path: str | bytes | os.PathLike[str], *, select: Select | None = None) -> bytes:
    """The whole NAR of ``path`` in memory (for payloads that are measured in memory)."""
    parts = bytearray()
    dump(path, parts.extend, select=select)
    return bytes(parts)


def hash_path(
    path: str | bytes | os.PathLike[str],
    *,
    select: Select | None = None,
) -> tuple[Hash, int]:
    """NarHash (sha256, as ``nix-hash --type sha256`` computes it) and NarSize of ``path``."""
    hasher = hashlib.sha256()
    size = dump(path, hasher.update, select=select, threaded=True)
    return Hash("sha256", hasher.digest()), size
