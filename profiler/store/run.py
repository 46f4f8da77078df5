"""The run directory: the contract between collectors and analysis.

Layout::

    RUN/manifest.json       format_version, kind, UTC times, host, tool versions, sources,
                            notes, and which segments each compacted Parquet absorbed
    RUN/.lock               flock'ed around every read-modify-write of the manifest
    RUN/.compact.lock       flock'ed by compaction (one at a time per run)
    RUN/tables/<table>/     append-only segments and a compacted Parquet (segments.py,
                            tables.py)

Several processes may write into one run at once: the manifest is only changed under
``RUN/.lock`` and replaced atomically; each writer appends to segments of its own.

Format history:

* 1 (hydra-profiler 0.1): first version.
* 2: a segment line may be a group (a JSON array of records, one ``append_many``: a
  sample lands whole or not at all); a ``compacted`` entry also lists the compacted files
  it may still have on disk (``pending``: written by an unfinished compaction, or replaced)
  and the ``rows`` of its Parquet. A format-1 run is read as it is (its entries have no
  ``pending``: any other compacted file is an orphan of a crash, as in format 1) and becomes
  format 2 when opened for writing.

Every name read from the manifest is checked against the names the store makes (no path
separators, no ``..``) before it is used; a compacted file that the manifest does not
account for makes the run an error to read and to write (nothing is deleted).

A run written in a newer format is refused ("upgrade"); an older one is migrated on load,
one ``_MIGRATIONS[N]`` (taking a format N-1 manifest to format N) per bump.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from profiler import __version__, atomic
from profiler._files import load_versioned
from profiler.errors import ProfilerError, StoreError
from profiler.store import segments
from profiler.store.redact import redact, redact_argv
from profiler.store.segments import SegmentWriter

FORMAT_VERSION = 2
KIND = "hydra-profiler-run"
MANIFEST = "manifest.json"
Manifest = dict[str, Any]
TABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
COMPACTED_NAME = re.compile(rf"compacted-{segments.STAMP}\.parquet")
PART_NAME = re.compile(rf"part-{segments.STAMP}-\d+-\d{{6,}}\.parquet")
_T = TypeVar("_T")


def _to_2(doc: Manifest) -> Manifest:
    """Format 1 -> 2: nothing to change (group lines and ``pending`` are additions)."""
    return {**doc, "format_version": 2}


_MIGRATIONS: dict[int, Callable[[Manifest], Manifest]] = {2: _to_2}


class CompactedEntry(NamedTuple):
    """A table's ``compacted`` entry: its Parquet (None before the first compaction
    finished), the segments and parts that Parquet absorbed, the compacted files it may
    still have on disk (None: a format-1 entry, whose other compacted files are all crash
    orphans), and the Parquet's row count (None: not recorded)."""

    parquet: str | None
    absorbed: list[str]
    pending: list[str] | None
    rows: int | None

    def accounts_for(self, name: str) -> bool:
        """Whether a compacted file ``name`` of the table is one the manifest knows."""
        return self.pending is None or name == self.parquet or name in self.pending


