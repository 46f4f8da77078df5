"""Range-query series back into the ``/metrics`` documents the runner served, then samples.

Prometheus stores what it scraped from the runner's ``/metrics``, plus the target's ``job``
and ``instance`` labels. For each scraped target and each evaluation time of the range query,
the series' values are written out again as a Prometheus text document (``# TYPE`` lines from
the metadata API, else a histogram recognised by its ``_bucket`` series with an ``le``
label) and read by :func:`~profiler.collect.status.prometheus.from_prometheus`, the parser of
live ``collect metrics``. The imported rows are therefore the rows live collection writes
(same names, units, labels, generation detection); only ``ts`` is the evaluation time, at
which a range query gives each series' latest scraped value (Prometheus "Range queries").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from profiler.collect.history.api import Series
from profiler.collect.samples import Sample
from profiler.collect.status.prometheus import from_prometheus

TARGET_LABELS = ("job", "instance")  # added by Prometheus, not served by the runner
_HISTOGRAM_PARTS = ("_bucket", "_count", "_sum")


@dataclass
class Document:
    """The lines of one target's ``/metrics`` at one time, by family."""

    families: dict[str, list[str]] = field(default_factory=dict)

    def text(self, types: Mapping[str, str]) -> str:
        out: list[str] = []
        for family in sorted(self.families):
            kind = types.get(family)
            if kind:
                out.append(f"# TYPE {family} {kind}")
            out += sorted(self.families[family], key=_line_order)
        return "\n".join(out) + "\n"


def _line_order(line: str) -> tuple[int, float, str]:
    """Histogram lines in exposition order (buckets by bound, then count, sum); else by text."""
    name = line.split("{", 1)[0].split(" ", 1)[0]
    if name.endswith("_bucket") and 'le="' in line:
        bound = line.split('le="', 1)[1].split('"', 1)[0]
        try:
            return (0, float(bound), line)
        except ValueError:
            return (0, float("inf"), line)
    return (1, 0.0, line)


def family_types(series: Sequence[Series], metadata: Mapping[str, str]) -> dict[str, str]:
    """Family -> type: the metadata API's, and histograms recognised by ``_bucket``+``le``."""
    types = dict(metadata)
    for s in series:
        name = s.labels.get("__name__", "")
        if name.endswith("_bucket") and "le" in s.labels:
            types.setdefault(name.removesuffix("_bucket"), "histogram")
    return types


def _family(name: str, types: Mapping[str, str]) -> str:
    if name in types:
        return name
    for part in _HISTOGRAM_PARTS:
        base = name.removesuffix(part)
        if base != name and types.get(base) in ("histogram", "summary"):
            return base
    return name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _line(name: str, labels: Mapping[str, str], value: str) -> str:
    inner = ",".join(
        f'{k}="{_escape(v)}"'
        for k, v in sorted(labels.items())
        if k != "__name__" and k not in TARGET_LABELS
    )
    return f"{name}{{{inner}}} {value}" if inner else f"{name} {value}"


def documents(
    series: Sequence[Series], types: Mapping[str, str]
) -> dict[tuple[str, str], dict[float, Document]]:
    """``(job, instance)`` -> evaluation time -> the document the target served."""
    out: dict[tuple[str, str], dict[float, Document]] = defaultdict(dict)
    for s in series:
        name = s.labels.get("__name__")
        if not name:
            continue
        target = (s.labels.get("job", ""), s.labels.get("instance", ""))
        family = _family(name, types)
        line_head = _line(name, s.labels, "")
        by_time = out[target]
        for ts, value in s.points:
            doc = by_time.get(ts)
            if doc is None:
                doc = by_time[ts] = Document()
            doc.families.setdefault(family, []).append(line_head + value)
    return out


def samples(
    docs: Mapping[float, Document], types: Mapping[str, str], source: str, generation: str | None
) -> Iterator[tuple[float, list[Sample]]]:
    """``(ts, rows)`` of one target's documents in time order, as live collection reads them."""
    for ts in sorted(docs):
        yield ts, from_prometheus(docs[ts].text(types), ts, source, generation)
