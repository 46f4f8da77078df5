"""Queue-runner journal lines -> typed events (plain dicts), reference ``hydra.md`` §2.

Accepted inputs, mixed freely: ``journalctl`` short text (``Mon DD HH:MM:SS[.us] host
unit[PID]: msg``, optionally ``<N>``-prefixed), ``short-iso`` (``2026-11-29T03:13:44+0000 host
unit[PID]: msg``), raw stderr (``<5>msg`` from C++, ``2026-...Z  INFO target: msg`` from Rust
tracing) and ``journalctl -o json`` records. Every event carries ``ts`` (epoch UTC or None),
``host``, ``pid``, ``priority``, ``generation`` ("cxx"/"rust") and ``event``. Lines that match
no rule are counted by a normalised pattern; lines without a header continue the previous
event (``continuation``); a new PID for a unit yields a ``runner_restart`` event.
"""

from __future__ import annotations

import calendar
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from profiler.codecs import open_text
from profiler.collect.journal import rules
from profiler.errors import CollectorError
from profiler.hydra.catalogue import store_base

MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
RUST_PRIORITY = {"ERROR": 3, "WARN": 4, "INFO": 6, "DEBUG": 7, "TRACE": 7}
# tracing-subscriber 0.3.23 compact layout (fmt/format/mod.rs, Format<Compact>::format_event):
# timestamp, level padded to 5, span names root first each with ':' then a space, the target
# and ': ', the message, then the spans' fields
_RUST_HDR = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z\s+(TRACE|DEBUG|INFO|WARN|ERROR) "
    r"((?:[\w-]+:)+ )?(?:([A-Za-z_][\w-]*(?:::[A-Za-z_][\w-]*)*): )?(.*)"
)
_ISO_HDR = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d(?:\.\d+)?)(Z|[+-]\d\d:?\d\d) "
    r"(\S+) ([^\s\[]+?)(?:\[(\d+)\])?: ?(.*)"
)
# journalctl's own lines between entries: "-- Logs begin at ... --", "-- Boot <id> --",
# "-- Reboot --", "-- No entries --", "-- Journal begins at ... --"
_JOURNAL_MARKER = re.compile(
    r"-- (?:Logs begin at|Journal begins at|Boot|Reboot|No entries)\b.*--$"
)
_NORM_PATH = re.compile(r"(?:[a-z0-9]+://|/)[^\s\u2019',)]+")
_NORM_BASE = re.compile(r"\b[0-9a-df-np-sv-z]{32}-[^\s'\u2019\"),]+")
_NORM_NUM = re.compile(r"\d+")


def match_message(message: str, *, rust: bool = False) -> tuple[str, dict[str, Any]] | None:
    """``(event, fields)`` for a bare message (``rust``: a tracing message with its span
    fields after it), or None when no catalogue entry knows it."""
    found = (rules.TRACING if rust else rules.PLAIN).find(message)
    if found is None:
        return None
    rule, m = found
    out = rules.fields(rule, m)
    if rust:
        _span_fields(out, message[m.end() :])
    return rule.event, out


def _unit_generation(message: str, default: str) -> str:
    """The generation a service manager's line is about, from the unit it names."""
    rust_units = ("hydra-queue-runner-dev", "hydra-queue-builder-dev", "hydra-builder")
    return "rust" if any(u in message for u in rust_units) else default


def _maybe_int(text: str | None) -> int | None:
    return None if text is None else int(text)


# journalctl short/short-precise with `host unit[pid]: `, optional `<N>` before the message,
# and a message that does not start with a digit (a Rust tracing header takes the slow path)
_FAST_SHORT = re.compile(
    r"(?:<(\d)>)?((\w{3}) ([ \d]\d) (\d\d:\d\d:\d\d(?:\.\d+)?)) (\S+) ([^\s\[:]+)\[(\d+)\]: "
    r"(?:<(\d)>)?(([^\s\d<][^\s]*)(?: .*)?)$"
)


