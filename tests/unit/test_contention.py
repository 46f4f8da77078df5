"""How much of a compression estimate CPU work explains (and so what a codec change scales),
how many steps shared a host, inferred release triggers at a coarse clock, and calibration on
the farm's own NARs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from profiler.analyze.attribution import compressing_peak, cpu_contention
from profiler.analyze.gauges import peak_concurrency
from profiler.analyze.whatif import _recompressed, release_triggers
from profiler.bench import profiles
from profiler.bench.profiles import CodecProfile


def _steps(rows: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    """(machine, start, end, copy seconds) per step; the copy phase ends the step."""
    df = pd.DataFrame(rows, columns=["machine", "start_ts", "end_ts", "copy_s"])
    df["post_s"] = 0.0
    return df


def test_peak_concurrency_counts_per_host_and_not_back_to_back() -> None:
    start = pd.Series([0.0, 1.0, 1.0, 0.0, 0.5])
    end = pd.Series([1.0, 2.0, 3.0, 5.0, 4.0])
    host = pd.Series(["a", "a", "a", "b", "b"])
    # on a: [0,1) then [1,2) and [1,3): two at once, the first one ending as they start
    assert peak_concurrency(start, end, host) == 2
    assert peak_concurrency(start, end) == 4  # one host: at 1.0..2.0 four are open
    assert peak_concurrency(start, end, margin=0.6) == 3  # shrunk by the clock's uncertainty
    assert peak_concurrency(pd.Series([np.nan]), pd.Series([1.0])) == 0


def test_compressing_peak_is_per_builder_for_rust_and_the_runner_for_cxx() -> None:
    s = _steps([("b1", 0, 10, 2), ("b1", 1, 9, 2), ("b2", 0, 10, 2)])
    assert compressing_peak(s, "rust") == 2
    s["copy_start_ts"] = [8.0, 7.0, 8.5]
    s["copy_end_ts"] = [10.0, 9.0, 10.0]
    assert compressing_peak(s, "cxx") == 3  # 8.5..9.0: every copy phase on the runner


def test_a_step_alone_on_its_builder_has_no_contention() -> None:
    s = _steps([("b1", 0, 10, 2), ("b2", 0, 10, 2), ("b2", 0, 10, 2)])
    got = cpu_contention(s, "rust", None)
    assert got.iloc[0] == pytest.approx(1.0)
    assert got.iloc[1] == pytest.approx(2.0) and got.iloc[2] == pytest.approx(2.0)


def test_contention_is_the_mean_over_the_copy_phase() -> None:
    # the other step runs for half of the first one's copy phase (8..10): 1.5 on average
    s = _steps([("b1", 0, 10, 2), ("b1", 0, 9, 1)])
    assert cpu_contention(s, "rust", None).iloc[0] == pytest.approx(1.5)


def test_cxx_contention_is_copy_phases_over_the_runners_cores() -> None:
    s = _steps([("b1", 0, 10, 4), ("b2", 0, 10, 4), ("b3", 0, 10, 4), ("b4", 0, 10, 4)])
    assert cpu_contention(s, "cxx", 2).tolist() == pytest.approx([2.0] * 4)
    assert cpu_contention(s, "cxx", 8).tolist() == pytest.approx([1.0] * 4)
    assert cpu_contention(s, "cxx", None).isna().all()  # the runner's cores not known


def test_a_codec_change_scales_only_what_cpu_explains() -> None:
    old = CodecProfile("zstd:3", 1e-9, 0.3, "test")
    new = CodecProfile("xz:6", 1e-7, 0.25, "test")  # 100x the work a byte
    steps = pd.DataFrame(
        {"nar_bytes": [1e6, 1e6], "compress_s": [0.05, 0.05], "compress_cpu_s": [0.001, 0.05]}
    )
    out = _recompressed(steps, old, new)
    # step 0: 1 ms of CPU (100 ms with xz) and 49 ms of something else (kept)
    assert out["compress_s"].tolist() == pytest.approx([0.1 + 0.049, 5.0])
    legacy = _recompressed(steps.drop(columns="compress_cpu_s"), old, new)
    assert legacy["compress_s"].tolist() == pytest.approx([5.0, 5.0])


def test_a_truncated_release_still_finds_the_step_that_released_it() -> None:
    """Rust's startTime is whole seconds, truncated: a step released at 18.8 reads 18.0,
    before its trigger's end (18.7); the trigger is still the step that ended then."""
    keys = pd.Series(["a", "b", "c"])
    release = np.array([0.0, 18.0, 0.0])
    end = np.array([18.7, 21.0, 12.0])
    got = release_triggers(keys, release, end, 2 * 1.0 + 0.2)
    assert got == [[], ["a"], []]
    # a step that ended more than a resolution after the release did not release it
    assert release_triggers(keys, release, np.array([19.4, 21.0, 12.0]), 2.2)[1] == []


