"""Rates from counter samples: deltas between consecutive samples of one series.

A series is one (source, metric, machine, machine_type, jobset, bucket). Between two samples
the increase is ``v1 - v0``, unless the queue runner restarted in between (its
``process_id`` changed, its ``uptime_seconds`` went down, or the counter went down): then
the counter started again from zero, the increase is ``v1`` and the seconds it accrued over
are the new process's uptime when known (else the whole interval). A restart therefore
never gives a negative rate, nor a huge one. An interval longer than ``GAP_FACTOR`` times
the series' median interval is flagged as a gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GAP_FACTOR = 2.5
KEYS = ["source", "metric", "machine", "machine_type", "jobset", "bucket"]


def _restarts(samples: pd.DataFrame) -> pd.DataFrame:
    """Per (source, ts): did the process restart since the previous sample, and its uptime."""
    ident = samples[
        samples["metric"].isin(["process_id", "uptime_seconds"]) & samples["machine"].isna()
    ]
    wide = (
        ident.pivot_table(index=["source", "ts"], columns="metric", values="value", aggfunc="last")
        .reset_index()
        .sort_values(["source", "ts"])
    )
    for col in ("process_id", "uptime_seconds"):
        if col not in wide:
            wide[col] = np.nan
    g = wide.groupby("source")
    pid_changed = g["process_id"].diff().fillna(0) != 0
    uptime_down = g["uptime_seconds"].diff() < 0
    wide["restart"] = pid_changed | uptime_down
    return wide[["source", "ts", "restart", "uptime_seconds"]]


def counter_rates(samples: pd.DataFrame) -> pd.DataFrame:
    """Rates of every counter series.

    Returns columns: the series keys, ``ts_start``, ``ts`` (interval end), ``seconds``,
    ``increase``, ``rate`` (per second), ``reset`` (the counter restarted), ``gap``.
    """
    counters = samples[samples["kind"] == "counter"].copy()
    if counters.empty:
        return pd.DataFrame(
            columns=[*KEYS, "ts_start", "ts", "seconds", "increase", "rate", "reset", "gap"]
        )
    for k in KEYS:
        counters[k] = counters[k].astype(object).where(counters[k].notna(), None)
    counters = counters.merge(_restarts(samples), on=["source", "ts"], how="left")
    counters["restart"] = counters["restart"].astype("boolean").fillna(False).astype(bool)
    counters = counters.sort_values([*KEYS, "ts"], na_position="first", kind="stable")
    g = counters.groupby(KEYS, dropna=False, sort=False)
    counters["ts_start"] = g["ts"].shift()
    counters["prev"] = g["value"].shift()
    out = counters[counters["ts_start"].notna()].copy()
    out["seconds"] = out["ts"] - out["ts_start"]
    went_down = out["value"] < out["prev"]
    out["reset"] = went_down | out["restart"]
    out["increase"] = np.where(out["reset"], out["value"], out["value"] - out["prev"])
    since = np.where(
        out["reset"] & out["uptime_seconds"].notna(),
        np.minimum(out["uptime_seconds"].fillna(np.inf), out["seconds"]),
        out["seconds"],
    )
    out["rate"] = np.where(since > 0, out["increase"] / np.where(since > 0, since, 1), np.nan)
    median = out.groupby(KEYS, dropna=False)["seconds"].transform("median")
    out["gap"] = out["seconds"] > GAP_FACTOR * median
    return out[
        [*KEYS, "ts_start", "ts", "seconds", "increase", "rate", "reset", "gap"]
    ].reset_index(drop=True)


def total_increase(rates: pd.DataFrame, metric: str, source: str | None = None) -> float:
    """The sum of increases of a machine-less series over the whole run."""
    sel = rates[(rates["metric"] == metric) & rates["machine"].isna()]
    if source is not None:
        sel = sel[sel["source"] == source]
    return float(sel["increase"].sum())
