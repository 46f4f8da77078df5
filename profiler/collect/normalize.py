"""Turn every queue-runner source document into tidy samples.

A sample is a dict with the keys of :data:`SAMPLE_KEYS`::

    {"ts": float (epoch s, UTC), "source": str, "generation": "cxx" | "rust",
     "metric": str, "value": float, "kind": "counter" | "gauge", "unit": str,
     "machine": str | None, "machine_type": str | None, "jobset": str | None,
     "bucket": str | None}

Our metric names are stable, snake_case and unit-suffixed; counters end in ``_total``; the
same quantity has the same name in both generations (units converted: ms and µs become
seconds), e.g. C++ ``totalStepTime`` (s) and Rust ``totalStepTimeMs`` are both
``step_seconds_total``. Where the generations mean different things the names differ
(Rust ``steps_copying_to`` counts *paths* and is ``uploading_paths``). ``bucket`` holds an
S3 bucket (Rust ``s3.<bucket>``, label ``remote_store``) or a histogram bound (``le``).

Sources and entry points:

* C++ status JSON (every era since 2015): :func:`from_cxx_status`;
* Rust ``GET /status``: :func:`from_rust_status`; other ``/status/...`` endpoints:
  :func:`from_rust_endpoint`; either status generation: :func:`from_status`
  (:func:`detect` tells them apart);
* Prometheus ``/metrics`` text of either generation: :func:`from_prometheus`;
* old C++ journals (2015-2020 periodic ``status: {...}`` lines):
  :func:`status_from_journal_line` gives the document.

The mappings (source field -> ``Field(metric, kind, factor, unit)``) are the module-level
tables :data:`CXX_STATUS_MAPPING`, :data:`RUST_STATUS_MAPPING`,
:data:`RUST_ENDPOINT_MAPPING` and :data:`PROM_MAPPING`; :func:`mapping_table` renders them
(and the fields deliberately not stored) as one markdown document. Derived values in the
sources (averages such as ``avgStepTime`` and ``buildReadTimeAvgMs``, ``narCompressionSavings``,
``narCompressionSpeed``, ``putSpeed``/``getSpeed``, ``costDollarApprox``) are **not stored**:
they follow from the stored totals. Fields no table knows are ignored but listed in the
result's ``unknown`` attribute (the functions return :class:`Samples`, a ``list``), so a
collector can report new fields.

A C++ document ``{"status": "down"}`` (or the web page's ``"unknown"``/``"unreachable"``)
gives just ``up`` = 0. A document that is not an object or has neither ``status`` nor
``queueRunner`` raises :class:`~profiler.errors.CollectorError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from profiler.collect.normalize_metrics import (
    PROM_IGNORED,
    PROM_LABELS,
    PROM_MAPPING,
    detect_prometheus,
    from_prometheus,
)
from profiler.collect.normalize_status import (
    CXX_STATUS_IGNORED,
    CXX_STATUS_LABELS,
    CXX_STATUS_MAPPING,
    RUST_ENDPOINT_IGNORED,
    RUST_ENDPOINT_LABELS,
    RUST_ENDPOINT_MAPPING,
    RUST_STATUS_IGNORED,
    RUST_STATUS_LABELS,
    RUST_STATUS_MAPPING,
    detect,
    from_cxx_status,
    from_rust_endpoint,
    from_rust_status,
    from_status,
)
from profiler.collect.samples import LABELS, MS, SAMPLE_KEYS, US, Field, Sample, Samples
from profiler.hydra.facts import GENERATIONS

__all__ = [
    "CXX_STATUS_IGNORED",
    "CXX_STATUS_MAPPING",
    "GENERATIONS",
    "LABELS",
    "PROM_IGNORED",
    "PROM_LABELS",
    "PROM_MAPPING",
    "RUST_ENDPOINT_IGNORED",
    "RUST_ENDPOINT_MAPPING",
    "RUST_STATUS_IGNORED",
    "RUST_STATUS_MAPPING",
    "SAMPLE_KEYS",
    "Field",
    "Sample",
    "Samples",
    "detect",
    "detect_prometheus",
    "from_cxx_status",
    "from_prometheus",
    "from_rust_endpoint",
    "from_rust_status",
    "from_status",
    "mapping_table",
    "status_from_journal_line",
]

# journalctl short (or short-iso, ...) output: "... hydra-queue-runner[1234]: status: {...}"
_JOURNAL_STATUS = re.compile(r"(?:^|\s)[\w.@-]+(?:\[\d+\])?: status: (\{.*\})\s*$")
_MESSAGE_STATUS = re.compile(r"^status: (\{.*\})\s*$", re.DOTALL)


def _json_object(text: str) -> dict[str, Any] | None:
    """``text`` parsed as a JSON object, or None."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        return None
    return value if isinstance(value, dict) else None


