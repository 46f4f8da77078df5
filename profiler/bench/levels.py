"""Level ranges and lists in codec specs: ``zstd:1-19``, ``xz:0,6,9e``, ``zstd:1-19:long=27``.

lzbench users write ``-ezstd,1,3,9,19``; here the same sweep is one short-form spec whose
level field holds a range (``A-B``, both ends included) or a comma list of levels and
ranges. :func:`expand_specs` turns it into one plain spec per level, each keeping the
spec's options, before anything parses or measures them. Store-URI query strings
(``compression=zstd&...``) are passed through unchanged: they name one level.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from profiler.errors import UsageError

MAX_LEVELS = 64  # one spec expanding to more cells than this is a typo, not a sweep
_RANGE = re.compile(r"(-?\d+)-(-?\d+)(e?)")
_LEVEL = re.compile(r"-?\d+e?")


def _is_query(text: str) -> bool:
    return "=" in text.split(":", 1)[0] or "?" in text or text.startswith("compression")


def _levels(field: str, text: str) -> list[str]:
    out: list[str] = []
    for item in field.split(","):
        item = item.strip()
        ranged = _RANGE.fullmatch(item)
        if ranged:
            low, high = int(ranged[1]), int(ranged[2])
            if low > high:
                raise UsageError(
                    f"codec {text!r}: level range {item!r} runs backwards (write {high}-{low})"
                )
            if high - low + 1 > MAX_LEVELS:
                raise UsageError(
                    f"codec {text!r}: level range {item!r} has {high - low + 1} levels "
                    f"(at most {MAX_LEVELS})"
                )
            out += [f"{n}{ranged[3]}" for n in range(low, high + 1)]
        elif _LEVEL.fullmatch(item):
            out.append(item)
        else:
            raise UsageError(
                f"codec {text!r}: {item!r} is not a level or a range "
                "(write LEVEL, A-B or a comma list such as 1,3,9-12)"
            )
    return out


def expand_spec(text: str) -> list[str]:
    """One spec per level of ``text``; ``[text]`` when it names one level (or none)."""
    stripped = text.strip()
    if _is_query(stripped):
        return [text]
    method, *opts = stripped.split(":")
    if not opts or "=" in opts[0] or not ("," in opts[0] or re.search(r"\d-", opts[0])):
        return [text]
    levels = _levels(opts[0], text)
    if len(levels) > MAX_LEVELS:
        raise UsageError(f"codec {text!r}: {len(levels)} levels (at most {MAX_LEVELS})")
    return [":".join([method, level, *opts[1:]]) for level in levels]


def expand_specs(texts: Iterable[str]) -> list[str]:
    """Every spec of ``texts`` expanded (:func:`expand_spec`), in order, without repeats."""
    return list(dict.fromkeys(spec for text in texts for spec in expand_spec(text)))
