"""The shared argparse types and options (profiler.commands.argtypes): a bad value stops the
parse with the option's one-line message (exit 2 through cli.main), and an option declared
by a helper reads the same in every command that takes it."""

from __future__ import annotations

import argparse
import re

import pytest

from profiler.commands import argtypes
from profiler.errors import UsageError


def test_seconds_parses_spans_and_keeps_the_messages() -> None:
    parse = argtypes.seconds("--interval", longest=(60.0, "1 minute"))
    assert parse("500ms") == 0.5 and parse("1m") == 60.0
    for text, message in (
        ("soon", "--interval: "),
        ("2m", "--interval '2m': too long (at most 1 minute)"),
        ("1e400", "too long"),
        ("0", "--interval must be positive"),
    ):
        with pytest.raises(UsageError, match=re.escape(message)):
            parse(text)
    assert argtypes.seconds("--overlap", positive=False)("0") == 0.0
    with pytest.raises(UsageError, match=r"--duration must be positive \(or use --once\)"):
        argtypes.seconds("--duration", hint=" (or use --once)")("0s")


def test_rate_is_bits_per_second_positive_and_finite() -> None:
    assert argtypes.rate("--link")("200Mbit") == 200e6
    message = "--link: must be a positive, finite rate, got '0Mbit'"
    with pytest.raises(UsageError, match=re.escape(message)):
        argtypes.rate("--link")("0Mbit")
    with pytest.raises(UsageError, match="--upload: "):
        argtypes.rate("--upload")("fast")


def test_codec_spec_is_checked_and_kept_as_given() -> None:
    assert argtypes.codec_spec("compression=xz") == "compression=xz"
    with pytest.raises(UsageError, match="level 19 out of range for xz"):
        argtypes.codec_spec("xz:19:threads=2")


def test_a_type_error_stops_the_parse_as_a_usage_error() -> None:
    """argparse turns only its own errors into usage text: UsageError reaches cli.main."""
    parser = argparse.ArgumentParser()
    argtypes.add_run_out(parser)
    argtypes.add_interval(parser, default="30s", help="h")
    argtypes.add_timeout(parser, help="h")
    argtypes.add_duration_or_once(parser, once_help="h")
    argtypes.add_generation(parser)
    args = parser.parse_args(["--out", "r", "--duration", "2h"])
    assert (args.out, args.interval, args.timeout, args.duration) == ("r", 30.0, 10.0, 7200.0)
    assert args.generation is None and args.once is False
    assert parser.parse_args(["--out", "r", "--duration="]).duration is None  # as it always was
    with pytest.raises(UsageError, match="--timeout must be positive"):
        parser.parse_args(["--out", "r", "--timeout", "0"])
    assert argtypes.positive_int(3)("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 1"):
        argtypes.positive_int()("0")


def test_a_time_span_without_a_stated_limit_still_has_one() -> None:
    """``collect db --timeout 1e400`` was an OverflowError traceback: every span is at most
    ten years unless the option says less."""
    parse = argtypes.seconds("--timeout")
    assert parse("90s") == 90.0 and parse("3650d") == 3650 * 86400.0
    for text in ("1e400", "1e300s", "3651d"):
        with pytest.raises(UsageError, match=r"^--timeout '.*': too long \(at most 3650 days\)$"):
            parse(text)
