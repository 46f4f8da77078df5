"""The history engine's per-step work on a Dask cluster (``analyze --scheduler tcp://...``,
or ``--local-cluster N`` worker processes on this machine).

The step table is made by DuckDB as in :mod:`profiler.analyze.history` and written as Parquet
partitions (about ``batch_rows`` steps each) into the scratch directory; each worker reads
its partitions in parallel and splits their copy phases by the same function as the single
process (:func:`profiler.analyze.history.split_frame`), writing a Parquet file per
partition that DuckDB then aggregates. The scratch directory must be the same path on every
worker: for a remote scheduler it is made in the run directory (a shared file system, as the
run's Parquet is), for a local cluster in a temporary directory.

The futures API of dask.distributed (``Client.map``, ``as_completed``): every partition is
one task; a worker lost mid-task has it re-run elsewhere by the scheduler
(https://distributed.dask.org/en/stable/resilience.html).
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from collections.abc import Iterator
from typing import Any

from profiler.analyze import history_sql as q
from profiler.analyze.attribution import SplitFacts
from profiler.analyze.history_split import Progress, SplitJob, Splitter, split_frame
from profiler.bench.profiles import CodecProfile
from profiler.errors import ProfilerError

ROW_GROUP_ROWS = 122_880  # DuckDB's own row group size


def split_file(
    src: str,
    dst: str,
    generation: str,
    profile: CodecProfile | None,
    mode: str | None,
    sample: tuple[Any, Any],
    peak: int,
) -> int:
    """On a worker: split the steps of the partition ``src`` into ``dst``; the steps."""
    import pandas as pd
    import pyarrow.parquet as pq

    facts = SplitFacts(sample, peak, pd.Series(dtype=float))
    rows, writer = 0, None
    try:
        with pq.ParquetFile(src) as pf:
            for batch in pf.iter_batches(batch_size=ROW_GROUP_ROWS):
                kept = split_frame(batch.to_pandas(), generation, profile, mode, facts)
                if writer is None:
                    writer = pq.ParquetWriter(dst, kept.schema)
                writer.write_table(kept.cast(writer.schema))
                rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def on_cluster(client: Any) -> Splitter:
    """A splitter (:data:`profiler.analyze.history.Splitter`) running on ``client``'s
    cluster."""
    from dask.distributed import as_completed

    def split(con: Any, job: SplitJob, progress: Progress) -> list[str]:
        parts = os.path.join(job.scratch, "steps")
        group = min(ROW_GROUP_ROWS, job.batch_rows)
        con.execute(
            f"COPY steps TO {q.literal(parts)} (FORMAT parquet, ROW_GROUP_SIZE {group}, "
            f"ROW_GROUPS_PER_FILE {max(1, job.batch_rows // group)})"
        )
        files = sorted(glob.glob(os.path.join(parts, "*.parquet")))
        outs = [os.path.join(job.scratch, f"split-{i:05d}.parquet") for i in range(len(files))]
        facts = job.facts
        futures = client.map(
            split_file, files, outs,
            generation=job.generation, profile=job.profile, mode=job.mode,
            sample=facts.sample, peak=facts.peak, pure=False,
        )  # fmt: skip
        done, began = 0, time.monotonic()
        workers = len(client.scheduler_info().get("workers", {}))
        for future in as_completed(futures):
            done += future.result()
            progress(
                f"split {done:,}/{job.total:,} steps on {workers} Dask worker(s) "
                f"({time.monotonic() - began:.0f} s)"
            )
        return [o for o in outs if os.path.exists(o)]

    return split


@contextlib.contextmanager
def client_for(scheduler: str | None, local_workers: int | None) -> Iterator[Any]:
    """A Dask client: of the scheduler at ``scheduler`` (``tcp://host:8786``), else of a
    LocalCluster of ``local_workers`` worker processes (one thread each), closed after."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ProfilerError(
            "a Dask cluster needs dask.distributed: pip install 'hydra-profiler[cluster]'"
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise ProfilerError(f"Dask scheduler {scheduler}: {exc}") from None
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=local_workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
