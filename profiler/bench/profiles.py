"""Codec profiles: seconds per NAR byte and compression ratio, to split copy phases and to
project a codec change.

A profile comes from a ``hydra-profiler bench`` result (byte-weighted over its payloads, best
of its repeats: the figures the operator measured on their NARs and CPUs: :func:`from_result`)
or, when none is given, from a quick calibration here: a few MiB of the built-in corpus (or
of the farm's binary cache) compressed once (:func:`calibrate`, kept per machine). Both are
estimates of what the farm's machine spent; the calibration says so in its ``source``. The
analysis never calibrates: its callers load or calibrate a profile (:func:`farm_profile`) and
pass it in.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from profiler import atomic
from profiler.errors import ProfilerError

if TYPE_CHECKING:
    from profiler.bench.results import StoredResult
    from profiler.codecs.spec import CodecSpec

CALIBRATION_BYTES_PER_CLASS = 1 << 20


@dataclass(frozen=True)
class CodecProfile:
    """One codec's cost: ``seconds_per_byte`` of NAR compressed, ``ratio`` compressed/NAR,
    ``fixed_seconds`` per NAR (one compression call: setting up the encoder), and, from a
    calibration, ``size_points``: (NAR bytes, seconds) of one call measured at a few sizes.

    A call's cost is not fixed + bytes x rate for every codec: zstd sizes its tables (and
    clears them) by the input up to the level's window, so at level 22 a 4 KiB NAR costs
    milliseconds and a 64 KiB one a third of a second; measured points are interpolated."""

    codec: str
    seconds_per_byte: float
    ratio: float
    source: str
    fixed_seconds: float = 0.0
    size_points: tuple[tuple[float, float], ...] = ()

    @property
    def mb_per_second(self) -> float:
        return 1e-6 / self.seconds_per_byte if self.seconds_per_byte > 0 else float("inf")

    def seconds(self, nar_bytes: Any) -> Any:
        """Compression seconds of a NAR (or an array of NAR sizes): between measured sizes
        interpolated, beyond the largest its time plus bytes x rate; without points, fixed
        + bytes x rate."""
        if len(self.size_points) < 2:
            return self.fixed_seconds + nar_bytes * self.seconds_per_byte
        xs = np.array([p[0] for p in self.size_points], float)
        ys = np.array([p[1] for p in self.size_points], float)
        n = np.asarray(nar_bytes, float)
        out = np.where(
            n <= xs[-1],
            np.interp(n, xs, ys),
            ys[-1] + (n - xs[-1]) * self.seconds_per_byte,
        )
        return out if np.ndim(nar_bytes) else float(out)


def canonical(spec_text: str) -> str:
    """The short name ``hydra-profiler bench`` labels a codec with (``xz:6``, ``zstd:19``)."""
    from profiler.codecs import parse_spec

    return parse_spec(spec_text).label


def from_result(result: StoredResult) -> dict[str, CodecProfile]:
    """Profiles of every codec measured in a loaded bench result, by codec label."""
    from profiler.bench import derive

    directory = result.path
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


CALIBRATION_VERSION = 6  # 6: each NAR compressed by its own call; 5: medians of repeats
SMALL_NAR_BYTES = 4096  # a call this small costs the codec's set-up and nearly nothing else


def cache_path() -> str:
    """Where calibrations are kept between calls: ``$XDG_CACHE_HOME/hydra-profiler``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hydra-profiler", "calibration.json")


CALIBRATION_SIZES = (4096, 65536, 524288)  # besides the whole sample: small NARs' costs