def _cache_with_nars(directory: Path, n: int) -> None:
    from profiler.codecs import make_codec, parse_spec
    from profiler.nar.dump import dump_bytes
    from profiler.testbed.cache import BinaryCache

    cache = BinaryCache(str(directory))
    codec = make_codec(parse_spec("zstd:3"))
    rng = np.random.default_rng(7)
    for i in range(n):
        tree = directory.parent / f"tree{i}"
        tree.mkdir()
        words = rng.choice([b"alpha ", b"beta ", b"gamma ", b"delta "], size=20000)
        (tree / "data").write_bytes(b"".join(words))
        nar = dump_bytes(str(tree))
        path = f"/nix/store/{'abcdfghijklmnpqr'[i] * 32}-t{i}"
        cache.add(path, nar, codec.compress(nar), codec, [], "/nix/store/x.drv")


def test_calibration_on_the_farms_nars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    profiles.calibrate.cache_clear()
    cache = tmp_path / "cache"
    _cache_with_nars(cache, 3)
    nars, what = profiles.cache_nars(str(cache))
    assert what.startswith("3 NARs of the farm's cache") and len(b"".join(nars)) > 3 * 100_000
    farm = profiles.profile_for("xz:6", {}, cache_dir=str(cache))
    assert farm is not None and "3 NARs of the farm's cache" in farm.source
    # four words repeated: xz packs these far better than the built-in corpus
    assert farm.ratio < 0.2
    # a damaged NAR is skipped, not fatal
    victim = sorted((cache / "nar").iterdir())[0]
    victim.write_bytes(b"\x28\xb5\x2f\xfd garbage")
    _, what = profiles.cache_nars(str(cache))
    assert what.startswith("2 NARs") and "1 unreadable skipped" in what
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "nix-cache-info").write_text("StoreDir: /nix/store\n")
    with pytest.raises(profiles.ProfilerError, match="calibration on the farm's NARs"):
        profiles.cache_nars(str(empty))
    profiles.calibrate.cache_clear()
    assert os.path.isfile(profiles.cache_path())


def test_cpu_pressure_on_a_rust_builder_counts_as_contention() -> None:
    """A builder whose tasks waited for a CPU half the copy phase (PSI cpu some total grew
    by 1 s over 2 s) slowed a CPU-bound thread about twice, alone on it or not."""
    s = _steps([("b1", 0, 10, 2)])
    psi = {"b1": (np.array([0.0, 8.0, 10.0]), np.array([100.0, 100.0, 101.0]))}
    assert cpu_contention(s, "rust", None, psi).iloc[0] == pytest.approx(2.0)
    calm = {"b1": (np.array([0.0, 10.0]), np.array([5.0, 5.0]))}
    assert cpu_contention(s, "rust", None, calm).iloc[0] == pytest.approx(1.0)
    # outside the samples' span nothing is known: the steps' own count stands
    late = {"b1": (np.array([20.0, 30.0]), np.array([5.0, 50.0]))}
    assert cpu_contention(s, "rust", None, late).iloc[0] == pytest.approx(1.0)


def test_a_per_byte_cost_far_beyond_a_slower_cpu_is_the_link() -> None:
    from profiler.analyze.attribution import SLOWDOWN_PRIOR, _cpu_plausible

    expected = pd.Series([1e-8, 1e-8])
    assert _cpu_plausible(2e-8, expected).tolist() == [1.0, 1.0]  # 2x: a slower CPU may
    assert _cpu_plausible(30e-8, expected).tolist() == pytest.approx([SLOWDOWN_PRIOR / 30] * 2)
    assert _cpu_plausible(float("nan"), expected).tolist() == [1.0, 1.0]


def test_a_step_ending_after_a_dispatch_did_not_release_it() -> None:
    """A dependency has ended before its dependant is dispatched: a step that ended 60 ms
    after the dependant started is not its trigger, though it ended within the release's
    resolution; of the steps that ended by the dispatch, the one nearest it is."""
    keys = pd.Series(["early", "dep", "late", "x"])
    end = np.array([3.0, 3.398, 3.46, 4.0])
    release = np.array([0.0, 0.0, 0.0, 3.25])  # the gauge says: between 3.0 and 3.5
    start = np.array([0.0, 0.0, 0.0, 3.40])
    got = release_triggers(keys, release, end, 2 * 0.25 + 0.2, start)
    assert got[3] == ["dep"]
    # without the dispatch times the latest end within the resolution is taken
    assert release_triggers(keys, release, end, 0.7)[3] == ["late"]
    # a trigger a clock skew (a few ms) after the dispatch still counts
    start_skewed = np.array([0.0, 0.0, 0.0, 3.396])
    assert release_triggers(keys, release, end, 0.7, start_skewed)[3] == ["dep"]


