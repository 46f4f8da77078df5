"""The step table's schema: its columns (unit, meaning, attribution category), and the
records that carry it (:class:`StepTable`, :class:`Source`).

:func:`profiler.analyze.steps.build_step_table` makes one row per build step from whatever
the run holds; :func:`profiler.analyze.attribution.split_copy` adds the copy phase's split
and the category totals. Every duration is seconds, every ``*_ts`` epoch seconds (UTC);
a column a run's sources cannot fill is NaN (absent, never 0). The category of a phase
column is Hydra's (:data:`profiler.hydra.facts.PHASE_CATEGORY`), derived here through the
phase the column's time is, not written down twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

import pandas as pd

from profiler.hydra import facts

CATEGORIES = facts.CATEGORIES
# Step-table column -> the Hydra phase its time is (the phase's category is its attribution;
# the testbed's truth uses the same mapping). "copy_s" (busy 40 / Rust upload) is split into
# receive, compress and upload before attribution.
COLUMN_PHASE = {
    "queue_s": "queued",
    "prepare_s": "preparing",
    "connect_s": "connecting",
    "send_s": "sending-inputs",
    "build_s": "building",
    "slot_wait_s": "waiting-for-local-slot",
    "retry_wait_s": "retry-wait",
    "receive_s": "receiving",
    "compress_s": "compressing",
    "upload_s": "uploading",
    "post_s": "post-processing",
}
COLUMN_CATEGORY = {column: facts.PHASE_CATEGORY[phase] for column, phase in COLUMN_PHASE.items()}
# Tracker phase (a busy code's name, facts.BUSY) -> the column its time goes to.
_PHASE_OF_COLUMN = {phase: column for column, phase in COLUMN_PHASE.items()}
PHASE_COLUMN = {
    phase: _PHASE_OF_COLUMN.get(phase, "copy_s")  # receiving-outputs: the copy, split later
    for phase in facts.BUSY.values()
}
DURATIONS = (
    "queue_s",
    "prepare_s",
    "connect_s",
    "send_s",
    "build_s",
    "slot_wait_s",
    "retry_wait_s",
    "copy_s",
    "receive_s",
    "compress_s",
    "upload_s",
    "post_s",
)
# The columns every step table has, even one without rows (a farm-level analysis).
STEP_COLUMNS = (
    "step", "build", "stepnr", "machine", "system", "jobset", "status",
    "start_ts", "end_ts", "nar_bytes", "compressed_bytes", "copy_s", "pipeline_s",
)  # fmt: skip
# The attribution's category totals (split_copy), each a sum of the phases of its category.
CATEGORY_COLUMN = {
    "scheduling": "scheduling_s",
    "io": "io_s",
    "compression": "compression_s",
    "build": "build_s",
    "post": "post_total_s",
}


@dataclass(frozen=True)
class Column:
    """One column of the step table: its name, unit (``s``, ``epoch s``, ``ms``, ``bytes``,
    or ``""`` for text, flags and keys), what it means, and the attribution category its
    time counts in (None: not a phase of a category)."""

    name: str
    unit: str
    meaning: str
    category: str | None = None


_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # the step
    ("step", "", "the step's key: build/stepnr"),
    ("build", "", "Hydra build id"),
    ("stepnr", "", "the step's number within its build"),
    ("drv_path", "", "the derivation built"),
    ("machine", "", "the machine the step ran on (its store URI or builder name)"),
    ("system", "", "the step's platform (x86_64-linux)"),
    ("jobset", "", "project:jobset of the build"),
    ("job", "", "the build's job name"),
    ("status", "", "Hydra's BuildSteps status (0: success)"),
    ("generation", "", "the queue runner whose semantics timed the step: cxx or rust"),
    ("timing_source", "", "where the times came from: tracker, db, journal, tracker+journal"),
    ("upload_mode", "", "Rust builders' upload mode: presigned or direct"),
    ("outputs", "", "the output paths the builder uploaded, space-separated"),
    ("builder_lines", "", "whether the journal has the builder's own lines for the step"),
    ("gap", "", "whether the phase tracker missed polls during the step"),
    ("db_machine", "", "BuildSteps' machine, where the tracker saw another"),
    ("db_system", "", "BuildSteps' system, where the tracker saw another"),
    # times
    ("start_ts", "epoch s", "the step's start"),
    ("end_ts", "epoch s", "the step's end (its last phase's)"),
    ("stop_ts", "epoch s", "Rust: the runner's stop, before the step's rows are written"),
    ("copy_start_ts", "epoch s", "the tracker's copy phase (busy 40) start"),
    ("copy_end_ts", "epoch s", "the tracker's copy phase end"),
    ("start_time", "epoch s", "BuildSteps startTime as Hydra stored it"),
    ("stop_time", "epoch s", "BuildSteps stopTime (C++: build end; Rust: step end)"),
    ("overhead_ms", "ms", "BuildSteps overhead (C++: the copy; Rust: import + upload)"),
    ("resolution_s", "s", "how precisely the phase boundaries are known"),
    # sizes
    ("nar_bytes", "bytes", "NAR size of the step's outputs"),
    ("compressed_bytes", "bytes", "their compressed size"),
    ("size_bytes", "bytes", "Hydra's Builds size of the build's outputs"),
    # phases, in pipeline order, and the copy they are split from
    ("queue_s", "s", "runnable, waiting for a machine (per step not observed: NaN)"),
    ("prepare_s", "s", "preparing (busy 1), and the row updates written with the slot held"),
    ("connect_s", "s", "connecting to the machine (busy 10)"),
    ("send_s", "s", "sending the inputs to the machine (busy 20)"),
    ("build_s", "s", "building (busy 30)"),
    ("slot_wait_s", "s", "C++: waiting for a local worker slot (busy 35)"),
    ("retry_wait_s", "s", "a failed attempt's back-off before the next one"),
    ("copy_s", "s", "the copy (C++ busy 40, Rust upload): receive, compress, write, upload"),
    ("pipeline_s", "s", "C++ journal: receive + compress + write of the copy line"),
    ("receive_s", "s", "the copy's receiving (or writing), after the split"),
    ("compress_s", "s", "the copy's compression, after the split (estimated)"),
    ("upload_s", "s", "the copy's upload, after the split"),
    ("post_s", "s", "post-processing (busy 50)"),
    # what the split adds (split_copy)
    ("compress_source", "", "how compress_s was found"),
    ("compress_cpu_s", "s", "the part of compress_s that is CPU work (what a codec scales)"),
    ("scheduling_s", "s", "the scheduling category: connect + retry waits"),
    ("io_s", "s", "the io category: send + receive + upload"),
    ("compression_s", "s", "the compression category: local-slot wait + compress"),
    ("post_total_s", "s", "the post category: prepare + post"),
    ("wall_s", "s", "the step's wall time: the five categories' sum"),
    ("slot_s", "s", "the time the step held its machine slot"),
)
_TOTALS = {column: category for category, column in CATEGORY_COLUMN.items()}
COLUMNS: MappingProxyType[str, Column] = MappingProxyType(
    {
        name: Column(name, unit, meaning, COLUMN_CATEGORY.get(name, _TOTALS.get(name)))
        for name, unit, meaning in _COLUMNS
    }
)


# the queue wait over time (StepTable.queue_waits): interval start (epoch s), step-seconds
# waited in it, and the machine type (system) waited for when the source labels it
QUEUE_COLUMNS = ["ts", "seconds", "machine_type"]
# the group the queue wait takes in a per-machine breakdown: it comes before any machine
QUEUED_GROUP = "(queue: before a machine)"


@dataclass(frozen=True)
class Source:
    """One source the analysis used: what, how precise, over which window."""

    name: str
    rows: int
    detail: str
    precision: str


@dataclass
class StepTable:
    """The joined step table with what it was made of.

    Attributes
    ----------
    steps
        One row per step (columns: :data:`COLUMNS`).
    generation
        ``cxx``, ``rust`` or ``unknown``.
    queue_seconds
        Total time steps waited runnable for a machine (all steps), or NaN.
    queue_source
        How ``queue_seconds`` was obtained.
    sources
        The sources used, with their precision.
    notes
        What could not be observed or was estimated.
    queue_waits
        ``queue_seconds`` over time: step-seconds waited per sample interval (columns
        :data:`QUEUE_COLUMNS`: the interval's start, the seconds, the machine type when the
        source labels it), adding up to ``queue_seconds``; no rows when it is not observed.
    """

    steps: pd.DataFrame
    generation: str
    queue_seconds: float = math.nan
    queue_source: str = ""
    sources: list[Source] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    window: tuple[float, float] = (math.nan, math.nan)
    estimated: frozenset[str] = frozenset()  # categories split by an estimate, not observed
    queue_waits: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=QUEUE_COLUMNS))
