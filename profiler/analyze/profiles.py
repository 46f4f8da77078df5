"""Codec profiles: seconds per NAR byte and compression ratio, to split copy phases and to
project a codec change.

A profile comes from a ``hydra-profiler bench`` result (byte-weighted over its payloads, best
of its repeats: the figures the operator measured on their NARs and CPUs) or, when none is
given, from a quick calibration here: a few MiB of the built-in corpus compressed once. Both
are estimates of what the farm's machine spent; the calibration says so in its ``source``.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any

from profiler.errors import ProfilerError

CALIBRATION_BYTES_PER_CLASS = 1 << 20


@dataclass(frozen=True)
class CodecProfile:
    """One codec's cost: ``seconds_per_byte`` of NAR compressed, ``ratio`` compressed/NAR,
    and ``fixed_seconds`` per NAR (one compression call: setting up the encoder; 0.4 s for
    zstd at level 22, whose tables are hundreds of MiB, so it dominates small NARs)."""

    codec: str
    seconds_per_byte: float
    ratio: float
    source: str
    fixed_seconds: float = 0.0

    @property
    def mb_per_second(self) -> float:
        return 1e-6 / self.seconds_per_byte if self.seconds_per_byte > 0 else float("inf")

    def seconds(self, nar_bytes: Any) -> Any:
        """Compression seconds of a NAR (or an array of NAR sizes): fixed + bytes x rate."""
        return self.fixed_seconds + nar_bytes * self.seconds_per_byte


def canonical(spec_text: str) -> str:
    """The short name ``hydra-profiler bench`` labels a codec with (``xz:6``, ``zstd:19``)."""
    from profiler.codecs import parse_spec

    return parse_spec(spec_text).label


def from_bench(directory: str) -> dict[str, CodecProfile]:
    """Profiles of every codec measured in a bench result directory, by codec label."""
    from profiler.bench import derive
    from profiler.bench.results import load_result

    result = load_result(directory)
    table = derive.overall(result.rows)
    out = {}
    for codec, row in table.iterrows():
        speed = float(row["compress_mb_per_s"])
        out[str(codec)] = CodecProfile(
            str(codec),
            1e-6 / speed if speed > 0 else float("nan"),
            float(row["ratio"]),
            f"bench result {directory} ({int(row['nar_bytes']):,} NAR bytes)",
        )
    if not out:
        raise ProfilerError(f"{directory}: the bench result has no successful codec cells")
    return out


CALIBRATION_VERSION = 3
SMALL_NAR_BYTES = 4096  # a call this small costs the codec's set-up and nearly nothing else


def cache_path() -> str:
    """Where calibrations are kept between calls: ``$XDG_CACHE_HOME/hydra-profiler``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hydra-profiler", "calibration.json")


def _cache_key(spec_label: str, per_class_bytes: int) -> str:
    import zstandard

    from profiler.bench.environment import cpu_model, liblzma_version

    return (
        f"v{CALIBRATION_VERSION}|{spec_label}|{per_class_bytes}|{platform.node()}|"
        f"{cpu_model()}|{os.cpu_count()}|lzma {liblzma_version()}|zstd {zstandard.ZSTD_VERSION}"
    )


def _load_cache() -> dict[str, Any]:
    try:
        with open(cache_path(), encoding="utf-8") as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _store_cache(key: str, profile: CodecProfile) -> None:
    doc = _load_cache()
    doc[key] = asdict(profile)
    path = cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: calibrate again next time


@functools.lru_cache(maxsize=32)
def calibrate(spec_text: str, per_class_bytes: int = CALIBRATION_BYTES_PER_CLASS) -> CodecProfile:
    """Compress up to ``per_class_bytes`` of each built-in corpus class's NAR once, here, and
    a small NAR three times for the per-call set-up cost. Kept per codec, machine and library
    versions in :func:`cache_path`, so later calls (and later runs) reuse it."""
    from profiler.codecs import make_codec, parse_spec

    spec = parse_spec(spec_text)
    key = _cache_key(spec.label, per_class_bytes)
    cached = _load_cache().get(key)
    if isinstance(cached, dict):
        try:
            return CodecProfile(**cached)
        except TypeError:
            pass
    from profiler.corpus import default_corpus

    codec = make_codec(spec)
    sample = b"".join(p.read()[:per_class_bytes] for p in default_corpus())
    if not sample:
        raise ProfilerError("calibration: no corpus data on this machine; pass --profiles")
    small = []
    for _ in range(3):
        t0 = time.perf_counter()
        codec.compress(sample[:SMALL_NAR_BYTES])
        small.append(time.perf_counter() - t0)
    fixed = sorted(small)[1]
    start = time.perf_counter()
    packed = codec.compress(sample)
    seconds = time.perf_counter() - start
    profile = CodecProfile(
        spec.label,
        max(seconds - fixed, seconds / 2) / len(sample),
        len(packed) / len(sample),
        f"calibrated here on {len(sample) / 2**20:.1f} MiB of the built-in corpus (estimate)",
        fixed,
    )
    _store_cache(key, profile)
    return profile


def profile_for(
    spec_text: str, profiles: dict[str, CodecProfile] | None, *, calibrate_missing: bool = True
) -> CodecProfile | None:
    """The profile of ``spec_text`` from ``profiles``, else calibrated (or None)."""
    label = canonical(spec_text)
    if profiles and label in profiles:
        return profiles[label]
    return calibrate(spec_text) if calibrate_missing else None
