"""The Mann-Whitney U test and the A/B comparison of bench results."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiler.bench.compare import (
    CodecComparison,
    compare_samples,
    format_comparison,
    mann_whitney_u,
    unmatched,
)

# --- mann_whitney_u: exact small samples -------------------------------------------------


def brute_force_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided exact p by enumerating every way to split the pooled values (no ties)."""
    pooled = [*x, *y]

    def u_of(xs: Sequence[float], ys: Sequence[float]) -> int:
        return sum(1 for a in xs for b in ys if a > b)

    observed = u_of(x, y)
    us = []
    for chosen in itertools.combinations(range(len(pooled)), len(x)):
        xs = [pooled[i] for i in chosen]
        ys = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        us.append(u_of(xs, ys))
    low = sum(1 for u in us if u <= observed) / len(us)
    high = sum(1 for u in us if u >= observed) / len(us)
    return min(1.0, 2 * min(low, high))


def test_exact_three_against_three() -> None:
    u, p = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert u == 0
    assert p == pytest.approx(0.1)


def test_exact_five_against_five() -> None:
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert u == 0
    assert p == pytest.approx(2 / 252)
    assert p == pytest.approx(0.00794, abs=1e-5)


def test_exact_u_counts_pairs_where_x_is_larger() -> None:
    u, p = mann_whitney_u([4, 5, 6], [1, 2, 3])
    assert u == 9
    assert p == pytest.approx(0.1)


def test_exact_textbook_example() -> None:
    # 7 of the C(9, 4) = 126 splits give U >= 17, so p = 2 * 7 / 126
    u, p = mann_whitney_u([19, 22, 16, 29, 24], [20, 11, 17, 12])
    assert u == 17
    assert p == pytest.approx(14 / 126)


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1.0], [2.0]),
        ([1.5, 9.0], [3.0, 4.0, 5.0]),
        ([0.1, 0.4, 0.35, 0.8], [0.2, 0.3, 0.5, 0.6, 0.7]),
        ([3.0, 1.0, 7.0, 9.0, 11.0, 2.0], [4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 13.0]),
        ([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0], [1.0, 2.0, 3.0, 15.0]),
    ],
)
def test_exact_matches_brute_force(x: list[float], y: list[float]) -> None:
    u, p = mann_whitney_u(x, y)
    assert u == sum(1 for a in x for b in y if a > b)
    assert p == pytest.approx(brute_force_p(x, y))


def test_single_values_give_p_one() -> None:
    assert mann_whitney_u([1.0], [2.0]) == (0.0, 1.0)


# --- mann_whitney_u: normal approximation ------------------------------------------------


def normal_p_by_formula(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """U and p from the textbook formulas, written out independently of the module."""
    pooled = [*x, *y]
    n1, n2, n = len(x), len(y), len(x) + len(y)

    def rank(v: float) -> float:
        below = sum(1 for w in pooled if w < v)
        equal = sum(1 for w in pooled if w == v)
        return below + (equal + 1) / 2

    u = sum(rank(v) for v in x) - n1 * (n1 + 1) / 2
    tie_sum = sum(t**3 - t for t in Counter(pooled).values())
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_sum / (n * (n - 1))))
    z = (abs(u - n1 * n2 / 2) - 0.5) / sigma
    return u, math.erfc(z / math.sqrt(2))


def test_normal_approximation_with_ties() -> None:
    x = [1, 2, 2, 3, 3, 3, 4, 4, 5, 6, 6, 7]
    y = [3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10]
    expected_u, expected_p = normal_p_by_formula(x, y)
    u, p = mann_whitney_u(x, y)
    assert u == pytest.approx(expected_u)
    assert p == pytest.approx(expected_p, rel=1e-12)
    assert 0.001 < p < 0.05  # a real but not overwhelming shift


def test_normal_approximation_for_large_untied_samples() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, 25).tolist()
    y = rng.normal(0.4, 1.0, 30).tolist()  # 25 * 30 > 400 pairs: no exact test
    expected_u, expected_p = normal_p_by_formula(x, y)
    u, p = mann_whitney_u(x, y)
    assert u == pytest.approx(expected_u)
    assert p == pytest.approx(expected_p, rel=1e-12)


def test_ties_force_the_normal_approximation() -> None:
    x, y = [1, 2, 2, 3], [2, 4, 5, 6]
    assert mann_whitney_u(x, y)[1] == pytest.approx(normal_p_by_formula(x, y)[1])


def test_all_values_equal_gives_p_one() -> None:
    assert mann_whitney_u([2.0] * 5, [2.0] * 7) == (17.5, 1.0)


