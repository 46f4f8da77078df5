"""What each table's columns hold, checked when a table is read or compacted.

A run may be damaged or come from someone else; analysis and reports should only ever see
well-formed tables. Each known table has a :class:`Contract`: the kind of value in each
column it knows (``number`` or ``text``), the columns every file of the table has, and the
columns a row cannot do without. Reading (:mod:`profiler.store.tables`) enforces it:

* a segment record whose value in a ``number`` column is not a number is skipped with a
  warning naming the file and line (as unparsable lines are); a ``text`` column that got
  numbers keeps them as JSON text;
* a Parquet file whose column has the wrong kind, or that has rows but lacks a
  ``required`` column, is a one-line error naming the file;
* rows without a finite ``ts`` where ``ts`` is ``nonnull``, or with an infinite ``ts``
  anywhere, are skipped with a warning; ``required`` and ``filled`` columns missing from
  every record are added as nulls, so a column analysis looks up is always there.

Tables without a contract of their own get :data:`DEFAULT` (``ts`` is a number).
Nothing here imports pandas or pyarrow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NUMBER = "number"
TEXT = "text"


@dataclass(frozen=True)
class Contract:
    """The columns of one table: their kinds, and which must be there."""

    kinds: Mapping[str, str]
    required: tuple[str, ...] = ()  # in every file with rows; added as nulls to records
    filled: tuple[str, ...] = ()  # added as nulls when no source has them
    nonnull: tuple[str, ...] = ()  # rows with a null here (or a non-finite ts) are skipped


def _kinds(numbers: str, texts: str) -> dict[str, str]:
    return {**dict.fromkeys(numbers.split(), NUMBER), **dict.fromkeys(texts.split(), TEXT)}


DEFAULT = Contract(_kinds("ts", ""))

_SAMPLES = Contract(
    _kinds("ts value", "source generation metric kind unit machine machine_type jobset bucket"),
    required=("ts", "metric", "value"),
    nonnull=("ts", "metric"),
)
_EVENTS = Contract(_kinds("ts", "source event detail"))
_LOG_SUMMARY = Contract(
    _kinds(
        "ts lines understood understood_share events unknown_lines malformed_lines first_ts "
        "last_ts year_assumed",
        "source unknown_patterns ended",
    )
)
_DB_STEPS = Contract(
    _kinds(
        "ts build stepnr type status start_time stop_time stop_minus_start_s overhead_ms "
        "times_built propagated_from",
        "drv_path machine system error_msg generation semantics",
    )
)
_DB_BUILDS = Contract(
    _kinds(
        "ts build queued_time start_time stop_time status size_bytes closure_size_bytes "
        "priority global_priority",
        "project jobset job system drv_path nix_name generation semantics",
    )
)
_DB_PHASES = Contract(
    _kinds(
        "ts build stepnr busy start_ts end_ts duration_s start_err_s end_err_s resolution_seconds",
        "phase start_obs end_obs machine system generation",
    )
)
_DB_BUILD_FINISHED = Contract(_kinds("ts build", "generation"), nonnull=("ts", "build"))
_DB_CURSOR = Contract(
    _kinds("ts since stop_time window_start overlap_seconds steps builds pending_builds", "")
)


_LOG_EVENTS = Contract(  # the numbers analysis computes with; ids stay free (Rust: UUIDs)
    _kinds(
        "ts pid priority old_pid nar_bytes compressed_percent ms bytes elapsed seconds",
        "event host unit program level target source",
    ),
    required=("ts", "event"),  # a file without times cannot be joined to steps: refused
    nonnull=("ts",),
)

# collect cpu (profiler.collect.cpu.tables: class_rows, stack_rows, unknown_rows)
_CPU_CLASSES = Contract(
    _kinds(
        "ts bucket_seconds pid tid samples cpu_seconds",
        "process thread class sampler target call_graph",
    ),
    required=("ts", "class", "cpu_seconds"),
    nonnull=("ts",),
)
_CPU_STACKS = Contract(
    _kinds("samples cpu_seconds", "process thread class stack"),
    required=("stack", "cpu_seconds"),
)
_CPU_UNKNOWN = Contract(_kinds("samples cpu_seconds", "frame dso"))
# collect history's resume record (profiler.collect.history.importer)
_HISTORY_CHUNKS = Contract(
    _kinds("ts step_seconds start end series samples", "source query"),
    required=("source", "query", "step_seconds", "end"),
)


_CONTRACTS: dict[str, Contract] = {
    "samples": _SAMPLES,
    "events": _EVENTS,
    "log_events": _LOG_EVENTS,
    "log_summary": _LOG_SUMMARY,
    "db_steps": _DB_STEPS,
    "db_builds": _DB_BUILDS,
    "db_phases": _DB_PHASES,
    "db_build_finished": _DB_BUILD_FINISHED,
    "db_cursor": _DB_CURSOR,
    "cpu_classes": _CPU_CLASSES,
    "cpu_stacks": _CPU_STACKS,
    "cpu_unknown": _CPU_UNKNOWN,
    "history_chunks": _HISTORY_CHUNKS,
}


def contract(table: str) -> Contract:
    """The contract of ``table`` (:data:`DEFAULT` for a table the store does not know)."""
    return _CONTRACTS.get(table, DEFAULT)


def is_number(value: object) -> bool:
    """A JSON value that an Arrow number column holds exactly (not a bool, fits int64)."""
    if isinstance(value, float):
        return True
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
