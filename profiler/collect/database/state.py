"""Where the export stands, and how it is read back from a run with memory bounded by the
re-read window, not by the history (a backfill of years leaves hundreds of millions of rows).

Only what a resumed export needs is read: the largest ``stop_time`` of ``db_steps`` (from
the Parquet footers' statistics where they have it), the step keys inside the re-read window,
and the builds within :data:`BUILD_MEMORY_SECONDS` below it. Parquet files are read with a
filter on ``stop_time`` (row groups entirely below it are skipped by their statistics);
segments, which only the live export writes, are read record by record.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from profiler.collect.database.common import BUILD_MEMORY_SECONDS, Key
from profiler.errors import StoreError
from profiler.store import segments
from profiler.store.run import compacted_entry, load_manifest

_ATTEMPTS = 20
_T = TypeVar("_T")


@dataclass
class ExportState:
    """Where the export stands: the cursor and what it has already written.

    ``seen`` holds the step keys inside the re-read window (with their ``stop_time``),
    ``pending`` the builds of exported steps not exported yet, ``builds_done`` the
    ``(build, stop_time)`` of exported builds.
    """

    since: int
    cursor: int
    seen: dict[Key, int] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    builds_done: set[tuple[int, int]] = field(default_factory=set)
    resumed: bool = False

    def window_start(self, overlap_seconds: float) -> int:
        """The smallest ``stopTime`` a pass reads."""
        return max(self.since, self.cursor - int(overlap_seconds))

    def prune(self, overlap_seconds: float) -> None:
        """Forget keys below the window (no pass reads them again), and old builds."""
        lo = self.window_start(overlap_seconds)
        if any(s < lo for s in self.seen.values()):
            self.seen = {k: s for k, s in self.seen.items() if s >= lo}
        old = lo - BUILD_MEMORY_SECONDS
        if any(s < old for _, s in self.builds_done):
            self.builds_done = {(b, s) for b, s in self.builds_done if s >= old}


# --- the run's files, read with a filter -----------------------------------------------------


def _files(path: str, table: str) -> list[tuple[str, str]]:
    """``(kind, file path)`` of a table in reading order: compacted, parts, segments."""
    from profiler.store.tables import part_names

    table_dir = os.path.join(path, "tables", table)
    entry = compacted_entry(load_manifest(path), table)
    absorbed = set(entry.absorbed) if entry else set()
    out = []
    if entry is not None and entry.parquet:
        out.append(("parquet", entry.parquet))
    out += [("parquet", n) for n in part_names(table_dir) if n not in absorbed]
    out += [("segment", n) for n in segments.segment_names(table_dir) if n not in absorbed]
    return [(kind, os.path.join(table_dir, name)) for kind, name in out]


def _parquet_rows(file: str, names: Sequence[str], at_least: float | None) -> list[list[Any]]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(file) as pf:
        present = set(pf.schema_arrow.names)
    if at_least is not None and "stop_time" not in present:
        return [[] for _ in names]
    filters = None if at_least is None else [("stop_time", ">=", at_least)]
    data = pq.read_table(file, columns=[n for n in names if n in present], filters=filters)
    return [data.column(n).to_pylist() if n in present else [None] * data.num_rows for n in names]


def _segment_rows(file: str, names: Sequence[str], at_least: float | None) -> list[list[Any]]:
    if not os.path.exists(file):  # absorbed by a compaction meanwhile: read again
        raise FileNotFoundError(2, "No such file or directory", file)
    cols: list[list[Any]] = [[] for _ in names]
    for chunk in segments.iter_segment(file, file, []):
        for _, rec in chunk:
            stop = rec.get("stop_time")
            if at_least is not None and not (isinstance(stop, int | float) and stop >= at_least):
                continue
            for col, name in zip(cols, names, strict=True):
                col.append(rec.get(name))
    return cols


@contextmanager
def _reading(file: str) -> Iterator[None]:
    """A damaged Parquet file: one line naming it (a vanished one is left to the caller)."""
    import pyarrow as pa

    try:
        yield
    except FileNotFoundError:
        raise
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise StoreError(f"{file}: unreadable table file: {exc}") from None


def _read(path: str, table: str, names: Sequence[str], at_least: float | None) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in names]
    for kind, file in _files(path, table):
        read = _parquet_rows if kind == "parquet" else _segment_rows
        with _reading(file):
            more = read(file, names, at_least)
        for col, values in zip(cols, more, strict=True):
            col += values
    return cols


def _parquet_max(file: str, column: str) -> float | None:
    """The largest value of ``column`` in a Parquet file, from its row groups' statistics
    where they have them (no data read), else from the column itself."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with pq.ParquetFile(file) as pf:
        if column not in pf.schema_arrow.names:
            return None
        meta = pf.metadata
        j = pf.schema_arrow.names.index(column)
        stats = [meta.row_group(i).column(j).statistics for i in range(meta.num_row_groups)]
        if all(s is not None and s.has_min_max for s in stats):
            return max((s.max for s in stats), default=None)
    value = pc.max(pq.read_table(file, columns=[column]).column(0)).as_py()
    return None if value is None else float(value)


