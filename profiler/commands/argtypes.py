"""The commands' shared argparse ``type=`` checkers, and the options several commands declare.

A bad value (not a number, nan, inf, negative, zero where it must be positive, absurdly
large, a codec spec that does not parse) is refused while argv is parsed, before any work
starts, with exit code 2:

- :func:`integer`, :func:`positive_int` and :func:`number` raise argparse's own error, which
  names the option: ``hydra-profiler: error: argument --repeat: must be at least 1, got 0``;
- :func:`seconds`, :func:`rate` and :func:`codec_spec` raise :class:`UsageError` with the
  message the option has always had (``--interval must be positive``, ``codec 'xz:-1':
  ...``). argparse lets any exception but its own, ``ValueError`` and ``TypeError`` through,
  so the parse stops there and ``cli.main`` reports it like every usage error.

The ``add_*`` helpers declare an option that more than one command takes, once (asv's
``common_args`` habit): the collectors' ``--out RUN``, ``--interval``, ``--timeout``,
``--duration`` or ``--once``, and ``--generation``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from profiler.errors import UsageError
from profiler.hydra.facts import GENERATIONS


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """A whole number within ``[lo, hi]`` (either bound optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        _check_range(value, lo, hi, text)
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


def positive_int(hi: int | None = None) -> Callable[[str], int]:
    """A whole number from 1 (to ``hi``): counts of steps, machines, slots, runs."""
    return integer(1, hi)


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
) -> Callable[[str], float]:
    """A finite number within ``[lo, hi]``, and strictly between ``above`` and ``below``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be more than {_fmt(above)}, got {text}")
        if below is not None and not value < below:
            raise argparse.ArgumentTypeError(f"must be less than {_fmt(below)}, got {text}")
        _check_range(value, lo, hi, text)
        return value

    parse.__name__ = "number"
    return parse


def _check_range(value: float, lo: float | None, hi: float | None, text: str) -> None:
    if lo is not None and value < lo:
        raise argparse.ArgumentTypeError(f"must be at least {_fmt(lo)}, got {text.strip()}")
    if hi is not None and value > hi:
        raise argparse.ArgumentTypeError(f"must be at most {_fmt(hi)}, got {text.strip()}")


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


DECADE_SECONDS = 3650 * 86400.0


def seconds(
    flag: str,
    *,
    positive: bool = True,
    longest: tuple[float, str] | None = None,
    hint: str = "",
) -> Callable[[str], float]:
    """A time span: ``'30s'``, ``'500ms'``, ``'2h'``; a bare number is seconds.

    Parameters
    ----------
    flag
        The option, as its messages name it.
    positive
        Refuse zero: ``{flag} must be positive`` followed by ``hint``.
    longest
        The longest span allowed and how to say it, e.g. ``(86400.0, "1 day")``; an infinite
        span is refused as too long too. None: ten years (a span no timer or clock
        arithmetic overflows on: ``--timeout 1e400`` was a traceback).
    """
    if longest is None:
        longest = (DECADE_SECONDS, "3650 days")

    def parse(text: str) -> float:
        from profiler.units import parse_seconds

        try:
            value = parse_seconds(text)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
        if longest is not None and (not math.isfinite(value) or value > longest[0]):
            raise UsageError(f"{flag} {text!r}: too long (at most {longest[1]})")
        if positive and value <= 0:
            raise UsageError(f"{flag} must be positive{hint}")
        return value

    parse.__name__ = "seconds"
    return parse


def rate(flag: str) -> Callable[[str], float]:
    """A positive, finite bandwidth in bits per second: ``'200Mbit'``, ``'1Gbit/s'``."""

    def parse(text: str) -> float:
        from profiler.units import parse_bits_per_second

        try:
            value = parse_bits_per_second(text)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag}: must be a positive, finite rate, got {text!r}")
        return value

    parse.__name__ = "rate"
    return parse


def codec_spec(text: str) -> str:
    """A codec spec (``xz:6``, ``zstd:19:long=27``, a store-URI query), checked by
    :func:`~profiler.codecs.parse_spec` and kept as given (each command parses it with the
    writer semantics it needs)."""
    from profiler.codecs import parse_spec

    parse_spec(text)
    return text


# --- options declared by more than one command ----------------------------------------------


def add_run_out(p: Any) -> None:
    """``--out RUN``: the run directory a collector writes (several may share one)."""
    p.add_argument("--out", required=True, metavar="RUN")


def add_interval(
    p: Any, *, default: str, help: str, longest: tuple[float, str] | None = None
) -> None:
    """``--interval``: the time between a collector's polls."""
    p.add_argument(
        "--interval", type=seconds("--interval", longest=longest), default=default, help=help
    )


def add_timeout(p: Any, *, help: str, longest: tuple[float, str] | None = None) -> None:
    """``--timeout`` (10s): how long a collector waits for its source."""
    p.add_argument(
        "--timeout", type=seconds("--timeout", longest=longest), default="10s", help=help
    )


def add_duration_or_once(
    p: Any, *, once_help: str, longest: tuple[float, str] | None = None, hint: str = ""
) -> None:
    """``--duration`` or ``--once``: how long a collector runs (default: until stopped)."""
    span = seconds("--duration", longest=longest, hint=hint)

    def duration(text: str) -> float | None:
        return span(text) if text else None  # an empty --duration= has always meant none

    duration.__name__ = "seconds"
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=duration, help="stop after this long, e.g. 10m")
    stop.add_argument("--once", action="store_true", help=once_help)


def add_generation(p: Any, *, help: str | None = None, default: str | None = None) -> None:
    """``--generation cxx|rust``: the queue runner's generation (None: detect, where the
    command can)."""
    p.add_argument("--generation", choices=GENERATIONS, default=default, help=help)


def parse_time(text: str, now: float, flag: str = "--since") -> float:
    """A point in time as epoch seconds: epoch seconds, an ISO 8601 time (UTC unless it has
    an offset), or a duration before ``now`` such as ``2h``, ``30d``, ``2w`` or ``5y`` (a
    year of 365 days).

    Raises
    ------
    UsageError
        None of those.
    """
    import datetime as dt

    t = text.strip()
    try:
        value = float(t)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{flag}: {text!r} is not a time")
        return value
    try:
        stamp = dt.datetime.fromisoformat(t)
    except ValueError:
        pass
    else:
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).timestamp()
    try:
        return now - seconds(flag, positive=False)(t)
    except UsageError:
        raise UsageError(
            f"{flag}: {text!r} is neither epoch seconds, an ISO 8601 time nor a duration such as 2h"
        ) from None


def when(flag: str) -> Callable[[str], float]:
    """:func:`parse_time` as an argparse ``type=``, durations before the time of parsing."""

    def parse(text: str) -> float:
        import time

        return parse_time(text, time.time(), flag)

    parse.__name__ = "time"
    return parse
