"""Prometheus text exposition 0.0.4: metric families rendered with a number formatter.

A :class:`Family` is declared once, without samples (name, type, help), and the builders in
``metrics`` give it its samples. The two generations' dialects differ only in how a value is
written: :func:`render` takes the formatter (``numbers.cpp_number`` or ``rust_number``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

Labels = tuple[tuple[str, str], ...]
COUNTER, GAUGE, HISTOGRAM, SUMMARY = "counter", "gauge", "histogram", "summary"


class Sample(NamedTuple):
    """One sample: the suffix after the family name (``_bucket``, ``_sum``...), labels, value."""

    suffix: str
    labels: Labels
    value: float


class Family(NamedTuple):
    """One metric family: name, type, help and samples."""

    name: str
    type: str
    help: str
    samples: tuple[Sample, ...] = ()

    def with_value(self, value: float, prefix: str = "") -> Family:
        """This family named ``prefix + name``, with one unlabelled sample."""
        return self._replace(name=prefix + self.name, samples=(Sample("", (), float(value)),))

    def by_label(self, label: str, values: Mapping[str, float], prefix: str = "") -> Family:
        """This family named ``prefix + name``, with one sample per ``label`` value."""
        samples = tuple(Sample("", ((label, k),), float(v)) for k, v in values.items())
        return self._replace(name=prefix + self.name, samples=samples)


def _escape_label(value: str) -> str:
    """Label value escaping of the text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(families: Iterable[Family], number: Callable[[float], str]) -> str:
    """Text exposition: ``# HELP``, ``# TYPE``, then samples; ``number`` formats values."""
    lines: list[str] = []
    for fam in families:
        help_text = fam.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {fam.name} {help_text}")
        lines.append(f"# TYPE {fam.name} {fam.type}")
        for suffix, labels, value in fam.samples:
            label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
            braces = "{" + label_text + "}" if labels else ""
            lines.append(f"{fam.name}{suffix}{braces} {number(float(value))}")
    return "\n".join(lines) + "\n"