def _cache_key(spec_label: str, sample: str) -> str:
    import zstandard

    from profiler.bench.environment import cpu_model, liblzma_version

    return (
        f"v{CALIBRATION_VERSION}|{spec_label}|{sample}|{platform.node()}|"
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
        atomic.write_text(path, json.dumps(doc, indent=1))
    except (OSError, ProfilerError):
        pass  # a read-only home: calibrate again next time


CACHE_SAMPLE_BYTES = 8 << 20  # of the farm's own NARs, when its binary cache is at hand


def cache_nars(cache_dir: str, max_bytes: int = CACHE_SAMPLE_BYTES) -> tuple[list[bytes], str]:
    """Up to ``max_bytes`` of a binary cache's NARs, whole, decompressed and checked against
    their narinfos: in narinfo name order, which is the store-path hash's (a fair sample),
    skipping NARs that cannot be read. Returns the NARs, one by one, and what they are."""
    from profiler.errors import PayloadError
    from profiler.payloads.binary_cache import cache_payloads

    try:
        payloads = cache_payloads(cache_dir)
    except PayloadError as exc:
        raise ProfilerError(f"calibration on the farm's NARs: {exc}") from None
    parts: list[bytes] = []
    total = skipped = 0
    for payload in payloads:
        if total >= max_bytes:
            break
        try:
            data = payload.read()
        except PayloadError:
            skipped += 1
            continue
        parts.append(data)
        total += len(data)
    if not parts:
        raise ProfilerError(f"calibration on the farm's NARs: {cache_dir}: no readable NAR")
    what = f"{len(parts)} NARs of the farm's cache {cache_dir}" + (
        f" ({skipped} unreadable skipped)" if skipped else ""
    )
    return parts, what


@functools.lru_cache(maxsize=32)
def calibrate(
    spec_text: str,
    per_class_bytes: int = CALIBRATION_BYTES_PER_CLASS,
    cache_dir: str | None = None,
) -> CodecProfile:
    """Compress up to ``per_class_bytes`` of each built-in corpus class's NAR, here (or, with
    ``cache_dir``, a sample of the farm's own NARs: :func:`cache_nars`), each by a call of
    its own as the writers do, and a small NAR three times for the per-call set-up cost.
    Kept per codec, sample, machine and library versions in :func:`cache_path`, so later
    calls (and later runs) reuse it.

    One call per NAR, not one over the sample joined: a codec's cost per byte depends on
    the input's length (xz's match finder searches a dictionary of up to 8 MiB at level 6,
    filled only by a long input), so 8 MiB of testbed NARs joined cost xz-6 0.44 us a byte
    where the same NARs one by one cost 0.34 us, which the farm's writers pay."""
    import hashlib

    from profiler.codecs import parse_spec

    spec = parse_spec(spec_text)
    # the writer matters, not only the label: the same zstd level costs another amount
    # streamed by the Rust builder than in one call by Nix
    writer = f"{spec.writer} threads={spec.threads} long={spec.long_log}"
    if cache_dir is None:
        from profiler.payloads.corpus import default_corpus

        parts = [p.read()[:per_class_bytes] for p in default_corpus()]
        what, digest = "the built-in corpus", str(per_class_bytes)
    else:
        parts, what = cache_nars(cache_dir)
    parts = [p for p in parts if p]
    sample = b"".join(parts)
    if cache_dir is not None:
        digest = hashlib.sha256(sample).hexdigest()[:16]
    key = _cache_key(f"{spec.label} {writer}", digest)
    cached = _load_cache().get(key)
    if isinstance(cached, dict):
        try:
            stored = tuple((float(p[0]), float(p[1])) for p in cached.pop("size_points", ()))
            return CodecProfile(**cached, size_points=stored)
        except TypeError:
            pass
    if not sample:
        raise ProfilerError("calibration: no corpus data on this machine; pass --profiles")
    # a fresh encoder for every call, as the writers make one per NAR (Nix: a new sink and
    # ZSTD_createCCtx per NAR, NixOS/nix@88b09c64 src/libutil/compression.cc:375, :458;
    # Hydra's builders: a new async-compression encoder per upload, hydra 14332fbf
    # crates/binary-cache/src/compression.rs:76-83): a reused one hides the set-up (zstd-22
    # streamed: 0.3-0.6 s a NAR fresh, milliseconds reused)
    points: list[tuple[float, float]] = []
    for size in (n for n in CALIBRATION_SIZES if n < len(sample)):
        timed = functools.partial(_fresh, spec, sample[:size])
        points.append((float(size), _median_seconds(timed)))
    fixed = points[0][1] if points else 0.0
    packed = 0

    def each() -> None:
        nonlocal packed
        packed = sum(len(_fresh(spec, part)) for part in parts)

    seconds = _median_seconds(each)
    per_byte = max(seconds - len(parts) * fixed, seconds / 2) / len(sample)
    largest = float(max(map(len, parts)))
    if not points or largest > points[-1][0]:
        points.append((largest, fixed + largest * per_byte))
    profile = CodecProfile(
        spec.label,
        per_byte,
        packed / len(sample),
        f"calibrated here on {len(sample) / 2**20:.1f} MiB of {what}, and at "
        f"{len(points) - 1} smaller sizes for small NARs' costs (estimate)",
        fixed,
        _monotone(points),
    )
    _store_cache(key, profile)
    return profile


def _fresh(spec: CodecSpec, data: bytes) -> bytes:
    """``data`` compressed by a new encoder of ``spec``, as a writer makes one per NAR."""
    from profiler.codecs import make_codec

    return make_codec(spec).compress(data)


REPEAT_BUDGET_SECONDS = 0.5  # a measurement shorter than this is repeated (up to 5 times)


def _median_seconds(call: Callable[[], object], budget: float = REPEAT_BUDGET_SECONDS) -> float:
    """The median wall time of ``call``, repeated 3 to 5 times until the runs add up to the
    budget (once or twice when they already take 4 budgets: a whole-sample xz run). A single
    timing of a 20 ms zstd-3 run cannot tell a hiccup of the machine from the codec's cost,
    and a calibration is kept for later runs; the median of several is immune to one
    (timeit's autorange, pyperf's repeated values)."""
    runs: list[float] = []
    while len(runs) < 5:
        t0 = time.perf_counter()
        call()
        runs.append(time.perf_counter() - t0)
        if sum(runs) >= 4 * budget or (len(runs) >= 3 and sum(runs) >= budget):
            break
    return sorted(runs)[len(runs) // 2]


def _monotone(points: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Measured (bytes, seconds), each at least the one before (a larger input never costs
    less; a noisy measurement is lifted to its predecessor)."""
    out: list[tuple[float, float]] = []
    for size, seconds in sorted(points):
        out.append((size, max(seconds, out[-1][1]) if out else seconds))
    return tuple(out)


def profile_for(
    spec_text: str,
    profiles: Mapping[str, CodecProfile] | None,
    *,
    calibrate_missing: bool = True,
    cache_dir: str | None = None,
) -> CodecProfile | None:
    """The profile of ``spec_text`` from ``profiles``, else calibrated (on the NARs of
    ``cache_dir`` when given, else on the built-in corpus), or None."""
    label = canonical(spec_text)
    if profiles and label in profiles:
        return profiles[label]
    if not calibrate_missing:
        return None
    return calibrate(spec_text, CALIBRATION_BYTES_PER_CLASS, cache_dir)


@dataclass(frozen=True)
class FarmProfile:
    """The profile of the codec the farm compressed with, and how it was found.

    ``calibration_cache`` is the binary cache the profile was calibrated on (what-ifs
    calibrate other codecs on the same NARs; None: the bench result or the built-in corpus),
    ``note`` says why the cache could not be used when it could not."""

    profile: CodecProfile | None
    calibration_cache: str | None = None
    note: str = ""


def farm_profile(
    codec: str, profiles: Mapping[str, CodecProfile], *, cache_dir: str | None = None
) -> FarmProfile:
    """The farm codec's profile: from the bench result, else calibrated on the farm's own
    NARs when its cache is given (what the codec costs depends on the data: xz is half as
    fast on some NARs as on others), else on the built-in corpus."""
    if cache_dir is None or canonical(codec) in profiles:
        return FarmProfile(profile_for(codec, profiles))
    try:
        return FarmProfile(profile_for(codec, profiles, cache_dir=cache_dir), cache_dir)
    except ProfilerError as exc:
        note = f"{exc}: calibrated on the built-in corpus instead"
        return FarmProfile(profile_for(codec, profiles), None, note)
