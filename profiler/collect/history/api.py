"""The few calls of Prometheus' HTTP API that ``collect history`` makes, as one-line errors.

Every answer is the JSON envelope ``{"status": "success" | "error", "data": ..., "errorType",
"error"}`` of https://prometheus.io/docs/prometheus/latest/querying/api/ ("Format overview");
a range query's ``data`` is ``{"resultType": "matrix", "result": [{"metric": {...}, "values":
[[<unix time>, "<value>"], ...]}]}`` ("Range queries", "Range vectors"), with sample values
as strings because JSON has no NaN or Inf.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Protocol

from profiler.collect.status.transfer import NO_BUDGET, Budget, http_get, one_line, parse_url
from profiler.errors import CollectorError

MAX_POINTS_PER_SERIES = 11_000  # the API refuses a range query resolving more (see module doc)
_MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels (``__name__`` included) and points."""

    labels: dict[str, str]
    points: list[tuple[float, str]]


class SeriesSource(Protocol):
    """Where ``collect history`` reads series: this API, or Prometheus' storage
    (:mod:`profiler.collect.history.promtool`)."""

    base: str
    budget: Budget

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]: ...

    def metadata(self) -> dict[str, str]: ...

    def scrape_urls(self) -> dict[tuple[str, str], str]: ...


@dataclass
class Prometheus:
    """A Prometheus server at ``base`` (``http://host:9090``, a path prefix allowed)."""

    base: str
    timeout_seconds: float = 60.0
    budget: Budget = NO_BUDGET

    def get(self, path: str, params: dict[str, str]) -> Any:
        """The ``data`` of ``GET base/api/v1/<path>?params``; CollectorError otherwise."""
        url = f"{self.base.rstrip('/')}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        parsed = parse_url(url, "--prometheus")
        answer = http_get(
            parsed,
            headers={"Accept": "application/json"},
            timeout=self.timeout_seconds,
            max_bytes=_MAX_BYTES,
            budget=self.budget,
        )
        return _data(answer.body, parsed.display)

    def query_range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """The series of ``query`` evaluated every ``step`` s from ``start`` to ``end``."""
        data = self.get(
            "query_range",
            {"query": query, "start": _t(start), "end": _t(end), "step": _t(step)},
        )
        if not isinstance(data, dict) or data.get("resultType") != "matrix":
            raise CollectorError(f"{self.base}: query_range: not a matrix result")
        try:
            return [
                Series(dict(r["metric"]), [(float(t), str(v)) for t, v in r["values"]])
                for r in data["result"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise CollectorError(f"{self.base}: query_range: malformed result ({exc!r})") from exc

    def metadata(self) -> dict[str, str]:
        """Family name -> type (``counter``, ``histogram``...) of the targets' metrics."""
        data = self.get("metadata", {})
        if not isinstance(data, dict):
            raise CollectorError(f"{self.base}: metadata: not an object")
        return {
            name: str(entries[0].get("type", "unknown"))
            for name, entries in data.items()
            if isinstance(entries, list) and entries and isinstance(entries[0], dict)
        }

    def scrape_urls(self) -> dict[tuple[str, str], str]:
        """``(job, instance)`` -> the URL Prometheus scrapes, for the targets it has now."""
        data = self.get("targets", {"state": "active"})
        out: dict[tuple[str, str], str] = {}
        for target in (data or {}).get("activeTargets", []) if isinstance(data, dict) else []:
            labels = target.get("labels") or {}
            url = target.get("scrapeUrl")
            if isinstance(url, str) and "job" in labels and "instance" in labels:
                out[(labels["job"], labels["instance"])] = url
        return out


def _t(seconds: float) -> str:
    """A time or step for the API: seconds with millisecond precision, as it accepts."""
    return f"{seconds:.3f}"


def _data(body: bytes, where: str) -> Any:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CollectorError(f"{where}: not JSON: {one_line(str(exc))}") from exc
    if not isinstance(doc, dict) or "status" not in doc:
        raise CollectorError(f"{where}: not a Prometheus API answer")
    if doc["status"] != "success":
        detail = f"{doc.get('errorType', 'error')}: {doc.get('error', '')}"
        raise CollectorError(f"{where}: Prometheus says {one_line(detail)}")
    return doc.get("data")
