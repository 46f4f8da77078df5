"""Compare two bench results codec by codec: is candidate B faster, slower or the same as A?

For each (codec, phase) measured in both results, only the payloads measured in both count.
Every timed run is divided by A's median wall time for its payload, so small and large
payloads pool into one sample per side; a two-sided Mann-Whitney U test on the two pools
says whether the difference is real, and the geometric mean over payloads of
``median(B) / median(A)`` says how big it is. A change is reported only when it is both
significant (``p < alpha``) and large enough (``|change| > min_change``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from profiler.units import format_share

EXACT_MAX_PAIRS = 400  # n1 * n2 up to this (and no ties): exact U distribution
MIN_SAMPLES = 3  # fewer runs per side than this: the test has little power

_COLUMNS = ("payload", "codec", "phase", "wall_seconds")


class HasSamples(Protocol):
    """A bench result: anything with a ``samples`` table (one row per timed run)."""

    @property
    def samples(self) -> pd.DataFrame | Sequence[dict[str, Any]]:
        """One row per timed run."""
        ...


Samples = pd.DataFrame | HasSamples


@dataclass(frozen=True)
class CodecComparison:
    """How candidate B compares with baseline A for one codec and phase.

    Attributes
    ----------
    codec, phase
        The codec label (``"xz:6"``) and ``"compress"`` or ``"decompress"``.
    payloads
        Number of payloads measured in both results.
    change
        Geometric mean over those payloads of ``median(B) / median(A)`` wall time, minus 1
        (negative: B is faster); NaN when there is nothing to compare.
    p_value
        Two-sided Mann-Whitney U p-value of the pooled, normalised runs (NaN as above).
    verdict
        ``"faster"``, ``"slower"`` or ``"same"``.
    note
        Why the verdict is ``"same"``, and power warnings; empty otherwise.
    """

    codec: str
    phase: str
    payloads: int
    change: float
    p_value: float
    verdict: str
    note: str


# --- the test ------------------------------------------------------------------------


def _as_sample(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _midranks(values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], list[int]]:
    """Ranks 1..n of ``values`` (ties get their average rank) and the sizes of tie groups."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    ties: list[int] = []
    start = 0
    while start < values.size:
        end = start + 1
        while end < values.size and ordered[end] == ordered[start]:
            end += 1
        ranks[order[start:end]] = (start + 1 + end) / 2.0  # mean of ranks start+1 .. end
        if end - start > 1:
            ties.append(end - start)
        start = end
    return ranks, ties


def _u_distribution(n1: int, n2: int) -> list[int]:
    """Number of arrangements of ``n1`` x's and ``n2`` y's giving each U = 0 .. n1*n2.

    ``f(i, j, u) = f(i - 1, j, u - j) + f(i, j - 1, u)``: the largest of the ``i + j`` values
    is either an x (beating all ``j`` y's) or a y (beating nothing).
    """
    prev = [[1] for _ in range(n2 + 1)]  # i = 0: U is always 0
    for i in range(1, n1 + 1):
        row = [[1]]  # j = 0: U is always 0
        for j in range(1, n2 + 1):
            counts = [0] * (i * j + 1)
            for u, c in enumerate(prev[j]):  # largest is an x: shift by j
                counts[u + j] += c
            for u, c in enumerate(row[j - 1]):  # largest is a y
                counts[u] += c
            row.append(counts)
        prev = row
    return prev[n2]


def _exact_p(u: float, n1: int, n2: int) -> float:
    counts = _u_distribution(n1, n2)
    k = round(u)
    total = sum(counts)
    tail = min(sum(counts[: k + 1]), sum(counts[k:]))
    return min(1.0, 2.0 * tail / total)


def _normal_p(u: float, n1: int, n2: int, ties: list[int]) -> float:
    n = n1 + n2
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1)) if n > 1 else 0.0
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if variance <= 0.0:  # every value equal: no evidence of any difference
        return 1.0
    z = max(0.0, abs(u - n1 * n2 / 2.0) - 0.5) / math.sqrt(variance)
    return min(1.0, math.erfc(z / math.sqrt(2.0)))


