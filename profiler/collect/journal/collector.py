"""Queue-runner journals into a run: files, ``journalctl``, stdin; read once or followed.

Each input is parsed by :mod:`profiler.collect.journal.parse` as its lines arrive. Followed inputs
(a growing file, a pipe) append their events to the run as they are parsed, so a collector
stopped (or killed) part-way keeps everything it had read; a whole file is imported in
Parquet parts of up to :data:`PART_EVENTS` events (several times faster than JSON lines),
written when full, at the end, on a stop or at a damaged spot. Tables written:

- ``log_events``: one row per event (the fields of :mod:`profiler.collect.journal.parse` plus
  ``source``, the input it came from);
- ``log_summary``: one row per input when it ends (or the collector stops): lines read,
  lines understood, the share understood, the unknown patterns with their counts, malformed
  lines, first and last event time, and the year assumed for year-less timestamps;
- ``events``: errors and notes (``ts``, ``source``, ``event``, ``detail``), as the status
  collector writes them.

Following (``follow=True``) keeps reading a growing file like ``tail -F`` (a rotated or
truncated file is reopened from its start) or a pipe such as ``journalctl -f`` until it
closes, the collector is stopped, or its duration is up. A line is parsed only once its
newline has arrived.
"""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from profiler.codecs import Guarded, open_sniffed, sniff
from profiler.codecs.streams import MAGIC_BYTES
from profiler.collect.control import Log, quiet
from profiler.collect.journal.parse import MONTHS, JournalParser, LogSummary
from profiler.errors import CollectorError
from profiler.store import Run

BATCH_LINES = 20_000  # lines parsed between two writes to the run
PART_EVENTS = 200_000  # events per Parquet part when a whole file is imported
PARTS_AHEAD = 2  # parts waiting for the writer thread (each up to a batch's events)
FILE_BATCH_BYTES = 16 << 20  # of a whole file's lines parsed at a time
PROGRESS_SECONDS = 5.0


def guess_year(first_month: int | None, reference_seconds: float) -> int:
    """The year of a log's first year-less timestamp.

    ``reference_seconds`` is when the log was last written (a file's mtime, or now): a log
    whose first month is later in the year than that moment's month began the year before
    (it crossed a new year, which the parser follows from there).
    """
    ref = time.gmtime(reference_seconds)
    if first_month is not None and first_month > ref.tm_mon:
        return ref.tm_year - 1
    return ref.tm_year


def first_month(lines: list[str]) -> int | None:
    """The month of the first short-format (``Mon DD HH:MM:SS``) line among ``lines``."""
    for line in lines:
        text = line[3:] if line[:1] == "<" and line[2:3] == ">" else line
        month = MONTHS.get(text[:3])
        if month is not None and text[3:4] == " " and text[6:7] == " ":
            return month
    return None


@dataclass
class _Input:
    """One input being parsed: its parser, line count and where its events go."""

    name: str
    parser: JournalParser
    year: int
    next_lineno: int = 1
    written: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    bulk: bool = False  # a whole file: events go to Parquet parts, not JSON lines
    pending: list[dict[str, Any]] = field(default_factory=list)

    def saw(self, stamps: list[float]) -> None:
        """Note the event times of a batch (in line order)."""
        if stamps:
            self.first_ts = self.first_ts if self.first_ts is not None else stamps[0]
            self.last_ts = stamps[-1]

    def summary_row(self, ended: str) -> dict[str, Any]:
        s: LogSummary = self.parser.summary
        return {
            "ts": time.time(),
            "source": self.name,
            "lines": s.lines,
            "understood": s.understood,
            "understood_share": s.understood / s.lines if s.lines else None,
            "events": self.written,
            "unknown_lines": sum(s.unknown.values()),
            "unknown_patterns": json.dumps(dict(s.unknown.most_common(50)), ensure_ascii=False),
            "malformed_lines": len(s.malformed),
            "malformed_first": s.malformed[:10],
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "year_assumed": self.year,
            "ended": ended,
        }


