"""Bench suites: which payloads and codecs a ``hydra-profiler bench`` measures, and how hard.

A suite is a TOML file with ``payloads`` and ``codecs`` (lists of strings), ``min_runs`` and
``min_time_seconds``; the built-in ones (quick, hydra, full) ship in the package's
``bench/suites/`` directory (``benchmarks/suites`` in the repository). :func:`run_suite`
measures one and stores the result.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from profiler.errors import UsageError

if TYPE_CHECKING:
    from profiler.bench.results import StoredResult

MAX_RUNS = 10_000
QUICK_RUNS = 1  # --quick: the warm-up run is the one timed run (timing.repeat keeps it)
QUICK_MIN_TIME_SECONDS = 0.0
MAX_MIN_TIME = 86_400.0
SUITES_DIR = str(resources.files("profiler.bench").joinpath("suites"))


def load_suite(name: str) -> dict[str, Any]:
    """A suite by name (quick, hydra, full) or path to a TOML file, checked."""
    path = name if name.endswith(".toml") else os.path.join(SUITES_DIR, f"{name}.toml")
    try:
        with open(path, "rb") as f:
            suite = tomllib.load(f)
    except FileNotFoundError:
        known = sorted(n[:-5] for n in os.listdir(SUITES_DIR) if n.endswith(".toml"))
        raise UsageError(
            f"no suite {name!r} (known: {', '.join(known)}, or a .toml file)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the suite: {exc.strerror or exc}") from None
    _check_suite(suite, path)
    return suite


def _check_suite(suite: dict[str, Any], path: str) -> None:
    for key in ("payloads", "codecs"):
        items = suite.get(key)
        if not isinstance(items, list) or not items:
            raise UsageError(f"{path}: suite needs a non-empty list {key!r}")
        bad = [item for item in items if not isinstance(item, str) or not item.strip()]
        if bad:
            raise UsageError(f"{path}: {key!r} must list strings; got {bad[0]!r}")
    runs = suite.get("min_runs", 2)
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= MAX_RUNS:
        raise UsageError(f"{path}: min_runs must be a whole number from 1 to {MAX_RUNS}")
    seconds = suite.get("min_time_seconds", 0.5)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= MAX_MIN_TIME  # also false for nan
    ):
        raise UsageError(f"{path}: min_time_seconds must be a number from 0 to {MAX_MIN_TIME:g}")


def run_suite(
    suite: dict[str, Any],
    out: str,
    *,
    name: str,
    specs: Sequence[str] | None = None,
    payload_specs: Sequence[str] | None = None,
    repeat: int | None = None,
    min_time: float | None = None,
    quick: bool = False,
    progress: Callable[[str], object] = lambda _m: None,
) -> StoredResult:
    """Measure a suite (:func:`load_suite`) and store the result in ``out``.

    Parameters
    ----------
    suite
        The checked suite; ``name`` is recorded in the result's ``meta.json``.
    out
        The result directory (checked beforehand: :func:`profiler.bench.results.check_out`).
    specs, payload_specs
        Codec specs and payload specifications (``hydra-profiler payloads``) instead of the
        suite's.
    repeat, min_time
        At least this many timed runs and seconds per phase instead of the suite's.
    quick
        ``QUICK_RUNS`` and ``QUICK_MIN_TIME_SECONDS`` instead of the suite's (``repeat`` and
        ``min_time`` still win); recorded in the result's ``options.quick``.
    progress
        Told what is being measured and what was written.

    Returns
    -------
    StoredResult
        The result as loaded back from ``out``; its plots are written next to it.
    """
    from profiler.bench import harness, plots, results
    from profiler.bench.levels import expand_specs
    from profiler.payloads.resolve import resolve

    chosen = list(payload_specs or suite["payloads"])
    codecs = expand_specs(specs or suite["codecs"])
    found = resolve(chosen)
    runs = QUICK_RUNS if quick else int(suite.get("min_runs", 2))
    seconds = QUICK_MIN_TIME_SECONDS if quick else float(suite.get("min_time_seconds", 0.5))
    options = harness.BenchOptions(
        min_runs=repeat if repeat is not None else runs,
        min_time_seconds=min_time if min_time is not None else seconds,
    )
    progress(
        f"bench: {len(found)} payloads x {len(codecs)} codecs -> {out} (at least "
        f"{options.min_runs} timed run(s) and {options.min_time_seconds:g} s per phase"
        f"{'; --quick' if quick else ''})"
    )
    result = harness.run_bench(found, codecs, options, progress, corpus_name=" ".join(chosen))
    result.meta["suite"] = name
    result.meta["options"]["quick"] = quick
    results.write_result(out, result.meta, result.rows, result.samples)
    stored = results.load_result(out)
    written = plots.write_plots(stored.rows, out)
    progress(
        f"wrote {out}/ (meta.json, results.parquet, samples.parquet"
        f"{', ' if written else ''}{', '.join(os.path.basename(p) for p in written)})"
    )
    return stored
