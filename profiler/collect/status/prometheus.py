"""Queue-runner Prometheus ``/metrics`` text (C++ prometheus-cpp, Rust rust-prometheus) to samples.

Each family is mapped by :mod:`profiler.collect.status.metrics_map`; a histogram family ``h``
gives ``h_bucket`` (bound in ``bucket``), ``h_count`` and ``h_sum`` samples. Unknown families
are kept as ``prom_<sample name>`` and listed in ``Samples.unknown``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from profiler.collect.samples import Emitter, Field, Samples, scale
from profiler.collect.status.metrics_map import (
    PROM_CXX,
    PROM_IGNORED,
    PROM_LABELS,
    PROM_MAPPING,
    PROM_RUST,
    P,
)
from profiler.errors import CollectorError
from profiler.hydra import facts


def _base(name: str) -> str:
    """Family name without ``_total``: the parser strips it from counters, C++ never had it."""
    return name.removesuffix("_total")


_BY_BASE: dict[str, Field] = {_base(k): v for k, v in PROM_MAPPING.items()}
_IGNORED_BASE = frozenset(_base(k) for k in PROM_IGNORED)
_RUST_BASE = frozenset(
    _base(k) for k in (*PROM_RUST, *PROM_IGNORED) if not k.startswith("process_")
) - {_base(k) for k in PROM_CXX}  # any program may export process_*: no evidence
_CXX_BASE = frozenset(_base(k) for k in PROM_CXX) - {_base(k) for k in PROM_RUST}
_CXX_LOOP_TIMER = re.compile(rf"^{P}dispatcher_time_spent_running[ {{]", re.MULTILINE)
# suffix of a histogram sample -> (our suffix, unit: None = the family's)
_HISTOGRAM = {
    "_bucket": ("_bucket", "count"),
    "_count": ("_count", "count"),
    "_sum": ("_sum", None),
}
_SKIPPED_SUFFIXES = ("_created",)


def detect_prometheus(families: list[Any], text: str) -> str:
    """Generation of a metrics text: any Rust-only family -> rust, else cxx.

    C++ exposes ``hydraqueuerunner_dispatcher_time_spent_running`` without ``_total``; the
    2022-2025 C++ endpoint had only the shared queue-check families, so those mean cxx too.
    """
    bases = {_base(f.name) for f in families}
    if _CXX_LOOP_TIMER.search(text) or bases & _CXX_BASE:
        return "cxx"
    return "rust" if bases & _RUST_BASE else "cxx"


def _bound(text: str, factor: float) -> str:
    """A histogram bound in our unit, as Python's float repr (``+Inf`` kept)."""
    try:
        value = float(text)
    except ValueError:
        return text
    return repr(scale(value, factor)) if math.isfinite(value) else text


def _labels(sample: Any, factor: float, family: str, out: Emitter) -> dict[str, str]:
    """Our label columns from a sample's labels; labels we have no column for -> unknown."""
    labels: dict[str, str] = {}
    for name, value in sample.labels.items():
        column = PROM_LABELS.get(name)
        if column is None:
            out.unknown(f"{family}{{{name}}}")
        else:
            labels[column] = _bound(value, factor) if name == "le" else value
    return labels


def _finite(value: Any) -> float | None:
    """A sample's value as a finite float; None for NaN, infinities and integers beyond the
    range of a double (the parser gives ``10**400`` as an int)."""
    try:
        number = float(value)
    except (OverflowError, TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _known(fam: Any, spec: Field, out: Emitter) -> None:
    """Samples of a mapped family, histograms split into _bucket/_count/_sum."""
    for sample in fam.samples:
        suffix = sample.name[len(fam.name) :]
        value = _finite(sample.value)
        if suffix in _SKIPPED_SUFFIXES or value is None:
            continue
        labels = _labels(sample, spec.factor, fam.name, out)
        if fam.type == "histogram" and suffix in _HISTOGRAM:
            ours, unit = _HISTOGRAM[suffix]
            factor = spec.factor if unit is None else 1.0
            row = Field(spec.metric + ours, "counter", 1.0, unit or spec.unit)
            out.add(row, scale(value, factor), labels)
        elif suffix in ("", "_total"):
            out.add(spec, scale(value, spec.factor), labels)
        else:
            out.unknown(sample.name)


def _unknown(fam: Any, out: Emitter) -> None:
    """Samples of an unknown family as ``prom_<sample name>``, kind from the prom type."""
    out.unknown(fam.name)
    for sample in fam.samples:
        suffix = sample.name[len(fam.name) :]
        value = _finite(sample.value)
        if suffix in _SKIPPED_SUFFIXES or value is None:
            continue
        cumulative = fam.type == "counter" or suffix in _HISTOGRAM
        kind = "counter" if cumulative else "gauge"
        row = Field(f"prom_{sample.name}", kind, 1.0, "")
        out.add(row, value, _labels(sample, 1.0, fam.name, out))


def from_prometheus(text: str, ts: float, source: str, generation: str | None = None) -> Samples:
    """Samples of a queue runner's ``/metrics`` text; ``generation`` detected when None."""
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, IndexError, KeyError) as exc:  # the parser's ways of failing
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CollectorError(f"{source}: not Prometheus text: {reason[:200]}") from exc
    gen = generation or detect_prometheus(families, text)
    if gen not in facts.GENERATIONS:
        raise CollectorError(f"unknown generation {gen!r} (expected cxx or rust)")
    out = Emitter(ts, source, gen)
    for fam in families:
        spec = _BY_BASE.get(_base(fam.name))
        if spec is not None:
            _known(fam, spec, out)
        elif _base(fam.name) not in _IGNORED_BASE:
            _unknown(fam, out)
    return out.samples
