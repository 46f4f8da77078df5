"""The history stream's batches as Arrow tables with the live export's columns and types,
and its progress line (see :mod:`profiler.collect.database.history`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from profiler.collect.database.common import BUILD_SEMANTICS, SEMANTICS

_INT = "int64"
STEP_COLUMNS: tuple[tuple[str, str], ...] = (  # (name, Arrow type), in history.STREAM_SQL's order
    ("build", _INT), ("stepnr", _INT), ("type", _INT), ("drv_path", "string"),
    ("machine", "string"), ("system", "string"), ("status", _INT), ("error_msg", "string"),
    ("start_time", _INT), ("stop_time", _INT), ("overhead_ms", _INT), ("times_built", _INT),
    ("is_non_deterministic", "bool"), ("propagated_from", _INT),
)  # fmt: skip
BUILD_COLUMNS: tuple[tuple[str, str], ...] = (  # in BUILDS_SQL's order
    ("build", _INT), ("project", "string"), ("jobset", "string"), ("job", "string"),
    ("system", "string"), ("drv_path", "string"), ("nix_name", "string"),
    ("queued_time", _INT), ("start_time", _INT), ("stop_time", _INT), ("status", _INT),
    ("is_cached", "bool"), ("size_bytes", _INT), ("closure_size_bytes", _INT),
    ("priority", _INT), ("global_priority", _INT),
)  # fmt: skip
STEP_ORDER = (
    "ts build stepnr type drv_path machine system status error_msg start_time stop_time "
    "stop_minus_start_s overhead_ms times_built is_non_deterministic propagated_from "
    "generation semantics"
).split()


def _arrays(columns: Sequence[Sequence[Any]], spec: Sequence[tuple[str, str]]) -> dict[str, Any]:
    import pyarrow as pa

    out = {}
    for values, (name, kind) in zip(columns, spec, strict=True):
        if name == "is_cached":  # Builds.isCachedBuild is an integer
            values = [None if v is None else bool(v) for v in values]
        out[name] = pa.array(values, type=pa.type_for_alias(kind))
    return out


def steps_arrow(rows: Sequence[tuple[Any, ...]], generation: str, ts: float) -> Any:
    """Rows of :data:`STREAM_SQL` as an Arrow table with the live export's ``db_steps``
    columns (:func:`profiler.collect.database.export._step_record`): ``overhead_ms`` 0 for
    Hydra's NULL, ``stop_minus_start_s`` computed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = _arrays(list(zip(*rows, strict=True)), STEP_COLUMNS)
    n = len(rows)
    cols["overhead_ms"] = pc.fill_null(cols["overhead_ms"], 0)
    cols["stop_minus_start_s"] = pc.subtract(cols["stop_time"], cols["start_time"])
    cols["ts"] = pa.repeat(pa.scalar(ts, pa.float64()), n)
    cols["generation"] = pa.repeat(pa.scalar(generation, pa.string()), n)
    cols["semantics"] = pa.repeat(pa.scalar(SEMANTICS[generation], pa.string()), n)
    return pa.table({name: cols[name] for name in STEP_ORDER})


def builds_arrow(rows: Sequence[Sequence[Any]], generation: str, ts: float) -> Any:
    """Rows of :data:`BUILDS_SQL` as an Arrow table with ``db_builds``' columns."""
    import pyarrow as pa

    n = len(rows)
    cols = _arrays(list(zip(*(r[:16] for r in rows), strict=True)), BUILD_COLUMNS)
    return pa.table(
        {
            "ts": pa.repeat(pa.scalar(ts, pa.float64()), n),
            **cols,
            "generation": pa.repeat(pa.scalar(generation, pa.string()), n),
            "semantics": pa.repeat(pa.scalar(BUILD_SEMANTICS[generation], pa.string()), n),
        }
    )


class Progress:
    """A progress line at most every ``every_seconds``: rows, rate, stopTime reached, ETA."""

    def __init__(self, log: Callable[[str], object], every_seconds: float, total: int | None):
        self.log = log
        self.every = every_seconds
        self.total = total
        self.rows = 0
        self.started = time.monotonic()
        self._last = self.started
        self._shown = -1  # rows the last line showed

    def update(self, rows: int, stop_time: int, *, final: bool = False) -> None:
        self.rows += rows
        now = time.monotonic()
        if final and self.rows == self._shown:  # the last line said it already
            return
        if not final and now - self._last < self.every:
            return
        self._last, self._shown = now, self.rows
        rate = self.rows / max(now - self.started, 1e-9)
        reached = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stop_time))
        line = f"collect db: backfill: {self.rows:,} steps"
        if self.total:
            left = max(self.total - self.rows, 0)
            share = min(self.rows / self.total, 1.0)
            eta = "" if final else f", ETA {_duration(left / rate) if rate else '?'}"
            line += f" of ~{self.total:,} ({share:.0%}){eta}"
        self.log(f"{line}, {rate:,.0f} rows/s, stopTime reached {reached}")


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
