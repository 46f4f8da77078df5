"""Reading a run's tables (compacted Parquet + segments) and compacting them.

A table's records are, in order: the rows of the compacted Parquet file the manifest lists
for it (``"compacted": {table: {"parquet": name, "segments": [absorbed names]}}``), then
the rows of every Parquet part (``part-*.parquet``, written whole by bulk importers) and
then the records of every segment that the manifest does not list as absorbed, each sorted
by name. Parts are renamed into place complete, so compaction may absorb any it sees.

Compaction writes the new Parquet first (tmp + rename), then lists it and the segments it
absorbed in the manifest, and only then deletes those segments and the previous Parquet.
A crash at any point therefore never loses nor duplicates a record: an unlisted Parquet is
an orphan that readers ignore and the next compaction deletes; a listed segment that still
exists is skipped by readers and deleted by the next compaction. Readers check that the
manifest's ``compacted`` section did not change while they read, and read again if it did.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from profiler.errors import StoreError
from profiler.store import segments
from profiler.store.run import (
    TABLE_NAME,
    Manifest,
    load_manifest,
    locked,
    note_entry,
    update_manifest,
)

if TYPE_CHECKING:
    import pandas as pd

PARQUET_PREFIX = "compacted-"
_ATTEMPTS = 20


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


def combine(base: Any | None, records: list[dict[str, Any]]) -> Any:
    """``base`` (an Arrow table, or None) followed by ``records``, as one Arrow table."""
    import pyarrow as pa

    new = records_to_arrow(records)
    if base is None:
        return new
    if not records:
        return base
    try:
        return pa.concat_tables([base, new], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column changed kind: redo as records
        return records_to_arrow([*base.to_pylist(), *records])


def read_parquet(path: str) -> Any:
    """Read a compacted table; a missing file raises FileNotFoundError (callers retry)."""
    import pyarrow.parquet as pq

    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    try:
        return pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: unreadable compacted table: {exc}") from None


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
        segments.fsync_dir(table_dir)
    except OSError as exc:
        raise StoreError(f"{tmp}: cannot write {what}: {exc.strerror}") from None
    return name


def write_parquet(table_dir: str, table: Any) -> str:
    """Write ``table`` atomically as ``compacted-<stamp>.parquet``; return the file name."""
    name = f"{PARQUET_PREFIX}{segments.utc_stamp()}.parquet"
    return _write_atomically(table_dir, name, table, "compacted table")


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


def _with_parts(table_dir: str, base: Any | None, names: list[str]) -> Any | None:
    """``base`` followed by the parts ``names`` (a column that changed kind becomes text)."""
    import pyarrow as pa

    if not names:
        return base
    tables = [] if base is None else [base]
    tables += [read_parquet(os.path.join(table_dir, n)) for n in names]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return records_to_arrow([r for t in tables for r in t.to_pylist()])


def remove_files(table_dir: str, names: Iterable[str]) -> None:
    """Delete files of a table directory; ones already gone are fine."""
    for name in names:
        try:
            os.remove(os.path.join(table_dir, name))
        except FileNotFoundError:
            pass
    segments.fsync_dir(table_dir)


def _orphans(table_dir: str, keep: str | None) -> list[str]:
    """Compacted Parquet files (and temporaries) that the manifest does not list."""
    prefixes = (PARQUET_PREFIX, f".{PARQUET_PREFIX}")
    return [n for n in os.listdir(table_dir) if n != keep and n.startswith(prefixes)]


def table_names(path: str) -> list[str]:
    """The tables of the run at ``path`` (directories under ``tables/``), sorted."""
    root = os.path.join(path, "tables")
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(
        n for n in names if TABLE_NAME.fullmatch(n) and os.path.isdir(os.path.join(root, n))
    )


def _entry(manifest: Manifest, table: str) -> tuple[str | None, list[str]]:
    entry = manifest.get("compacted", {}).get(table)
    if entry is None:
        return None, []
    try:
        return str(entry["parquet"]), [str(s) for s in entry["segments"]]
    except (KeyError, TypeError):
        raise StoreError(f"manifest: malformed 'compacted' entry for table {table!r}") from None


def _read_segments(table_dir: str, table: str, names: Iterable[str]) -> tuple[list[Any], list[str]]:
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    for name in names:
        recs, warns = segments.read_segment(os.path.join(table_dir, name), f"tables/{table}/{name}")
        records += recs
        warnings += warns
    return records, warnings


def load_table(path: str, table: str, manifest: Manifest) -> tuple[Any, list[str]]:
    """One table of the run at ``path`` as Arrow (compacted part + segments), and warnings."""
    table_dir = os.path.join(path, "tables", table)
    parquet, absorbed = _entry(manifest, table)
    base = read_parquet(os.path.join(table_dir, parquet)) if parquet else None
    skip = set(absorbed)
    base = _with_parts(table_dir, base, [n for n in part_names(table_dir) if n not in skip])
    todo = [n for n in segments.segment_names(table_dir) if n not in skip]
    records, warnings = _read_segments(table_dir, table, todo)
    return combine(base, records), warnings


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
        No run there, or a file it lists is missing or unreadable.
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
        except FileNotFoundError as exc:
            if load_manifest(path).get("compacted") == manifest.get("compacted"):
                raise StoreError(f"{exc.filename}: listed in the run but missing") from None
            continue  # compacted meanwhile
        if load_manifest(path).get("compacted") == manifest.get("compacted"):
            return RunReader(path, manifest, warnings, data)
    raise StoreError(f"{path}: the run kept being compacted while it was read; try again")


def _record_compaction(
    path: str, table: str, parquet: str, absorbed: list[str], warnings: list[str]
) -> None:
    def change(doc: Manifest) -> None:
        doc.setdefault("compacted", {})[table] = {"parquet": parquet, "segments": absorbed}
        doc.setdefault("notes", []).extend(note_entry(f"compact: {w}") for w in warnings)

    update_manifest(path, change)


def _compact_table(path: str, table: str) -> int:
    table_dir = os.path.join(path, "tables", table)
    parquet, absorbed = _entry(load_manifest(path), table)
    remove_files(table_dir, absorbed)  # left over if an earlier compaction crashed
    todo = segments.compactable(table_dir, set(absorbed))
    parts = [n for n in part_names(table_dir) if n not in set(absorbed)]
    if not todo and not parts:
        remove_files(table_dir, _orphans(table_dir, parquet))
        return 0
    base = read_parquet(os.path.join(table_dir, parquet)) if parquet else None
    before = 0 if base is None else base.num_rows
    base = _with_parts(table_dir, base, parts)
    from_parts = (0 if base is None else base.num_rows) - before
    records, warnings = _read_segments(table_dir, table, todo)
    name = write_parquet(table_dir, combine(base, records))
    _record_compaction(path, table, name, [*absorbed, *parts, *todo], warnings)
    remove_files(table_dir, [*parts, *todo, *_orphans(table_dir, name)])
    return from_parts + len(records)


def compact(path: str | os.PathLike[str]) -> dict[str, int]:
    """Fold each table's finished segments into one compacted Parquet file.

    Segments a writer still holds open are left for a later compaction. Lines skipped as
    unparsable are recorded as manifest notes, since compaction drops them for good.

    Returns
    -------
    dict[str, int]
        Per table that changed, the number of records moved from segments into Parquet.
    """
    path = os.fspath(path)
    load_manifest(path)
    done: dict[str, int] = {}
    with locked(path, ".compact.lock"):
        for table in table_names(path):
            try:
                moved = _compact_table(path, table)
            except FileNotFoundError as exc:  # nothing else compacts now: a file was lost
                raise StoreError(f"{exc.filename}: listed in the run but missing") from None
            if moved:
                done[table] = moved
    return done
