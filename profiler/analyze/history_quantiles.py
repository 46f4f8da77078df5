"""Exact wall-time quantiles per group over the history engine's ``split`` with bounded memory.

DuckDB's ``quantile`` aggregates hold every value of a group in memory, and a window over
``row_number()`` holds the whole partition: at 100M steps the overall quantiles alone ran out
of a 2GB limit (``benchmarks/history.py``). Quantiles are instead found by refinement:

1. one grouped scan counts each group's values per *bucket*, a monotone function of the
   value (``BUCKET_SQL``: 256 buckets per doubling, so each whole second below about 6
   minutes has its own), with the bucket's minimum and maximum;
2. the counts locate the bucket holding each rank a quantile needs; a bucket whose minimum
   equals its maximum gives the value at once (BuildSteps' times are whole seconds, so most
   do);
3. only the values of the remaining buckets are read, sorted, and the rank picked.

Each scan is a hash aggregate or a filter, which DuckDB spills; what Python holds is one row
per occupied (group, bucket) and the values of a few buckets. The quantiles are pandas'
(linear between the ranks around ``q x (n - 1)``), checked equal to the in-memory engine's
(tests/integration/test_history.py, tests/unit/test_history_quantiles.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

QUANTILES = (0.5, 0.9, 0.99)
VALID = "wall_s IS NOT NULL AND NOT isnan(wall_s)"
# monotone non-decreasing in wall_s (so ranks keep their order), finite for every finite value
BUCKET_SQL = "CAST(sign(wall_s) * floor(log2(abs(wall_s) + 1) * 256) AS BIGINT)"


def _histogram_sql(key: str) -> str:
    return (
        f"SELECT {key} AS g, {BUCKET_SQL} AS b, count(*) AS c, "
        f"min(wall_s) AS lo, max(wall_s) AS hi FROM split WHERE {VALID} GROUP BY ALL"
    )


def _values_sql(key: str) -> str:
    return (
        f"SELECT w.code, s.b, s.wall_s FROM (SELECT {key} AS g, {BUCKET_SQL} AS b, wall_s "
        f"FROM split WHERE {VALID}) s JOIN wanted w "
        "ON s.g IS NOT DISTINCT FROM w.g AND s.b = w.b"
    )


def _ranks(hist: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The groups (``g``, ``n``) in pandas' order, and for each group, quantile and side
    (the two ranks around ``q x (n - 1)``, in that order) the bucket the rank falls in:
    its group code, ``b``, ``lo``, ``hi``, and the rank's ``offset`` within it."""
    hist = hist.sort_values(["g", "b"], na_position="last", kind="stable").reset_index(drop=True)
    codes, uniques = pd.factorize(hist["g"], use_na_sentinel=False)
    hist["code"] = codes
    after = hist.groupby("code", sort=False)["c"].cumsum().to_numpy()
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(hist)]
    n = after[ends - 1]
    count_of = hist["c"].to_numpy()
    rows: list[int] = []
    offsets: list[int] = []
    fracs: list[float] = []
    for start, end, count in zip(starts, ends, n, strict=True):
        for q in QUANTILES:
            pos = q * (count - 1)
            fracs.append(float(pos - np.floor(pos)))
            for rank in (int(np.floor(pos)), int(np.ceil(pos))):
                row = start + int(np.searchsorted(after[start:end], rank, side="right"))
                rows.append(int(row))
                offsets.append(rank - int(after[row] - count_of[row]))
    picked = hist.iloc[rows][["code", "b", "lo", "hi"]].reset_index(drop=True)
    picked["offset"] = offsets
    groups = pd.DataFrame(
        {"g": uniques, "n": n, "frac": np.reshape(fracs, (-1, len(QUANTILES))).tolist()}
    )
    return groups, picked


def quantiles(con: Any, key: str) -> pd.DataFrame:
    """Per group of the SQL expression ``key`` over ``split``, ``wall_p50_s``, ``wall_p90_s``
    and ``wall_p99_s``, indexed by the group in pandas' order (missing last; empty without
    values)."""
    hist = con.execute(_histogram_sql(key)).fetch_df()
    columns = [f"wall_p{round(q * 100)}_s" for q in QUANTILES]
    if hist.empty:
        return pd.DataFrame(columns=columns)
    groups, picked = _ranks(hist)
    value = picked["lo"].where(picked["lo"] == picked["hi"]).to_numpy(dtype=float, copy=True)
    open_ = np.flatnonzero(np.isnan(value))
    if len(open_):
        wanted = picked.iloc[open_][["code", "b"]].drop_duplicates()
        wanted.insert(0, "g", groups["g"].to_numpy()[wanted["code"].to_numpy()])
        con.register("wanted", wanted)
        try:
            values = con.execute(_values_sql(key)).fetch_df()
        finally:
            con.unregister("wanted")
        values = values.sort_values(["code", "b", "wall_s"], kind="stable")
        bucket = {
            (int(c), int(b)): part.to_numpy()
            for (c, b), part in values.groupby(["code", "b"], sort=False)["wall_s"]
        }
        for i in open_:
            value[i] = bucket[(int(picked["code"].iloc[i]), int(picked["b"].iloc[i]))][
                int(picked["offset"].iloc[i])
            ]
    pairs = value.reshape(len(groups), len(QUANTILES), 2)
    frac = np.array(groups["frac"].tolist(), dtype=float)
    lo, hi = pairs[..., 0], pairs[..., 1]
    out = pd.DataFrame(lo + (hi - lo) * frac, columns=columns)
    out.index = pd.Index(groups["g"], name=None)
    return out
