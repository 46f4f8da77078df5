"""Queue-runner documents to tidy samples (:mod:`profiler.collect.samples`).

Sources and entry points:

* C++ status JSON (every era since 2015): :func:`from_cxx_status`;
* Rust ``GET /status``: :func:`from_rust_status`; other ``/status/...`` endpoints:
  :func:`from_rust_endpoint`; either status generation: :func:`from_status`
  (:func:`detect` tells them apart);
* Prometheus ``/metrics`` text of either generation:
  :func:`profiler.collect.status.prometheus.from_prometheus`;
* old C++ journals (2015-2020 periodic ``status: {...}`` lines):
  :func:`status_from_journal_line` gives the document.

The mappings (source field -> ``Field(metric, kind, factor, unit)``) are the tables of
:mod:`profiler.collect.status.status_map` (:data:`CXX_STATUS_MAPPING`,
:data:`RUST_STATUS_MAPPING`, :data:`RUST_ENDPOINT_MAPPING`) and
:mod:`profiler.collect.status.metrics_map` (:data:`PROM_MAPPING`); :func:`mapping_table`
renders them (and the fields deliberately not stored) as one markdown document. Derived values
in the sources (averages such as ``avgStepTime`` and ``buildReadTimeAvgMs``,
``narCompressionSavings``, ``narCompressionSpeed``, ``putSpeed``/``getSpeed``,
``costDollarApprox``) are **not stored**: they follow from the stored totals. Fields no table
knows are ignored but listed in the result's ``unknown`` attribute (the functions return
:class:`~profiler.collect.samples.Samples`, a ``list``), so a collector can report new fields.

A C++ document ``{"status": "down"}`` (or the web page's ``"unknown"``/``"unreachable"``)
gives just ``up`` = 0. A document that is not an object or has neither ``status`` nor
``queueRunner`` raises :class:`~profiler.errors.CollectorError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from profiler.collect.samples import MS, UP, US, Emitter, Field, Samples
from profiler.collect.status.metrics_map import PROM_IGNORED, PROM_LABELS, PROM_MAPPING
from profiler.collect.status.status_map import (
    CXX_STATUS_IGNORED,
    CXX_STATUS_LABELS,
    CXX_STATUS_MAPPING,
    RUST_ENDPOINT_IGNORED,
    RUST_ENDPOINT_LABELS,
    RUST_ENDPOINT_MAPPING,
    RUST_ENDPOINTS,
    RUST_STATUS_IGNORED,
    RUST_STATUS_LABELS,
    RUST_STATUS_MAPPING,
)
from profiler.errors import CollectorError

DOWN_STATES = ("down", "unknown", "unreachable")


@dataclass(frozen=True)
class _Spec:
    """A mapping prepared for walking: fields, ignored paths, keyed objects, containers."""

    fields: Mapping[str, Field]
    ignored: Mapping[str, str]
    labels: Mapping[str, str]  # path of a keyed object -> label its keys fill
    containers: frozenset[str]
    special: frozenset[str]  # handled by the caller (status)

    @classmethod
    def of(
        cls, fields: Mapping[str, Field], ignored: Mapping[str, str], labels: Mapping[str, str]
    ) -> _Spec:
        """Derive the container paths (every proper prefix of a known path)."""
        prefixes: set[str] = set()
        for path in (*fields, *ignored):
            parts = path.split(".")
            prefixes.update(".".join(parts[:i]) for i in range(1, len(parts)))
        special = frozenset(p for p, f in fields.items() if f is UP)
        return cls(fields, ignored, labels, frozenset(prefixes), special)


_CXX_SPEC = _Spec.of(CXX_STATUS_MAPPING, CXX_STATUS_IGNORED, CXX_STATUS_LABELS)
_RUST_SPEC = _Spec.of(RUST_STATUS_MAPPING, RUST_STATUS_IGNORED, RUST_STATUS_LABELS)
_ENDPOINT_SPEC = _Spec.of(RUST_ENDPOINT_MAPPING, RUST_ENDPOINT_IGNORED, RUST_ENDPOINT_LABELS)


def _walk(
    node: Mapping[str, Any], prefix: str, spec: _Spec, labels: dict[str, str], out: Emitter
) -> None:
    """Emit every mapped field under ``node``; record the fields nobody knows."""
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if path in spec.fields:
            if path not in spec.special:
                out.field(spec.fields[path], value, labels, path)
        elif path in spec.labels:
            _walk_keyed(value, path, spec, labels, out)
        elif path in spec.containers and isinstance(value, Mapping):
            _walk(value, path, spec, labels, out)
        elif path not in spec.ignored and not (path in spec.containers and value is None):
            out.unknown(path)


def _walk_keyed(value: Any, path: str, spec: _Spec, labels: dict[str, str], out: Emitter) -> None:
    """A keyed object (machines, jobsets, ...): each key labels the samples below it."""
    if value is None:
        return  # e.g. machines: null before 2025-04
    if not isinstance(value, Mapping):
        out.unknown(f"{path} (not an object)")
        return
    label = spec.labels[path]
    child_path = f"{path}.*"
    for key, child in value.items():
        child_labels = {**labels, label: str(key)}
        if isinstance(child, Mapping):
            _walk(child, child_path, spec, child_labels, out)
        elif child_path not in spec.fields:
            out.unknown(f"{child_path} (not an object)")
        elif isinstance(child, list):
            out.add(spec.fields[child_path], float(len(child)), child_labels)
        else:
            out.field(spec.fields[child_path], child, child_labels, child_path)


def check_document(doc: Any) -> Mapping[str, Any]:
    """``doc`` as a status object, or :class:`CollectorError` (one line)."""
    if not isinstance(doc, Mapping):
        raise CollectorError(f"status document is a JSON {_json_type(doc)}, not an object")
    if "status" not in doc and "queueRunner" not in doc:
        # escaped: a key may hold a line break, and the error is one line
        keys = ", ".join(sorted(str(k).encode("unicode_escape").decode() for k in doc)[:6])
        keys = keys or "none"
        raise CollectorError(f"status document has neither 'status' nor 'queueRunner' ({keys})")
    return doc


def _json_type(value: Any) -> str:
    """JSON name of a Python value's type."""
    names = {list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, int | float) else "value")