def utc_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _tool_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {"profiler": __version__, "python": sys.version.split()[0]}
    for name in ("pandas", "pyarrow"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _new_manifest() -> Manifest:
    now = utc_now()
    return {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "created_utc": now,
        "updated_utc": now,
        "ended_utc": None,
        "host": socket.gethostname(),
        "tool_versions": _tool_versions(),
        "sources": [],
        "notes": [],
    }


@contextmanager
def locked(path: str, name: str = ".lock") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path/name`` (created if missing)."""
    try:
        fd = os.open(os.path.join(path, name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(f"{path}: cannot lock the run: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def load_manifest(path: str) -> Manifest:
    """Read, check and migrate ``path/manifest.json``."""
    mpath = os.path.join(path, MANIFEST)
    doc = load_versioned(
        mpath, kind=KIND, what="hydra-profiler run", current=FORMAT_VERSION,
        migrations=_MIGRATIONS, error=StoreError, owner=path,
    )  # fmt: skip
    _check_manifest(doc, mpath)
    return doc


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


class _Malformed(StoreError):
    def __init__(self, mpath: str, where: str, value: Any, what: str) -> None:
        super().__init__(f"{mpath}: malformed manifest: {where} {_short(value)} {what}")


def _is_segment_or_part(name: Any) -> bool:
    return isinstance(name, str) and bool(
        segments.SEGMENT_NAME.fullmatch(name) or PART_NAME.fullmatch(name)
    )


def _is_compacted_name(name: Any) -> bool:
    return isinstance(name, str) and bool(COMPACTED_NAME.fullmatch(name))


def _check_names(
    mpath: str, where: str, names: Any, valid: Callable[[Any], bool], what: str
) -> None:
    if not isinstance(names, list):
        raise _Malformed(mpath, where, names, "is not a list")
    for i, name in enumerate(names):
        if not valid(name):
            raise _Malformed(mpath, f"{where}[{i}]", name, f"is not a {what} name")


def _check_entry(mpath: str, table: Any, entry: Any) -> None:
    if not isinstance(table, str) or not TABLE_NAME.fullmatch(table):
        raise _Malformed(mpath, "compacted", table, "is not a table name")
    where = f"compacted.{table}"
    if not isinstance(entry, dict):
        raise _Malformed(mpath, where, entry, "is not an object")
    if "parquet" not in entry:
        raise _Malformed(mpath, where, entry, "has no 'parquet'")
    parquet = entry["parquet"]
    if parquet is not None and not _is_compacted_name(parquet):
        raise _Malformed(mpath, f"{where}.parquet", parquet, "is not a compacted file name")
    _check_names(mpath, f"{where}.segments", entry.get("segments"), _is_segment_or_part, "segment")
    _check_names(mpath, f"{where}.pending", entry.get("pending", []), _is_compacted_name, "file")
    rows = entry.get("rows", 0)
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise _Malformed(mpath, f"{where}.rows", rows, "is not a row count")
    if parquet is None and (entry["segments"] or rows):  # absorbed into which file?
        raise _Malformed(mpath, f"{where}.parquet", parquet, "but segments were absorbed")


def _check_manifest(doc: Manifest, mpath: str) -> None:
    """Refuse a manifest whose structure or names are not what the store writes: each name
    is used as a file name in the run, so only the store's own patterns pass (no ``/``,
    no ``..``, nothing absolute)."""
    for key in ("sources", "notes"):
        if key in doc and not isinstance(doc[key], list):
            raise _Malformed(mpath, key, doc[key], "is not a list")
    for i, source in enumerate(doc.get("sources", [])):
        if not isinstance(source, dict):
            raise _Malformed(mpath, f"sources[{i}]", source, "is not an object")
    compacted = doc.get("compacted", {})
    if not isinstance(compacted, dict):
        raise _Malformed(mpath, "compacted", compacted, "is not an object")
    for table, entry in compacted.items():
        _check_entry(mpath, table, entry)


def compacted_entry(doc: Manifest, table: str) -> CompactedEntry | None:
    """The ``compacted`` entry of ``table`` in a manifest from :func:`load_manifest`."""
    entry = doc.get("compacted", {}).get(table)
    if entry is None:
        return None
    pending = entry.get("pending")
    return CompactedEntry(entry.get("parquet"), list(entry["segments"]), pending, entry.get("rows"))


def is_compacted_file(name: str) -> bool:
    """Whether a file name in a table directory is a compacted Parquet file."""
    return name.startswith("compacted-") and name.endswith(".parquet")


def unaccounted(table_dir: str, entry: CompactedEntry | None) -> list[str]:
    """Compacted files in ``table_dir`` that the table's manifest entry does not account
    for (a lost or replaced ``compacted`` section), sorted."""
    try:
        names = os.listdir(table_dir)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"{table_dir}: cannot list the table: {exc.strerror}") from None
    return sorted(
        n for n in names if is_compacted_file(n) and (entry is None or not entry.accounts_for(n))
    )


def unaccounted_error(path: str, table_dir: str, names: list[str]) -> StoreError:
    """The one-line error for compacted files the manifest does not list."""
    more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
    return StoreError(
        f"{os.path.join(table_dir, names[0])}{more}: compacted data that "
        f"{os.path.join(path, MANIFEST)} does not list (its 'compacted' section lost or "
        "replaced?); not reading or writing this run, nothing deleted"
    )


def table_dirs(path: str) -> list[str]:
    """The table names of the run at ``path`` (directories under ``tables/``), sorted."""
    root = os.path.join(path, "tables")
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise StoreError(f"{root}: not a directory (a run keeps its tables there)") from None
    except OSError as exc:
        raise StoreError(f"{root}: cannot list the tables: {exc.strerror}") from None
    return sorted(
        n for n in names if TABLE_NAME.fullmatch(n) and os.path.isdir(os.path.join(root, n))
    )


def check_accounted(path: str, doc: Manifest) -> None:
    """Raise if any table holds compacted data that the manifest does not list."""
    for table in table_dirs(path):
        table_dir = os.path.join(path, "tables", table)
        names = unaccounted(table_dir, compacted_entry(doc, table))
        if names:
            raise unaccounted_error(path, table_dir, names)


def _on_disk_version(path: str) -> int:
    with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
        version: int = json.load(f)["format_version"]  # checked by load_manifest already
    return version


def _write_manifest(path: str, doc: Manifest) -> None:
    text = json.dumps(doc, indent=2) + "\n"
    try:
        atomic.write_bytes(os.path.join(path, MANIFEST), text.encode(), durable=True)
    except ProfilerError as exc:  # one line naming the file and why
        raise StoreError(str(exc)) from None


def update_manifest(path: str, change: Callable[[Manifest], _T]) -> _T:
    """Apply ``change`` to the manifest under the run's lock; return what it returns."""
    with locked(path):
        doc = load_manifest(path)
        result = change(doc)
        doc["updated_utc"] = utc_now()
        _write_manifest(path, doc)
    return result


