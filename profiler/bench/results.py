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

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from profiler.errors import BenchmarkError, FormatVersionError

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


def write_result(
    directory: str, meta: dict[str, Any], rows: list[dict[str, Any]], samples: list[dict[str, Any]]
) -> str:
    """Write a result directory (created if missing); return its path."""
    os.makedirs(directory, exist_ok=True)
    doc = {"format_version": FORMAT_VERSION, "kind": KIND, **meta}
    pd.DataFrame(rows).to_parquet(os.path.join(directory, "results.parquet"), index=False)
    pd.DataFrame(
        samples, columns=["payload", "codec", "phase", "run", "wall_seconds", "cpu_seconds"]
    ).to_parquet(os.path.join(directory, "samples.parquet"), index=False)
    tmp = os.path.join(directory, "meta.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, os.path.join(directory, "meta.json"))  # meta last: its presence = complete
    return directory


def load_result(directory: str) -> StoredResult:
    """Load a result directory, checking its kind and format version."""
    meta_path = os.path.join(directory, "meta.json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise BenchmarkError(f"{directory}: not a bench result (no meta.json)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"{meta_path}: unreadable: {exc}") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise BenchmarkError(f"{meta_path}: not a hydra-profiler bench result")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise FormatVersionError(f"{meta_path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{directory}: written in result format {version}, this hydra-profiler reads up "
            f"to {FORMAT_VERSION}; upgrade hydra-profiler"
        )
    while meta["format_version"] < FORMAT_VERSION:
        meta = _MIGRATIONS[meta["format_version"] + 1](meta)
    try:
        rows = pd.read_parquet(os.path.join(directory, "results.parquet"))
        samples = pd.read_parquet(os.path.join(directory, "samples.parquet"))
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"{directory}: cannot read result tables: {exc}") from None
    return StoredResult(directory, meta, rows, samples)
