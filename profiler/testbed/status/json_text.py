"""The C++ status JSON as text: nlohmann dump (compact) and Perl JSON pretty+canonical."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from profiler.testbed.status.numbers import nlohmann_float, perl_float


def _scalar_text(value: Any, float_text: Callable[[float], str]) -> str:
    """One JSON scalar; ``float_text`` formats doubles."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"not a JSON value: {value!r}")


def _compact_text(value: Any) -> str:
    """nlohmann ``dump()``: no whitespace, keys sorted (``std::map``)."""
    if isinstance(value, Mapping):
        items = (
            f"{_scalar_text(str(k), nlohmann_float)}:{_compact_text(value[k])}"
            for k in sorted(value)
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_compact_text(v) for v in value) + "]"
    return _scalar_text(value, nlohmann_float)


def _pretty_text(value: Any, level: int) -> str:
    """JSON::XS ``pretty->canonical``: 3-space indent, ``"key" : value``, sorted keys."""
    pad = "   " * (level + 1)
    end = "\n" + "   " * level
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = (
            f"{pad}{_scalar_text(str(k), perl_float)} : {_pretty_text(value[k], level + 1)}"
            for k in sorted(value)
        )
        return "{\n" + ",\n".join(items) + end + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        rows = (pad + _pretty_text(v, level + 1) for v in value)
        return "[\n" + ",\n".join(rows) + end + "]"
    return _scalar_text(value, perl_float)


def cxx_status_text(doc: Mapping[str, Any], pretty: bool) -> str:
    """Status JSON as text, newline-terminated.

    ``pretty=False``: what ``hydra-queue-runner --status`` prints (the nlohmann dump stored in
    ``SystemStatus``: one line, sorted keys, shortest round-trip doubles). ``pretty=True``:
    the web ``/queue-runner-status`` re-encoding by Perl ``JSON->new->pretty->canonical``
    (3-space indent, ``"key" : value``, sorted keys, doubles as ``%.15g``).
    """
    if pretty:
        return _pretty_text(doc, 0) + "\n"
    return _compact_text(doc) + "\n"
