"""Reading a run's tables (compacted Parquet + parts + segments) and compacting them.

A table's records are, in order: the rows of the compacted Parquet file the manifest lists
for it (``"compacted": {table: {"parquet": name, "segments": [absorbed names], "pending":
[...], "rows": n}}``), then the rows of every Parquet part (``part-*.parquet``, written whole
by bulk importers) and then the records of every segment that the manifest does not list as
absorbed, each sorted by name. Parts are renamed into place complete, so compaction may
absorb any it sees. Every file is read through the table's contract
(:mod:`profiler.store.contracts`), so analysis only sees well-formed columns.

Compaction first names the Parquet it is about to write in the manifest (``pending``),
then streams every source into it, batch by batch (memory bounded by a batch, not by the
run), renames it into place, lists it and the segments it absorbed in the manifest, and
only then deletes those segments and the previous Parquet. A crash at any point therefore
never loses nor duplicates a record: a pending Parquet is ignored by readers and deleted by
the next compaction; a listed segment that still exists is skipped by readers and deleted by
the next compaction. A compacted file that the manifest does not account for (a lost or
replaced manifest) is never deleted: reading or compacting the run is then an error.
Readers check that the manifest's ``compacted`` section did not change while they read,
and read again if it did.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from profiler import atomic
from profiler.errors import StoreError
from profiler.store import segments
from profiler.store.contracts import NUMBER, TEXT, Contract, contract, is_number
from profiler.store.run import (
    MANIFEST,
    CompactedEntry,
    Manifest,
    check_accounted,
    compacted_entry,
    is_compacted_file,
    load_manifest,
    locked,
    note_entry,
    table_dirs,
    unaccounted,
    unaccounted_error,
    update_manifest,
)

if TYPE_CHECKING:
    import pandas as pd

PARQUET_PREFIX = "compacted-"
_ATTEMPTS = 20
BATCH_ROWS = 65536  # rows per batch read from a Parquet file
ROW_GROUP_ROWS = 65536  # rows buffered before compaction writes a row group


def _column(values: list[Any]) -> Any:
    import pyarrow as pa

    try:
        column = pa.array(values)
        nested = pa.types.is_nested(column.type)
    except (ValueError, TypeError, OverflowError, pa.ArrowException):
        nested = True
    if not nested:  # the common case: plain values, no Python-level pass over them
        return column
    values = [json.dumps(v) if isinstance(v, dict | list) else v for v in values]
    try:
        return pa.array(values)
    except (ValueError, TypeError, OverflowError):  # mixed kinds (1 and "a"): keep as text
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values])


def records_to_arrow(records: Iterable[Mapping[str, Any]]) -> Any:
    """An Arrow table of records with the union of their keys (first-seen column order).

    dict and list values become JSON strings; a column whose values cannot share one
    Arrow type is stored as JSON text; ``ts`` is float epoch seconds.
    """
    import pyarrow as pa

    rows = list(records)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    columns = {name: _column([row.get(name) for row in rows]) for name in names}
    ts = columns.get("ts")
    if ts is not None and pa.types.is_integer(ts.type):
        columns["ts"] = ts.cast(pa.float64())
    return pa.table(columns)


def _write_atomically(table_dir: str, name: str, table: Any, what: str) -> str:
    """Write ``table`` as ``table_dir/name``: a hidden temporary, fsync, rename, fsync the
    directory, so the file is either absent or complete. Returns ``name``."""
    import pyarrow.parquet as pq

    tmp = os.path.join(table_dir, f".{name}.tmp")
    try:
        os.makedirs(table_dir, exist_ok=True)
        pq.write_table(table, tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(table_dir, name))
        atomic.fsync_dir(table_dir)
    except OSError as exc:
        raise StoreError(f"{tmp}: cannot write {what}: {exc.strerror}") from None
    return name


PART_PREFIX = "part-"
_PART_COUNTER = itertools.count(1)


def part_names(table_dir: str) -> list[str]:
    """Finished Parquet parts of a table (written whole by bulk importers), sorted."""
    try:
        names = os.listdir(table_dir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(PART_PREFIX) and n.endswith(".parquet"))


def write_part(table_dir: str, table: Any) -> str:
    """Write ``table`` atomically as a new part of the table; return its file name.

    For bulk imports (a journal file): one Parquet write instead of a JSON line per record.
    A part is visible only once complete (written to a hidden temporary, then renamed).
    """
    name = f"{PART_PREFIX}{segments.utc_stamp()}-{os.getpid()}-{next(_PART_COUNTER):06d}.parquet"
    return _write_atomically(table_dir, name, table, "a table part")


def remove_files(table_dir: str, names: Iterable[str]) -> None:
    """Delete files of a table directory; ones already gone are fine. Only plain names
    (checked when the manifest was loaded) are accepted."""
    for name in names:
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise StoreError(f"{table_dir}: refusing to delete {name!r}: not a file name")
        try:
            os.remove(os.path.join(table_dir, name))
        except FileNotFoundError:
            pass
    atomic.fsync_dir(table_dir)


def table_names(path: str) -> list[str]:
    """The tables of the run at ``path`` (directories under ``tables/``), sorted."""
    return table_dirs(path)


# --- the files of a table ------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    kind: str  # "compacted", "part" or "segment"
    name: str
    rows: int | None = None  # a compacted file's row count, as the manifest records it


def _sources(table_dir: str, entry: CompactedEntry | None) -> list[_Source]:
    """A table's files in reading order: compacted Parquet, parts, unabsorbed segments."""
    absorbed = set(entry.absorbed) if entry else set()
    out = []
    if entry is not None and entry.parquet:
        out.append(_Source("compacted", entry.parquet, entry.rows))
    out += [_Source("part", n) for n in part_names(table_dir) if n not in absorbed]
    out += [_Source("segment", n) for n in segments.segment_names(table_dir) if n not in absorbed]
    return out


