"""Append-only JSON-lines segments: writing them, and reading them back line by line.

A table is a directory ``RUN/tables/<table>/`` of segments ``<utc-stamp>-<pid>-<n>.jsonl``,
Parquet parts of bulk imports, and at most one compacted Parquet file (see tables.py).

A segment line is either one record (a JSON object, :meth:`SegmentWriter.append`) or a
*group*: a JSON array of records written by one :meth:`SegmentWriter.append_many` call
(format 2), e.g. every row of one status sample. Each line is appended with one
``os.write`` to a file opened ``O_APPEND``, a group never spans two segments, and a writer
never reopens a segment (a restarted process starts a new one), so a process killed at any
moment leaves at most one partial last line. A partial line never parses as JSON (an
object or array lacks its closing bracket), so readers and compaction drop a torn group
whole: a sample is stored entirely or not at all. A writer holds an exclusive ``flock`` on
its open segment: compaction skips segments that are still locked.

Nothing here imports pandas or pyarrow, so collectors stay light.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from profiler import atomic
from profiler.errors import StoreError

MAX_SEGMENT_BYTES = 8 * 1024 * 1024
SEGMENT_SUFFIX = ".jsonl"
_DECODE = json.JSONDecoder().raw_decode
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_COUNTER = itertools.count(1)  # per process: with the pid, makes segment names unique
STAMP = r"\d{8}T\d{6}\.\d{6}Z"
SEGMENT_NAME = re.compile(rf"{STAMP}-\d+-\d{{6,}}\.jsonl")


def utc_stamp() -> str:
    """The current UTC time as a sortable file-name stamp (microseconds)."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


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
        """Append records as one group: one line, one ``os.write``, all in one segment.

        Readers see the group whole or not at all: a process killed mid-write leaves a
        partial last line, which never parses and is dropped (see the module docstring). A
        group larger than the room left in the current segment starts a new segment, and
        one larger than ``max_segment_bytes`` makes that segment larger than the limit.
        """
        if not records:
            return
        if self.closed:
            raise StoreError(f"{self.directory}: append to a closed writer")
        if len(records) == 1:
            self._write(_encode(records[0], self.directory), 1)
            return
        for record in records:
            if not isinstance(record, Mapping):
                kind = type(record).__name__
                raise StoreError(f"{self.directory}: a record must be a dict, not {kind}")
        try:
            line = (_ENCODE(list(records)) + "\n").encode()
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{self.directory}: record is not JSON-serialisable: {exc}") from None
        if self._fd is not None and self._size and self._size + len(line) > self.max_segment_bytes:
            self._close_segment(sync=True)  # the group goes whole into a new segment
        self._write(line, len(records))

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
                atomic.fsync_dir(self.directory)
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


CHUNK_RECORDS = 8192  # records per chunk when a segment is read in bounded pieces


def _parse(line: str) -> list[dict[str, Any]] | None:
    """The records of one line (a record or a group), or None if it is not one."""
    try:
        value, end = _DECODE(line)  # json.loads without its per-call overhead
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return None
    if end != len(line):
        return None
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return value
    return None


def iter_segment(
    path: str, label: str, warnings: list[str]
) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """Parse one segment in chunks of about :data:`CHUNK_RECORDS` ``(line number, record)``
    pairs, so memory stays bounded whatever the segment's size; skip unparsable lines and
    append one warning per skipped line to ``warnings`` (``label`` names the file).

    A partial last line is dropped whole (a torn record or group); it is reported unless a
    live writer holds the segment (a line in flight is not damage).

    Raises
    ------
    StoreError
        The segment cannot be read (a directory, no permission, an I/O error).
    """
    try:
        f = open(path, "rb")  # closed in the finally below
    except OSError as exc:
        raise StoreError(f"{path}: cannot read segment: {exc.strerror or exc}") from None
    chunk: list[tuple[int, dict[str, Any]]] = []
    bad: int | None = None  # the last unparsable line, reported once we know if it is last
    try:
        for lineno, raw in enumerate(f, 1):
            line = raw.decode("utf-8", "replace").strip()  # damaged bytes: an unparsable line
            if not line:
                continue
            if bad is not None:
                warnings.append(f"{label}:{bad}: skipped an unparsable record")
                bad = None
            records = _parse(line)
            if records is None:
                bad = lineno
                continue
            chunk += [(lineno, r) for r in records]
            if len(chunk) >= CHUNK_RECORDS:
                yield chunk
                chunk = []
    except OSError as exc:
        raise StoreError(f"{path}: cannot read segment: {exc.strerror or exc}") from None
    finally:
        f.close()
    if bad is not None and not in_use(path):
        warnings.append(f"{label}: skipped a partial last record (crash during write)")
    if chunk:
        yield chunk


def read_segment(path: str, label: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Parse one segment whole; skip unparsable lines and say which, never raise for them.

    Returns
    -------
    records, warnings
        The records in file order, and one line per skipped line (``label`` names the file).
    """
    warnings: list[str] = []
    records = [r for chunk in iter_segment(path, label, warnings) for _, r in chunk]
    return records, warnings