@dataclass
class LogCollector:
    """Parses inputs into ``run``; :attr:`stop` ends a follow (also from a signal handler).

    Parameters
    ----------
    run
        The run directory the tables go into.
    strict
        Stop at the first malformed line (with file and line number) instead of counting it.
    year
        The year of year-less timestamps; None guesses it per input (see :func:`guess_year`).
    poll_seconds
        How often a followed file is checked for growth.
    duration_seconds
        Stop following after this long (None: until stopped or the input closes).
    """

    run: Run
    strict: bool = False
    year: int | None = None
    poll_seconds: float = 0.5
    duration_seconds: float | None = None
    log: Log = quiet
    stop: threading.Event = field(default_factory=threading.Event)
    inputs: list[_Input] = field(default_factory=list)
    errors: int = 0

    def __post_init__(self) -> None:
        self.events_out = self.run.writer("log_events", flush_seconds=2.0)
        self.parts = _PartWriter(self.run, "log_events")
        self.summaries = self.run.writer("log_summary")
        self.notes = self.run.writer("events")
        self._deadline = (
            None if self.duration_seconds is None else time.monotonic() + self.duration_seconds
        )

    @property
    def events_written(self) -> int:
        return sum(i.written for i in self.inputs)

    def _stopping(self) -> bool:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.stop.set()
        return self.stop.is_set()

    def _error(self, source: str, message: str) -> None:
        self.errors += 1
        self.notes.append(
            {"ts": time.time(), "source": source, "event": "error", "detail": message}
        )
        self.log(f"collect logs: {message}")

    # --- the common loop ----------------------------------------------------------------
    def _start(self, name: str, first_lines: list[str], reference_seconds: float) -> _Input:
        year = self.year or guess_year(first_month(first_lines), reference_seconds)
        item = _Input(name, JournalParser(name, year, self.strict), year)
        self.inputs.append(item)
        self.run.add_source("logs", name, None)
        return item

    def _feed(self, item: _Input, batch: list[str] | Block) -> None:
        parser = item.parser
        column = (batch.column() if isinstance(batch, Block) else batch) if item.bulk else None
        if column is not None:
            frame = parser.feed_frame(column)
            if frame is not None:  # the whole batch parsed as columns: a part of its own
                item.next_lineno += len(batch)
                self._frame_part(item, frame)
                return
        lines = batch.lines() if isinstance(batch, Block) else batch
        try:
            item.next_lineno = parser.feed_all(lines, item.next_lineno)
        finally:  # a strict-mode error keeps the events parsed before the bad line
            if parser.events:
                rows = [{**e, "source": item.name} for e in parser.events]
                if item.bulk:
                    item.pending += rows
                    if len(item.pending) >= PART_EVENTS:
                        self._flush_part(item)
                else:
                    self.events_out.append_many(rows)
                item.written += len(parser.events)
                item.saw([e["ts"] for e in parser.events if e["ts"] is not None])
                parser.events.clear()

    def _frame_part(self, item: _Input, frame: Any) -> None:
        """Write a batch's event frame as a part, after the rows before it (parts keep their
        order), with the same columns the dict path writes."""
        import polars as pl

        if frame.is_empty():
            return
        self._flush_part(item)
        frame = frame.with_columns(pl.lit(item.name).alias("source"))
        self.parts.put(frame.to_arrow())
        item.written += len(frame)
        stamps = frame["ts"].drop_nulls()
        if len(stamps):
            item.saw([stamps[0], stamps[-1]])

    def _flush_part(self, item: _Input) -> None:
        if item.pending:
            from profiler.store.tables import records_to_arrow

            self.parts.put(records_to_arrow(item.pending))
            item.pending = []

    def _finish(self, item: _Input, ended: str) -> None:
        try:
            self._flush_part(item)
        finally:  # every part handed over is on disk before the summary says it is
            self.parts.drain()
        self.summaries.append(item.summary_row(ended))
        self.events_out.flush()
        s = item.parser.summary
        share = f"{100 * s.understood / s.lines:.1f}%" if s.lines else "-"
        self.log(
            f"collect logs: {item.name}: {s.lines} lines, {share} understood, "
            f"{item.written} events, {sum(s.unknown.values())} unknown lines in "
            f"{len(s.unknown)} patterns, {len(s.malformed)} malformed ({ended})"
        )

    def _run(
        self, item: _Input, batches: Iterator[list[str] | Block], progress: Callable[[], str]
    ) -> None:
        ended = "end of input"
        next_report = time.monotonic() + PROGRESS_SECONDS
        try:
            for lines in batches:
                self._feed(item, lines)
                if time.monotonic() >= next_report:
                    self.log(f"collect logs: {item.name}: {progress()}")
                    next_report = time.monotonic() + PROGRESS_SECONDS
                if self._stopping():
                    ended = "stopped"
                    break
        except CollectorError as exc:
            ended = "error"
            self._error(item.name, str(exc))
            if self.strict:
                raise
        finally:
            self._finish(item, ended)

    # --- inputs -------------------------------------------------------------------------
    def collect_file(self, path: str, *, follow: bool = False) -> None:
        """Parse a plain or compressed file; with ``follow``, keep reading as it grows."""
        try:
            st = os.stat(path)
            with open(path, "rb") as f:
                magic = f.read(MAGIC_BYTES)
        except OSError as exc:
            self._error(path, f"{path}: cannot read: {exc.strerror}")
            return
        if follow and sniff(magic) != "none":
            self._error(path, f"{path}: a compressed file cannot be followed (drop --follow)")
            return
        if follow:
            tail = _Tail(path, self.poll_seconds, self.stop)
            first = tail.peek_lines()
            item = self._start(path, first, st.st_mtime)
            self._run(item, tail.batches(self._stopping), tail.progress)
            return
        reader = _FileBatches(path)
        item = self._start(path, reader.peek(), st.st_mtime)
        item.bulk = True
        self._run(item, reader.batches(), reader.progress)

    def collect_stream(self, stream: IO[bytes], name: str) -> None:
        """Parse a pipe (stdin, ``journalctl -f``) until it closes or the collector stops."""
        tail = _PipeTail(stream.fileno(), self.poll_seconds)
        first = tail.peek_lines(self._stopping)
        item = self._start(name, first, time.time())
        self._run(item, tail.batches(self._stopping), tail.progress)

    def collect_journal(
        self, units: list[str], *, since: str | None = None, follow: bool = False
    ) -> None:
        """Read ``journalctl -o json`` for ``units`` (exact times, PIDs and priorities)."""
        exe = shutil.which("journalctl")
        if exe is None:
            raise CollectorError(
                "journalctl not found: run on the Hydra host, or export the journal there "
                "(journalctl -u hydra-queue-runner -o json > q.json) and use --file"
            )
        argv = [exe, "-o", "json", "--no-pager", "--output-fields=" + _JOURNAL_FIELDS]
        for unit in units:
            argv += ["-u", unit]
        if since:
            argv += ["--since", since]
        if follow:
            argv.append("-f")
        name = "journalctl " + " ".join(f"-u {u}" for u in units)
        with tempfile.TemporaryFile() as err:  # not a pipe: a chatty stderr cannot block it
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
            if proc.stdout is None:
                raise AssertionError("Popen gave no stdout pipe")
            try:
                self.collect_stream(proc.stdout, name)
            finally:
                if proc.poll() is None:
                    proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            err.seek(0)
            text = err.read().decode("utf-8", "replace").strip().splitlines()
        if proc.returncode not in (0, -15) and not self.stop.is_set():
            self._error(name, f"{name}: exit status {proc.returncode}: {text[0] if text else ''}")