def status_from_journal_line(line: str) -> dict[str, Any] | None:
    """The status document of a C++ ``status: {json}`` journal line, None for other lines.

    Accepts ``journalctl`` short formats (``Jun 05 12:00:00 host hydra-queue-runner[1234]:
    status: {...}``) and ``journalctl -o json`` records (``MESSAGE`` = ``status: {...}``).
    """
    text = line.strip()
    if text.startswith("{"):
        record = _json_object(text)
        message = record.get("MESSAGE") if record else None
        found = _MESSAGE_STATUS.match(message) if isinstance(message, str) else None
    else:
        found = _JOURNAL_STATUS.search(text)
    return _json_object(found.group(1)) if found else None


# --------------------------------------------------------------------------------------------
# the mapping, rendered


def _factor_text(factor: float) -> str:
    """Human form of a unit factor."""
    names = {1.0: "1", MS: "1/1000 (ms -> s)", US: "1/1000000 (µs -> s)"}
    return names.get(factor, f"{factor:g}")


def _fields_table(mapping: Mapping[str, Field]) -> list[str]:
    """Markdown rows: source field, our metric, kind, factor, unit."""
    rows = ["| source field | our metric | kind | factor | unit |", "|---|---|---|---|---|"]
    rows += [
        f"| `{path}` | `{f.metric}` | {f.kind} | {_factor_text(f.factor)} | {f.unit or '-'} |"
        for path, f in mapping.items()
    ]
    return rows


def _ignored_table(ignored: Mapping[str, str]) -> list[str]:
    """Markdown rows: source field, why it is not stored."""
    rows = ["| not stored | why |", "|---|---|"]
    return rows + [f"| `{path}` | {reason} |" for path, reason in ignored.items()]


def _labels_table(labels: Mapping[str, str], what: str) -> list[str]:
    """Markdown rows: keyed object (or label) -> sample column."""
    rows = [f"| {what} | sample column |", "|---|---|"]
    return rows + [f"| `{key}` | `{column}` |" for key, column in labels.items()]


_SECTIONS: tuple[tuple[str, Mapping[str, Field], Mapping[str, str], Mapping[str, str]], ...] = (
    (
        "C++ status JSON (`hydra-queue-runner --status`, web `/queue-runner-status`)",
        CXX_STATUS_MAPPING,
        CXX_STATUS_IGNORED,
        CXX_STATUS_LABELS,
    ),
    ("Rust `GET /status`", RUST_STATUS_MAPPING, RUST_STATUS_IGNORED, RUST_STATUS_LABELS),
    (
        "Rust `/status/machines`, `/status/jobsets`, `/status/queues`",
        RUST_ENDPOINT_MAPPING,
        RUST_ENDPOINT_IGNORED,
        RUST_ENDPOINT_LABELS,
    ),
    ("Prometheus `/metrics` (both generations)", PROM_MAPPING, PROM_IGNORED, PROM_LABELS),
)


def mapping_table() -> str:
    """Every mapping as markdown: source field -> our metric, kind, factor, unit."""
    lines = [
        "# Source fields -> tidy samples",
        "",
        "`*` in a field path is a key of a keyed object; it becomes the sample's label.",
        "Counters are cumulative since the queue runner started; `status` gives `up`",
        '(1 for "up"; 0 and nothing else for "down", "unknown", "unreachable").',
        "Histogram families give `<metric>_bucket` (bound in `bucket`), `_count`, `_sum`;",
        "unknown families are kept as `prom_<sample name>`.",
    ]
    for title, mapping, ignored, labels in _SECTIONS:
        what = "label" if mapping is PROM_MAPPING else "keyed object"
        lines += ["", f"## {title}", "", *_fields_table(mapping), ""]
        lines += [*_ignored_table(ignored), "", *_labels_table(labels, what)]
    return "\n".join(lines) + "\n"
