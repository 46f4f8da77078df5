from __future__ import annotations

import pytest

from profiler.units import (
    format_bytes,
    format_seconds,
    format_share,
    parse_bits_per_second,
    parse_bytes,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1TiB", 1 << 40), ("2 GiB", 2 << 30), ("1.5MB", 1.5e6), ("100", 100), ("0.25TB", 2.5e11)],
)
def test_parse_bytes(text: str, value: float) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize(
    ("text", "value"), [("100Mbit", 1e8), ("1Gbit/s", 1e9), ("10 Mbps", 1e7), ("2.5Gbit", 2.5e9)]
)
def test_parse_bits_per_second(text: str, value: float) -> None:
    assert parse_bits_per_second(text) == value


@pytest.mark.parametrize("bad", ["lots", "1 parsec", "MiB"])
def test_bad_quantities_name_the_input(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad).replace("'", ".")):
        parse_bytes(bad)


def test_formatting() -> None:
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(75) == "1m15s"


def test_format_share() -> None:
    import numpy as np

    assert format_share(0.2346) == "23.5%"
    assert format_share(np.float64(0.5)) == "50.0%"
    assert format_share(np.int64(1)) == "100.0%"
    assert format_share(-0.081, signed=True) == "-8.1%"
    assert format_share(0.081, signed=True) == "+8.1%"
    for missing in (None, float("nan"), float("inf"), "text"):
        assert format_share(missing) == "-"


def test_to_jsonable_is_strict_json() -> None:
    import json

    import numpy as np
    import pandas as pd

    from profiler.units import to_jsonable

    doc = {
        1: (np.float64(1.5), np.int64(2), np.bool_(True)),
        "missing": [None, float("nan"), np.float32("nan"), pd.NA, pd.NaT, float("inf")],
        "nested": {"t": pd.Timestamp("2026-12-04T00:00:00Z"), "s": "x"},
    }
    out = to_jsonable(doc)
    assert out == {
        "1": [1.5, 2, True],
        "missing": [None] * 6,
        "nested": {"t": "2026-12-04 00:00:00+00:00", "s": "x"},
    }
    json.dumps(out, allow_nan=False)  # strict: no NaN, no infinity