# --- mann_whitney_u: symmetry and input checks ------------------------------------------


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1, 2, 3], [4, 5, 6]),
        ([19, 22, 16, 29, 24], [20, 11, 17, 12]),
        ([1, 2, 2, 3, 3, 3, 4], [3, 4, 4, 5, 5, 6]),
    ],
)
def test_swapping_samples_keeps_p(x: list[float], y: list[float]) -> None:
    u_xy, p_xy = mann_whitney_u(x, y)
    u_yx, p_yx = mann_whitney_u(y, x)
    assert p_xy == pytest.approx(p_yx)
    assert u_xy + u_yx == pytest.approx(len(x) * len(y))


@given(
    st.lists(st.integers(0, 20), min_size=1, max_size=25),
    st.lists(st.integers(0, 20), min_size=1, max_size=25),
)
def test_symmetry_and_range_property(x: list[int], y: list[int]) -> None:
    u_xy, p_xy = mann_whitney_u(x, y)
    u_yx, p_yx = mann_whitney_u(y, x)
    assert 0.0 <= p_xy <= 1.0
    assert p_xy == pytest.approx(p_yx)
    assert u_xy + u_yx == pytest.approx(len(x) * len(y))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([], [1.0], "x is empty"),
        ([1.0], [], "y is empty"),
        ([1.0, math.nan], [2.0], "NaN"),
        ([[1.0, 2.0]], [3.0], "one-dimensional"),
    ],
)
def test_bad_input_is_refused(x: object, y: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mann_whitney_u(x, y)  # type: ignore[arg-type]


# --- compare_samples -----------------------------------------------------------------------

PAYLOAD_SECONDS = {"small": 0.004, "medium": 0.05, "large": 0.6, "huge": 3.0}


def make_samples(
    seed: int,
    codecs: dict[str, float],
    runs: int = 5,
    noise: float = 0.01,
    payloads: dict[str, float] | None = None,
    phases: tuple[str, ...] = ("compress", "decompress"),
) -> pd.DataFrame:
    """Samples for each codec: base time x factor x lognormal noise, per payload and run."""
    rng = np.random.default_rng(seed)
    rows = []
    for codec, factor in codecs.items():
        for phase in phases:
            for payload, seconds in (payloads or PAYLOAD_SECONDS).items():
                for run in range(runs):
                    wall = seconds * factor * float(rng.lognormal(0.0, noise))
                    rows.append(
                        {
                            "payload": payload,
                            "codec": codec,
                            "phase": phase,
                            "run": run,
                            "wall_seconds": wall,
                            "cpu_seconds": wall,
                        }
                    )
    return pd.DataFrame(rows)


def by_key(results: list[CodecComparison]) -> dict[tuple[str, str], CodecComparison]:
    return {(r.codec, r.phase): r for r in results}


def test_twenty_percent_slower() -> None:
    a = make_samples(1, {"xz:6": 1.0})
    b = make_samples(2, {"xz:6": 1.2})
    results = compare_samples(a, b)
    assert [(r.codec, r.phase) for r in results] == [("xz:6", "compress"), ("xz:6", "decompress")]
    for r in results:
        assert r.verdict == "slower"
        assert r.payloads == 4
        assert r.change == pytest.approx(0.20, abs=0.03)
        assert r.p_value < 1e-6
        assert r.note == ""


def test_identical_distributions_are_the_same() -> None:
    a = make_samples(3, {"zstd:19": 1.0})
    b = make_samples(4, {"zstd:19": 1.0})
    for r in compare_samples(a, b):
        assert r.verdict == "same"
        assert abs(r.change) < 0.02
        assert r.note


def test_ten_percent_faster() -> None:
    a = make_samples(5, {"zstd:3": 1.0})
    b = make_samples(6, {"zstd:3": 0.9})
    for r in compare_samples(a, b):
        assert r.verdict == "faster"
        assert r.change == pytest.approx(-0.10, abs=0.03)


def test_each_codec_and_phase_judged_separately() -> None:
    a = make_samples(7, {"xz:6": 1.0, "zstd:3": 1.0})
    b = pd.concat(
        [
            make_samples(8, {"xz:6": 1.2}, phases=("compress",)),
            make_samples(9, {"xz:6": 1.0}, phases=("decompress",)),
            make_samples(10, {"zstd:3": 0.8}),
        ]
    )
    verdicts = {k: r.verdict for k, r in by_key(compare_samples(a, b)).items()}
    assert verdicts == {
        ("xz:6", "compress"): "slower",
        ("xz:6", "decompress"): "same",
        ("zstd:3", "compress"): "faster",
        ("zstd:3", "decompress"): "faster",
    }


def test_not_significant_note() -> None:
    a = make_samples(11, {"xz:6": 1.0}, noise=0.2, phases=("compress",))
    b = make_samples(12, {"xz:6": 1.0}, noise=0.2, phases=("compress",))
    (r,) = compare_samples(a, b)
    assert r.verdict == "same"
    assert r.p_value >= 0.05
    assert r.note.startswith(f"not significant (p={r.p_value:.3g})")


def test_significant_but_small_change_is_same() -> None:
    a = make_samples(13, {"xz:6": 1.0}, noise=0.001, runs=10, phases=("compress",))
    b = make_samples(14, {"xz:6": 1.01}, noise=0.001, runs=10, phases=("compress",))
    (r,) = compare_samples(a, b)
    assert r.p_value < 0.05
    assert r.change == pytest.approx(0.01, abs=0.003)
    assert r.verdict == "same"
    assert r.note == "significant but below 2% change"


def test_few_runs_have_little_power() -> None:
    one = {"only": 1.0}
    a = make_samples(15, {"xz:6": 1.0}, runs=2, payloads=one, phases=("compress",))
    b = make_samples(16, {"xz:6": 2.0}, runs=2, payloads=one, phases=("compress",))
    (r,) = compare_samples(a, b)
    assert r.change == pytest.approx(1.0, abs=0.05)
    assert r.verdict == "same"  # 2 vs 2 runs can never reach p < 0.05
    assert "little power" in r.note


def test_only_common_payloads_count() -> None:
    a = make_samples(17, {"xz:6": 1.0}, phases=("compress",))
    b = make_samples(18, {"xz:6": 1.2}, phases=("compress",))
    b = b[b["payload"].isin(["small", "large"])]
    extra = make_samples(19, {"xz:6": 5.0}, payloads={"new": 1.0}, phases=("compress",))
    (r,) = compare_samples(a, pd.concat([b, extra]))
    assert r.payloads == 2
    assert r.change == pytest.approx(0.20, abs=0.03)


def test_no_common_payload() -> None:
    a = make_samples(20, {"xz:6": 1.0}, payloads={"p1": 1.0}, phases=("compress",))
    b = make_samples(21, {"xz:6": 1.0}, payloads={"p2": 1.0}, phases=("compress",))
    (r,) = compare_samples(a, b)
    assert r.payloads == 0
    assert math.isnan(r.change) and math.isnan(r.p_value)
    assert r.verdict == "same"
    assert "no payload" in r.note


@dataclass(frozen=True)
class FakeResult:
    samples: pd.DataFrame


def test_accepts_results_holding_samples() -> None:
    a = FakeResult(make_samples(22, {"xz:6": 1.0}))
    b = FakeResult(make_samples(23, {"xz:6": 1.2}))
    assert {r.verdict for r in compare_samples(a, b)} == {"slower"}


def test_codec_only_on_one_side_is_unmatched() -> None:
    a = make_samples(24, {"xz:6": 1.0, "bzip2:9": 1.0})
    b = make_samples(25, {"xz:6": 1.0, "zstd:19": 1.0})
    assert unmatched(a, b) == ["bzip2:9 (only in A)", "zstd:19 (only in B)"]
    assert {r.codec for r in compare_samples(a, b)} == {"xz:6"}
    assert unmatched(a, a) == []


# --- format_comparison -------------------------------------------------------------------


def test_format_comparison_table() -> None:
    results = [
        CodecComparison("xz:6", "compress", 4, -0.1234, 0.0001, "faster", ""),
        CodecComparison("zstd:19", "decompress", 3, 0.005, 0.4, "same", "not significant (p=0.4)"),
        CodecComparison("gzip:9", "compress", 0, math.nan, math.nan, "same", "no payload"),
    ]
    lines = format_comparison(results).splitlines()
    assert lines[0].split() == ["codec", "phase", "payloads", "change", "p", "verdict"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["xz:6", "compress", "4", "-12.3%", "0.0001", "faster"]
    assert lines[3].split()[:6] == ["zstd:19", "decompress", "3", "+0.5%", "0.4", "same"]
    assert "not significant (p=0.4)" in lines[3]
    assert lines[4].split()[:6] == ["gzip:9", "compress", "0", "n/a", "n/a", "same"]
    assert all(len(line) <= 100 for line in lines)


def test_format_comparison_of_nothing() -> None:
    assert format_comparison([]).splitlines()[0].split()[0] == "codec"
