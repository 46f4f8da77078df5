"""The catalogue of log messages the real queue runners (and what runs inside them) emit.

One :class:`Message` per call site: the verbatim format string, where it is (repository,
commit, file, line), its level, which program and era print it, and for the Rust programs the
tracing spans in scope and the target. The journal parser compiles its rules from here, and
the testbed renders its lines from the same format strings with :func:`fill` (and
:func:`rust_line` for the tracing layout), so neither keeps a copy of a message.

Patterns are regular expressions over the message text (after the journal envelope and, for
Rust, after the tracing header); named groups become the event's fields, converted by
:data:`CONVERTERS` where ``types`` says so. A Rust message is followed by the fields of the
spans in scope (tracing-subscriber's compact format appends them after the message), so its
pattern only has to match a prefix that ends at a space or the end of the line.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from profiler.hydra.sources import Source

PROGRAMS = (
    "cxx-runner",  # hydra-queue-runner (C++), NixOS unit hydra-queue-runner.service
    "nix",  # Nix library code running inside the C++ runner (binary-cache store, S3, copy)
    "rust-runner",  # hydra-queue-runner (Rust), hydra-queue-runner-dev.service
    "rust-builder",  # hydra-builder, hydra-queue-builder-dev.service
    "systemd",  # the service manager's own lines about the runner's unit
    "runtime",  # the C++ runtime (libstdc++) when the runner dies
)
RUST_PROGRAMS = ("rust-runner", "rust-builder")


@dataclass(frozen=True)
class Message:
    """One log message call site of a real program."""

    event: str
    program: str
    level: str
    format: str
    pattern: str
    source: Source
    era: str = ""
    spans: tuple[str, ...] = ()
    target: str = ""
    types: Mapping[str, str] = field(default_factory=dict)
    use: str = ""
    example: str = ""  # a message as printed, where the format alone does not show one

    def __post_init__(self) -> None:
        if self.program not in PROGRAMS:
            raise ValueError(f"{self.event}: unknown program {self.program!r}")
        unknown = set(self.types.values()) - set(CONVERTERS)
        if unknown:
            raise ValueError(f"{self.event}: unknown field types {sorted(unknown)}")

    @property
    def rust(self) -> bool:
        return self.program in RUST_PROGRAMS


# --- field conversions -------------------------------------------------------------------------
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|µs|us|ms|s)")
_DURATION_SCALE = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def rust_duration_seconds(text: str) -> float:
    """Seconds from Rust's ``Debug`` of a ``Duration`` (``41.2s``, ``850.1ms``, ``12µs``)."""
    m = _DURATION.fullmatch(text)
    if m is None:
        raise ValueError(f"not a Rust duration: {text!r}")
    return float(m.group(1)) * _DURATION_SCALE[m.group(2)]


def rust_duration_text(seconds: float) -> str:
    """``Debug`` of a Rust ``Duration`` (core/src/time.rs ``fmt_decimal``): the largest unit
    with a non-zero integer part, all significant decimals, trailing zeros dropped."""
    nanos = round(seconds * 1e9)
    for unit, scale in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if nanos >= scale:
            whole, frac = divmod(nanos, scale)
            digits = str(frac).rjust(len(str(scale)) - 1, "0").rstrip("0")
            return f"{whole}.{digits}{unit}" if digits else f"{whole}{unit}"
    return f"{nanos}ns"


UPLOAD_MODES = {"using presigned urls": "presigned", "to queue runner directly": "direct"}

CONVERTERS: Mapping[str, Callable[[str], Any]] = MappingProxyType(
    {
        "int": int,
        "float": float,
        "duration": rust_duration_seconds,  # Rust Duration Debug text -> seconds
        "str": str,
        "json": json.loads,
        "upload_mode": UPLOAD_MODES.__getitem__,  # builder's wording -> presigned|direct
    }
)


