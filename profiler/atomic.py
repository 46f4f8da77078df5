"""Whole files or nothing: the one way the commands write an output file.

:func:`replacing` writes into a hidden temporary file next to the target and renames it over
the target only when everything was written, so a full disk, a write error or Ctrl-C leaves
the old file (or none) and no temporary file behind. A target that exists and is not a
regular file (``/dev/stdout``, a FIFO) is written directly, as there is nothing to replace.

Every failure is a one-line :class:`~profiler.errors.ProfilerError` (or the subclass the
caller names) that says which file and why.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from typing import IO, Any

from profiler.errors import ProfilerError


def _special(path: str) -> bool:
    try:
        return not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path)
    except OSError:
        return False


def temporary_name(path: str) -> str:
    """A hidden, unique name in ``path``'s directory (same file system: rename is atomic)."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def cannot_write(path: str, exc: OSError, error: type[ProfilerError] = ProfilerError) -> Exception:
    """The one-line error for a failed write of ``path``."""
    return error(f"{path}: cannot write: {exc.strerror or exc}")


@contextlib.contextmanager
def replacing(
    path: str,
    mode: str = "w",
    *,
    encoding: str | None = "utf-8",
    error: type[ProfilerError] = ProfilerError,
    newline: str | None = None,
    durable: bool = False,
) -> Iterator[IO[Any]]:
    """Open a file that becomes ``path`` when the block ends without an exception.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"``. An ``OSError`` (also one raised by
    the block) becomes ``error``; the temporary file is removed on any failure. ``durable``:
    the data and the rename survive a machine crash too (fsync of the file before the rename
    and of its directory after: the run store's manifest).
    """
    binary = "b" in mode
    kwargs: dict[str, Any] = {} if binary else {"encoding": encoding, "newline": newline}
    if _special(path):
        try:
            with open(path, mode, **kwargs) as f:
                yield f
        except OSError as exc:
            raise cannot_write(path, exc, error) from None
        return
    if os.path.isdir(path):
        raise error(f"{path}: cannot write: it is a directory")
    tmp = temporary_name(path)
    try:
        with open(tmp, "xb" if binary else "x", **kwargs) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(os.path.dirname(path) or ".")
    except OSError as exc:
        remove_quietly(tmp)
        raise cannot_write(path, exc, error) from None
    except BaseException:
        remove_quietly(tmp)
        raise


def check_writable(path: str, *, error: type[ProfilerError] = ProfilerError) -> None:
    """Fail now, in one line, if ``path`` could not be written later (a directory, a missing
    or read-only parent, no permission): a probe file is created next to it and removed."""
    if os.path.isdir(path):
        raise error(f"{path}: cannot write: it is a directory")
    if _special(path):
        return
    probe = temporary_name(path)
    try:
        with open(probe, "x"):
            pass
    except OSError as exc:
        raise cannot_write(path, exc, error) from None
    remove_quietly(probe)


def write_text(path: str, text: str, *, error: type[ProfilerError] = ProfilerError) -> None:
    """Write ``text`` (UTF-8) to ``path``, whole or not at all."""
    with replacing(path, "w", error=error) as f:
        f.write(text)


def write_bytes(
    path: str, data: bytes, *, error: type[ProfilerError] = ProfilerError, durable: bool = False
) -> None:
    """Write ``data`` to ``path``, whole or not at all."""
    with replacing(path, "wb", error=error, durable=durable) as f:
        f.write(data)


def fsync_dir(directory: str) -> None:
    """Make a created, renamed or removed directory entry durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    """Make a written file's contents durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: str) -> None:
    """Delete ``path`` if it can be (a temporary or a probe: one gone already is fine)."""
    with contextlib.suppress(OSError):
        os.remove(path)