# --- contracts: checked per file, so the error or warning names the file --------------------


def _kind_ok(arrow_type: Any, kind: str) -> bool:
    import pyarrow as pa

    if pa.types.is_null(arrow_type):
        return True
    if kind == NUMBER:
        return bool(pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type))
    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return pa.float64() if kind == NUMBER else pa.string()


def _as_text(column: Any) -> Any:
    """A column as JSON text, as :func:`records_to_arrow` stores a column of mixed kinds
    (a NaN is missing, as in pandas)."""
    import pyarrow as pa

    return pa.array([_text(v) for v in column.to_pylist()], pa.string())


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    return json.dumps(value, default=str)


def _check_schema(path: str, schema: Any, rows: int | None, rules: Contract) -> None:
    """A file's columns against the contract; ``rows`` None: a compacted file, which has
    the required columns even without rows (compaction writes them)."""
    names = list(schema.names)
    if len(set(names)) != len(names):
        raise StoreError(f"{path}: unreadable table: duplicate column names")
    for name, kind in rules.kinds.items():
        if kind == NUMBER and name in names and not _kind_ok(schema.field(name).type, kind):
            raise StoreError(
                f"{path}: column {name!r} holds {schema.field(name).type}, not numbers"
            )
    missing = [c for c in rules.required if c not in names]
    if missing and (rows is None or rows):
        raise StoreError(f"{path}: lacks column(s) {', '.join(missing)} that this table must have")


