"""The history engine's per-step split (:mod:`profiler.analyze.history`): the steps that
DuckDB joined, a batch at a time, through the in-memory engine's own
:func:`~profiler.analyze.attribution.split_copy`, into Parquet files the aggregates read.

:func:`split_here` runs it in this process; :func:`profiler.analyze.cluster.on_cluster` on a
Dask cluster's workers (both through :func:`split_frame`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from profiler.analyze import history_sql as q
from profiler.analyze.attribution import SplitFacts, split_copy
from profiler.analyze.schema import StepTable
from profiler.analyze.totals import SUM_COLUMNS
from profiler.bench.profiles import CodecProfile

Progress = Callable[[str], None]
KEPT = (  # the per-step results the aggregates read
    "machine", "system", "jobset", "status", "start_ts", "end_ts", "wall_s", "unsplit",
    *SUM_COLUMNS,
)  # fmt: skip


def _batches(con: Any, total: int, batch_rows: int) -> Iterator[pd.DataFrame]:
    """The steps with their contention, ``batch_rows`` at a time (by rowid ranges of
    ``base``: each a range scan, where a stream of the whole join would hash all of it)."""
    for first in range(0, total, batch_rows):
        frame = con.execute(q.batch_sql(first, first + batch_rows)).fetch_df()
        if len(frame):
            yield frame


def split_frame(
    frame: pd.DataFrame,
    generation: str,
    profile: CodecProfile | None,
    mode: str | None,
    facts: SplitFacts,
) -> Any:
    """One batch of ``steps`` (with its ``contention`` column) split as in memory, and the
    columns the aggregates read, as Arrow."""
    import pyarrow as pa

    mine = SplitFacts(facts.sample, facts.peak, frame["contention"])
    s = split_copy(StepTable(frame, generation), profile, mode, facts=mine)
    s["unsplit"] = s["compress_source"].str.startswith("no ") & (s["compress_s"] <= 0)
    return pa.Table.from_pandas(s[[c for c in KEPT if c in s]], preserve_index=False)


@dataclass(frozen=True)
class SplitJob:
    """What a splitter needs: the split's inputs, where to write, how many steps."""

    generation: str
    profile: CodecProfile | None
    mode: str | None
    facts: SplitFacts
    scratch: str
    total: int
    batch_rows: int


Splitter = Callable[[Any, SplitJob, Progress], list[str]]


def split_here(con: Any, job: SplitJob, progress: Progress) -> list[str]:
    """Split every step's copy phase in this process, a batch at a time, into one Parquet
    file in the scratch directory; its path (none without steps)."""
    import pyarrow.parquet as pq

    out = os.path.join(job.scratch, "split.parquet")
    writer = None
    done, began = 0, time.monotonic()
    try:
        for frame in _batches(con, job.total, job.batch_rows):
            kept = split_frame(frame, job.generation, job.profile, job.mode, job.facts)
            if writer is None:
                writer = pq.ParquetWriter(out, kept.schema)
            writer.write_table(kept.cast(writer.schema))
            done += len(frame)
            progress(f"split {done:,}/{job.total:,} steps ({time.monotonic() - began:.0f} s)")
    finally:
        if writer is not None:
            writer.close()
    return [out] if writer is not None else []
