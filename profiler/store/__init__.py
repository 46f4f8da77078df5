"""The run directory: manifest, format version and migrations, append-only tables.

``Run.open`` and ``Run.writer`` are for collectors (no pandas or pyarrow imported);
``read_run`` and ``compact`` are for analysis, reports and notebooks.
"""

from __future__ import annotations

from profiler.store.redact import redact, redact_argv
from profiler.store.run import FORMAT_VERSION, Run
from profiler.store.segments import SegmentWriter
from profiler.store.tables import RunReader, compact, read_run

__all__ = [
    "FORMAT_VERSION",
    "Run",
    "RunReader",
    "SegmentWriter",
    "compact",
    "read_run",
    "redact",
    "redact_argv",
]
