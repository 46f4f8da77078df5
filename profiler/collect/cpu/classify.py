"""A sample's class from its frames, by the rules of :mod:`profiler.collect.cpu.rules`.

The policy (one class per sample, so classes add up to the CPU sampled):

1. the innermost frame that names a *domain* (compression, decompression, hashing, nar,
   network, database) decides: a hash computed inside a NAR dump is hashing, a ``read``
   under ``nix::dumpPath`` is NAR serialisation, a page fault inside liblzma is compression;
   a frame named by a *weak* rule yields: one known only by its stripped library
   (``[libcrypto.so.3]``: digests and TLS ciphers look alike) or a helper both directions
   share (``lzma_code``, ``ZSTD_wildcopy``). With no named domain frame, the outermost weak
   one decides: libcrypto under libssl is network, alone it is hashing;
2. else the innermost *mechanism* frame (filesystem, allocation, runtime) decides: a
   ``malloc`` under the interpreter loop is allocation;
3. else the sample is ``other``, and its leaf frame is listed in ``cpu_unknown``.

A frame without a symbol (a stripped library: perf prints ``[unknown]``) is classified by
its mapped file alone, so the library decides (liblzma.so is compression).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from profiler.collect.cpu.rules import DOMAINS, MECHANISMS, RULES, Rule


class Frame(NamedTuple):
    """One stack frame: its symbol (None when unresolved) and the file it is mapped from."""

    symbol: str | None
    dso: str

    def text(self) -> str:
        """The frame in stacks: its symbol, or ``[dso-basename]`` when it has none."""
        if self.symbol:
            return self.symbol
        name = os.path.basename(self.dso.strip("[]")) or "unknown"
        return f"[{name}]"


class _Compiled(NamedTuple):
    cls: str
    symbol: re.Pattern[str] | None
    dso: re.Pattern[str] | None
    weak: bool


def _compile(rules: Sequence[Rule]) -> list[_Compiled]:
    return [
        _Compiled(
            r.cls,
            re.compile(r.symbol) if r.symbol is not None else None,
            re.compile(r.dso) if r.dso is not None else None,
            r.weak,
        )
        for r in rules
    ]


_RULES = _compile(RULES)
_DOMAINS = frozenset(DOMAINS)
_MECHANISMS = frozenset(MECHANISMS)


@lru_cache(maxsize=65536)
def frame_rule(frame: Frame) -> tuple[str, bool] | None:
    """The class of the first rule ``frame`` matches and whether that rule is weak (None:
    no rule names it)."""
    for rule in _RULES:
        if rule.symbol is not None and (
            frame.symbol is None or not rule.symbol.match(frame.symbol)
        ):
            continue
        if rule.dso is not None and not rule.dso.search(frame.dso):
            continue
        return rule.cls, rule.weak
    return None


def frame_class(frame: Frame) -> str | None:
    """The class ``frame`` names on its own (None: no rule names it)."""
    found = frame_rule(frame)
    return None if found is None else found[0]


@lru_cache(maxsize=65536)
def classify(frames: tuple[Frame, ...]) -> str:
    """The class of a sample whose ``frames`` run root to leaf (see the module's policy)."""
    mechanism: str | None = None
    weak: str | None = None
    for frame in reversed(frames):
        found = frame_rule(frame)
        if found is None:
            continue
        cls, is_weak = found
        if cls in _DOMAINS:
            if not is_weak:
                return cls
            weak = cls  # the outermost weak domain frame, once the walk ends
        elif mechanism is None:
            mechanism = cls
    return weak or mechanism or "other"
