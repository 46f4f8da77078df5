"""From measured cells to what a Hydra operator decides with.

All functions are pure: DataFrames in, DataFrames out. Totals are byte-weighted (sum of
compressed bytes over sum of NAR bytes; sum of NAR bytes over sum of best seconds), so a
large payload counts for what it weighs, as it does in a cache.

The :class:`Assumptions` defaults come from ``reference/nar-and-compression.md`` §6:
cache.nixos.org grew by ~0.25 TiB of xz-compressed NARs a day (2023), i.e. about 1 TiB of
NAR a day at xz's ~0.25 ratio; S3 Standard lists at about $23 per TB-month; the Discourse
upgrade report downloaded at ~100 Mbit/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from profiler.units import mb_per_second

GiB = 1 << 30
BASELINE = "xz:6"
_OVERALL_COLUMNS = [
    "nar_bytes",
    "compressed_bytes",
    "ratio",
    "compress_mb_per_s",
    "decompress_mb_per_s",
]


@dataclass(frozen=True)
class Assumptions:
    """Farm figures the projections use; every one can be set from the command line."""

    daily_nar_bytes: float = float(1 << 40)
    storage_usd_per_tb_month: float = 23.0
    client_link_bits_per_second: float = 100e6
    uplink_bits_per_second: float = 1e9


def successful(rows: pd.DataFrame) -> pd.DataFrame:
    """The cells that have figures: no error and a compressed size.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per payload x codec cell, as the harness writes them.

    Returns
    -------
    pandas.DataFrame
        The successful rows, in their original order.
    """
    if "error" not in rows.columns or "compressed_bytes" not in rows.columns:
        return rows.iloc[0:0]
    error = rows["error"]
    failed = error.notna() & (error.astype("string").str.len() > 0)
    return rows[~failed & rows["compressed_bytes"].notna()]


def _speeds(nar: pd.Series, seconds: pd.Series) -> list[float]:
    return [mb_per_second(n, s) for n, s in zip(nar, seconds, strict=True)]


def overall(rows: pd.DataFrame) -> pd.DataFrame:
    """Byte-weighted figures per codec over its successful cells.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per payload x codec cell.

    Returns
    -------
    pandas.DataFrame
        Indexed by codec in first-appearance order, with columns ``nar_bytes`` and
        ``compressed_bytes`` (sums), ``ratio`` (sum compressed / sum NAR) and
        ``compress_mb_per_s`` / ``decompress_mb_per_s`` (sum NAR / sum best seconds / 1e6).
    """
    ok = successful(rows)
    if ok.empty:
        empty = pd.DataFrame(columns=_OVERALL_COLUMNS, dtype="float64")
        empty.index.name = "codec"
        return empty
    sums = ok.groupby("codec", sort=False)[
        ["nar_bytes", "compressed_bytes", "compress_best_seconds", "decompress_best_seconds"]
    ].sum()
    order = [c for c in pd.unique(rows["codec"]) if c in sums.index]
    sums = sums.loc[order]
    nar = sums["nar_bytes"].astype("int64")
    out = pd.DataFrame(
        {
            "nar_bytes": nar,
            "compressed_bytes": sums["compressed_bytes"].astype("int64"),
            "ratio": sums["compressed_bytes"] / nar,
            "compress_mb_per_s": [
                mb_per_second(n, s) for n, s in zip(nar, sums["compress_best_seconds"], strict=True)
            ],
            "decompress_mb_per_s": [
                mb_per_second(n, s)
                for n, s in zip(nar, sums["decompress_best_seconds"], strict=True)
            ],
        },
        index=sums.index,
    )
    out.index.name = "codec"
    g = ok.groupby("codec", sort=False)
    for phase in ("compress", "decompress"):  # present in harness rows, optional otherwise
        if f"{phase}_cpu_seconds" in ok:
            cpu = g[f"{phase}_cpu_seconds"].sum()
            out[f"{phase}_cpu_seconds_per_gib"] = cpu / (nar / GiB)
        if f"{phase}_peak_bytes" in ok:
            out[f"{phase}_peak_bytes"] = g[f"{phase}_peak_bytes"].max()
    if "threads" in ok:
        out["threads"] = g["threads"].max()
    return out


def class_ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Byte-weighted ratio per payload class (rows) and codec (columns).

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per payload x codec cell.

    Returns
    -------
    pandas.DataFrame
        ``sum compressed / sum NAR`` within each class; both axes in first-appearance order;
        NaN where a codec has no successful cell in a class.
    """
    ok = successful(rows)
    sums = ok.groupby(["class", "codec"], sort=False)[["nar_bytes", "compressed_bytes"]].sum()
    ratio = (sums["compressed_bytes"] / sums["nar_bytes"]).unstack("codec")
    classes = [c for c in pd.unique(rows["class"]) if c in ratio.index]
    codecs = [c for c in pd.unique(rows["codec"]) if c in ratio.columns]
    return ratio.reindex(index=classes, columns=codecs).astype("float64")