def test_journal_steps_take_nar_sizes_from_the_cache_narinfos(tmp_path: Path) -> None:
    from profiler.analyze.schema import StepTable
    from profiler.analyze.steps import with_cache_sizes

    cache = tmp_path / "cache"
    _cache_with_nars(cache, 3)
    sizes = {}
    for name in os.listdir(cache):
        if name.endswith(".narinfo"):
            fields = dict(
                line.split(": ", 1) for line in (cache / name).read_text().splitlines() if line
            )
            sizes[os.path.basename(fields["StorePath"])] = (
                int(fields["NarSize"]),
                int(fields["FileSize"]),
            )
    a, b, c = sorted(sizes)
    missing = "z" * 32 + "-not-in-the-cache"
    steps = pd.DataFrame(
        {
            "outputs": [f"{a} {b}", c, f"{c} {missing}", None, a],
            "nar_bytes": [np.nan, np.nan, np.nan, np.nan, 123.0],
            "compressed_bytes": [np.nan] * 4 + [45.0],
        }
    )
    out = with_cache_sizes(StepTable(steps, "rust"), str(cache))
    s = out.steps
    assert s["nar_bytes"][0] == sizes[a][0] + sizes[b][0]
    assert s["compressed_bytes"][0] == sizes[a][1] + sizes[b][1]
    assert s["nar_bytes"][1] == sizes[c][0]
    # a path the cache lacks: no partial sum; no outputs: nothing; a known size is kept
    assert np.isnan(s["nar_bytes"][2]) and np.isnan(s["nar_bytes"][3])
    assert (s["nar_bytes"][4], s["compressed_bytes"][4]) == (123.0, 45.0)
    assert any("NAR sizes of 2 of 3" in n for n in out.notes)
    # a narinfo naming another path (a hash collision in a damaged cache) is not taken
    (cache / f"{c[:32]}.narinfo").write_text((cache / f"{a[:32]}.narinfo").read_text())
    again = with_cache_sizes(StepTable(steps, "rust"), str(cache)).steps
    assert np.isnan(again["nar_bytes"][1])
    assert with_cache_sizes(StepTable(steps, "rust"), None).steps is steps


def test_a_codec_change_without_nar_sizes_keeps_the_set_up_cost() -> None:
    from profiler.analyze.whatif import implied_nar_bytes

    # zstd: 0.1 ms a call + 2 ns a byte; xz: 2 ms a call + 300 ns a byte
    old = CodecProfile("zstd:3", 2e-9, 0.3, "test", fixed_seconds=1e-4)
    new = CodecProfile("xz:6", 3e-7, 0.25, "test", fixed_seconds=2e-3)
    assert implied_nar_bytes(old, np.array([1e-4 + 2e-3, 5e-5, 0.0])) == pytest.approx(
        [1e6, 0.0, 0.0], rel=1e-3, abs=1.0
    )
    steps = pd.DataFrame({"nar_bytes": [np.nan, 1e6], "compress_s": [2.1e-3, 2.1e-3]})
    out = _recompressed(steps, old, new)
    # both a 1 MB NAR: xz 2 ms + 0.3 s; per-byte scaling alone said 2.1 ms x 150
    assert out["compress_s"].tolist() == pytest.approx([0.302, 0.302], rel=1e-3)


def test_fewer_local_workers_share_the_runners_cores_among_fewer_copies() -> None:
    from types import SimpleNamespace

    from profiler.analyze.whatif import _rescaled, uncontended

    # four copy phases at once on a 2-core runner: each compressed at half speed
    s = _steps([("b1", 0, 10, 4), ("b2", 0, 10, 4), ("b3", 0, 10, 4), ("b4", 0, 10, 4)])
    a: Any = SimpleNamespace(generation="cxx", runner_cores=(2, "test"), steps=s)
    assert uncontended(a, 1) == pytest.approx([0.5] * 4)  # alone: full speed
    assert uncontended(a, 2) == pytest.approx([0.5] * 4)  # two on two cores: full speed
    assert uncontended(a, 3) == pytest.approx([0.75] * 4)
    assert uncontended(a, 8) == pytest.approx([1.0] * 4)  # never more than were busy
    # cores unknown, or never oversubscribed: nothing to scale
    assert uncontended(SimpleNamespace(generation="cxx", runner_cores=(0, ""), steps=s), 1) is None
    assert uncontended(SimpleNamespace(generation="cxx", runner_cores=(8, ""), steps=s), 1) is None
    assert uncontended(SimpleNamespace(generation="rust", runner_cores=(2, ""), steps=s), 1) is None
    timed = pd.DataFrame({"compress_s": [2.0, 2.0], "compress_cpu_s": [1.0, np.nan]})
    # only the CPU part scales (without it, the whole estimate)
    assert _rescaled(timed, np.array([0.5, 0.5]))["compress_s"].tolist() == [1.5, 1.0]
