"""Append-only JSON-lines segments: writing them, and reading them back line by line.

A table is a directory ``RUN/tables/<table>/`` of segments ``<utc-stamp>-<pid>-<n>.jsonl``
(one JSON object per line), Parquet parts of bulk imports, and at most one compacted
Parquet file (see tables.py). Each
record is appended with one ``os.write`` of the whole line to a file opened ``O_APPEND``,
so a process killed at any moment leaves at most one partial last line, and a writer never
reopens a segment (a restarted process starts a new one). A writer holds an exclusive
``flock`` on its open segment: compaction skips segments that are still locked.

Nothing here imports pandas or pyarrow, so collectors stay light.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import json
import os
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from profiler.errors import StoreError

MAX_SEGMENT_BYTES = 8 * 1024 * 1024
SEGMENT_SUFFIX = ".jsonl"
_DECODE = json.JSONDecoder().raw_decode
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_COUNTER = itertools.count(1)  # per process: with the pid, makes segment names unique


def utc_stamp() -> str:
    """The current UTC time as a sortable file-name stamp (microseconds)."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def fsync_dir(directory: str) -> None:
    """Make a created, renamed or removed directory entry durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode(record: Mapping[str, Any], where: str) -> bytes:
    if not isinstance(record, Mapping):
        raise StoreError(f"{where}: a record must be a dict, not {type(record).__name__}")
    try:
        return (_ENCODE(record) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{where}: record is not JSON-serialisable: {exc}") from None


class SegmentWriter:
    """Appends the records of one table to append-only JSON-lines segments.

    Parameters
    ----------
    directory
        The table directory, ``RUN/tables/<table>``; created on the first append.
    flush_every
        fsync after this many records (None: no record-count threshold).
    flush_seconds
        fsync on an append at least this many seconds after the last fsync (None: never
        by time). Appended records are in the OS page cache as soon as ``append`` returns,
        so a killed process loses nothing; fsync bounds the loss if the machine crashes.
    max_segment_bytes
        Start a new segment once the current one has reached this size.
    """

    def __init__(
        self,
        directory: str,
        *,
        flush_every: int | None = None,
        flush_seconds: float | None = 1.0,
        max_segment_bytes: int = MAX_SEGMENT_BYTES,
    ) -> None:
        self.directory = directory
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.max_segment_bytes = max_segment_bytes
        self.records = 0  # appended by this writer, over all its segments
        self.segments: list[str] = []  # paths of the segments it created
        self.closed = False
        self._fd: int | None = None
        self._size = 0
        self._unsynced = 0
        self._dir_synced = False
        self._last_sync = time.monotonic()

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record (a JSON-serialisable dict) as one line."""
        if self.closed:
            raise StoreError(f"{self.directory}: append to a closed writer")
        # the whole line in one write (see the module docstring); on a full disk or a
        # signal _write finishes the line, and any damage stays the last line of the segment
        self._write(_encode(record, self.directory), 1)

    def append_many(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append records with one ``os.write`` per segment's worth (a bulk import's path).

        A process killed mid-call leaves whole lines and at most one partial last line,
        as with :meth:`append`.
        """
        if not records:
            return
        if self.closed:
            raise StoreError(f"{self.directory}: append to a closed writer")
        lines = [_encode(r, self.directory) for r in records]
        start = 0
        while start < len(lines):  # cut where a segment would pass its size limit
            room, end = self.max_segment_bytes - self._size, start
            while end < len(lines) and (end == start or room >= len(lines[end])):
                room -= len(lines[end])
                end += 1
            self._write(b"".join(lines[start:end]), end - start)
            start = end

    def _write(self, data: bytes, count: int) -> None:
        fd = self._open() if self._fd is None else self._fd
        size = len(data)
        try:
            written = os.write(fd, data)
            while written < len(data):
                data = data[written:]
                written = os.write(fd, data)
        except OSError as exc:
            self._close_segment(sync=False)
            raise StoreError(f"{self.segments[-1]}: cannot append: {exc.strerror}") from None
        self.records += count
        self._size += size
        self._unsynced += count
        if self._size >= self.max_segment_bytes:
            self._close_segment(sync=True)
        elif self._flush_due():
            self.flush()

    def flush(self) -> None:
        """fsync the records appended so far (and the new segment's directory entry)."""
        if self._fd is not None and self._unsynced:
            os.fsync(self._fd)
            if not self._dir_synced:
                fsync_dir(self.directory)
                self._dir_synced = True
        self._unsynced = 0
        self._last_sync = time.monotonic()

    def close(self) -> None:
        """fsync and close the current segment; further appends are refused."""
        self._close_segment(sync=True)
        self.closed = True

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _flush_due(self) -> bool:
        if self.flush_every is not None and self._unsynced >= self.flush_every:
            return True
        return (
            self.flush_seconds is not None
            and time.monotonic() - self._last_sync >= self.flush_seconds
        )

    def _open(self) -> int:
        try:
            os.makedirs(self.directory, exist_ok=True)
            while True:
                name = f"{utc_stamp()}-{os.getpid()}-{next(_COUNTER):06d}{SEGMENT_SUFFIX}"
                path = os.path.join(self.directory, name)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                try:
                    fd = os.open(path, flags, 0o644)
                    break
                except FileExistsError:
                    continue
        except OSError as exc:
            raise StoreError(f"{self.directory}: cannot create a segment: {exc.strerror}") from None
        fcntl.flock(fd, fcntl.LOCK_EX)  # "in use": compaction leaves this segment alone
        self._fd, self._size, self._dir_synced = fd, 0, False
        self.segments.append(path)
        return fd

    def _close_segment(self, *, sync: bool) -> None:
        if self._fd is None:
            return
        try:
            if sync:
                self.flush()
        finally:
            os.close(self._fd)  # also releases the flock
            self._fd = None


def segment_names(table_dir: str) -> list[str]:
    """Names of the segments in a table directory, sorted (= append order per writer)."""
    try:
        names = os.listdir(table_dir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.endswith(SEGMENT_SUFFIX) and not n.startswith("."))


def in_use(path: str) -> bool:
    """Whether a writer still holds ``path`` open (its flock is taken)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def compactable(table_dir: str, absorbed: set[str]) -> list[str]:
    """Segments that are finished (no writer holds them) and not yet absorbed, sorted."""
    out = []
    for name in segment_names(table_dir):
        path = os.path.join(table_dir, name)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            continue
        # size first: a writer takes its flock before its first write, so a non-empty
        # segment that is not locked is finished for good (writers never reopen one)
        if name not in absorbed and size > 0 and not in_use(path):
            out.append(name)
    return out


def read_segment(path: str, label: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Parse one segment; skip unparsable lines and say which, never raise for them.

    Returns
    -------
    records, warnings
        The records in file order, and one line per skipped line (``label`` names the file).
    """
    with open(path, "rb") as f:  # damaged bytes just make their line unparsable
        lines = [line.strip() for line in f.read().decode("utf-8", "replace").split("\n")]
    last = max((i for i, line in enumerate(lines) if line), default=-1)
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    for i, line in enumerate(lines[: last + 1]):
        if not line:
            continue
        try:
            record, end = _DECODE(line)  # json.loads without its per-call overhead
        except ValueError:
            record, end = None, 0
        if end != len(line):
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif i < last:
            warnings.append(f"{label}:{i + 1}: skipped an unparsable record")
        elif not in_use(path):  # a live writer's line in flight is not damage
            warnings.append(f"{label}: skipped a partial last record (crash during write)")
    return records, warnings