def pareto_codecs(table: pd.DataFrame) -> list[str]:
    """The codecs no other codec beats on both ratio and compression speed.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`overall`'s table (index codec; columns ``ratio``, ``compress_mb_per_s``).

    Returns
    -------
    list of str
        Codecs for which no other has ratio <= and speed >= with one of them strict, ordered
        by compression speed, slowest first. Codecs with a missing figure are left out.
    """
    points = [
        (str(codec), float(r), float(s))
        for codec, r, s in zip(table.index, table["ratio"], table["compress_mb_per_s"], strict=True)
        if not (math.isnan(r) or math.isnan(s))
    ]
    front = [
        (codec, r, s)
        for codec, r, s in points
        if not any(r2 <= r and s2 >= s and (r2 < r or s2 > s) for _, r2, s2 in points)
    ]
    front.sort(key=lambda p: (p[2], p[1]))
    return [codec for codec, _, _ in front]


def baseline_codec(table: pd.DataFrame) -> str:
    """xz:6 when measured (the codec cache.nixos.org used until 2026), else the first."""
    return BASELINE if BASELINE in table.index else str(table.index[0])


def operator_view(table: pd.DataFrame, a: Assumptions) -> pd.DataFrame:
    """What each codec means for the farm, per codec.

    Columns: size_vs_baseline, compress_speed_vs_baseline, cpu_hours_per_day (compression
    of ``daily_nar_bytes``), cores_busy, stored_tb_per_month (new compressed data a month),
    storage_usd_per_month (what that month's data costs each month it is kept),
    client_seconds_per_gib (download at the client link + decompress, per GiB of NAR),
    upload_seconds_per_gib (compress + send at the builder uplink), pareto (bool).
    ``compress_and_upload_seconds_per_gib`` and ``download_and_decompress_seconds_per_gib``
    repeat the last two under names that say what they add up (the old names are kept for
    the readers of earlier results).
    """
    base = table.loc[baseline_codec(table)]
    daily_gib = a.daily_nar_bytes / GiB
    stored_tb = a.daily_nar_bytes * 30 * table["ratio"] / 1e12
    cpu_hours = daily_gib * table["compress_cpu_seconds_per_gib"] / 3600
    out = pd.DataFrame(
        {
            "size_vs_baseline": table["ratio"] / base["ratio"],
            "compress_speed_vs_baseline": table["compress_mb_per_s"] / base["compress_mb_per_s"],
            "cpu_hours_per_day": cpu_hours,
            "cores_busy": cpu_hours / 24,
            "stored_tb_per_month": stored_tb,
            "storage_usd_per_month": stored_tb * a.storage_usd_per_tb_month,
            "client_seconds_per_gib": GiB * table["ratio"] * 8 / a.client_link_bits_per_second
            + GiB / (table["decompress_mb_per_s"] * 1e6),
            "upload_seconds_per_gib": GiB / (table["compress_mb_per_s"] * 1e6)
            + GiB * table["ratio"] * 8 / a.uplink_bits_per_second,
        },
        index=table.index,
    )
    out["compress_and_upload_seconds_per_gib"] = out["upload_seconds_per_gib"]
    out["download_and_decompress_seconds_per_gib"] = out["client_seconds_per_gib"]
    out["pareto"] = out.index.isin(pareto_codecs(table))
    return out


def per_class(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`class_ratios` with a first ``nar_bytes`` column and an ``all`` row."""
    ok = successful(rows)
    table = class_ratios(rows)
    payload_bytes = ok.drop_duplicates(["payload"])
    table.insert(0, "nar_bytes", payload_bytes.groupby("class", sort=False)["nar_bytes"].sum())
    table.loc["all"] = [payload_bytes["nar_bytes"].sum(), *overall(rows)["ratio"]]
    return table