def _span_fields(out: dict[str, Any], tail: str) -> None:
    """Fields the spans in scope carry after a Rust message: the step's drv when the message
    itself has none (e.g. the builder's upload lines run inside ``process_build{drv=...}``),
    and the store paths a builder uploads (``outputs``, space-separated base names): its
    upload spans record them, ``upload_nars_presigned`` as ``output_paths`` and
    ``upload_nars_regular`` as ``nars`` (neither is skipped by their ``#[instrument]``:
    hydra 14332fbf subprojects/hydra-builder/src/state.rs:985-991, :1072-1079), a
    ``Vec<StorePath>`` printed with ``Debug``: ``[StorePath(<base>), ...]`` (harmonia
    b438172 harmonia-store-path/src/path.rs:102-107)."""
    if "drv" not in out and "drv=" in tail:
        drv = store_base(tail[tail.find("drv=") + 4 :].split(" ", 1)[0])
        if drv is not None:
            out["drv"] = drv
    if "outputs" not in out:
        m = _UPLOADED_PATHS.search(tail)
        if m is not None:
            out["outputs"] = " ".join(_DEBUG_BASE.findall(m.group(1)))


_UPLOADED_PATHS = re.compile(r"(?:^|\s)(?:output_paths|nars)=\[([^\]]*)\]")
_DEBUG_BASE = re.compile(r"StorePath\(([0-9a-df-np-sv-z]{32}-[^)\s,]+)\)")


def normalise(message: str) -> str:
    """The pattern an unknown message is counted under: paths and digits replaced."""
    text = _NORM_BASE.sub("<path>", _NORM_PATH.sub("<path>", message))
    return _NORM_NUM.sub("N", text)


@dataclass
class LogSummary:
    """Counts for one parse: lines read, lines understood, unknown patterns, malformed lines."""

    lines: int = 0
    understood: int = 0
    unknown: Counter[str] = field(default_factory=Counter)
    malformed: list[str] = field(default_factory=list)


class _Malformed(Exception):
    pass


# (ts, host, unit, pid, priority, message); message None = continuation line
Envelope = tuple[float | None, str | None, str | None, int | None, int | None, str]


