"""Codec profiles at NAR sizes, calibration with a fresh encoder per call, and how much of a
phase the compression estimate may take."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from profiler.analyze.attribution import (
    REQUEST_SECONDS,
    SLOWDOWN_PRIOR,
    compression_in_phase,
    slowdown_evidence,
)
from profiler.bench import profiles
from profiler.bench.profiles import CodecProfile

# a zstd-22-like profile: half a second per call up to 512 KiB, then 1 us a byte
ULTRA = CodecProfile(
    "zstd:22", 1e-6, 0.3, "test", 0.5, ((4096.0, 0.5), (65536.0, 0.5), (524288.0, 0.52))
)


def test_seconds_interpolate_measured_sizes_and_extrapolate_by_rate() -> None:
    assert ULTRA.seconds(4096) == pytest.approx(0.5)
    assert ULTRA.seconds(2048) == pytest.approx(0.5)  # below the smallest: its cost
    assert ULTRA.seconds((65536 + 524288) / 2) == pytest.approx(0.51)
    assert ULTRA.seconds(524288 + 1e6) == pytest.approx(0.52 + 1.0)
    sizes = np.array([4096.0, np.nan, 1e7])
    out = ULTRA.seconds(sizes)
    assert out[0] == pytest.approx(0.5) and np.isnan(out[1])
    plain = CodecProfile("xz:6", 1e-6, 0.25, "test", 0.01)  # no points: fixed + bytes x rate
    assert plain.seconds(1e6) == pytest.approx(1.01)


def test_calibration_times_a_fresh_encoder_per_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writers make an encoder per NAR; a reused one hides zstd's set-up (tables sized by
    the level, cleared per frame), so every timed call gets its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    profiles.calibrate.cache_clear()
    import profiler.codecs as codecs

    made: list[Any] = []
    inputs: list[int] = []
    real = codecs.make_codec

    def counting(spec: Any) -> Any:
        made.append(spec)
        codec = real(spec)

        class Counted:
            def compress(self, data: bytes) -> bytes:
                inputs.append(len(data))
                return codec.compress(data)

        return Counted()

    monkeypatch.setattr(codecs, "make_codec", counting)
    p = profiles.calibrate("zstd:3", 1 << 20)
    sizes = [s for s, _ in p.size_points]
    assert sizes == sorted(sizes) and sizes[:3] == [4096.0, 65536.0, 524288.0]
    assert all(b >= a for (_, a), (_, b) in zip(p.size_points, p.size_points[1:], strict=False))
    # a fresh encoder for each timed call: zstd-3 on 512 KiB or less is far under the
    # repeat budget, so 5 calls at each of the 3 sizes; then each NAR of the sample by a
    # call of its own (never the sample joined), as many rounds as the budget asks
    from profiler.payloads.corpus import default_corpus

    nars = [len(c.read()[: 1 << 20]) for c in default_corpus()]
    assert len(made) == len(inputs)
    assert inputs[:15] == [4096] * 5 + [65536] * 5 + [524288] * 5
    rest = inputs[15:]
    assert rest and len(rest) % len(nars) == 0
    assert rest == nars * (len(rest) // len(nars))
    assert max(sizes) == max(nars)
    profiles.calibrate.cache_clear()
    again = profiles.calibrate("zstd:3", 1 << 20)  # from the cache, points and all
    assert again == p
    profiles.calibrate.cache_clear()


def test_a_slow_link_is_not_taken_for_slow_compression() -> None:
    """Phases proportional to their NAR (a 1 MB/s link): no per-NAR cost beyond a request,
    so compression may take at most the prior's slowdown; the rest is the transfer."""
    nar = pd.Series([1e5, 2e5, 4e5, 8e5, 1.6e6])
    phase = nar / 1e6 + 0.02
    assert slowdown_evidence(phase, nar, 0.001) == SLOWDOWN_PRIOR
    expected = np.full(5, 0.001)
    share = 0.5
    got = compression_in_phase(phase.to_numpy(), expected, np.zeros(5), share)
    assert got == pytest.approx(SLOWDOWN_PRIOR * expected)


def test_a_per_nar_cost_far_above_the_set_up_is_a_slower_machine() -> None:
    """Every phase costs ~8 s whatever its size while a call's set-up is 0.5 s: compression
    on this machine is ~16x slower than calibrated, and may take the phase."""
    nar = pd.Series([5e4, 6e4, 2e5, 8e4, 1.3e6, 1.9e5])
    phase = pd.Series([8.0, 8.1, 8.2, 7.9, 8.4, 8.0])
    slowdown = slowdown_evidence(phase, nar, 0.5)
    assert slowdown == pytest.approx((8.0 - REQUEST_SECONDS) / 0.5, rel=0.05)
    got = compression_in_phase(phase.to_numpy(), np.full(6, 0.5), np.zeros(6), 0.99, slowdown)
    assert (got > 0.9 * phase.to_numpy()).all()


def test_too_few_sized_phases_use_the_prior() -> None:
    nar = pd.Series([1e5, np.nan, 2e5])
    assert slowdown_evidence(pd.Series([9.0, 9.0, 9.0]), nar, 0.5) == SLOWDOWN_PRIOR


def test_a_short_timing_is_repeated_and_one_hiccup_does_not_count() -> None:
    """A 20 ms measurement taken once cannot tell a hiccup of the machine from the cost; the
    median of the repeats can (the calibration is kept for later runs)."""
    delays = iter([0.2, 0.001, 0.001, 0.001, 0.001])

    def call() -> None:
        time.sleep(next(delays))

    assert profiles._median_seconds(call, budget=0.1) < 0.05
    calls = 0

    def slow() -> None:
        nonlocal calls
        calls += 1
        time.sleep(0.06)

    assert profiles._median_seconds(slow, budget=0.01) >= 0.06 and calls == 1