# --- store paths -------------------------------------------------------------------------------
_STORE_BASE = re.compile(r"(?:.*/)?([0-9a-df-np-sv-z]{32}-[^/\s'\u2019\"),]+)")
_DEBUG_STORE_PATH = re.compile(r"StorePath\(([0-9a-df-np-sv-z]{32}-[^)\s]+)\)")


def store_base(path: object) -> str | None:
    """The base name of a store path: ``/nix/store/<hash>-x.drv``, ``<hash>-x.drv`` (Rust's
    ``StorePath`` Display, harmonia) and ``StorePath(<hash>-x.drv)`` (its ``Debug``) all give
    ``<hash>-x.drv``; None for anything else."""
    if not isinstance(path, str):
        return None
    m = _DEBUG_STORE_PATH.search(path)
    if m is not None:
        return m.group(1)
    m = _STORE_BASE.fullmatch(path.strip())
    return m.group(1) if m is not None else None


def span_store_path(fields: str, name: str = "drv") -> str | None:
    """The store path in a span field ``name=...`` of a Rust line's trailing fields:
    ``drv=Some(ProtoStorePath(StorePath(<base>)))`` or ``drv=<base>``."""
    key = f"{name}="
    at = fields.find(key)
    while at > 0 and fields[at - 1] not in " \t":
        at = fields.find(key, at + 1)
    if at < 0:
        return None
    value = fields[at + len(key) :].split(" ", 1)[0]
    return store_base(value)


# --- rendering (the testbed) --------------------------------------------------------------------
_PLACEHOLDER = re.compile(
    r"%%|%(\d+)%|%(?:(\d+)\$)?[-+ #0]*\d*(?:\.\d+)?[sdifgu]"
    r"|\{\{|\}\}|\{([A-Za-z_]\w*|\d*)(:\??[^}]*)?\}"
)


def fill(fmt: str, *args: object, **named: object) -> str:
    """Fill a boost/printf (``%1%``, ``%s``, ``%d``, ``%3$.1f``) or Rust (``{}``, ``{name}``,
    ``{:?}``, ``{name:?}``) format string with already formatted values, in order or by name.
    The testbed renders every line it writes from the real format strings with this."""
    position = iter(range(len(args)))

    def value(m: re.Match[str]) -> str:
        text = m.group(0)
        if text in ("%%",):
            return "%"
        if text in ("{{", "}}"):
            return text[0]
        boost, printf_index, rust_name = m.group(1), m.group(2), m.group(3)
        if boost is not None:
            return str(args[int(boost) - 1])
        if printf_index is not None:
            return str(args[int(printf_index) - 1])
        if rust_name:
            if rust_name.isdigit():
                return str(args[int(rust_name)])
            return str(named[rust_name])
        return str(args[next(position)])

    return _PLACEHOLDER.sub(value, fmt)


RUST_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


def rust_line(
    timestamp: str, level: str, spans: Sequence[tuple[str, str]], target: str, message: str
) -> str:
    """A line as ``tracing_subscriber::fmt().compact()`` writes it without ANSI (0.3.23,
    ``fmt/format/mod.rs`` ``Format<Compact>::format_event``): the timestamp and a space, the
    level padded to 5, the names of the spans in scope (root first) each followed by ``:``
    and then a space, the target and ``: ``, the event's fields (the message first), then
    each span's formatted fields after a space. ``spans`` is ``(name, fields)`` pairs,
    ``fields`` already formatted (``drv=Some(ProtoStorePath(StorePath(...)))``) or empty."""
    if level not in RUST_LEVELS:
        raise ValueError(f"not a tracing level: {level!r}")
    names = "".join(f"{name}:" for name, _ in spans)
    tail = "".join(f" {fields}" for _, fields in spans if fields)
    return f"{timestamp} {level:>5} {names}{' ' if names else ''}{target}: {message}{tail}"


def rust_timestamp(epoch: float) -> str:
    """tracing-subscriber's ``SystemTime`` timer: RFC 3339, microseconds, ``Z``."""
    stamp = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