def _drop_bad_rows(table: Any, label: str, rules: Contract, warnings: list[str]) -> Any:
    """Without the rows lacking a finite ``ts`` (where required) or a ``nonnull`` value, and
    without rows whose ``ts`` is infinite; one warning per reason."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    if not n:
        return table
    checks: list[tuple[str, Any]] = []
    if "ts" in table.column_names:
        ts = table["ts"]
        if "ts" in rules.nonnull:
            checks.append(("a finite ts", pc.fill_null(pc.is_finite(ts), False)))
        else:
            checks.append(("a finite or missing ts", pc.fill_null(pc.invert(pc.is_inf(ts)), True)))
    for name in rules.nonnull:
        if name not in table.column_names:
            checks.append((f"a {name}", pa.array([False] * n)))
        elif name != "ts":
            checks.append((f"a {name}", pc.is_valid(table[name])))
    keep = pa.array([True] * n)
    for why, ok in checks:
        bad = n - (pc.sum(ok).as_py() or 0)
        if bad:
            warnings.append(f"{label}: skipped {bad} row(s) without {why}")
            keep = pc.and_(keep, ok)
    return table if pc.all(keep).as_py() else table.filter(keep)


def _finish(table: Any, label: str, rules: Contract, warnings: list[str]) -> Any:
    """A batch read from one file, made to follow the contract: ``ts`` as float, ``text``
    columns as text, rows lacking what they cannot do without dropped."""
    import pyarrow as pa

    for i, name in enumerate(table.column_names):
        kind = "ts" if name == "ts" else rules.kinds.get(name)
        column = table.column(i)
        if kind == "ts" and not pa.types.is_floating(column.type):
            table = table.set_column(i, name, column.cast(pa.float64(), safe=False))
        elif kind == TEXT and not _kind_ok(column.type, TEXT):
            table = table.set_column(i, name, _as_text(column))
    return _drop_bad_rows(table, label, rules, warnings)


def _records_table(
    chunk: list[tuple[int, dict[str, Any]]], label: str, rules: Contract, warnings: list[str]
) -> Any:
    """Records of one segment as Arrow; records with a non-number in a number column are
    skipped (one warning per chunk, with the first such line)."""
    table = records_to_arrow(r for _, r in chunk)
    numbers = [n for n, k in rules.kinds.items() if k == NUMBER or n == "ts"]
    wrong = [n for n in numbers if n in table.column_names and not _kind_ok(table[n].type, NUMBER)]
    if not wrong:
        return table
    kept: list[dict[str, Any]] = []
    first: tuple[int, str, Any] | None = None
    for lineno, record in chunk:
        bad = next(
            (n for n in wrong if record.get(n) is not None and not is_number(record[n])), None
        )
        if bad is None:
            kept.append(record)
        elif first is None:
            first = (lineno, bad, record[bad])
    if first is not None:
        lineno, name, value = first
        shown = json.dumps(value, default=str)
        shown = shown if len(shown) <= 40 else f"{shown[:37]}..."
        skipped = len(chunk) - len(kept)
        warnings.append(
            f"{label}:{lineno}: skipped {skipped} record(s) with a {name} that is not a number "
            f"({name}: {shown})"
        )
    return records_to_arrow(kept)


def _parquet_batches(
    path: str, source: _Source, label: str, rules: Contract, warnings: list[str], schema_only: bool
) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not os.path.lexists(path):
        raise FileNotFoundError(2, "No such file or directory", path)  # callers retry
    if not os.path.isfile(path):
        raise StoreError(f"{path}: not a file (a table's Parquet data is one file)")
    try:
        with pq.ParquetFile(path) as pf:
            rows = pf.metadata.num_rows
            if source.rows is not None and rows != source.rows:
                raise StoreError(
                    f"{path}: {rows} rows, but {MANIFEST} says {source.rows} (replaced or damaged)"
                )
            _check_schema(
                path, pf.schema_arrow, None if source.kind == "compacted" else rows, rules
            )
            if schema_only:  # no data read: its batches' schema, as _finish makes it
                yield _finish(pf.schema_arrow.empty_table(), label, rules, warnings)
                return
            for batch in pf.iter_batches(batch_size=BATCH_ROWS):
                batch.validate(full=True)  # e.g. text that is not UTF-8: damage, said here
                yield _finish(pa.Table.from_batches([batch]), label, rules, warnings)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: unreadable compacted table: {exc}") from None


def _batches(
    table_dir: str,
    table: str,
    source: _Source,
    rules: Contract,
    warnings: list[str],
    *,
    schema_only: bool = False,
) -> Iterator[Any]:
    """The validated Arrow batches of one file of a table (bounded in size). With
    ``schema_only``, a Parquet file gives one empty batch with the schema its batches have
    (its rows are not read, nor their warnings made); a segment is read all the same."""
    path = os.path.join(table_dir, source.name)
    label = f"tables/{table}/{source.name}"
    if source.kind != "segment":
        yield from _parquet_batches(path, source, label, rules, warnings, schema_only)
        return
    for chunk in segments.iter_segment(path, label, warnings):
        yield _finish(_records_table(chunk, label, rules, warnings), label, rules, warnings)


def _unify(schemas: Iterable[Any], rules: Contract) -> Any:
    """One schema for batches of different schemas: the union of their columns in first-seen
    order, numbers widened, a column whose kinds cannot share a type as text; plus the
    contract's required and filled columns."""
    import pyarrow as pa

    types: dict[str, list[Any]] = {}
    for schema in schemas:
        for f in schema:
            seen = types.setdefault(f.name, [])
            if f.type not in seen:
                seen.append(f.type)
    fields = []
    for name, kinds in types.items():
        try:
            merged = (
                pa.unify_schemas(
                    [pa.schema([(name, t)]) for t in kinds], promote_options="permissive"
                )
                .field(name)
                .type
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            merged = pa.string()
        fields.append(pa.field(name, merged))
    for name in (*rules.required, *rules.filled):
        if name not in types:
            fields.append(pa.field(name, _arrow_type(rules.kinds.get(name, TEXT))))
    return pa.schema(fields)


def _conform(table: Any, schema: Any) -> Any:
    """``table`` with exactly the columns of ``schema`` (missing ones null)."""
    import pyarrow as pa

    columns = []
    for f in schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table[f.name]
        if column.type == f.type:
            columns.append(column)
        elif _kind_ok(f.type, TEXT) and not _kind_ok(column.type, TEXT):
            columns.append(_as_text(column).cast(f.type))
        else:
            columns.append(column.cast(f.type, safe=False))
    return pa.Table.from_arrays(columns, schema=schema)


def _strays(table_dir: str) -> list[str]:
    """Entries of a table directory that are no segment, part, compacted file or temporary."""
    try:
        names = os.listdir(table_dir)
    except OSError:
        return []
    return sorted(
        n
        for n in names
        if not (
            (n.endswith(segments.SEGMENT_SUFFIX) and not n.startswith("."))
            or (n.startswith(PART_PREFIX) and n.endswith(".parquet"))
            or is_compacted_file(n)
            or (n.startswith(".") and n.endswith(".tmp"))
        )
    )


def _check_accounted(path: str, table_dir: str, table: str, entry: CompactedEntry | None) -> None:
    names = unaccounted(table_dir, entry)
    if not names:
        return
    if compacted_entry(load_manifest(path), table) != entry:  # compacted meanwhile: retry
        raise FileNotFoundError(2, "compacted while read", os.path.join(table_dir, names[0]))
    raise unaccounted_error(path, table_dir, names)


def load_table(path: str, table: str, manifest: Manifest) -> tuple[Any, list[str]]:
    """One table of the run at ``path`` as Arrow (every file, checked), and warnings.

    Raises FileNotFoundError when a file the manifest lists is gone (callers check whether
    the run was compacted meanwhile and read again), StoreError for damage.
    """
    import pyarrow as pa

    table_dir = os.path.join(path, "tables", table)
    entry = compacted_entry(manifest, table)
    _check_accounted(path, table_dir, table, entry)
    rules = contract(table)
    warnings = [f"tables/{table}/{n}: not a file of the store; ignored" for n in _strays(table_dir)]
    batches = [
        b
        for s in _sources(table_dir, entry)
        for b in _batches(table_dir, table, s, rules, warnings)
    ]
    schema = _unify((b.schema for b in batches), rules)
    if not batches:
        return schema.empty_table(), warnings
    return pa.concat_tables([_conform(b, schema) for b in batches]), warnings


@dataclass
class RunReader:
    """A stored run, read whole: its manifest, tables (as Arrow) and reading warnings."""

    path: str
    manifest: Manifest
    warnings: list[str]
    data: dict[str, Any] = field(repr=False)

    def tables(self) -> list[str]:
        """The table names, sorted."""
        return sorted(self.data)

    def table(self, name: str) -> pd.DataFrame:
        """One table as a DataFrame, records in append order (``ts``: float epoch seconds).

        Columns are the union of the records' keys; dict and list values are JSON strings;
        integer columns with missing values are pandas' nullable ``Int64`` (not float).
        """
        import pandas as pd
        import pyarrow as pa

        if name not in self.data:
            present = ", ".join(self.tables()) or "none"
            raise StoreError(f"{self.path}: no table {name!r} (tables: {present})")
        table = self.data[name]
        nullable = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype()}
        if not any(
            t in nullable and table.column(i).null_count for i, t in enumerate(table.schema.types)
        ):
            return table.to_pandas()
        return table.to_pandas(types_mapper=nullable.get)