def detect(doc: Any) -> str:
    """``"rust"`` for a Rust ``/status`` document (it has ``queueRunner``), else ``"cxx"``."""
    return "rust" if "queueRunner" in check_document(doc) else "cxx"


def from_cxx_status(doc: Any, ts: float, source: str) -> Samples:
    """Samples of a C++ status document (any era, from ``--status`` or the web page)."""
    body = check_document(doc)
    if "queueRunner" in body:
        raise CollectorError("a Rust /status document given as C++ status")
    out = Emitter(ts, source, "cxx")
    is_up = body.get("status") == "up"
    out.up(is_up)
    if is_up:
        _walk(body, "", _CXX_SPEC, {}, out)
    elif body.get("status") not in DOWN_STATES:
        out.unknown(f"status={body.get('status')!r}")
    return out.samples


def from_rust_status(doc: Any, ts: float, source: str) -> Samples:
    """Samples of a Rust ``GET /status`` document.

    The samples carry ``ts``; the document's own time becomes ``status_time_seconds``. A
    web wrapper's ``{"status": "unknown"|"unreachable"}`` gives only ``up`` = 0.
    """
    body = check_document(doc)
    runner = body.get("queueRunner")
    out = Emitter(ts, source, "rust")
    if not isinstance(runner, Mapping):
        if body.get("status") == "up":
            raise CollectorError("a C++ status document given as Rust /status")
        out.up(False)
        return out.samples
    out.up(runner.get("status", "up") == "up")
    _walk(body, "", _RUST_SPEC, {}, out)
    return out.samples


def from_rust_endpoint(path: str, doc: Any, ts: float, source: str) -> Samples:
    """Samples of a Rust ``/status...`` endpoint body; [] for endpoints without statistics.

    ``path`` may be a whole URL. ``/status`` is :func:`from_rust_status`;
    ``/status/machines`` and ``/status/jobsets`` give the same per-machine / per-jobset
    samples as ``/status``; ``/status/queues`` the queue length per system.
    """
    key = urlsplit(path).path.rstrip("/") or "/"
    if key == "/status":
        return from_rust_status(doc, ts, source)
    out = Emitter(ts, source, "rust")
    if key not in RUST_ENDPOINTS:
        return out.samples
    if not isinstance(doc, Mapping):
        raise CollectorError(f"{key}: body is a JSON {_json_type(doc)}, not an object")
    _walk(doc, "", _ENDPOINT_SPEC, {}, out)
    return out.samples


def from_status(doc: Any, ts: float, source: str) -> Samples:
    """Samples of a status document of either generation (see :func:`detect`)."""
    if detect(doc) == "rust":
        return from_rust_status(doc, ts, source)
    return from_cxx_status(doc, ts, source)


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