def _max(path: str, table: str, column: str) -> float | None:
    found: list[float] = []
    for kind, file in _files(path, table):
        if kind == "parquet":
            with _reading(file):
                value = _parquet_max(file, column)
            found += [] if value is None else [value]
        else:
            (values,) = _segment_rows(file, [column], None)
            found += [v for v in values if isinstance(v, int | float)]
    return max(found, default=None)


def _has(path: str, table: str) -> bool:
    return os.path.isdir(os.path.join(path, "tables", table))


def _stable(path: str, read: Callable[[], _T]) -> _T:
    """``read()`` until the manifest's ``compacted`` section stayed the same over one read (a
    compaction swapping files meanwhile makes a file vanish, or rows count twice)."""
    for _ in range(_ATTEMPTS):
        before = load_manifest(path).get("compacted")
        try:
            result = read()
        except FileNotFoundError:
            continue
        if load_manifest(path).get("compacted") == before:
            return result
    raise StoreError(f"{path}: the run kept being compacted while it was read; try again")


def stored_columns(
    path: str, table: str, names: Sequence[str], at_least: float | None = None
) -> dict[str, list[Any]]:
    """Columns ``names`` of a run's table, only rows with ``stop_time >= at_least`` when given
    (files without that column then give none); empty lists if the table is absent."""
    if not _has(path, table):
        return {n: [] for n in names}
    cols = _stable(path, lambda: _read(path, table, names, at_least))
    return dict(zip(names, cols, strict=True))


def load_state(path: str, since: float | None, overlap_seconds: float, now: float) -> ExportState:
    """The export state of the run at ``path``: resumed from its tables, or a fresh one.

    A fresh state starts at ``since`` (default ``now``); a resumed one keeps its own
    ``since`` and continues from the largest ``stop_time`` it exported or recorded. Memory:
    the keys of the re-read window and the builds of :data:`BUILD_MEMORY_SECONDS` below it
    (``pending``: builds of steps in that span not exported yet; a build whose steps all
    stopped earlier and that is still unfinished is not retried after a restart).
    """
    cursors = stored_columns(path, "db_cursor", ("since", "stop_time"))
    top = (
        _stable(path, lambda: _max(path, "db_steps", "stop_time"))
        if _has(path, "db_steps")
        else None
    )
    if top is None and not cursors["since"]:
        start = math.floor(now if since is None else since)
        return ExportState(since=start, cursor=start)
    recorded = [int(s) for s in cursors["stop_time"] if s is not None]
    first = int(cursors["since"][0]) if cursors["since"] else _min_stop(path)
    cursor = max([first, *recorded, *([] if top is None else [int(top)])])
    state = ExportState(since=first, cursor=cursor, resumed=True)
    lo = state.window_start(overlap_seconds)
    old = lo - BUILD_MEMORY_SECONDS
    steps = stored_columns(path, "db_steps", ("build", "stepnr", "stop_time"), old)
    keys = zip(steps["build"], steps["stepnr"], steps["stop_time"], strict=True)
    for build, stepnr, stop in keys:
        if stop >= lo:
            state.seen[(int(build), int(stepnr))] = int(stop)
    builds = stored_columns(path, "db_builds", ("build", "stop_time"), old)
    state.builds_done = {
        (int(b), int(s)) for b, s in zip(builds["build"], builds["stop_time"], strict=True)
    }
    exported = {b for b, _ in state.builds_done}
    state.pending = {int(b) for b in steps["build"]} - exported
    return state


def _min_stop(path: str) -> int:
    """A run without cursor rows (written by hand, or its segment lost): its first step."""
    (stops,) = stored_columns(path, "db_steps", ("stop_time",)).values()
    return int(min(s for s in stops if s is not None))
