"""The sample model every queue-runner source is turned into: tidy samples, one value a row.

A sample is a plain dict (the hot path builds dicts, not objects) whose keys and types
:class:`Sample` declares once; :data:`SAMPLE_KEYS` is their order::

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

A mapping says where a source field goes: a :class:`Field` (our metric, its kind, the unit
factor, our unit). An :class:`Emitter` builds the samples of one document; they come back as
:class:`Samples`, a list that also carries the ``unknown`` source fields (or families) that no
mapping knows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypedDict


class Sample(TypedDict):
    """One tidy sample: a row of the ``samples`` table."""

    ts: float  # epoch seconds (UTC) the document describes
    source: str  # where the document came from, secrets redacted
    generation: str  # "cxx" | "rust"
    metric: str  # our name
    value: float  # in ``unit``
    kind: str  # "counter" | "gauge"
    unit: str
    machine: str | None
    machine_type: str | None
    jobset: str | None
    bucket: str | None  # an S3 bucket, or a histogram bound


SAMPLE_KEYS: tuple[str, ...] = tuple(Sample.__annotations__)
LABELS = SAMPLE_KEYS[SAMPLE_KEYS.index("machine") :]  # the label columns
MS = 1e-3  # factor: milliseconds -> seconds
US = 1e-6  # factor: microseconds -> seconds


class Field(NamedTuple):
    """Where a source field goes: our metric name, its kind, the unit factor, our unit."""

    metric: str
    kind: str  # "counter" | "gauge"
    factor: float
    unit: str


def counter(metric: str, unit: str = "count", factor: float = 1.0) -> Field:
    """A counter field (our name ends in ``_total``)."""
    return Field(metric, "counter", factor, unit)


def gauge(metric: str, unit: str = "count", factor: float = 1.0) -> Field:
    """A gauge field."""
    return Field(metric, "gauge", factor, unit)


UP = gauge("up", "boolean")


class Samples(list[Sample]):
    """Tidy samples, plus ``unknown``: source fields (or families) that no mapping knows."""

    def __init__(self, items: Iterable[Sample] = (), unknown: Iterable[str] = ()) -> None:
        super().__init__(items)
        self.unknown: list[str] = list(unknown)


def scale(value: float, factor: float) -> float:
    """``value * factor``, dividing by the exact power of ten for ms/µs (no 0.001 error)."""
    if factor == 1.0:
        return value
    if factor < 1.0:
        return value / round(1.0 / factor)
    return value * factor


def rfc3339_seconds(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 / ISO 8601 time (UTC when it has no offset)."""
    try:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def number(raw: Any) -> float | None:
    """A finite float from a JSON value (bools 1/0, RFC 3339 strings), else None (also for an
    integer beyond the range of a double)."""
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int | float):
        try:
            value = float(raw)
        except OverflowError:
            return None
        return value if math.isfinite(value) else None
    if isinstance(raw, str):
        return rfc3339_seconds(raw)
    return None


@dataclass
class Emitter:
    """Builds the samples of one document: its time, source and generation are fixed."""

    ts: float
    source: str
    generation: str
    samples: Samples = field(default_factory=Samples)

    def add(self, spec: Field, value: float, labels: Mapping[str, str | None]) -> None:
        """Append one sample of ``spec`` (value already in our unit)."""
        machine, machine_type = labels.get("machine"), labels.get("machine_type")
        jobset, bucket = labels.get("jobset"), labels.get("bucket")
        self.samples.append(
            {
                "ts": float(self.ts),
                "source": self.source,
                "generation": self.generation,
                "metric": spec.metric,
                "value": float(value),
                "kind": spec.kind,
                "unit": spec.unit,
                "machine": None if machine is None else str(machine),
                "machine_type": None if machine_type is None else str(machine_type),
                "jobset": None if jobset is None else str(jobset),
                "bucket": None if bucket is None else str(bucket),
            }
        )

    def field(self, spec: Field, raw: Any, labels: Mapping[str, str | None], path: str) -> None:
        """A source value: converted and scaled; null skipped; not a number -> unknown."""
        if raw is None:
            return
        value = number(raw)
        if value is None:
            self.unknown(f"{path} (not a number)")
            return
        self.add(spec, scale(value, spec.factor), labels)

    def unknown(self, name: str) -> None:
        """Record an unknown field once."""
        if name not in self.samples.unknown:
            self.samples.unknown.append(name)

    def up(self, is_up: bool) -> None:
        """The ``up`` gauge: 1 when the runner answered ``"up"``, else 0."""
        self.add(UP, 1.0 if is_up else 0.0, {})