def _create(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the run directory: {exc.strerror}") from None
    _refuse_alien(path)  # before locking: leave no .lock in someone else's directory
    with locked(path):  # two processes creating the same run: one manifest
        if not os.path.exists(os.path.join(path, MANIFEST)):
            _refuse_alien(path)
            _write_manifest(path, _new_manifest())


def _refuse_alien(path: str) -> None:
    """Refuse to make a run in a directory that holds anything but a run's lock files and
    manifest temporaries: another program's files, or a run's data without its manifest
    (which cannot be adopted: only the manifest says which segments a compacted file holds).
    """
    ours = {".lock", ".compact.lock", MANIFEST}
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise StoreError(f"{path}: cannot list the run directory: {exc.strerror}") from None
    if "tables" in names:
        raise StoreError(f"{path}: tables/ present but no {MANIFEST}; not overwriting")
    if any(n not in ours and not n.startswith(MANIFEST) for n in names):
        raise StoreError(f"{path}: not empty and not a hydra-profiler run (no {MANIFEST})")


class Run:
    """A run directory opened for writing; use :meth:`Run.open`."""

    def __init__(self, path: str, command: str) -> None:
        self.path = path
        self.command = command
        self._writers: list[SegmentWriter] = []
        self._open_sources: list[int] = []
        self._closed = False

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True, command: str = "") -> Run:
        """Open the run at ``path``, creating the directory and manifest if missing.

        Parameters
        ----------
        path
            The run directory.
        create
            If False, a missing run is an error.
        command
            The command line recorded with each source (redacted); default ``sys.argv``.

        Raises
        ------
        StoreError
            No run there (and ``create`` is False), or it cannot be created or read.
        FormatVersionError
            The run was written by a newer hydra-profiler.
        """
        path = os.fspath(path)
        if create and not os.path.exists(os.path.join(path, MANIFEST)):
            _create(path)
        doc = load_manifest(path)
        check_accounted(path, doc)
        if _on_disk_version(path) < FORMAT_VERSION:  # about to write format-2 lines
            update_manifest(path, lambda _doc: None)
        return cls(path, redact(command) if command else redact_argv(sys.argv))

    @property
    def manifest(self) -> Manifest:
        """The manifest as it is on disk now."""
        return load_manifest(self.path)

    def add_source(self, kind: str, target: str, generation: str | None) -> int:
        """Record a source (target and command redacted); return its index in ``sources``."""
        entry = {
            "kind": kind,
            "target": redact(target),
            "generation": generation,
            "started_utc": utc_now(),
            "ended_utc": None,
            "command": self.command,
            "pid": os.getpid(),
        }

        def add(doc: Manifest) -> int:
            doc.setdefault("sources", []).append(entry)
            return len(doc["sources"]) - 1

        index = update_manifest(self.path, add)
        self._open_sources.append(index)
        return index

    def end_source(self, index: int) -> None:
        """Set the ``ended_utc`` of source ``index`` (once)."""

        def end(doc: Manifest) -> None:
            sources = doc.get("sources", [])
            if not 0 <= index < len(sources):
                raise StoreError(f"{self.path}: no source #{index} in {MANIFEST}")
            if sources[index].get("ended_utc") is None:
                sources[index]["ended_utc"] = utc_now()

        update_manifest(self.path, end)
        if index in self._open_sources:
            self._open_sources.remove(index)

    def writer(
        self,
        table: str,
        *,
        flush_every: int | None = None,
        flush_seconds: float | None = 1.0,
        max_segment_bytes: int = segments.MAX_SEGMENT_BYTES,
    ) -> SegmentWriter:
        """A writer appending to ``table`` (see :class:`SegmentWriter` for the options)."""
        if not TABLE_NAME.fullmatch(table):
            raise StoreError(f"{self.path}: invalid table name {table!r}")
        writer = SegmentWriter(
            os.path.join(self.path, "tables", table),
            flush_every=flush_every,
            flush_seconds=flush_seconds,
            max_segment_bytes=max_segment_bytes,
        )
        self._writers.append(writer)
        return writer

    def write_part(self, table: str, records: list[dict[str, Any]]) -> str:
        """Write ``records`` as one Parquet part of ``table`` at once (bulk imports); the
        part's file name. Columns as :func:`profiler.store.tables.records_to_arrow` makes them.
        """
        from profiler.store.tables import records_to_arrow

        return self.write_arrow_part(table, records_to_arrow(records))

    def write_arrow_part(self, table: str, arrow: Any) -> str:
        """Write the Arrow table ``arrow`` as one Parquet part of ``table`` (a bulk importer
        that has its rows as columns already); strings are stored as plain ``string``, as
        :func:`profiler.store.tables.records_to_arrow` makes them."""
        import pyarrow as pa

        from profiler.store.tables import write_part

        if not TABLE_NAME.fullmatch(table):
            raise StoreError(f"{self.path}: invalid table name {table!r}")
        fields = []
        for f in arrow.schema:
            kind = f.type
            if pa.types.is_large_string(kind) or str(kind) == "string_view":
                kind = pa.string()
            fields.append(pa.field(f.name, kind))
        return write_part(os.path.join(self.path, "tables", table), arrow.cast(pa.schema(fields)))

    def note(self, text: str) -> None:
        """Add a (redacted) note to the manifest, e.g. a signal that was absent."""
        update_manifest(self.path, lambda doc: doc.setdefault("notes", []).append(note_entry(text)))

    def close(self) -> None:
        """Close this run's writers, end its open sources, and set ``ended_utc``."""
        if self._closed:
            return
        for writer in self._writers:
            writer.close()
        for index in list(self._open_sources):
            self.end_source(index)
        update_manifest(self.path, lambda doc: doc.update(ended_utc=utc_now()))
        self._closed = True

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def note_entry(text: str) -> dict[str, str]:
    """A manifest note: the UTC time and the redacted text."""
    return {"utc": utc_now(), "text": redact(text)}
