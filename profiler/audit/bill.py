"""What a cache's NARs cost as stored, and what they would cost with other codecs.

Figures per NAR size class and overall, from the audited sample: the ratio (sum FileSize
over sum NarSize: byte-weighted, as the bill is), storage and egress per NAR (the mean
FileSize: every download moves one object), the client's decoding CPU per NAR, and for
each codec measured here on the same NARs the same figures and the change against what is
stored. Intervals are 95% percentile bootstraps over the sampled NARs (resampled together,
so a projection's change is paired with the stored figure it is compared to); a class with
fewer than :data:`MIN_FOR_CI` NARs gets none, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from profiler.bench.derive import Assumptions

KiB, MiB = 1 << 10, 1 << 20
SIZE_CLASSES = (
    ("< 64 KiB", 0, 64 * KiB),
    ("64 KiB - 1 MiB", 64 * KiB, MiB),
    ("1 - 16 MiB", MiB, 16 * MiB),
    ("16 - 256 MiB", 16 * MiB, 256 * MiB),
    (">= 256 MiB", 256 * MiB, math.inf),
)
MIN_FOR_CI = 5
RESAMPLES = 2000
TB = 1e12


def size_class(nar_bytes: float) -> str:
    return next(name for name, lo, hi in SIZE_CLASSES if lo <= nar_bytes < hi)


@dataclass(frozen=True)
class Interval:
    value: float
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


def _boot(
    columns: list[np.ndarray], stat: object, rng: np.random.Generator
) -> tuple[float | None, float | None]:
    n = len(columns[0])
    if n < MIN_FOR_CI:
        return None, None
    idx = rng.integers(0, n, size=(RESAMPLES, n))
    values = stat(*(c[idx] for c in columns))  # type: ignore[operator]
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _ratio(num: np.ndarray, den: np.ndarray, rng: np.random.Generator) -> Interval:
    value = float(num.sum() / den.sum()) if den.sum() else math.nan
    low, high = _boot([num, den], lambda a, b: a.sum(axis=-1) / b.sum(axis=-1), rng)
    return Interval(value, low, high)


def _mean(x: np.ndarray, rng: np.random.Generator) -> Interval:
    low, high = _boot([x], lambda a: a.mean(axis=-1), rng)
    return Interval(float(x.mean()) if len(x) else math.nan, low, high)


def _group(rows: pd.DataFrame, codecs: list[str], rng: np.random.Generator) -> dict[str, object]:
    nar = rows["nar_size"].to_numpy(dtype=float)
    stored = rows["file_size"].to_numpy(dtype=float)
    cpu = rows["decompress_cpu_seconds"].to_numpy(dtype=float)
    out: dict[str, object] = {
        "nars": len(rows),
        "nar_bytes": int(nar.sum()),
        "file_bytes": int(stored.sum()),
        "ratio": _ratio(stored, nar, rng).as_dict(),
        "file_bytes_per_nar": _mean(stored, rng).as_dict(),
        "decompress_cpu_seconds_per_nar": _mean(cpu, rng).as_dict(),
        "decompress_mb_per_s": float(nar.sum() / cpu.sum() / 1e6) if cpu.sum() > 0 else None,
        "projections": {},
    }
    projections: dict[str, object] = {}
    for codec in codecs:
        col = f"{codec}|bytes"
        have = rows[col].notna() if col in rows else pd.Series(False, index=rows.index)
        if not have.any():
            continue
        sub = rows[have]
        p_bytes = sub[col].to_numpy(dtype=float)
        p_nar = sub["nar_size"].to_numpy(dtype=float)
        p_stored = sub["file_size"].to_numpy(dtype=float)
        p_cpu = sub[f"{codec}|decompress_cpu_seconds"].to_numpy(dtype=float)
        c_cpu = sub[f"{codec}|compress_cpu_seconds"].to_numpy(dtype=float)
        change = _ratio(p_bytes, p_stored, rng)
        projections[codec] = {
            "nars": len(sub),
            "ratio": _ratio(p_bytes, p_nar, rng).as_dict(),
            "bytes_vs_stored": Interval(
                change.value - 1,
                None if change.low is None else change.low - 1,
                None if change.high is None else change.high - 1,
            ).as_dict(),
            "decompress_cpu_seconds_per_nar": _mean(p_cpu, rng).as_dict(),
            "compress_cpu_seconds_per_gib": float(c_cpu.sum() / (p_nar.sum() / (1 << 30)))
            if p_nar.sum()
            else None,
        }
    out["projections"] = projections
    return out


def bill(
    rows: pd.DataFrame,
    codecs: list[str],
    *,
    listed: int | None = None,
    assumptions: Assumptions | None = None,
    seed: int = 0,
) -> dict[str, object]:
    """The bill of the audited NARs ``rows`` (one per NAR that was read and checked, with
    ``nar_size``, ``file_size``, ``decompress_cpu_seconds`` and, per codec in ``codecs``,
    ``<codec>|bytes``, ``<codec>|compress_cpu_seconds``, ``<codec>|decompress_cpu_seconds``).
    ``listed``: how many narinfos the cache holds (when its listing said), to scale the
    storage to the whole cache."""
    a = assumptions or Assumptions()
    rng = np.random.default_rng(seed)
    if rows.empty:
        return {"overall": None, "classes": [], "cache": None}
    classes = rows["nar_size"].map(size_class)
    overall = _group(rows, codecs, rng)
    per_class = []
    for name, _, _ in SIZE_CLASSES:
        sub = rows[classes == name]
        if len(sub):
            group = _group(sub, codecs, rng)
            group["class"] = name
            group["ci"] = len(sub) >= MIN_FOR_CI
            per_class.append(group)
    cache = None
    if listed:
        mean = _mean(rows["file_size"].to_numpy(dtype=float), rng)
        scale = [None if v is None else v * listed for v in (mean.low, mean.high)]
        total = Interval(mean.value * listed, scale[0], scale[1])
        cache = {
            "narinfos": listed,
            "stored_bytes_estimate": total.as_dict(),
            "usd_per_month_estimate": total.value / TB * a.storage_usd_per_tb_month,
            "storage_usd_per_tb_month": a.storage_usd_per_tb_month,
        }
    link = a.client_link_bits_per_second
    ov_mean = rows["file_size"].mean()
    overall["download_seconds_per_nar_at_link"] = float(ov_mean * 8 / link)
    overall["client_link_bits_per_second"] = link
    return {"overall": overall, "classes": per_class, "cache": cache}
