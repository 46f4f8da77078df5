#!/usr/bin/env python3
"""What the real Hydra emits and whether hydra-profiler reads it: docs/hydra-coverage.md.

Three tables, made from the code itself so they cannot drift from it:

- every log message of the catalogue (``profiler.hydra``): program, era, level, event, the
  source line, and what the analysis takes from it (every entry is parsed; "counted" means
  it is understood and kept as an event, not used by the analysis);
- every status field of the golden status documents (``tests/data/golden/rust/status.json``
  and the C++ documents of every era in ``tests/data/status/``): the sample it becomes, or why
  it is not stored, or "NOT READ";
- every metric family of the golden expositions: likewise.

Run ``python3 scripts/hydra_coverage.py > docs/hydra-coverage.md``; a test checks that the
committed file is what this prints.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from profiler.collect.status import metrics_map as nm  # noqa: E402
from profiler.collect.status import normalize as ns  # noqa: E402
from profiler.hydra import CATALOGUE  # noqa: E402

STATUS_DOCS = (
    ("rust", ROOT / "tests/data/golden/rust/status.json"),
    ("cxx", ROOT / "tests/data/status/cxx-2025.json"),
    ("cxx", ROOT / "tests/data/status/cxx-2022-12.json"),
    ("cxx", ROOT / "tests/data/status/cxx-2018.json"),
    ("cxx", ROOT / "tests/data/status/cxx-2026-noS3.json"),
)
EXPOSITIONS = (
    ("rust", ROOT / "tests/data/golden/rust/metrics.prom"),
    ("cxx", ROOT / "tests/data/status/metrics-cxx.prom"),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def messages() -> Iterator[str]:
    yield "## Log messages"
    yield ""
    yield (
        "Every entry is a call site in the real source; the journal parser compiles its rules "
        "from these entries, so each is read. *use* is what the analysis takes from it "
        "(empty: understood and kept as an event, not used)."
    )
    yield ""
    yield "| program | era | level | event | format | source | use |"
    yield "|---|---|---|---|---|---|---|"
    for m in sorted(CATALOGUE, key=lambda m: (m.program, m.event, m.era)):
        yield (
            f"| {m.program} | {_cell(m.era or 'all')} | {m.level} | `{m.event}` "
            f"| `{_cell(m.format)}` | {_cell(str(m.source))} | {_cell(m.use)} |"
        )


def _paths(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _paths(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _status_rows(generation: str, path: Path) -> Iterator[tuple[str, str]]:
    doc = json.loads(path.read_text())
    samples = ns.from_status(doc, 0.0, str(path))
    made: dict[str, set[str]] = {}
    for s in samples:
        made.setdefault(str(s.get("field", "")), set()).add(str(s["metric"]))
    unknown = set(getattr(samples, "unknown", ()) or ())
    for field, _ in _paths(doc):
        key = field
        if any(key.startswith(u) or u.startswith(key) for u in unknown):
            yield key, "**NOT READ**"
        else:
            yield key, "read"


def status_fields() -> Iterator[str]:
    yield "## Status documents"
    yield ""
    yield (
        "Each field of the golden documents, as `from_status` takes it: read (a sample, or "
        "known and deliberately not stored: derived averages, configuration), or NOT READ."
    )
    for generation, path in STATUS_DOCS:
        if not path.exists():
            continue
        yield ""
        yield f"### {generation}: `{path.relative_to(ROOT)}`"
        yield ""
        rows = sorted(set(_status_rows(generation, path)))
        read = sum(1 for _, how in rows if how == "read")
        yield f"{read} of {len(rows)} fields read."
        missing = [key for key, how in rows if how != "read"]
        if missing:
            yield ""
            yield "Not read: " + ", ".join(f"`{k}`" for k in missing)


def metric_families() -> Iterator[str]:
    yield "## Prometheus metric families"
    yield ""
    yield "| generation | family | type | stored as |"
    yield "|---|---|---|---|"
    for generation, path in EXPOSITIONS:
        if not path.exists():
            continue
        for fam in text_string_to_metric_families(path.read_text()):
            name = fam.name
            spec = nm.PROM_MAPPING.get(name) or nm.PROM_MAPPING.get(f"{name}_total")
            ignored = getattr(nm, "PROM_IGNORED", {}).get(name)
            if spec is not None:
                how = f"`{spec.metric}` ({spec.unit})"
            elif ignored:
                how = f"not stored: {ignored}"
            else:
                how = f"kept as `prom_{name}` (no meaning attached)"
            yield f"| {generation} | `{name}` | {fam.type} | {_cell(how)} |"


def main() -> None:
    print("# What the real Hydra emits, and what hydra-profiler reads")
    print()
    print("Made by `scripts/hydra_coverage.py` from the catalogue and the collectors' mappings.")
    for section in (messages, status_fields, metric_families):
        print()
        for line in section():
            print(line)


if __name__ == "__main__":
    main()