def read_run(path: str | os.PathLike[str]) -> RunReader:
    """Read the run at ``path``: manifest, every table, and warnings about skipped lines.

    Raises
    ------
    StoreError
        No run there, a file it lists is missing or unreadable, or the run is damaged.
    FormatVersionError
        The run was written by a newer hydra-profiler.
    """
    path = os.fspath(path)
    for _ in range(_ATTEMPTS):
        manifest = load_manifest(path)
        data: dict[str, Any] = {}
        warnings: list[str] = []
        try:
            for table in table_names(path):
                data[table], warns = load_table(path, table, manifest)
                warnings += warns
            warnings += _stray_tables(path)
        except FileNotFoundError as exc:
            if load_manifest(path).get("compacted") == manifest.get("compacted"):
                raise StoreError(f"{exc.filename}: listed in the run but missing") from None
            continue  # compacted meanwhile
        if load_manifest(path).get("compacted") == manifest.get("compacted"):
            return RunReader(path, manifest, warnings, data)
    raise StoreError(f"{path}: the run kept being compacted while it was read; try again")


@dataclass(frozen=True)
class TableFiles:
    """One table as an out-of-core reader scans it (:func:`table_files`): its Parquet files
    in reading order, and the records of its unabsorbed segments, read and checked."""

    parquet: list[str]  # paths: the compacted file, then the parts
    segments: Any  # Arrow table of the segments' records (None when there are none)
    warnings: list[str]


