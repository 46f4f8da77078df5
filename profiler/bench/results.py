"""The bench result directory: versioned metadata, Parquet tables, plots.

Layout of a result directory::

    meta.json         format_version, kind, environment, options, codecs, corpus manifest
    results.parquet   one row per payload x codec (see harness._measure_cell for columns)
    samples.parquet   one row per timed run (payload, codec, phase, run, wall/cpu seconds)
    *.png             plots

Format history:

* 1 (hydra-profiler 0.1): first version.

A directory written by a newer format is refused ("upgrade hydra-profiler"); older formats
are migrated on load, one ``_migrate_to_N`` per bump.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from profiler import atomic
from profiler._files import load_versioned
from profiler.errors import BenchmarkError, UsageError

FORMAT_VERSION = 1
KIND = "hydra-profiler-bench"
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@dataclass(frozen=True)
class StoredResult:
    """A bench result loaded from disk."""

    path: str
    meta: dict[str, Any]
    rows: pd.DataFrame
    samples: pd.DataFrame


PLOT_FILES = ("tradeoff.png", "decompress.png", "class_ratios.png")  # bench.plots.FILES
RESULT_FILES = frozenset(
    {"meta.json", "results.parquet", "samples.parquet", "profile.speedscope.json", *PLOT_FILES}
)
_STALE = ("profile.speedscope.json", *PLOT_FILES)  # not rewritten by every run


def _ours(name: str) -> bool:
    """A file a bench result directory holds, or a temporary file of one being written."""
    if name in RESULT_FILES or name == "meta.json.tmp":
        return True
    return name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in RESULT_FILES)


def _describe(directory: str) -> str:
    try:
        with open(os.path.join(directory, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        codecs = ", ".join(str(c["label"]) for c in meta["codecs"])
        return f" ({codecs}, {meta['environment']['time_utc']})"
    except (OSError, ValueError, KeyError, TypeError):
        return " (incomplete)"


def created_out(directory: str, probe: str) -> bool:
    """``--out directory``: refused when it exists and is not a directory; created (True,
    ``probe`` checked writable in it) when it does not exist; False when it is there."""
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise UsageError(f"--out {directory}: exists and is not a directory")
    if os.path.isdir(directory):
        return False
    try:
        os.makedirs(directory)
    except OSError as exc:
        raise BenchmarkError(f"--out {directory}: cannot create: {exc.strerror or exc}") from None
    atomic.check_writable(os.path.join(directory, probe), error=BenchmarkError)
    return True


def check_out(directory: str, *, force: bool = False) -> bool:
    """Before a bench runs: may its result go to ``directory``, and can it be written there?

    A new directory is created (and True returned: the caller removes it if the bench
    fails); an empty one is used; one holding a bench result is replaced only with
    ``force``; anything else is refused, so nothing unrelated is ever written into or
    replaced. Raises ``UsageError`` for a refusal, ``BenchmarkError`` when the directory
    cannot be created or written."""
    if created_out(directory, "meta.json"):
        return True
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise BenchmarkError(f"--out {directory}: cannot read: {exc.strerror or exc}") from None
    alien = [n for n in names if not _ours(n)]
    if alien:
        shown = ", ".join(alien[:3]) + (", ..." if len(alien) > 3 else "")
        raise UsageError(
            f"--out {directory}: a non-empty directory that is not a bench result (it holds "
            f"{shown}); give a new or empty directory"
        )
    if names and not force:
        raise UsageError(
            f"--out {directory}: already holds a bench result{_describe(directory)}; "
            "give --force to replace it, or another --out"
        )
    atomic.check_writable(os.path.join(directory, "meta.json"), error=BenchmarkError)
    return False


def write_result(
    directory: str, meta: dict[str, Any], rows: list[dict[str, Any]], samples: list[dict[str, Any]]
) -> str:
    """Write a result directory (created if missing), replacing a result already there;
    return its path.

    Every file is written in full under a temporary name first, so a full disk leaves the
    directory as it was (an earlier result intact); then the old ``meta.json`` goes, the
    tables are renamed into place and ``meta.json`` comes last: its presence means complete.
    """
    doc = {"format_version": FORMAT_VERSION, "kind": KIND, **meta}
    tables = {
        "results.parquet": pd.DataFrame(rows),
        "samples.parquet": pd.DataFrame(
            samples, columns=["payload", "codec", "phase", "run", "wall_seconds", "cpu_seconds"]
        ),
    }
    staged: dict[str, str] = {}
    try:
        os.makedirs(directory, exist_ok=True)
        for name, frame in tables.items():
            staged[name] = _stage(os.path.join(directory, name), _parquet_writer(frame))
        text = json.dumps(doc, indent=2, default=str) + "\n"
        staged["meta.json"] = _stage(
            os.path.join(directory, "meta.json"), lambda f: f.write(text.encode())
        )
        for name in ("meta.json", *_STALE):  # the old result is incomplete from here on
            _remove_if_present(os.path.join(directory, name))
        for name in ("results.parquet", "samples.parquet", "meta.json"):
            os.replace(staged.pop(name), os.path.join(directory, name))
    except OSError as exc:
        raise BenchmarkError(
            f"{directory}: cannot write the result: {exc.strerror or exc}"
        ) from None
    finally:
        for tmp in staged.values():
            _remove_if_present(tmp)
    return directory


def _parquet_writer(frame: pd.DataFrame) -> Callable[[Any], object]:
    return lambda f: frame.to_parquet(f, index=False)


def _stage(path: str, write: Callable[[Any], object]) -> str:
    """Write a temporary file next to ``path`` with ``write(binary file)``; its name."""
    tmp = atomic.temporary_name(path)
    try:
        with open(tmp, "xb") as f:
            write(f)
    except BaseException:
        _remove_if_present(tmp)
        raise
    return tmp


def _remove_if_present(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def load_result(directory: str) -> StoredResult:
    """Load a result directory, checking its kind and format version."""
    meta = load_versioned(
        os.path.join(directory, "meta.json"), kind=KIND, what="bench result",
        current=FORMAT_VERSION, migrations=_MIGRATIONS, error=BenchmarkError, owner=directory,
    )  # fmt: skip
    try:
        rows = pd.read_parquet(os.path.join(directory, "results.parquet"))
        samples = pd.read_parquet(os.path.join(directory, "samples.parquet"))
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"{directory}: cannot read result tables: {exc}") from None
    return StoredResult(directory, meta, rows, samples)
