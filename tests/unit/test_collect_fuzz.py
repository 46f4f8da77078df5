"""Fuzzing the collector's document path: one-line error or a correct result, never a crash.

Status documents of both generations are built along their real mappings (every mapped and
ignored path, keyed objects with random labels, containers replaced by wrong types) with
hostile values: integers far beyond double range, NaN and infinities, huge and negative
times, odd RFC 3339 strings, nested lists and objects, deep nesting. They go through what a
collector does with a fetched body: JSON parsing, the document's time, the normaliser, restart
detection and the sample rows written (an in-memory run). Prometheus texts are built from
the mapped families, histogram suffixes, labels and hostile values. Old journal ``status:``
lines are parsed too.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.collect.samples import SAMPLE_KEYS
from profiler.collect.status import normalize
from profiler.collect.status.collector import Collector, CollectorOptions
from profiler.collect.status.metrics_map import PROM_LABELS, PROM_MAPPING
from profiler.collect.status.normalize import _CXX_SPEC, _RUST_SPEC
from profiler.collect.status.prometheus import from_prometheus
from profiler.collect.status.sources import LATEST_PLAUSIBLE_TIME, Fetched, _json, doc_time
from profiler.collect.status.status_map import CXX_STATUS_MAPPING, RUST_STATUS_MAPPING
from profiler.errors import ProfilerError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 0, -1, 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e18, 4102444801.0, -0.0, 5e-324]),
    st.text(max_size=12),
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "9999-12-31T23:59:59+14:00",
            "0001-01-01T00:00:00-14:00",
            "2026-02-30",
            "up",
            "down",
            "NaN",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
LABELS = st.text(min_size=1, max_size=8)


def _paths(spec: Any) -> list[str]:
    return sorted({*spec.fields, *spec.ignored, *spec.containers, *spec.labels})


@st.composite
def documents(draw: st.DrawFn, paths: list[str], top: dict[str, Any]) -> dict[str, Any]:
    """A document with values at random paths of a mapping (``*`` -> a random label)."""
    doc: dict[str, Any] = json.loads(json.dumps(top))
    for path in draw(st.lists(st.sampled_from(paths), max_size=14)):
        node = doc
        parts = path.split(".")
        for part in parts[:-1]:
            key = draw(LABELS) if part == "*" else part
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[draw(LABELS) if parts[-1] == "*" else parts[-1]] = draw(VALUES)
    return doc


STATUS_TEXT = st.sampled_from(["up", "down", "unknown", "unreachable", "starting"])
CXX_DOCS = STATUS_TEXT.flatmap(lambda status: documents(_paths(_CXX_SPEC), {"status": status}))
RUST_DOCS = STATUS_TEXT.flatmap(
    lambda status: documents(_paths(_RUST_SPEC), {"queueRunner": {"status": status}})
)
# the restart check: pid and uptime present, missing, null or not numbers, going up or down
IDENTITY = st.sampled_from([5, 100, 7, 8, None, "x", 10**400, float("nan")])
RESTART_DOCS = st.one_of(
    st.fixed_dictionaries(
        {"status": st.just("up")}, optional={"uptime": IDENTITY, "pid": IDENTITY}
    ),
    st.fixed_dictionaries(
        {
            "queueRunner": st.fixed_dictionaries(
                {},
                optional={
                    "uptime": IDENTITY,
                    "proc": st.fixed_dictionaries({}, optional={"pid": IDENTITY}),
                },
            )
        }
    ),
)
ANY_DOCS = st.one_of(CXX_DOCS, RUST_DOCS, RESTART_DOCS, VALUES)


class _Writer:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))

    def append_many(self, rows: list[dict[str, Any]]) -> None:
        json.dumps(rows, allow_nan=False)  # what the segment writer must be able to store
        self.rows += rows

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _MemoryRun:
    """What a Collector needs of a Run, in memory."""

    def __init__(self) -> None:
        self.writers: dict[str, _Writer] = {}

    def writer(self, name: str) -> _Writer:
        return self.writers.setdefault(name, _Writer())

    def add_source(self, *_args: Any) -> int:
        return 0

    def end_source(self, _index: int) -> None:
        pass


class _Replay:
    """A source that answers with the given documents, once each, as a server would."""

    kind = "status"
    target = "http://fuzz.invalid/queue-runner-status"
    live = True

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies

    def fetch(self, budget: Any = None) -> list[Fetched]:
        doc = _json(self.bodies.pop(0), self.target)
        found, _ = doc_time(doc)
        return [Fetched(doc, 1_700_000_000.0 if found is None else found, self.target)]


def _check_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        assert set(row) == set(SAMPLE_KEYS)
        assert isinstance(row["value"], float) and math.isfinite(row["value"])
        assert 0 <= row["ts"] <= LATEST_PLAUSIBLE_TIME
        assert row["kind"] in ("counter", "gauge") and row["generation"] in ("cxx", "rust")


@FUZZ
@given(docs=st.lists(ANY_DOCS, min_size=1, max_size=4) | st.lists(RESTART_DOCS, min_size=2))
def test_status_documents_never_crash_the_collector(docs: list[Any]) -> None:
    bodies = [json.dumps(d).encode() for d in docs]  # NaN/Infinity literals included
    run = _MemoryRun()
    logged: list[str] = []
    collector = Collector(
        run,  # type: ignore[arg-type]
        [_Replay(bodies)],
        CollectorOptions(retries=0),
        log=logged.append,
    )
    for _ in docs:
        collector.sample(collector.sources[0])
    _check_rows(run.writers["samples"].rows)
    events = run.writers["events"].rows
    assert all("internal error" not in e["detail"] for e in events), events
    assert all("\n" not in line for line in logged)
    assert collector.errors == sum(e["event"] == "error" for e in events)


@FUZZ
@given(doc=ANY_DOCS, generation=st.sampled_from([None, "cxx", "rust"]))
def test_normalisers_give_rows_or_one_line_errors(doc: Any, generation: str | None) -> None:
    try:
        if generation is None:
            rows = normalize.from_status(doc, 1e9, "fuzz")
        elif generation == "cxx":
            rows = normalize.from_cxx_status(doc, 1e9, "fuzz")
        else:
            rows = normalize.from_rust_status(doc, 1e9, "fuzz")
    except ProfilerError as exc:
        message = str(exc)
        assert "\n" not in message
        return
    _check_rows(rows)
    found, why = doc_time(doc)
    assert found is None or 0 <= found <= LATEST_PLAUSIBLE_TIME
    assert why is None or found is None


@FUZZ
@given(doc=ANY_DOCS, depth=st.sampled_from([0, 10, 5000, 100_000]))
def test_journal_status_lines_give_a_document_or_none(doc: Any, depth: int) -> None:
    text = "[" * depth + json.dumps(doc) + "]" * depth
    line = f"Jun 05 12:00:00 hydra hydra-queue-runner[1234]: status: {text}\n"
    found = normalize.status_from_journal_line(line)
    assert found is None or isinstance(found, dict)
    record = json.dumps({"MESSAGE": f"status: {text}"})
    found = normalize.status_from_journal_line(record)
    assert found is None or isinstance(found, dict)


PROM_NAMES = st.one_of(
    st.sampled_from(sorted(PROM_MAPPING)),
    st.sampled_from(sorted(PROM_MAPPING)).map(
        lambda n: n + st_suffix if (st_suffix := "_bucket") else n
    ),
    st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True),
    st.text(max_size=10),
)
PROM_VALUES = st.one_of(
    st.sampled_from(
        ["1", "-1", "0", "NaN", "+Inf", "-Inf", "1e308", "1e999", "-1e999", "0x10", "abc", ""]
    ),
    st.integers().map(str),
    st.just(str(10**400)),
    st.floats().map(repr),
)
LABEL_VALUE = st.text(max_size=8).map(lambda t: t.replace("\\", "\\\\").replace('"', '\\"'))


@st.composite
def prom_lines(draw: st.DrawFn) -> str:
    name = draw(PROM_NAMES)
    kind = draw(st.integers(0, 4))
    if kind == 0:
        family = name.removesuffix("_bucket")
        typ = draw(st.sampled_from(["counter", "gauge", "histogram", "summary", "untyped", "x"]))
        return f"# TYPE {family} {typ}"
    if kind == 1:
        return f"# HELP {name} {draw(st.text(max_size=10))}"
    if kind == 2:
        return draw(st.text(max_size=30))
    suffix = draw(st.sampled_from(["", "_total", "_bucket", "_count", "_sum", "_created"]))
    names = st.sampled_from(sorted(PROM_LABELS)) | st.from_regex(r"[a-z_]{1,6}", fullmatch=True)
    labels = draw(st.dictionaries(names, LABEL_VALUE, max_size=3))
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    stamp = draw(st.sampled_from(["", " 1700000000000", " -1", " abc"]))
    return f"{name}{suffix}{{{body}}} {draw(PROM_VALUES)}{stamp}"


@FUZZ
@given(lines=st.lists(prom_lines(), max_size=12), generation=st.sampled_from([None, "rust"]))
def test_prometheus_text_gives_rows_or_one_line_errors(
    lines: list[str], generation: str | None
) -> None:
    text = "\n".join(lines) + "\n"
    try:
        rows = from_prometheus(text, 1e9, "fuzz", generation)
    except ProfilerError as exc:
        message = str(exc)
        assert "\n" not in message
        return
    _check_rows(rows)


def test_the_mappings_are_fuzzed_along_their_real_paths() -> None:
    assert "machines.*.currentJobs" in _paths(_CXX_SPEC)
    assert "queueRunner.proc.pid" in _paths(_RUST_SPEC)
    assert len(CXX_STATUS_MAPPING) > 50 and len(RUST_STATUS_MAPPING) > 100