def table_files(path: str | os.PathLike[str], table: str) -> TableFiles:
    """The files of ``table`` in the run at ``path`` for a reader that scans Parquet itself
    (DuckDB, Dask), each Parquet file's schema checked against the table's contract (its
    rows are not read here); segments, small and line-oriented, are read and checked.

    Raises
    ------
    StoreError
        No such table, a file it lists is missing, or a file is damaged.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = os.fspath(path)
    table_dir = os.path.join(path, "tables", table)
    if table not in table_names(path):
        raise StoreError(f"{path}: no table {table!r}")
    manifest = load_manifest(path)
    entry = compacted_entry(manifest, table)
    try:
        _check_accounted(path, table_dir, table, entry)
    except FileNotFoundError as exc:
        raise StoreError(f"{exc.filename}: the run was compacted while read; try again") from None
    rules = contract(table)
    warnings: list[str] = []
    parquet, batches = [], []
    for source in _sources(table_dir, entry):
        file = os.path.join(table_dir, source.name)
        if source.kind == "segment":
            batches += list(_batches(table_dir, table, source, rules, warnings))
            continue
        try:
            meta = pq.read_metadata(file)
            schema = pq.read_schema(file)
        except FileNotFoundError:
            raise StoreError(f"{file}: listed in the run but missing") from None
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise StoreError(f"{file}: unreadable table file: {exc}") from None
        if source.rows is not None and meta.num_rows != source.rows:
            raise StoreError(
                f"{file}: {meta.num_rows} rows, but {MANIFEST} says {source.rows} (replaced "
                "or damaged)"
            )
        _check_schema(file, schema, None if source.kind == "compacted" else meta.num_rows, rules)
        parquet.append(file)
    segs = None
    if batches:
        schema = _unify((b.schema for b in batches), rules)
        segs = pa.concat_tables([_conform(b, schema) for b in batches])
    return TableFiles(parquet, segs, warnings)


def _stray_tables(path: str) -> list[str]:
    root = os.path.join(path, "tables")
    tables = set(table_names(path))
    try:
        names = os.listdir(root)
    except OSError:
        return []
    return [f"tables/{n}: not a table directory; ignored" for n in sorted(set(names) - tables)]


# --- compaction ----------------------------------------------------------------------------


def _new_name(table_dir: str, entry: CompactedEntry | None) -> str:
    taken = {entry.parquet, *(entry.pending or ())} if entry else set()
    while True:
        name = f"{PARQUET_PREFIX}{segments.utc_stamp()}.parquet"
        if name not in taken and not os.path.lexists(os.path.join(table_dir, name)):
            return name


def _mark_pending(path: str, table: str, names: list[str]) -> None:
    """Before writing ``names[-1]``: list it (and a format-1 entry's orphans) as pending in
    the manifest, so a crash leaves no file the manifest does not account for."""

    def change(doc: Manifest) -> None:
        entry = doc.setdefault("compacted", {}).setdefault(
            table, {"parquet": None, "segments": [], "pending": [], "rows": 0}
        )
        entry["pending"] = [*entry.get("pending", []), *names]

    update_manifest(path, change)


def _record_compaction(
    path: str, table: str, parquet: str, absorbed: list[str], rows: int, warnings: list[str]
) -> None:
    def change(doc: Manifest) -> None:
        old = compacted_entry(doc, table)
        stale = [*(old.pending or []), old.parquet] if old else []
        doc.setdefault("compacted", {})[table] = {
            "parquet": parquet,
            "segments": absorbed,
            "pending": [n for n in stale if n and n != parquet],  # deleted right after
            "rows": rows,
        }
        doc.setdefault("notes", []).extend(note_entry(f"compact: {w}") for w in warnings)

    update_manifest(path, change)


def _stale(table_dir: str, entry: CompactedEntry | None, keep: str | None) -> list[str]:
    """Files compaction may delete once ``keep`` is the listed Parquet: the entry's previous
    Parquet, the compacted files it lists as pending (in a format-1 entry: every compacted
    file), and hidden temporaries (incomplete by construction)."""
    names = os.listdir(table_dir)
    temporaries = [n for n in names if n.startswith(f".{PARQUET_PREFIX}") and n.endswith(".tmp")]
    if entry is None:
        return temporaries
    old = [n for n in names if is_compacted_file(n) and n != keep and n != entry.parquet]
    old = [n for n in old if entry.pending is None or n in entry.pending]
    if entry.parquet and entry.parquet != keep:
        old.append(entry.parquet)
    return [*old, *temporaries]


def _write_compacted(
    table_dir: str, table: str, sources: list[_Source], name: str
) -> tuple[int, int, list[str]]:
    """Stream ``sources`` into ``table_dir/name`` (tmp + fsync + rename): a first pass
    learns the schema, a second writes batch by batch. Returns (rows, rows of the previous
    compacted file, warnings)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rules = contract(table)
    warnings: list[str] = []  # segments' in the first pass, Parquet files' in the second
    schemas: list[Any] = []
    for source in sources:
        for batch in _batches(table_dir, table, source, rules, warnings, schema_only=True):
            if not schemas or batch.schema != schemas[-1]:
                schemas.append(batch.schema)
    schema = _unify(schemas, rules)
    tmp = os.path.join(table_dir, f".{name}.tmp")
    rows = base = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            buffered: list[Any] = []
            for source in sources:
                seen = [] if source.kind == "segment" else warnings
                for batch in _batches(table_dir, table, source, rules, seen):
                    base += batch.num_rows if source.kind == "compacted" else 0
                    buffered.append(_conform(batch, schema))
                    if sum(b.num_rows for b in buffered) >= ROW_GROUP_ROWS:
                        rows += _flush(writer, buffered)
            rows += _flush(writer, buffered)
            if not rows:
                writer.write_table(schema.empty_table())
        atomic.fsync_file(tmp)
        os.replace(tmp, os.path.join(table_dir, name))
        atomic.fsync_dir(table_dir)
    except OSError as exc:
        raise StoreError(f"{tmp}: cannot write compacted table: {exc.strerror or exc}") from None
    except pa.ArrowException as exc:
        raise StoreError(f"{tmp}: cannot write compacted table: {exc}") from None
    return rows, base, warnings


def _flush(writer: Any, buffered: list[Any]) -> int:
    import pyarrow as pa

    if not buffered:
        return 0
    table = pa.concat_tables(buffered)
    writer.write_table(table)
    buffered.clear()
    return int(table.num_rows)


BULK_PART_ROWS = 50_000  # parts this large on average are a bulk import's, left as they are


def _bulk(table_dir: str, parts: list[str]) -> bool:
    """Whether ``parts`` (and no segment) are a bulk importer's: on average at least
    :data:`BULK_PART_ROWS` rows each (``collect db --since 5y``, ``collect logs --file``).
    Compaction leaves them: the order of the table's records stays the same (compacted
    file, then parts), and readers scan parts as they scan a compacted file."""
    import pyarrow.parquet as pq

    if not parts:
        return False
    try:
        rows = sum(pq.read_metadata(os.path.join(table_dir, n)).num_rows for n in parts)
    except (OSError, ValueError):
        return False  # compaction itself says what is wrong with it
    return rows >= BULK_PART_ROWS * len(parts)


def _compact_table(path: str, table: str) -> int:
    table_dir = os.path.join(path, "tables", table)
    entry = compacted_entry(load_manifest(path), table)
    alien = unaccounted(table_dir, entry)
    if alien:
        raise unaccounted_error(path, table_dir, alien)
    absorbed = entry.absorbed if entry else []
    remove_files(table_dir, absorbed)  # left over if an earlier compaction crashed
    todo = segments.compactable(table_dir, set(absorbed))
    parts = [n for n in part_names(table_dir) if n not in set(absorbed)]
    if not todo and _bulk(table_dir, parts):
        return 0  # a bulk import's Parquet: rewriting years of it into one file buys nothing
    if not todo and not parts:
        remove_files(table_dir, _stale(table_dir, entry, entry.parquet if entry else None))
        return 0
    name = _new_name(table_dir, entry)
    orphans = [] if entry is None or entry.pending is not None else _stale(table_dir, entry, None)
    _mark_pending(path, table, [n for n in orphans if is_compacted_file(n)] + [name])
    sources = [s for s in _sources(table_dir, entry) if s.kind == "compacted"]
    sources += [_Source("part", n) for n in parts] + [_Source("segment", n) for n in todo]
    try:
        rows, base, warnings = _write_compacted(table_dir, table, sources, name)
    except BaseException:
        remove_files(table_dir, [f".{name}.tmp"])  # listed as pending: safe either way
        raise
    _record_compaction(path, table, name, [*absorbed, *parts, *todo], rows, warnings)
    remove_files(table_dir, [*parts, *todo, *_stale(table_dir, entry, name)])
    return rows - base


def compact(path: str | os.PathLike[str]) -> dict[str, int]:
    """Fold each table's finished segments and parts into one compacted Parquet file.

    Segments a writer still holds open are left for a later compaction. Lines and records
    skipped as damaged are recorded as manifest notes, since compaction drops them for good.
    Memory is bounded by a batch of rows, whatever the size of the run.

    Returns
    -------
    dict[str, int]
        Per table that changed, the number of records moved from segments into Parquet.

    Raises
    ------
    StoreError
        The run is damaged (nothing is deleted then), or a file cannot be written.
    """
    path = os.fspath(path)
    load_manifest(path)
    done: dict[str, int] = {}
    with locked(path, ".compact.lock"):
        check_accounted(path, load_manifest(path))  # a damaged run: change nothing at all
        for table in table_names(path):
            try:
                moved = _compact_table(path, table)
            except FileNotFoundError as exc:  # nothing else compacts now: a file was lost
                raise StoreError(f"{exc.filename}: listed in the run but missing") from None
            if moved:
                done[table] = moved
    return done
