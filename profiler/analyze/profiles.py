"""Codec profiles: seconds per NAR byte and compression ratio, to split copy phases and to
project a codec change.

A profile comes from a ``hydra-profiler bench`` result (byte-weighted over its payloads, best
of its repeats: the figures the operator measured on their NARs and CPUs) or, when none is
given, from a quick calibration here: a few MiB of the built-in corpus compressed once. Both
are estimates of what the farm's machine spent; the calibration says so in its ``source``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from profiler.errors import ProfilerError

CALIBRATION_BYTES_PER_CLASS = 1 << 20


@dataclass(frozen=True)
class CodecProfile:
    """One codec's cost: ``seconds_per_byte`` of NAR compressed, ``ratio`` compressed/NAR."""

    codec: str
    seconds_per_byte: float
    ratio: float
    source: str

    @property
    def mb_per_second(self) -> float:
        return 1e-6 / self.seconds_per_byte if self.seconds_per_byte > 0 else float("inf")


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


@functools.lru_cache(maxsize=32)
def calibrate(spec_text: str, per_class_bytes: int = CALIBRATION_BYTES_PER_CLASS) -> CodecProfile:
    """Compress up to ``per_class_bytes`` of each built-in corpus class's NAR once, here
    (once per process and codec)."""
    from profiler.codecs import make_codec, parse_spec
    from profiler.corpus import default_corpus
    from profiler.nar.dump import dump_bytes

    spec = parse_spec(spec_text)
    codec = make_codec(spec)
    sample = b"".join(dump_bytes(p.root)[:per_class_bytes] for p in default_corpus())
    if not sample:
        raise ProfilerError("calibration: no corpus data on this machine; pass --profiles")
    start = time.perf_counter()
    packed = codec.compress(sample)
    seconds = time.perf_counter() - start
    return CodecProfile(
        spec.label,
        seconds / len(sample),
        len(packed) / len(sample),
        f"calibrated here on {len(sample) / 2**20:.1f} MiB of the built-in corpus (estimate)",
    )


def profile_for(
    spec_text: str, profiles: dict[str, CodecProfile] | None, *, calibrate_missing: bool = True
) -> CodecProfile | None:
    """The profile of ``spec_text`` from ``profiles``, else calibrated (or None)."""
    label = canonical(spec_text)
    if profiles and label in profiles:
        return profiles[label]
    return calibrate(spec_text) if calibrate_missing else None
