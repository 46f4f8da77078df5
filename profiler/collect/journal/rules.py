"""The journal parser's rules, compiled from the message catalogue (:mod:`profiler.hydra`).

A :class:`Rule` is one catalogue entry made ready to match: its regex (anchored at the start of
the message; C++ messages must match to their end, Rust messages up to a space or the end,
because the fields of the tracing spans in scope follow the message), its typed conversions,
and its first word, so that a line is only tried against the rules that can match it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from profiler.hydra import CATALOGUE, Message
from profiler.hydra.catalogue import CONVERTERS

Conv = Callable[[str], Any]
_META = set("\\.^$*+?{}[]|()")


@dataclass(frozen=True)
class Rule:
    """One catalogue entry ready to match a message."""

    message: Message
    match: Callable[[str], re.Match[str] | None]
    names: tuple[str, ...]
    convs: tuple[tuple[str, Conv], ...]
    first: str | None

    @property
    def event(self) -> str:
        return self.message.event


def first_word(pattern: str) -> str | None:
    """The literal first word every match of ``pattern`` starts with (up to the first space),
    or None when the pattern does not start with a plain literal word."""
    head = pattern.split(" ", 1)[0]
    text = re.sub(r"\\([.()\[\]{}*+?|^$\\])", "", head)  # escaped metacharacters are literal
    if not head or any(c in _META for c in text):
        return None
    return re.sub(r"\\(.)", r"\1", head)


def compile_rule(message: Message) -> Rule:
    """Compile one entry: C++ patterns to the end of the message, Rust ones to a span tail."""
    tail = r"(?=[ \t]|$)" if message.rust else r"$"
    regex = re.compile(f"(?:{message.pattern}){tail}")
    names = tuple(regex.groupindex)
    convs = tuple((name, CONVERTERS[kind]) for name, kind in message.types.items() if kind != "str")
    return Rule(message, regex.match, names, convs, first_word(message.pattern))


@dataclass(frozen=True)
class RuleSet:
    """Rules of one line shape (C++-style plain messages, or Rust tracing messages)."""

    by_first: dict[str, tuple[Rule, ...]]
    anywhere: tuple[Rule, ...]

    def candidates(self, message: str) -> Iterable[Rule]:
        space = message.find(" ")
        word = message if space < 0 else message[:space]
        yield from self.by_first.get(word, ())
        yield from self.anywhere

    def find(self, message: str) -> tuple[Rule, re.Match[str]] | None:
        for rule in self.candidates(message):
            m = rule.match(message)
            if m is not None:
                return rule, m
        return None


def specificity(message: Message) -> int:
    """How much literal text a message's format has: a specific wording is tried before a
    general one that would also match it ("main thread: Reconnecting in 10s" before
    "main thread: %s")."""
    return len(_PLACEHOLDER.sub("", message.format))


_PLACEHOLDER = re.compile(r"%\d+%|%(?:\d+\$)?[-+ #0]*\d*(?:\.\d+)?[sdifgu]|\{[^{}]*\}")


def rule_set(messages: Iterable[Message]) -> RuleSet:
    by_first: dict[str, list[Rule]] = {}
    anywhere: list[Rule] = []
    for message in sorted(messages, key=specificity, reverse=True):
        rule = compile_rule(message)
        if rule.first is None:
            anywhere.append(rule)
        else:
            by_first.setdefault(rule.first, []).append(rule)
    return RuleSet({k: tuple(v) for k, v in by_first.items()}, tuple(anywhere))


def fields(rule: Rule, m: re.Match[str]) -> dict[str, Any]:
    """The match's named groups, converted; groups that did not take part are left out."""
    out = {name: value for name, value in m.groupdict().items() if value is not None}
    for name, conv in rule.convs:
        if name in out:
            out[name] = conv(out[name])
    return out


PLAIN = rule_set(m for m in CATALOGUE if not m.rust)
TRACING = rule_set(m for m in CATALOGUE if m.rust)
GENERATION = {
    "cxx-runner": "cxx",
    "nix": "cxx",
    "runtime": "cxx",
    "rust-runner": "rust",
    "rust-builder": "rust",
}
