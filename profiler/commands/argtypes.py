"""argparse ``type=`` checkers for numbers on the command line.

A bad value (not a number, nan, inf, negative, zero where it must be positive, absurdly
large) becomes argparse's one-line usage error (exit 2) naming the option, before any work
starts: ``hydra-profiler: error: argument --repeat: must be at least 1, got 0``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


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