_JOURNAL_FIELDS = "MESSAGE,PRIORITY,_PID,_HOSTNAME,SYSLOG_IDENTIFIER,_SYSTEMD_UNIT"


class _PartWriter:
    """Parts written in order on one background thread while the next batch is parsed
    (writing a part, its fsync included, releases the GIL; a 500k-line journal spent a fifth
    of its import there: benchmarks/log_parse.py). At most :data:`PARTS_AHEAD` wait; a
    failed write is raised by the next :meth:`put` or :meth:`drain`, the parts before it kept.
    """

    def __init__(self, run: Run, table: str) -> None:
        self.run, self.table = run, table
        self._pool: ThreadPoolExecutor | None = None
        self._waiting: list[Future[str]] = []

    def put(self, arrow: Any) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-parts")
        while len(self._waiting) >= PARTS_AHEAD:
            self._waiting.pop(0).result()
        self._waiting.append(self._pool.submit(self.run.write_arrow_part, self.table, arrow))

    def drain(self) -> None:
        try:
            while self._waiting:
                self._waiting.pop(0).result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


class _FileBatches:
    """A whole (possibly compressed) file in batches of lines, with progress by bytes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = os.path.getsize(path)
        self._raw = open(path, "rb")
        self._guard = Guarded(open_sniffed(self._raw))
        # bytes, decoded per batch: a columnar batch goes to polars undecoded (its CSV reader
        # splits the lines in Rust and checks the UTF-8); the line parser's lists are decoded
        # as a text reader with errors="replace", newline="\n" would
        self._bytes = io.BufferedReader(self._guard, 1 << 20)
        self._head = [b.decode("utf-8", "replace") for b in self._bytes.readlines(1 << 16)]
        self.lines = 0
        self.started = time.monotonic()

    def peek(self) -> list[str]:
        return self._head[:200]

    def progress(self) -> str:
        rate = self.lines / max(time.monotonic() - self.started, 1e-9)
        done = self._raw.tell() if not self._raw.closed else self.size
        share = f"{100 * done / self.size:.0f}% of {self.size / 1e6:,.0f} MB, " if self.size else ""
        return f"{share}{self.lines:,} lines ({rate:,.0f} lines/s)"

    def batches(self) -> Iterator[list[str] | Block]:
        try:
            batch: list[str] | Block = self._head
            while batch:
                # one ahead (is this the last?); 16 MiB of lines a batch: a columnar batch's
                # fixed cost (a few dozen column passes) spread over ~100k lines; read as one
                # string (no object per line: a columnar parse splits it in Rust)
                following = Block(self._read_block())
                if not following and self._guard.error is not None and batch:
                    batch = _whole_lines(batch)  # cut by the damage: not a whole line
                self.lines += len(batch)
                if batch:
                    yield batch
                batch = following
            if self._guard.error is not None:  # truncated or corrupt: what came before stays
                raise CollectorError(
                    f"{self.path}: unreadable after line {self.lines}: {self._guard.error}"
                )
        finally:
            self._bytes.close()
            self._raw.close()

    def _read_block(self) -> bytes:
        """About :data:`FILE_BATCH_BYTES` of the file, to the end of a line."""
        data = self._bytes.read(FILE_BATCH_BYTES)
        if data and not data.endswith(b"\n"):
            data += self._bytes.readline()
        return data


def _whole_lines(batch: list[str] | Block) -> list[str] | Block:
    """``batch`` without a last line that has no newline."""
    if isinstance(batch, Block):
        end = batch.data.rfind(b"\n")
        return Block(batch.data[: end + 1])
    return batch[:-1] if batch and not batch[-1].endswith("\n") else batch


_BOM = b"\xef\xbb\xbf"
_NO_SEPARATOR = "\x1f"  # the CSV reader's field separator: a block holding it goes line by line


class Block:
    """Whole lines read as bytes: the columnar pass gets them as a column, split and
    checked as UTF-8 in Rust, the line parser gets the list of decoded lines (each with its
    newline, as ``readlines`` of a text reader with ``errors="replace"``)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._lines = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)

    def __len__(self) -> int:
        return self._lines

    def lines(self) -> list[str]:
        return _split_nl(self.data.decode("utf-8", "replace"))

    def column(self) -> Any:
        """The lines as a polars string Series without their line ends (``\r\n`` too), or
        None when polars would not read them as the line parser does: a byte that is not
        UTF-8 (the line parser replaces it), a leading byte-order mark (polars drops it), a
        line holding the separator."""
        import polars as pl

        if not self.data or self.data.startswith(_BOM) or _NO_SEPARATOR.encode() in self.data:
            return None
        try:
            frame = pl.read_csv(
                io.BytesIO(self.data),
                has_header=False,
                separator=_NO_SEPARATOR,
                quote_char=None,
                new_columns=["line"],
                schema={"line": pl.String},
            )
        except (pl.exceptions.PolarsError, pl.exceptions.ComputeError):
            return None
        column = frame["line"]
        if len(column) != len(self):  # never seen; the line parser then reads the batch
            return None
        # polars gives an empty line as null and drops one \r before the \n; the line
        # parser strips every \r at the end
        return column.fill_null("").str.strip_chars_end("\r")