def mann_whitney_u(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test of ``x`` against ``y``.

    Small samples without ties (``len(x) * len(y) <= 400``) get the exact p-value from
    the U distribution; otherwise the normal approximation is used, with tie and
    continuity corrections.

    Parameters
    ----------
    x, y
        One-dimensional, non-empty samples of finite numbers.

    Returns
    -------
    tuple of float
        ``U`` for ``x`` (pairs with ``x > y``, ties counting half) and the p-value.
    """
    xs, ys = _as_sample(x, "x"), _as_sample(y, "y")
    n1, n2 = xs.size, ys.size
    ranks, ties = _midranks(np.concatenate([xs, ys]))
    u = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2.0
    if not ties and n1 * n2 <= EXACT_MAX_PAIRS:
        return u, _exact_p(u, n1, n2)
    return u, _normal_p(u, n1, n2, ties)


# --- comparing results -----------------------------------------------------------------


def _frame(result: Samples) -> pd.DataFrame:
    samples = result if isinstance(result, pd.DataFrame) else result.samples
    frame = pd.DataFrame(samples)
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing and not frame.empty:
        raise ValueError(f"samples lack column(s) {', '.join(missing)}")
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in _COLUMNS})
    frame = frame.loc[:, list(_COLUMNS)]
    frame["wall_seconds"] = pd.to_numeric(frame["wall_seconds"], errors="coerce")
    return frame[np.isfinite(frame["wall_seconds"].to_numpy(dtype=np.float64))]


def _ordered(values: pd.Series) -> list[str]:
    return [str(v) for v in dict.fromkeys(values.tolist())]


def _power_note(n_a: int, n_b: int, alpha: float) -> str:
    """A warning when the pools are too small for the test to detect anything."""
    # the most extreme arrangement under the exact test: 2 / C(n_a + n_b, n_a)
    log_comb = math.lgamma(n_a + n_b + 1) - math.lgamma(n_a + 1) - math.lgamma(n_b + 1)
    best_p = min(1.0, 2.0 * math.exp(-log_comb))
    if min(n_a, n_b) < MIN_SAMPLES or best_p >= alpha:
        return (
            f"only {n_a} vs {n_b} runs: the test has little power "
            f"(smallest possible p={best_p:.3g})"
        )
    return ""


def _compare_cell(
    codec: str, phase: str, a: pd.DataFrame, b: pd.DataFrame, alpha: float, min_change: float
) -> CodecComparison:
    med_a = a.groupby("payload")["wall_seconds"].median()
    med_b = b.groupby("payload")["wall_seconds"].median()
    common = [p for p in med_a.index if p in med_b.index and med_a[p] > 0 and med_b[p] > 0]
    if not common:
        return CodecComparison(
            codec, phase, 0, math.nan, math.nan, "same", "no payload measured in both"
        )
    scale = med_a[common]
    a_norm = a[a["payload"].isin(common)]
    b_norm = b[b["payload"].isin(common)]
    x = (a_norm["wall_seconds"] / a_norm["payload"].map(scale)).to_numpy(dtype=np.float64)
    y = (b_norm["wall_seconds"] / b_norm["payload"].map(scale)).to_numpy(dtype=np.float64)
    log_ratio = np.log(med_b[common].to_numpy(dtype=np.float64) / scale.to_numpy(np.float64))
    change = math.expm1(float(log_ratio.mean()))
    _, p = mann_whitney_u(x, y)
    notes: list[str] = []
    if p < alpha and change < -min_change:
        verdict = "faster"
    elif p < alpha and change > min_change:
        verdict = "slower"
    else:
        verdict = "same"
        if p < alpha:
            notes.append(f"significant but below {min_change * 100:g}% change")
        else:
            notes.append(f"not significant (p={p:.3g})")
        power = _power_note(x.size, y.size, alpha)
        if power:
            notes.append(power)
    return CodecComparison(codec, phase, len(common), change, p, verdict, "; ".join(notes))


def compare_samples(
    a: Samples, b: Samples, alpha: float = 0.05, min_change: float = 0.02
) -> list[CodecComparison]:
    """Compare candidate ``b`` with baseline ``a`` for every (codec, phase) in both.

    Parameters
    ----------
    a, b
        Baseline and candidate: a samples table (payload, codec, phase, run, wall_seconds,
        cpu_seconds) or a result holding one as ``samples``.
    alpha
        Significance level of the Mann-Whitney U test.
    min_change
        Smallest relative change in wall time worth calling faster or slower.

    Returns
    -------
    list of CodecComparison
        In the order the (codec, phase) pairs first appear in ``a``.
    """
    fa, fb = _frame(a), _frame(b)
    groups_b = dict(list(fb.groupby(["codec", "phase"], sort=False)))
    out = []
    for key, cell_a in fa.groupby(["codec", "phase"], sort=False):
        if key in groups_b:
            codec, phase = (str(k) for k in key)
            out.append(_compare_cell(codec, phase, cell_a, groups_b[key], alpha, min_change))
    return out


def unmatched(a: Samples, b: Samples) -> list[str]:
    """Codecs measured in only one of ``a`` and ``b``: ``"xz:6 (only in A)"`` and so on."""
    codecs_a, codecs_b = _ordered(_frame(a)["codec"]), _ordered(_frame(b)["codec"])
    return [f"{c} (only in A)" for c in codecs_a if c not in codecs_b] + [
        f"{c} (only in B)" for c in codecs_b if c not in codecs_a
    ]


def _percent(change: float) -> str:
    return format_share(change, signed=True, missing="n/a")


def _p_text(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.3g}"


def format_comparison(results: Sequence[CodecComparison]) -> str:
    """A plain-text table: codec, phase, payloads, change, p, verdict (and any note)."""
    header = ("codec", "phase", "payloads", "change", "p", "verdict")
    rows = [
        (r.codec, r.phase, str(r.payloads), _percent(r.change), _p_text(r.p_value), r.verdict)
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4}  # numbers are right-aligned

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [line(header), line(["-" * w for w in widths])]
    for row, result in zip(rows, results, strict=True):
        lines.append(line(row) + (f"  ({result.note})" if result.note else ""))
    return "\n".join(lines)
