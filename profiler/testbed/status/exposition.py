"""Prometheus text exposition 0.0.4: metric families rendered with a number formatter."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    """One metric family: name, help, type and samples ``(suffix, labels, value)``."""

    name: str
    help: str
    type: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)


def one(name: str, help_text: str, kind: str, value: float) -> Family:
    """A family with a single unlabelled sample."""
    return Family(name, help_text, kind, [("", (), float(value))])


def labelled(
    name: str, help_text: str, label: str, values: Mapping[str, float], kind: str = "gauge"
) -> Family:
    """A family with one sample per label value."""
    return Family(name, help_text, kind, [("", ((label, k),), float(v)) for k, v in values.items()])


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