class JournalParser:
    """Turns one input's lines into events, keeping what a line needs from the lines before
    it: the year of year-less timestamps, each unit's PID, the event a continuation line
    belongs to. :meth:`feed` takes one line; :meth:`feed_all` many, the common ones inline."""

    def __init__(self, source: str, year: int, strict: bool) -> None:
        self.source = source
        self.year = year
        self.strict = strict
        self.last_month = 0
        self.last_stamp = ""
        self.last_ts = 0.0
        self.idents: dict[str, tuple[str, int | None]] = {}
        self.day_cache: dict[tuple[int, int, int], int] = {}
        self.day_epochs: dict[str, float] = {}
        self.pids: dict[tuple[str | None, str], int] = {}
        self.events: list[dict[str, Any]] = []
        self.last: dict[str, Any] | None = None
        self.after_unknown = False
        self.summary = LogSummary()

    # --- timestamps -------------------------------------------------------------------
    def _epoch(self, y: int, mo: int, d: int, hh: int, mm: int, ss: float) -> float:
        key = (y, mo, d)
        day = self.day_cache.get(key)
        if day is None:
            if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1]):
                raise _Malformed(f"bad date {y}-{mo}-{d}")
            day = self.day_cache[key] = calendar.timegm((y, mo, d, 0, 0, 0))
        if hh > 23 or mm > 59 or ss >= 61:
            raise _Malformed("bad time of day")
        return day + hh * 3600 + mm * 60 + ss

    def _yearless(self, mon: int, day: str, clock: str) -> float:
        if mon < self.last_month and self.last_month == 12 and mon == 1:
            self.year += 1
        self.last_month = mon
        try:
            hh, mm, ss = clock.split(":")
            return self._epoch(self.year, mon, int(day), int(hh), int(mm), float(ss))
        except ValueError:
            raise _Malformed(f"bad timestamp {clock!r}") from None

    # --- envelopes --------------------------------------------------------------------
    def _short(self, line: str, mon: int) -> Envelope:
        end = line.find(" ", 16) if len(line) > 15 and line[15] == "." else 15
        if end < 0 or line[3] != " " or line[end : end + 1] != " ":
            raise _Malformed("truncated short-format header")
        stamp = line[:end]
        if stamp == self.last_stamp:  # fast path: lines within one second
            ts = self.last_ts
        else:
            ts = self._yearless(mon, line[4:6], line[7:end])
            self.last_stamp, self.last_ts = stamp, ts
        parts = line[end + 1 :].split(" ", 2)
        if len(parts) < 2 or not parts[1].endswith(":"):
            raise _Malformed("no 'host unit[pid]:' after the timestamp")
        ident = self.idents.get(parts[1])
        if ident is None:
            ident = self.idents[parts[1]] = _unit_pid(parts[1][:-1])
        return ts, parts[0], ident[0], ident[1], None, parts[2] if len(parts) > 2 else ""

    def _iso(self, m: re.Match[str]) -> Envelope:
        y, mo, d, hh, mi, ss, tz, host, unit, pid, msg = m.groups()
        ts = self._epoch(int(y), int(mo), int(d), int(hh), int(mi), float(ss))
        if tz != "Z":
            sign = -1 if tz[0] == "+" else 1
            ts += sign * (int(tz[1:3]) * 3600 + int(tz[-2:]) * 60)
        return ts, host, unit, _maybe_int(pid), None, msg

    def _json(self, line: str) -> Envelope:
        try:
            rec = json.loads(line)
            msg = rec["MESSAGE"]
            if isinstance(msg, list):  # journald's form for non-UTF-8 messages
                msg = bytes(msg).decode("utf-8", "replace")
            us = rec.get("__REALTIME_TIMESTAMP")
            prio = rec.get("PRIORITY")
            pid = rec.get("_PID")
            return (
                int(us) / 1e6 if us is not None else None,
                rec.get("_HOSTNAME"),
                rec.get("SYSLOG_IDENTIFIER") or rec.get("_SYSTEMD_UNIT"),
                int(pid) if pid is not None else None,
                int(prio) if prio is not None else None,
                str(msg),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise _Malformed(f"bad journal JSON record ({type(e).__name__}: {e})") from None

    def _envelope(self, line: str) -> Envelope | None:
        c = line[0]
        if c == "<" and len(line) > 2 and line[2] == ">" and line[1].isdigit():
            env = self._envelope(line[3:]) if line[3:4].isalnum() else None
            if env is not None and env[1] is not None:
                return env[0], env[1], env[2], env[3], int(line[1]), env[5]
            return None, None, None, None, int(line[1]), line[3:]
        mon = MONTHS.get(line[:3])
        if mon is not None and line[4:6].strip().isdigit():
            return self._short(line, mon)
        if c.isdigit():
            if _RUST_HDR.match(line):
                return None, None, None, None, None, line
            m = _ISO_HDR.match(line)
            return None if m is None else self._iso(m)
        if c == "{":
            return self._json(line)
        return None

    # --- events -----------------------------------------------------------------------
    def _body(self, env: Envelope) -> tuple[dict[str, Any], str, bool]:
        """The event's envelope fields, its message, and whether it is a Rust tracing line."""
        ts, host, unit, pid, prio, msg = env
        if msg[:1] == "<" and msg[2:3] == ">" and msg[1:2].isdigit():
            prio, msg = (prio if prio is not None else int(msg[1])), msg[3:]
        ev: dict[str, Any] = {"ts": ts, "host": host, "pid": pid, "priority": prio}
        ev["generation"] = "cxx"
        rust = False
        if msg[:1].isdigit():
            m = _RUST_HDR.match(msg)
            if m is not None:
                y, mo, d, hh, mi, ss, level, spans, target, msg = m.groups()
                ev["ts"] = self._epoch(int(y), int(mo), int(d), int(hh), int(mi), float(ss))
                ev["generation"], ev["level"], ev["target"] = "rust", level, target
                if spans:
                    ev["spans"] = spans.strip()
                if prio is None:
                    ev["priority"] = RUST_PRIORITY[level]
                rust = True
        if unit is not None:
            ev["unit"] = unit
        return ev, msg, rust

    def _restart(self, ev: dict[str, Any]) -> None:
        unit, pid = ev.get("unit"), ev["pid"]
        if unit is None or pid is None:
            return
        key = (ev["host"], unit)
        old = self.pids.get(key)
        self.pids[key] = pid
        if old is not None and old != pid:
            restart = {k: ev[k] for k in ("ts", "host", "pid", "priority", "generation")}
            self.events.append({**restart, "event": "runner_restart", "unit": unit, "old_pid": old})

    def _continuation(self, lineno: int, text: str) -> None:
        if self.last is not None:
            self.last.setdefault("continuation", []).append(text)
            self.summary.understood += 1
        elif not self.after_unknown:
            raise _Malformed("continuation line without a preceding message")

    def line(self, lineno: int, raw: str) -> None:
        line = raw.rstrip("\r\n")
        self.summary.lines += 1
        if not line.strip():
            return
        if line.startswith("-- ") and _JOURNAL_MARKER.match(line):
            self.summary.understood += 1  # journalctl's own boundary lines
            self.last, self.after_unknown = None, False
            return
        env = self._envelope(line)
        if env is None:
            self._continuation(lineno, line)
            return
        ev, msg, rust = self._body(env)
        self._restart(ev)
        rest = msg.split("\n")
        found = (rules.TRACING if rust else rules.PLAIN).find(rest[0])
        if found is None:
            self.summary.unknown[normalise(rest[0])] += 1
            self.last, self.after_unknown = None, True
            return
        rule, m = found
        ev["event"], ev["program"] = rule.event, rule.message.program
        ev["generation"] = rules.GENERATION.get(rule.message.program) or _unit_generation(
            rest[0], ev["generation"]
        )
        ev.update(rules.fields(rule, m))
        if rust:
            _span_fields(ev, rest[0][m.end() :])
        if len(rest) > 1:
            ev["continuation"] = rest[1:]
        self.events.append(ev)
        self.summary.understood += 1
        self.last, self.after_unknown = ev, False

    def feed(self, lineno: int, raw: str) -> None:
        try:
            self.line(lineno, raw)
        except (_Malformed, ValueError) as e:
            where = f"{self.source}:{lineno}: {e}"
            if self.strict:
                raise CollectorError(f"malformed log line {where}") from None
            self.summary.malformed.append(where)
            self.last, self.after_unknown = None, True

    def feed_all(self, lines: Iterable[str], first_lineno: int = 1) -> int:
        """Feed many lines; return the next line number.

        The common shape (journalctl short text from ``host unit[pid]:`` with a known
        message) is handled inline here, with the parser's state in locals; every other
        line goes through :meth:`feed`, which gives the same events, only slower.
        """
        fast, by_first, anywhere = (
            _FAST_SHORT.match,
            rules.PLAIN.by_first,
            rules.PLAIN.anywhere,
        )
        generations = rules.GENERATION
        events, unknown = self.events, self.summary.unknown
        append = events.append
        last_stamp, last_ts = self.last_stamp, self.last_ts
        last_ident: tuple[str, str, str] | None = None
        last: dict[str, Any] | None = self.last
        after_unknown = self.after_unknown
        lineno, fast_lines, understood = first_lineno - 1, 0, 0
        try:
            for lineno, raw in enumerate(lines, first_lineno):
                m = fast(raw.rstrip("\r\n"))
                if m is not None and m.group(3) in MONTHS:
                    prio, stamp, mon, day, clock, host, unit, pid_text, prio2, msg, first = (
                        m.groups()
                    )
                    if stamp != last_stamp:
                        try:
                            last_ts = self._stamp(mon, day, clock)
                        except _Malformed as e:
                            self._bad(lineno, str(e))
                            last, after_unknown = None, True
                            continue
                        last_stamp = stamp
                    fast_lines += 1
                    ident = (host, unit, pid_text)
                    if ident != last_ident:
                        self._pid(last_ts, host, unit, int(pid_text), prio or prio2)
                        last_ident = ident
                    last, after_unknown = None, True
                    for rule in (*by_first.get(first, ()), *anywhere):
                        found = rule.match(msg)
                        if found is None:
                            continue
                        prio = prio or prio2
                        program = rule.message.program
                        last = {
                            "ts": last_ts,
                            "host": host,
                            "pid": int(pid_text),
                            "priority": None if prio is None else int(prio),
                            "generation": generations.get(program) or _unit_generation(msg, "cxx"),
                            "unit": unit,
                            "event": rule.event,
                            "program": program,
                        }
                        for name, value in zip(rule.names, found.groups(), strict=True):
                            if value is not None:
                                last[name] = value
                        failed = _convert(rule, last)
                        if failed is not None:  # as feed() has it: a malformed line
                            fast_lines -= 1
                            self._bad(lineno, failed)
                            last = None
                            break
                        append(last)
                        understood += 1
                        after_unknown = False
                        break
                    else:
                        unknown[normalise(msg)] += 1
                    continue
                # the slow path: hand over the state, take it back
                self.last, self.after_unknown = last, after_unknown
                self.last_stamp, self.last_ts = last_stamp, last_ts
                self.feed(lineno, raw)
                last, after_unknown = self.last, self.after_unknown
                last_stamp, last_ts = self.last_stamp, self.last_ts
                last_ident = None
        finally:
            self.summary.lines += fast_lines
            self.summary.understood += understood
            self.last, self.after_unknown = last, after_unknown
            self.last_stamp, self.last_ts = last_stamp, last_ts
        return lineno + 1

    def feed_frame(self, lines: list[str] | Any) -> Any:
        """The events of ``lines`` (a list, or a polars Series of lines without their ends)
        as a polars DataFrame when they all have the common shape
        (:mod:`~profiler.collect.journal.vector`), else None (then :meth:`feed_all` them).
        The state is handed over, and taken back only when the batch was done this way. For a
        bulk import that writes columns (``collect logs --file``): turned back into dicts
        (:func:`event_dicts`) a batch costs more than :meth:`feed_all`'s."""
        from profiler.collect.journal import vector

        state = vector.State(self.year, self.last_month, dict(self.pids))
        if isinstance(lines, list):
            done = vector.parse_batch(lines, state)
        else:  # a polars Series of lines already
            done = vector.parse_column(lines, state) if vector.available() else None
        if done is None:
            return None
        self.summary.lines += done.lines
        self.summary.understood += done.understood
        self.summary.unknown.update(done.unknown)
        self.year, self.last_month, self.pids = state.year, state.last_month, state.pids
        self.last, self.after_unknown = done.last_event, done.last_event is None
        self.last_stamp, self.day_epochs = "", {}
        return done.events

    def _pid(self, ts: float, host: str, unit: str, pid: int, prio: str | None) -> None:
        """Record the PID of ``host``'s ``unit``; a new one is a runner restart."""
        old = self.pids.get((host, unit))
        self.pids[host, unit] = pid
        if old is not None and old != pid:
            self.events.append(_restart_event(ts, host, pid, prio, unit, old))

    def _stamp(self, mon: str, day: str, clock: str) -> float:
        """:meth:`_yearless` for the fast path: the day's epoch cached per (month, day)."""
        key = mon + day
        base = self.day_epochs.get(key)
        if base is None or MONTHS[mon] != self.last_month:
            base = self._yearless(MONTHS[mon], day, "00:00:00")
            self.day_epochs = {key: base}  # a new month may mean a new year: start afresh
        hh, mm, ss = int(clock[:2]), int(clock[3:5]), float(clock[6:])
        if hh > 23 or mm > 59 or ss >= 61:
            raise _Malformed("bad time of day")
        return base + hh * 3600 + mm * 60 + ss

    def _bad(self, lineno: int, why: str) -> None:
        where = f"{self.source}:{lineno}: {why}"
        if self.strict:
            raise CollectorError(f"malformed log line {where}")
        self.summary.lines += 1
        self.summary.malformed.append(where)
        self.last, self.after_unknown = None, True


def _convert(rule: rules.Rule, ev: dict[str, Any]) -> str | None:
    """Convert ``ev``'s fields as ``rule`` types them; the error's text when one does not."""
    try:
        for name, conv in rule.convs:
            if name in ev:
                ev[name] = conv(ev[name])
    except (ValueError, TypeError) as e:
        return str(e)
    return None


def event_dicts(frame: Any) -> list[dict[str, Any]]:
    """A batch's event frame as the line parser's dicts: a field that did not take part is
    absent (``priority`` is always there, None when the line had none)."""
    return [
        {k: v for k, v in row.items() if v is not None or k == "priority"}
        for row in frame.iter_rows(named=True)
    ]


def _restart_event(
    ts: float, host: str, pid: int, prio: str | None, unit: str, old: int
) -> dict[str, Any]:
    return {
        "ts": ts,
        "host": host,
        "pid": pid,
        "priority": None if prio is None else int(prio),
        "generation": "cxx",
        "event": "runner_restart",
        "unit": unit,
        "old_pid": old,
    }


def _unit_pid(text: str) -> tuple[str, int | None]:
    if text.endswith("]"):
        open_ = text.rfind("[")
        if open_ > 0 and text[open_ + 1 : -1].isdigit():
            return text[:open_], int(text[open_ + 1 : -1])
    return text, None


def parse_lines(
    lines: Iterable[str], *, source: str, year: int, strict: bool = False
) -> tuple[list[dict[str, Any]], LogSummary]:
    """Parse journal/stderr lines into events; ``year`` dates year-less short timestamps."""
    parser = JournalParser(source, year, strict)
    parser.feed_all(lines)
    return parser.events, parser.summary


def parse_file(
    path: str, *, year: int, strict: bool = False
) -> tuple[list[dict[str, Any]], LogSummary]:
    """:func:`parse_lines` over a (possibly compressed) file, naming it in errors."""
    with open_text(path) as f:
        return parse_lines(f, source=path, year=year, strict=strict)