def _split_nl(text: str) -> list[str]:
    """Lines split at ``\n`` only, each keeping it (``readlines`` with ``newline="\n"``)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


class _Lines:
    """Bytes in, complete decoded lines out; a partial last line waits for its newline."""

    def __init__(self) -> None:
        self.partial = b""
        self.lines = 0
        self.started = time.monotonic()

    def split(self, data: bytes) -> list[str]:
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        if not cut:
            return []
        lines = data[: cut - 1].decode("utf-8", "replace").split("\n")
        self.lines += len(lines)
        return lines

    def rest(self) -> list[str]:
        """The partial last line of an input that ended without a newline."""
        data, self.partial = self.partial, b""
        return [data.decode("utf-8", "replace")] if data else []

    def progress(self) -> str:
        rate = self.lines / max(time.monotonic() - self.started, 1e-9)
        return f"{self.lines:,} lines ({rate:,.0f} lines/s), following"


class _Tail(_Lines):
    """``tail -F`` of a plain file: read to the end, then poll; reopen when rotated."""

    CHUNK = 1 << 20

    def __init__(self, path: str, poll_seconds: float, stop: threading.Event) -> None:
        super().__init__()
        self.path, self.poll, self.stop = path, poll_seconds, stop
        self._fd = os.open(path, os.O_RDONLY)
        self._ino = os.fstat(self._fd).st_ino
        self._head: list[str] = self.split(os.read(self._fd, 1 << 16))

    def peek_lines(self) -> list[str]:
        return self._head[:200]

    def _rotated(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # being rotated: keep the old file until the new one appears
        pos = os.lseek(self._fd, 0, os.SEEK_CUR)
        return st.st_ino != self._ino or st.st_size < pos

    def batches(self, stopping: Callable[[], bool]) -> Iterator[list[str]]:
        try:
            if self._head:
                yield self._head
            while not stopping():
                data = os.read(self._fd, self.CHUNK)
                if data:
                    lines = self.split(data)
                    if lines:
                        yield lines
                    continue
                if self._rotated():
                    yield self.rest()
                    os.close(self._fd)
                    self._fd = os.open(self.path, os.O_RDONLY)
                    self._ino = os.fstat(self._fd).st_ino
                    continue
                self.stop.wait(self.poll)
            yield self.rest()
        finally:
            os.close(self._fd)


class _PipeTail(_Lines):
    """A pipe read as data arrives (``select``), so a quiet pipe still lets a stop in."""

    def __init__(self, fd: int, poll_seconds: float) -> None:
        super().__init__()
        self.fd, self.poll = fd, poll_seconds
        self.closed = False
        self._head: list[str] = []

    def _read(self) -> list[str] | None:
        ready, _, _ = select.select([self.fd], [], [], self.poll)
        if not ready:
            return []
        data = os.read(self.fd, 1 << 20)
        if not data:
            self.closed = True
            return None
        return self.split(data)

    def peek_lines(self, stopping: Callable[[], bool]) -> list[str]:
        """Wait for the first lines (to guess the year from them)."""
        while not self._head and not self.closed and not stopping():
            got = self._read()
            if got:
                self._head = got
        return self._head[:200]

    def batches(self, stopping: Callable[[], bool]) -> Iterator[list[str]]:
        if self._head:
            yield self._head
        while not self.closed and not stopping():
            got = self._read()
            if got:
                yield got
        yield self.rest()
