"""Unit conversions and human formatting; nothing else in the package formats numbers."""

from __future__ import annotations

import math
import numbers
from typing import Any

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``; exact bytes below 1 KiB."""
    value = float(n)
    for unit in _BINARY:
        if abs(value) < 1024 or unit == _BINARY[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_seconds(s: float) -> str:
    """A duration for people: ``0.0123`` -> ``'12.3 ms'``, ``75`` -> ``'1m15s'``."""
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    if s < 60:
        return f"{s:.2f} s"
    minutes, seconds = divmod(round(s), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def format_utc_range(start: float, end: float) -> str:
    """Two epoch times as one UTC span: ``'2022-01-01 00:00:00 to 06:00:00 UTC'`` (the date
    once when both fall on it), or ``'-'`` when either is unknown."""
    from datetime import UTC, datetime

    if not all(isinstance(t, numbers.Real) and math.isfinite(float(t)) for t in (start, end)):
        return "-"
    a = datetime.fromtimestamp(float(start), tz=UTC)
    b = datetime.fromtimestamp(float(end), tz=UTC)
    last = b.strftime("%H:%M:%S") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M:%S")
    return f"{a.strftime('%Y-%m-%d %H:%M:%S')} to {last} UTC"


def format_share(value: Any, *, signed: bool = False, digits: int = 1, missing: str = "-") -> str:
    """A share as a percentage: ``0.2345`` -> ``'23.5%'`` (``'+23.5%'`` if ``signed``,
    ``'23%'`` with ``digits=0``); ``missing`` (``'-'``; prose says ``'n/a'``) for anything
    that is not a finite number (None, NaN, text)."""
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return f"{100 * float(value):{'+' if signed else ''}.{digits}f}%"
    return missing


def to_jsonable(value: Any) -> Any:
    """``value`` as strict JSON can hold it, recursively: mapping keys as text, tuples as
    lists, numpy scalars as Python numbers, missing values (None, NaN, pandas NA/NaT) and
    infinities as None (JSON has neither); anything else as its text. The one sanitiser for
    every JSON the package writes."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy and pandas scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return to_jsonable(item())
    if _missing(value):
        return None
    return str(value)


def _missing(value: Any) -> bool:
    """pandas' NA and NaT (without importing pandas when it is not loaded)."""
    import sys

    pd = sys.modules.get("pandas")
    return pd is not None and bool(pd.api.types.is_scalar(value) and pd.isna(value))


def mb_per_second(nbytes: float, seconds: float) -> float:
    """Throughput in MB/s (10^6 bytes per second, as lzbench and zstd report it).

    Zero seconds give infinity; an unknown (NaN) time gives NaN.
    """
    if seconds != seconds:  # NaN
        return float("nan")
    return nbytes / seconds / 1e6 if seconds > 0 else float("inf")


_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
    "pib": 1 << 50,
}
_BIT_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12}


def _split_number(text: str) -> tuple[float, str]:
    t = text.strip().replace(" ", "")
    i = len(t)
    while i and not (t[i - 1].isdigit() or t[i - 1] == "."):
        i -= 1
    try:
        return float(t[:i]), t[i:].lower().removesuffix("/s")
    except ValueError:
        raise ValueError(f"not a number with a unit: {text!r}") from None


def parse_bytes(text: str) -> float:
    """``'1TiB'`` -> 1099511627776; decimal (``MB``) and binary (``MiB``) units."""
    number, unit = _split_number(text)
    if unit not in _BYTE_UNITS:
        raise ValueError(f"unknown byte unit in {text!r} (use B, MB, GB, TB, MiB, GiB, TiB)")
    return number * _BYTE_UNITS[unit]


def parse_bits_per_second(text: str) -> float:
    """``'100Mbit'`` or ``'1Gbit/s'`` -> bits per second."""
    number, unit = _split_number(text)
    if unit.endswith("bps"):  # Mbps -> mbit
        unit = unit[:-3] + "bit"
    if unit not in _BIT_UNITS:
        raise ValueError(f"unknown link speed unit in {text!r} (use kbit, Mbit, Gbit)")
    return number * _BIT_UNITS[unit]


# w: a week; y: 365 days (a history's span, ``--since 5y``: not a calendar year)
_DURATION_UNITS = {
    "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
    "w": 7 * 86400.0, "y": 365 * 86400.0,
}  # fmt: skip


def parse_seconds(text: str) -> float:
    """``'30s'`` -> 30.0, ``'10m'`` -> 600.0, ``'500ms'`` -> 0.5, ``'5y'`` -> 5 x 365 days;
    a bare number is seconds."""
    number, unit = _split_number(text)
    if unit not in _DURATION_UNITS and unit != "":
        raise ValueError(f"unknown duration unit in {text!r} (use ms, s, m, h, d, w, y)")
    if number < 0:
        raise ValueError(f"negative duration {text!r}")
    return number * _DURATION_UNITS.get(unit, 1.0)
