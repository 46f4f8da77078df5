"""The history engine's quantiles by bucket refinement equal pandas' on the same values."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from profiler.analyze.history_quantiles import quantiles


def _frame(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    whole = rng.integers(0, 5000, rows).astype(float)  # BuildSteps' whole seconds: ties
    spread = rng.lognormal(3, 2, rows)  # distinct values sharing buckets above ~6 min
    wall = np.where(rng.random(rows) < 0.5, whole, spread)
    wall[rng.random(rows) < 0.02] = np.nan
    wall[rng.random(rows) < 0.01] *= -1  # clock skew
    group = rng.choice(np.array(["a", "b", "c"], dtype=object), rows)
    group[rng.random(rows) < 0.05] = None
    window = np.floor(rng.random(rows) * 7) * 86400.0
    window[rng.random(rows) < 0.03] = np.nan
    return pd.DataFrame({"wall_s": wall, "g": group, "w": window})


def _expected(frame: pd.DataFrame, by: str | None) -> pd.DataFrame:
    keyed = frame.assign(k=0 if by is None else frame[by])
    wall = keyed.groupby("k", dropna=False, sort=True)["wall_s"]
    wide = wall.quantile(np.array([0.5, 0.9, 0.99])).unstack()
    wide.columns = ["wall_p50_s", "wall_p90_s", "wall_p99_s"]
    return wide.dropna(how="all")


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("by", "key"), [(None, "0"), ("g", "g"), ("w", "w")])
def test_equal_to_pandas_with_ties_spread_values_and_missing_groups(
    seed: int, by: str | None, key: str
) -> None:
    frame = _frame(seed, 20_000)
    con = duckdb.connect()
    con.register("split", frame)
    got = quantiles(con, key)
    want = _expected(frame, by)
    # the order is the caller's (breakdown_sql sorts); the groups and values must match
    got, want = _by_name(got), _by_name(want)
    assert list(got.index) == list(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12)


def _by_name(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_axis(
        [str(k) if not pd.isna(k) else "~missing" for k in frame.index]
    ).sort_index()


def test_single_value_and_empty() -> None:
    con = duckdb.connect()
    con.register("split", pd.DataFrame({"wall_s": [7.0]}))
    assert quantiles(con, "0").iloc[0].tolist() == [7.0, 7.0, 7.0]
    con.unregister("split")
    con.register("split", pd.DataFrame({"wall_s": [np.nan]}))
    assert quantiles(con, "0").empty
