"""Number formats of the two generations: C++ ``float``, serde ``f32``, nlohmann and Perl
doubles in the status JSON text, prometheus-cpp and rust-prometheus sample values."""

from __future__ import annotations

import math
import struct
from decimal import Decimal


def f32(value: float) -> float:
    """``value`` rounded to IEEE single precision, widened back (what C++ ``(float)`` gives)."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def f32_short(value: float) -> float:
    """Shortest decimal that rounds to the same f32: how serde_json prints a Rust ``f32``."""
    target = f32(value)
    if target == 0.0 or not math.isfinite(target):
        return target
    for digits in range(1, 10):
        candidate = float(f"{target:.{digits}g}")
        if f32(candidate) == target:
            return candidate
    return target


def cxx_float_avg(total: int, count: int) -> float:
    """C++ ``(float) total / count``: a single-precision quotient; 0.0 while ``count`` is 0
    (``dumpStatus`` guards each division)."""
    return f32(f32(float(total)) / f32(float(count))) if count else 0.0


def nlohmann_float(value: float) -> str:
    """nlohmann::json's double format: shortest round-trip digits, ``.0``, ``e+NN``."""
    if not math.isfinite(value):
        return "null"
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = k + exponent
    if k <= n <= 15:
        body = digits + "0" * (n - k) + ".0"
    elif 0 < n <= 15:
        body = digits[:n] + "." + digits[n:]
    elif -4 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        e = n - 1
        body = f"{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    return ("-" if sign else "") + body


def perl_float(value: float) -> str:
    """Perl's number stringification (``%.15g``), which JSON::XS uses for NVs."""
    if not math.isfinite(value):
        return "null"
    return f"{value:.15g}"


def cpp_number(value: float) -> str:
    """prometheus-cpp ``WriteValue``: ``%.16g``, ``Nan``, ``+Inf``."""
    if math.isnan(value):
        return "Nan"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.16g}"


def rust_number(value: float) -> str:
    """Rust ``f64`` Display (rust-prometheus): no exponent, integers without ``.0``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**63:
        return str(int(value))
    return format(Decimal(repr(value)), "f")
