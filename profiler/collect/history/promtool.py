"""Prometheus' own storage as ``collect history``'s input, when its HTTP API is out of reach.

Two forms, both read into the :class:`~profiler.collect.history.api.Series` a range query
gives, so the importer and everything after it are the same as with ``--prometheus``:

- a TSDB directory (a snapshot made by ``POST /api/v1/admin/tsdb/snapshot``, or the
  ``--storage.tsdb.path`` of a server, stopped or not: ``promtool`` opens it read-only):
  :class:`TsdbDump` runs ``promtool tsdb dump --min-time --max-time --match DIR`` per chunk,
  so Prometheus' own code selects the series (the selectors are those of the HTTP path);
- the text such a command printed, in a file (from the Prometheus host): :class:`DumpFile`
  reads it once, keeping the window's lines, and selects series with :func:`matches`.

The dump's lines are ``<labels> <value> <timestamp ms>`` (prometheus v2.42.0
cmd/promtool/tsdb.go, dumpSamples: ``fmt.Printf("%s %g %d\\n", lbs, val, ts)``), the labels
as ``labels.Labels.String()`` writes them: ``{__name__="x", job="y"}``, each value Go-quoted
(model/labels/labels.go, String: ``strconv.Quote``). ``%g`` is Go's shortest exact form
(``1.5e+06``, ``NaN``, ``+Inf``). Unlike a range query, the dump gives every scraped point at
its scrape time (milliseconds), not one value per evaluation step, and it includes the NaN
that marks a series stale (prometheus tsdb/docs: staleness markers are a special NaN), which
a query never returns: NaN points are dropped. Native histogram points (a ``{count:...}``
value) are not the runner's and are skipped.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from profiler.collect.history.api import Series
from profiler.collect.status.transfer import NO_BUDGET, Budget, Cancelled, one_line
from profiler.errors import CollectorError, UsageError

_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)")
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def go_unquote(text: str) -> str:
    """The body of a Go-quoted string (``strconv.Quote``) with its escapes resolved."""

    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] in "xuU" and len(e) > 1:
            return chr(int(e[1:], 16))
        if len(e) == 3 and e.isdigit():
            return chr(int(e, 8))
        return _SIMPLE.get(e, e)  # \\ \" \' and anything else as itself

    return _ESCAPE.sub(one, text)


def parse_line(line: str) -> tuple[dict[str, str], float, str] | None:
    """``(labels, epoch seconds, value text)`` of one dump line; None for a line that is not
    a float sample (a native histogram, a blank line); ValueError for a malformed one."""
    line = line.rstrip("\n")
    if not line.strip():
        return None
    head, sep, ts_text = line.rpartition(" ")
    labels_text, sep2, value = head.rpartition(" ")
    if not (sep and sep2 and labels_text.startswith("{") and labels_text.endswith("}")):
        if head.endswith("}") and "{count:" in head:
            return None  # a native histogram's value
        raise ValueError("not '<labels> <value> <ms>'")
    try:
        number = float(value)
        ts = int(ts_text) / 1000.0
    except ValueError:
        if value.endswith("}"):
            return None
        raise
    if math.isnan(number):
        return None  # a staleness marker (or a NaN the target served: the API drops both)
    labels = {m.group(1): go_unquote(m.group(2)) for m in _LABEL.finditer(labels_text)}
    return labels, ts, value


def parse_selector(selector: str) -> list[tuple[str, str, str]]:
    """``{a="x",b=~"re"}`` as ``[(label, op, value)]`` (the selectors ``collect history``
    writes: no metric name outside the braces)."""
    body = selector.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise UsageError(f'{selector}: not a {{label="value", ...}} selector')
    out, pos, inner = [], 0, body[1:-1]
    while pos < len(inner):
        m = _MATCHER.match(inner, pos)
        if not m:
            raise UsageError(f"{selector}: cannot read a label matcher at {inner[pos:][:30]!r}")
        out.append((m.group(1), m.group(2), go_unquote(m.group(3))))
        pos = m.end()
        if pos < len(inner):
            if inner[pos] != ",":
                raise UsageError(f"{selector}: expected ',' at {inner[pos:][:30]!r}")
            pos += 1
    return out


def matches(labels: dict[str, str], matchers: Iterable[tuple[str, str, str]]) -> bool:
    """Whether ``labels`` satisfy every matcher: regexes anchored at both ends, a missing
    label the empty string (Prometheus "Time series selectors")."""
    for name, op, value in matchers:
        have = labels.get(name, "")
        if (op == "=" and have != value) or (op == "!=" and have == value):
            return False
        if op in ("=~", "!~") and (re.fullmatch(value, have) is not None) != (op == "=~"):
            return False
    return True


def to_series(points: Iterable[tuple[dict[str, str], float, str]]) -> list[Series]:
    """Points grouped into series by their labels, each in time order."""
    by_key: dict[tuple[tuple[str, str], ...], Series] = {}
    for labels, ts, value in points:
        key = tuple(sorted(labels.items()))
        s = by_key.get(key)
        if s is None:
            s = by_key[key] = Series(labels, [])
        s.points.append((ts, value))
    for s in by_key.values():
        s.points.sort(key=lambda p: p[0])
    return list(by_key.values())


def _points(
    lines: Iterable[str], where: str, budget: Budget = NO_BUDGET
) -> Iterator[tuple[dict[str, str], float, str]]:
    """The float samples of dump ``lines`` (:func:`parse_line`); a malformed line is a
    one-line error at ``where``:line; ``budget`` is checked every 4096 lines."""
    for number, line in enumerate(lines, start=1):
        if number % 4096 == 0 and (why := budget.ended()):
            raise Cancelled(f"{where}: {why}")
        try:
            point = parse_line(line)
        except ValueError as exc:
            raise CollectorError(
                f"{where}:{number}: not a `promtool tsdb dump` line ({exc}): {one_line(line, 80)}"
            ) from None
        if point is not None:
            yield point


@dataclass
class TsdbDump:
    """A TSDB directory, read through ``promtool tsdb dump`` one chunk at a time."""

    base: str  # the directory
    promtool: str = "promtool"
    timeout_seconds: float = 600.0
    budget: Budget = NO_BUDGET

    def __post_init__(self) -> None:
        if not os.path.isdir(self.base):
            raise UsageError(f"--tsdb {self.base}: not a directory")
        if not any(
            os.path.isdir(os.path.join(self.base, n)) for n in ("wal", "chunks_head")
        ) and not any(os.path.exists(os.path.join(self.base, n, "meta.json"))
                      for n in os.listdir(self.base)):  # fmt: skip
            raise UsageError(
                f"--tsdb {self.base}: no TSDB blocks (*/meta.json) or wal/ in it: give a "
                "snapshot directory or the server's --storage.tsdb.path"
            )

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """Every point of ``query``'s series scraped in ``[start, end + step)``."""
        argv = [self.promtool, "tsdb", "dump", f"--min-time={math.floor(start * 1000)}",
                f"--max-time={math.ceil((end + step) * 1000) - 1}", f"--match={query}",
                self.base]  # fmt: skip
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
            try:
                proc = subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1 << 16
                )
            except OSError as exc:
                raise CollectorError(
                    f"--tsdb: cannot run {self.promtool} ({exc.strerror or exc}): install "
                    "Prometheus' promtool (Debian: prometheus), or use --prometheus URL"
                ) from exc
            assert proc.stdout is not None
            try:
                where = f"promtool tsdb dump {self.base}"
                points = list(_points(proc.stdout, where, self.budget))
            finally:
                proc.stdout.close()  # a dump cut short gets SIGPIPE and ends
                try:
                    proc.wait(timeout=self.timeout_seconds)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            err.seek(0)
            message = err.read()
        if proc.returncode != 0:
            raise CollectorError(
                f"--tsdb {self.base}: promtool tsdb dump failed (exit {proc.returncode}): "
                f"{one_line(message or 'no message')}"
            )
        return to_series(points)

    def metadata(self) -> dict[str, str]:
        raise CollectorError("a TSDB keeps no metric metadata")

    def scrape_urls(self) -> dict[tuple[str, str], str]:
        raise CollectorError("a TSDB keeps no scrape URLs")


