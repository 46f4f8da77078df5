"""Where status documents and metrics texts come from, each behind ``fetch()``.

A source returns :class:`Fetched` items: the document (parsed JSON or Prometheus text), the
UTC time it describes, and where it came from. Live sources (HTTP, a command, PostgreSQL's
``SystemStatus``, a file re-read each time) return one item per call; captured sources (a
directory of snapshots, old ``status: {...}`` journal lines) return everything they hold
once, with the times recorded in the documents. Every failure is a one-line
``CollectorError`` that names the source with its secrets redacted.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from profiler.errors import CollectorError
from profiler.store import redact

MAX_BODY_BYTES = 64 << 20


@dataclass(frozen=True)
class Fetched:
    """One document: ``doc`` is a JSON value (status) or text (metrics), or None when the
    source has none; ``note`` says in one line what the collector must know about it (a stale
    document) or why there is none."""

    doc: Any
    ts: float
    origin: str
    note: str | None = None


class Source(Protocol):
    kind: str
    target: str  # redacted, for manifests and messages
    live: bool

    def fetch(self) -> list[Fetched]: ...


def _json(body: bytes, origin: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        head = body[:60].decode("utf-8", "replace").replace("\n", " ")
        raise CollectorError(
            f"{origin}: not JSON ({exc.__class__.__name__}: {exc}); body "
            f"starts {head!r}, {len(body)} bytes"
        ) from None


class HttpSource:
    """GET a URL (``Accept: application/json`` for status) with a timeout."""

    live = True

    def __init__(self, url: str, *, kind: str = "status", timeout_seconds: float = 10.0) -> None:
        self.url = url
        self.kind = kind
        self.target = redact(url)
        self.timeout = timeout_seconds

    def fetch(self) -> list[Fetched]:
        accept = "application/json" if self.kind == "status" else "text/plain"
        req = urllib.request.Request(
            self.url, headers={"Accept": accept, "User-Agent": "hydra-profiler"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read(MAX_BODY_BYTES + 1)
                declared = resp.headers.get("Content-Length")
        except urllib.error.HTTPError as exc:
            raise CollectorError(f"{self.target}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CollectorError(f"{self.target}: unreachable: {reason}") from None
        if declared is not None and int(declared) != len(body):
            raise CollectorError(f"{self.target}: truncated body ({len(body)} of {declared} bytes)")
        if len(body) > MAX_BODY_BYTES:
            raise CollectorError(f"{self.target}: body larger than {MAX_BODY_BYTES} bytes")
        now = time.time()
        if self.kind == "metrics":
            return [Fetched(body.decode("utf-8", "replace"), now, self.target)]
        return [Fetched(_json(body, self.target), now, self.target)]


class CommandSource:
    """A command whose stdout is the status JSON (``hydra-queue-runner --status``, ssh...)."""

    live = True
    kind = "status"

    def __init__(self, command: str, *, timeout_seconds: float = 10.0) -> None:
        self.argv = shlex.split(command)
        self.target = redact(command)
        self.timeout = timeout_seconds

    def fetch(self) -> list[Fetched]:
        try:
            done = subprocess.run(self.argv, capture_output=True, timeout=self.timeout, check=False)
        except FileNotFoundError:
            raise CollectorError(f"{self.target}: command not found") from None
        except subprocess.TimeoutExpired:
            raise CollectorError(f"{self.target}: no answer within {self.timeout:g} s") from None
        if not done.stdout.strip():
            err = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [
                f"exit code {done.returncode}"
            ]
            raise CollectorError(f"{self.target}: no output ({redact(err[0])})")
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

    def _ask_for_a_dump(self) -> bool:
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
        for _ in self._notify.notifies(timeout=self.wait, stop_after=1):
            return True
        return False

    def fetch(self) -> list[Fetched]:
        import psycopg

        asked = time.time()
        try:
            answered = self._ask_for_a_dump()
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
        dumped = _doc_time(doc, math.nan)
        if not math.isfinite(dumped) or dumped >= asked - 1:
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


def _doc_time(doc: Any, fallback: float) -> float:
    """The time a status document describes (C++ ``time``, Rust ``queueRunner.time``)."""
    if isinstance(doc, dict):
        if isinstance(doc.get("time"), int | float):
            return float(doc["time"])
        qr = doc.get("queueRunner")
        if isinstance(qr, dict) and isinstance(qr.get("time"), str):
            try:
                return dt.datetime.fromisoformat(qr["time"].replace("Z", "+00:00")).timestamp()
            except ValueError:
                pass
    return fallback


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

    def fetch(self) -> list[Fetched]:
        if not os.path.exists(self.path):
            raise CollectorError(f"{self.target}: no such file or directory")
        if self.live:
            return [self._read(self.path, time.time())]
        if self._done:
            return []
        self._done = True
        if os.path.isdir(self.path):
            names = sorted(
                n
                for n in os.listdir(self.path)
                if n.endswith(".json" if self.kind == "status" else ".prom")
            )
            return [
                self._read(os.path.join(self.path, n), os.path.getmtime(os.path.join(self.path, n)))
                for n in names
            ]
        return self._journal()

    def _read(self, path: str, ts: float) -> Fetched:
        with open(path, "rb") as f:
            body = f.read()
        if self.kind == "metrics":
            return Fetched(body.decode("utf-8", "replace"), ts, redact(path))
        doc = _json(body, redact(path))
        return Fetched(doc, _doc_time(doc, ts), redact(path))

    def _journal(self) -> list[Fetched]:
        from profiler.collect.normalize import status_from_journal_line

        year = dt.datetime.fromtimestamp(os.path.getmtime(self.path), dt.UTC).year
        out = []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                doc = status_from_journal_line(line)
                if doc is None:
                    continue
                ts = _journal_time(line, year)
                out.append(Fetched(doc, _doc_time(doc, ts), f"{self.target}:{lineno}"))
        return out


def _journal_time(line: str, year: int) -> float:
    """``Mon DD HH:MM:SS`` of journalctl short output, in the given year (UTC)."""
    try:
        stamp = dt.datetime.strptime(f"{year} {line[:15]} +0000", "%Y %b %d %H:%M:%S %z")
    except ValueError:
        return time.time()
    return stamp.timestamp()
