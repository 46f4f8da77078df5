"""Where status documents and metrics texts come from, each behind ``fetch()``.

A source returns :class:`Fetched` items: the document (parsed JSON or Prometheus text), the
UTC time it describes, and where it came from. Live sources (HTTP, a command, PostgreSQL's
``SystemStatus``, a file re-read each time) return one item per call; captured sources (a
directory of snapshots, old ``status: {...}`` journal lines) return everything they hold
once, with the times recorded in the documents. Every failure is a one-line
``CollectorError`` that names the source with its secrets redacted; a damaged document among
captured ones is reported on its own (an ``error`` item) and the others are kept.

Live fetches take a :class:`~profiler.collect.status.transfer.Budget`: a request ends at its
timeout, when the collector is stopped, or when its run ends, whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shlex
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from profiler.collect.status import transfer
from profiler.collect.status.transfer import NO_BUDGET, Budget, Cancelled
from profiler.errors import CollectorError, UsageError
from profiler.store import redact

MAX_BODY_BYTES = 64 << 20
# a document's own time is believed between 1970 and 2100; outside, the fetch time is used
LATEST_PLAUSIBLE_TIME = 4102444800.0


@dataclass(frozen=True)
class Fetched:
    """One document: ``doc`` is a JSON value (status) or text (metrics), or None when the
    source has none; ``note`` says in one line what the collector must know about it (a stale
    document) or why there is none."""

    doc: Any
    ts: float
    origin: str
    note: str | None = None
    event: str | None = None  # the event ``note`` is recorded as (default: stale / absent)


class Source(Protocol):
    kind: str
    target: str  # redacted, for manifests and messages
    live: bool

    def fetch(self, budget: Budget = ...) -> list[Fetched]: ...


def _json(body: bytes, origin: str) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise CollectorError(f"{origin}: JSON nested too deeply ({len(body)} bytes)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        head = body[:60].decode("utf-8", "replace")
        raise CollectorError(
            f"{origin}: not JSON ({exc.__class__.__name__}: {transfer.one_line(str(exc), 120)}); "
            f"body starts {transfer.one_line(repr(head), 80)}, {len(body)} bytes"
        ) from None


class HttpSource:
    """GET a URL (``Accept: application/json`` for status) with a total deadline.

    ``user:password@`` in the URL is sent as HTTP basic authentication; ``headers`` (e.g.
    ``Authorization: Bearer ...``) are sent with every request. A malformed URL is a
    :class:`~profiler.errors.UsageError` here, at construction.
    """

    live = True

    def __init__(
        self,
        url: str,
        *,
        kind: str = "status",
        timeout_seconds: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = transfer.parse_url(url)
        self.path = self.url.target.partition("?")[0]  # /status/machines: a Rust endpoint
        self.kind = kind
        self.target = self.url.display
        self.timeout = timeout_seconds
        accept = "application/json" if kind == "status" else "text/plain"
        self.headers = {"Accept": accept, "User-Agent": "hydra-profiler", **(headers or {})}

    def fetch(self, budget: Budget = NO_BUDGET) -> list[Fetched]:
        resp = transfer.http_get(
            self.url,
            headers=self.headers,
            timeout=self.timeout,
            max_bytes=MAX_BODY_BYTES,
            budget=budget,
        )
        now = time.time()
        if self.kind == "metrics":
            return [Fetched(resp.body.decode("utf-8", "replace"), now, self.target)]
        return [Fetched(_json(resp.body, self.target), now, self.target)]


class CommandSource:
    """A command whose stdout is the status JSON (``hydra-queue-runner --status``, ssh...).

    The command line is split like a shell would (no shell runs it); an empty or unparsable
    one is a :class:`~profiler.errors.UsageError`. The command gets the timeout in all, and
    its output is capped like an HTTP body.
    """

    live = True
    kind = "status"

    def __init__(self, command: str, *, timeout_seconds: float = 10.0) -> None:
        self.target = redact(command)
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise UsageError(f"--command {self.target!r}: cannot parse it: {exc}") from None
        if not self.argv:
            raise UsageError("--command: empty command")
        self.timeout = timeout_seconds

    def fetch(self, budget: Budget = NO_BUDGET) -> list[Fetched]:
        done = transfer.run_command(
            self.argv,
            target=self.target,
            timeout=self.timeout,
            max_bytes=MAX_BODY_BYTES,
            budget=budget,
        )
        if not done.stdout.strip():
            err = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [
                f"exit code {done.returncode}"
            ]
            raise CollectorError(f"{self.target}: no output ({transfer.one_line(err[0])})")
        # `--status` prints the stale JSON and then fails when the runner does not answer:
        # the JSON is still the best there is, so it is kept (and the run notes the failure)
        return [Fetched(_json(done.stdout, self.target), time.time(), self.target)]


class PgSource:
    """The C++ runner's ``SystemStatus`` row, asked to be fresh first.

    The C++ runner writes the row only at startup and when it is sent ``NOTIFY dump_status``
    (hydra-queue-runner.cc ``dumpStatus``/``showStatus`` at a40d4286: ``--status`` notifies,
    waits up to 5 s for ``status_dumped``, and otherwise prints the stale row), so the row alone
    may be months old. Like ``--status``, this source LISTENs to ``status_dumped`` and sends
    ``NOTIFY dump_status`` on its own autocommit connection (PostgreSQL refuses NOTIFY in a
    read-only transaction; a notification writes no table), waits up to ``wait_seconds``, then
    reads the row in a read-only transaction. Without an answer, the document is kept with its
    own ``time`` as its timestamp (never now) and a one-line note says how old it is. The Rust
    runner never writes the row (hydra.sql at 14332fbf: "The queue runner no longer writes
    status here"): no row is reported as that, not as a runner that is down.
    """

    live = True
    kind = "status"

    def __init__(
        self, dsn: str, *, timeout_seconds: float = 10.0, wait_seconds: float = 5.0
    ) -> None:
        self.dsn = dsn
        self.target = redact(dsn)
        self.timeout = timeout_seconds
        self.wait = min(wait_seconds, timeout_seconds)
        self._conn: Any = None
        self._notify: Any = None

    def _connect(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.dsn, connect_timeout=max(1, int(self.timeout)), autocommit=False
            )
            self._conn.read_only = True
        return self._conn

    def _ask_for_a_dump(self, budget: Budget) -> bool:
        """``NOTIFY dump_status`` and wait for ``status_dumped``; True if the runner answered."""
        import psycopg

        if self._notify is None or self._notify.closed:
            self._notify = psycopg.connect(
                self.dsn, connect_timeout=max(1, int(self.timeout)), autocommit=True
            )
            self._notify.execute("listen status_dumped")
        for _ in self._notify.notifies(timeout=0.0):
            pass  # answers to earlier requests (or other writers' dumps) are not this one's
        self._notify.execute("notify dump_status")
        end = time.monotonic() + self.wait
        while (left := end - time.monotonic()) > 0:  # in slices: a stop ends the wait
            why = budget.ended()
            if why is not None:
                raise Cancelled(f"{self.target}: wait for the runner's dump cut short ({why})")
            for _ in self._notify.notifies(timeout=min(transfer.POLL_SECONDS, left), stop_after=1):
                return True
        return False

    def fetch(self, budget: Budget = NO_BUDGET) -> list[Fetched]:
        import psycopg

        asked = time.time()
        try:
            answered = self._ask_for_a_dump(budget)
            conn = self._connect()
            with conn.transaction():
                conn.execute(f"set local statement_timeout = {int(self.timeout * 1000)}")
                row = conn.execute(
                    "select status from SystemStatus where what = 'queue-runner'"
                ).fetchone()
        except psycopg.Error as exc:
            self.close()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CollectorError(f"{self.target}: {redact(first)}") from None
        except RecursionError:  # psycopg parses a json column itself
            raise CollectorError(f"{self.target}: SystemStatus JSON nested too deeply") from None
        if row is None:
            return [
                Fetched(
                    None,
                    asked,
                    self.target,
                    note="no SystemStatus row: a Rust queue runner does not write it (use "
                    "--url http://<runner>/status); a C++ runner that never started has none",
                )
            ]
        doc = row[0]
        if isinstance(doc, str):
            doc = _json(doc.encode(), self.target)
        # a dump made for this request carries a time at or after it; an older one is stale,
        # whatever answered (another client's request, or nobody)
        dumped, _ = doc_time(doc)
        if dumped is None or dumped >= asked - 1:
            return [Fetched(doc, asked, self.target)]
        age = asked - dumped
        note = (
            f"SystemStatus row is {_age_text(age)} old (time={int(dumped)}): the C++ runner did "
            f"not answer NOTIFY dump_status within {self.wait:g} s; it is not live"
            + ("" if not answered else " (a status_dumped arrived, but not with a new row)")
        )
        return [Fetched(doc, dumped, self.target, note=note)]

    def close(self) -> None:
        for attr in ("_conn", "_notify"):
            conn = getattr(self, attr)
            if conn is not None:
                try:
                    conn.close()
                finally:
                    setattr(self, attr, None)


def _age_text(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def doc_time(doc: Any) -> tuple[float | None, str | None]:
    """The time a status document describes (C++ ``time``, Rust ``queueRunner.time``), and
    why it is not used when it is there but not a plausible time (not finite, before 1970,
    after 2100): ``(None, None)`` when the document has none."""
    if not isinstance(doc, dict):
        return None, None
    raw: Any = doc.get("time")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        qr = doc.get("queueRunner")
        raw = qr.get("time") if isinstance(qr, dict) else None
        if not isinstance(raw, str):
            return None, None
        try:
            moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            value = moment.timestamp()
        except (ValueError, OverflowError, OSError):
            return None, f"time {transfer.one_line(repr(raw), 60)} is not a time"
    else:
        try:
            value = float(raw)
        except OverflowError:
            return None, "time is out of range"
    if not (math.isfinite(value) and 0 <= value <= LATEST_PLAUSIBLE_TIME):
        return None, f"time {value:g} is not a plausible time"
    return value, None


def _timed(doc: Any, fallback: float, origin: str, instead: str) -> Fetched:
    """A captured document at its own time; at ``fallback`` (``instead`` says what that is)
    with a note when its own time is not plausible."""
    found, why = doc_time(doc)
    if why is None:
        return Fetched(doc, fallback if found is None else found, origin)
    return Fetched(doc, fallback, origin, note=f"{why}; sampled at {instead}", event="note")


class FileSource:
    """A file (re-read on every fetch), a directory of snapshots, or a journal excerpt.

    Directory and journal sources are captured data: they yield all their documents once
    (times taken from the documents), then nothing.
    """

    def __init__(self, path: str, *, kind: str = "status") -> None:
        self.path = path.removeprefix("file://")
        self.kind = kind
        self.target = redact(path)
        self.live = os.path.isfile(self.path) and not self._is_journal()
        self._done = False

    def _is_journal(self) -> bool:
        return self.path.endswith((".txt", ".log", ".journal"))

    def fetch(self, budget: Budget = NO_BUDGET) -> list[Fetched]:
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            raise CollectorError(f"{self.target}: no such file or directory") from None
        except OSError as exc:
            raise CollectorError(f"{self.target}: {transfer.describe(exc)}") from None
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise CollectorError(f"{self.target}: not a regular file or a directory")
        if self.live:
            return [self._read(self.path, time.time())]
        if self._done:
            return []
        self._done = True
        if stat.S_ISDIR(mode):
            return self._directory()
        return self._journal()

    def _directory(self) -> list[Fetched]:
        try:
            names = sorted(
                n
                for n in os.listdir(self.path)
                if n.endswith(".json" if self.kind == "status" else ".prom")
            )
        except OSError as exc:
            raise CollectorError(f"{self.target}: {transfer.describe(exc)}") from None
        out = []
        for name in names:
            path = os.path.join(self.path, name)
            try:
                out.append(self._read(path, os.path.getmtime(path)))
            except CollectorError as exc:  # one damaged snapshot: reported, the rest kept
                out.append(Fetched(None, time.time(), redact(path), str(exc), "error"))
            except OSError as exc:
                why = f"{redact(path)}: {transfer.describe(exc)}"
                out.append(Fetched(None, time.time(), redact(path), why, "error"))
        return out

    def _read(self, path: str, ts: float) -> Fetched:
        origin = redact(path)
        try:
            with open(path, "rb") as f:
                body = f.read(MAX_BODY_BYTES + 1)
        except OSError as exc:
            raise CollectorError(f"{origin}: {transfer.describe(exc)}") from None
        if len(body) > MAX_BODY_BYTES:
            raise CollectorError(f"{origin}: larger than {MAX_BODY_BYTES} bytes")
        if self.kind == "metrics":
            return Fetched(body.decode("utf-8", "replace"), ts, origin)
        instead = "the time it was read" if self.live else "the file's modification time"
        return _timed(_json(body, origin), ts, origin, instead)

    def _journal(self) -> list[Fetched]:
        from profiler.collect.status.normalize import status_from_journal_line

        try:
            year = dt.datetime.fromtimestamp(os.path.getmtime(self.path), dt.UTC).year
            with open(self.path, encoding="utf-8", errors="replace") as f:
                return self._journal_lines(f, year, status_from_journal_line)
        except OSError as exc:
            raise CollectorError(f"{self.target}: {transfer.describe(exc)}") from None

    def _journal_lines(self, lines: Any, year: int, parse: Any) -> list[Fetched]:
        out = []
        for lineno, line in enumerate(lines, 1):
            doc = parse(line)
            if doc is None:
                continue
            origin = f"{self.target}:{lineno}"
            out.append(_timed(doc, _journal_time(line, year), origin, "the line's time"))
        return out


def _journal_time(line: str, year: int) -> float:
    """``Mon DD HH:MM:SS`` of journalctl short output, in the given year (UTC)."""
    try:
        stamp = dt.datetime.strptime(f"{year} {line[:15]} +0000", "%Y %b %d %H:%M:%S %z")
    except ValueError:
        return time.time()
    return stamp.timestamp()
