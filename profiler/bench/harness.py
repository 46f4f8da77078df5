"""Run payloads x codecs through worker processes and collect one row per cell.

Each payload's NAR is read and validated once, written to a scratch file (``/dev/shm``
when it has room, so workers load it from memory), and fingerprinted for the manifest.
Each cell then runs in fresh processes (:mod:`profiler.bench.worker`): one to time it, two
to measure peak memory. A failed cell (round-trip mismatch, codec error) becomes a row with
its error and no figures; the rest of the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from profiler.bench import contention, environment, eta, stored, timing
from profiler.codecs import CodecSpec, parse_spec
from profiler.errors import BenchmarkError
from profiler.payloads import Payload, corpus
from profiler.units import format_bytes, mb_per_second

Progress = Callable[[str], object]


@dataclass(frozen=True)
class BenchOptions:
    """How hard to measure: at least ``min_runs`` runs and ``min_time_seconds`` per phase."""

    min_runs: int = 2
    min_time_seconds: float = 1.0
    worker_timeout_seconds: float = 3600.0


@dataclass
class BenchResult:
    """What one ``bench`` run measured: per-cell rows, every timed sample, and metadata."""

    meta: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)


def parse_specs(texts: Sequence[str]) -> list[tuple[str, CodecSpec]]:
    """Parse every codec spec up front, so a typo fails before any work is done."""
    out = []
    seen: set[str] = set()
    for text in texts:
        spec = parse_spec(text)
        if spec.label in seen:
            continue
        seen.add(spec.label)
        out.append((text, spec))
    return out


def _scratch_dir() -> str:
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        free = shutil.disk_usage(shm).free
        if free > 2 << 30:
            return tempfile.mkdtemp(prefix="hydra-profiler-", dir=shm)
    return tempfile.mkdtemp(prefix="hydra-profiler-")


def _worker(request: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "profiler.bench.worker"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {timeout:.0f} s"}
    if done.returncode != 0 or not done.stdout.strip():
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return {"error": f"worker failed: {tail[0]}"}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run_bench(
    payloads: Sequence[Payload],
    specs: Sequence[str],
    options: BenchOptions,
    progress: Progress = lambda _m: None,
    corpus_name: str = "custom",
) -> BenchResult:
    """Measure every payload with every codec; see the module docstring."""
    codecs = parse_specs(specs)
    if not payloads:
        raise BenchmarkError("no payloads to measure")
    result = BenchResult(
        meta={
            "environment": environment.collect(),
            "options": {"min_runs": options.min_runs, "min_time_seconds": options.min_time_seconds},
            "codecs": [
                {
                    "spec": text,
                    "label": s.label,
                    "writer": s.writer,
                    "threads": s.threads,
                    "notes": list(s.notes),
                }
                for text, s in codecs
            ],
            "manifest": {"corpus": corpus_name, "payloads": []},
        }
    )
    scratch = _scratch_dir()
    started = time.perf_counter()
    try:
        cells = len(payloads) * len(codecs)
        clock = eta.Eta(len(payloads), [s.label for _, s in codecs])
        for payload in payloads:
            progress(f"reading {payload.name}: {payload.describe()}")
            data = payload.read()
            sha256 = hashlib.sha256(data).digest()  # once: the manifest and the workers
            row = corpus.manifest_row(payload, data, sha256)
            result.meta["manifest"]["payloads"].append(row)
            reference = stored.stored_row(payload, row["nar_size_bytes"])
            if reference is not None:
                result.meta.setdefault("stored", []).append(reference)
                progress(f"  {payload.name}: {_stored_line(reference)}")
            nar_path = os.path.join(scratch, "payload.nar")
            with open(nar_path, "wb") as f:
                f.write(data)
            digest = sha256.hex()
            del data
            for text, spec in codecs:
                cell = _measure_cell(
                    payload,
                    row["nar_size_bytes"],
                    digest,
                    nar_path,
                    text,
                    spec,
                    scratch,
                    options,
                    progress,
                )
                result.rows.append(cell["row"])
                result.samples.extend(cell["samples"])
                clock.cell_done(spec.label)
                progress(
                    f"[{clock.done:>{len(str(cells))}}/{cells}] {_cell_line(cell['row'])} "
                    f"({clock.describe()})"
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.meta["elapsed_seconds"] = round(time.perf_counter() - started, 3)
    return result


def _stored_line(r: dict[str, Any]) -> str:
    return (
        f"stored as {r['method']} ({r['method_from']}): {format_bytes(r['compressed_bytes'])}"
        f" of {format_bytes(r['nar_bytes'])} NAR, ratio {r['ratio']:.3f}"
    )


def _cell_line(row: dict[str, Any]) -> str:
    head = f"{row['payload']} ({format_bytes(row['nar_bytes'])}) {row['codec']}"
    if row["error"]:
        return f"{head}: FAILED: {row['error']}"
    flag = f" CONTENDED after {row['reruns']} re-run(s)" if row["contended"] else ""
    return (
        f"{head}: ratio {row['ratio']:.3f}, compress {row['compress_mb_per_s']:.1f} MB/s, "
        f"decompress {row['decompress_mb_per_s']:.0f} MB/s{flag}"
    )


def _measure_cell(
    payload: Payload,
    nar_bytes: int,
    digest: str,
    nar_path: str,
    text: str,
    spec: CodecSpec,
    scratch: str,
    options: BenchOptions,
    progress: Progress,
) -> dict[str, Any]:
    blob_path = os.path.join(scratch, "blob")
    base = {
        "payload": payload.name,
        "class": payload.klass,
        "codec": spec.label,
        "spec": text,
        "writer": spec.writer,
        "threads": spec.threads,
        "nar_bytes": nar_bytes,
    }
    timeout = options.worker_timeout_seconds
    request = {
        "job": "measure",
        "nar_path": nar_path,
        "nar_sha256": digest,
        "spec": text,
        "blob_path": blob_path,
        "min_runs": options.min_runs,
        "min_time_seconds": options.min_time_seconds,
    }
    measured, verdict, reruns = _measure_uncontended(request, spec, timeout, progress)
    if "error" in measured:
        return {"row": {**base, **_empty_figures(), "error": measured["error"]}, "samples": []}
    peaks = {
        phase: _worker(
            {"job": "peak", "input_path": path, "spec": text, "phase": phase}, timeout
        ).get("peak_bytes")
        for phase, path in (("compress", nar_path), ("decompress", blob_path))
    }
    samples = []
    summaries = {}
    for phase in ("compress", "decompress"):
        runs = [timing.Sample(**s) for s in measured[phase]]
        summaries[phase] = timing.summarise(runs)
        samples += [
            {
                "payload": payload.name,
                "codec": spec.label,
                "phase": phase,
                "run": i,
                "wall_seconds": s.wall_seconds,
                "cpu_seconds": s.cpu_seconds,
            }
            for i, s in enumerate(runs)
        ]
    c, d = summaries["compress"], summaries["decompress"]
    notes = [
        *spec.notes,
        *(f"compress: {n}" for n in c.notes),
        *(f"decompress: {n}" for n in d.notes),
        *verdict.notes,
    ]
    if verdict.contended:
        notes.append(f"still contended after {reruns} re-run(s): its speeds are too low")
    row = {
        **base,
        "compressed_bytes": measured["compressed_bytes"],
        "ratio": measured["compressed_bytes"] / nar_bytes,
        "compress_best_seconds": c.best_wall_seconds,
        "compress_median_seconds": c.median_wall_seconds,
        "compress_cpu_seconds": c.median_cpu_seconds,
        "compress_runs": c.runs,
        "compress_mb_per_s": mb_per_second(nar_bytes, c.best_wall_seconds),
        "decompress_best_seconds": d.best_wall_seconds,
        "decompress_median_seconds": d.median_wall_seconds,
        "decompress_cpu_seconds": d.median_cpu_seconds,
        "decompress_runs": d.runs,
        "decompress_mb_per_s": mb_per_second(nar_bytes, d.best_wall_seconds),
        "compress_peak_bytes": peaks["compress"],
        "decompress_peak_bytes": peaks["decompress"],
        "throttled": c.throttled or d.throttled,
        "compress_wall_over_cpu": verdict.wall_over_cpu.get("compress", float("nan")),
        "decompress_wall_over_cpu": verdict.wall_over_cpu.get("decompress", float("nan")),
        "contended": verdict.contended,
        "reruns": reruns,
        "notes": "; ".join(notes),
        "error": None,
    }
    return {"row": row, "samples": samples}


def _verdict(measured: dict[str, Any], spec: CodecSpec) -> contention.Verdict:
    phases = {p: [timing.Sample(**s) for s in measured[p]] for p in ("compress", "decompress")}
    return contention.judge(phases, spec.threads)


def _measure_uncontended(
    request: dict[str, Any], spec: CodecSpec, timeout: float, progress: Progress
) -> tuple[dict[str, Any], contention.Verdict, int]:
    """Measure a cell; re-run it (``contention.MAX_RERUNS`` at most) while contended.

    Returns the least contended measurement, its verdict, and how many re-runs were made.
    """
    best: tuple[dict[str, Any], contention.Verdict] | None = None
    reruns = 0
    while True:
        measured = _worker(request, timeout)
        if "error" in measured:
            return measured, contention.Verdict({}, False, ()), reruns
        verdict = _verdict(measured, spec)
        if best is None or not verdict.worst >= best[1].worst:  # nan never wins over a ratio
            best = (measured, verdict)
        if not best[1].contended or reruns == contention.MAX_RERUNS:
            return best[0], best[1], reruns
        reruns += 1
        progress(
            f"  {spec.label}: wall {verdict.worst:.2f}x CPU on a single-thread codec "
            f"(contended); re-running ({reruns}/{contention.MAX_RERUNS})"
        )


def _empty_figures() -> dict[str, Any]:
    nan = float("nan")
    return {
        "compressed_bytes": None,
        "ratio": nan,
        "compress_best_seconds": nan,
        "compress_median_seconds": nan,
        "compress_cpu_seconds": nan,
        "compress_runs": 0,
        "compress_mb_per_s": nan,
        "decompress_best_seconds": nan,
        "decompress_median_seconds": nan,
        "decompress_cpu_seconds": nan,
        "decompress_runs": 0,
        "decompress_mb_per_s": nan,
        "compress_peak_bytes": None,
        "decompress_peak_bytes": None,
        "throttled": False,
        "compress_wall_over_cpu": nan,
        "decompress_wall_over_cpu": nan,
        "contended": False,
        "reruns": 0,
        "notes": "",
    }