@dataclass
class DumpFile:
    """The text of ``promtool tsdb dump`` in a file, read once (the lines of ``window``)."""

    base: str  # the file
    window: tuple[float, float] = (-math.inf, math.inf)  # seconds; a chunk's step is added
    budget: Budget = NO_BUDGET
    _series: list[Series] | None = field(default=None, repr=False)

    def _load(self) -> list[Series]:
        if self._series is not None:
            return self._series
        lo, hi = self.window
        try:
            with open(self.base, encoding="utf-8", errors="strict") as f:
                kept = [p for p in _points(f, self.base) if lo <= p[1] < hi]
        except UnicodeDecodeError as exc:
            raise CollectorError(f"{self.base}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise CollectorError(f"--promtool-dump {self.base}: {exc.strerror or exc}") from None
        self._series = to_series(kept)
        return self._series

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """The points of ``query``'s series scraped in ``[start, end + step)``."""
        wanted = parse_selector(query)
        out = []
        for s in self._load():
            if matches(s.labels, wanted):
                points = [p for p in s.points if start <= p[0] < end + step]
                if points:
                    out.append(Series(s.labels, points))
        return out

    def metadata(self) -> dict[str, str]:
        raise CollectorError("a dump keeps no metric metadata")

    def scrape_urls(self) -> dict[tuple[str, str], str]:
        raise CollectorError("a dump keeps no scrape URLs")
