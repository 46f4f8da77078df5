"""What the verdict, the USE table and the attribution need of the steps: sums, counts and
one median, not the rows.

:meth:`StepTotals.of` takes them from a step table in memory; the history engine
(:mod:`profiler.analyze.history`) computes the same figures in SQL over a run's Parquet, so
both paths end in the same functions (:func:`profiler.analyze.attribution.attribute_totals`,
:func:`profiler.analyze.verdict.decide`, :func:`profiler.analyze.verdict.use_table`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd

from profiler.analyze.schema import CATEGORY_COLUMN

# Columns summed over the steps (NaN counted as 0; a column the table lacks sums to 0).
SUM_COLUMNS = (
    *CATEGORY_COLUMN.values(),
    "compress_s",
    "receive_s",
    "upload_s",
    "slot_wait_s",
    "connect_s",
    "send_s",
    "prepare_s",
    "post_s",
    "copy_s",
    "slot_s",
)


@dataclass(frozen=True)
class StepTotals:
    """Totals over a step table (after :func:`~profiler.analyze.attribution.split_copy`).

    Attributes
    ----------
    steps
        How many steps.
    sums
        Per column of :data:`SUM_COLUMNS`, its sum in seconds.
    wall_median_s
        The median step's wall time (NaN without steps).
    start_ts, end_ts
        The earliest start and the latest end (epoch seconds; NaN without steps).
    failed
        Steps whose status is known and not 0 (success).
    unsplit_seconds
        Copy-phase seconds that could not be split (no NAR size, or no codec profile).
    timed_whole_seconds
        Whether every step start is a whole second (BuildSteps rows, short journals).
    """

    steps: int
    sums: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    wall_median_s: float = math.nan
    start_ts: float = math.nan
    end_ts: float = math.nan
    failed: int = 0
    unsplit_seconds: float = 0.0
    timed_whole_seconds: bool = False

    def sum(self, column: str) -> float:
        """The sum of ``column`` (0 when the steps have no such column)."""
        return float(self.sums.get(column, 0.0))

    @property
    def window_seconds(self) -> float:
        """From the first start to the last end (NaN without steps)."""
        return self.end_ts - self.start_ts if self.steps else math.nan

    @classmethod
    def of(cls, steps: pd.DataFrame) -> StepTotals:
        """The totals of a step table in memory."""
        if steps.empty:
            return cls(0)
        sums = {
            c: float(steps[c].fillna(0.0).to_numpy(float).sum()) for c in SUM_COLUMNS if c in steps
        }
        wall = float(steps["wall_s"].median()) if "wall_s" in steps else math.nan
        status = steps["status"].fillna(0) if "status" in steps else None
        starts = steps["start_ts"].astype(float).dropna()
        return cls(
            steps=len(steps),
            sums=MappingProxyType(sums),
            wall_median_s=wall,
            start_ts=float(steps["start_ts"].min()),
            end_ts=float(steps["end_ts"].max()),
            failed=int((status != 0).sum()) if status is not None else 0,
            unsplit_seconds=unsplit_seconds(steps),
            timed_whole_seconds=bool(len(starts)) and bool(np.all(starts == starts.round())),
        )


def unsplit_seconds(steps: pd.DataFrame) -> float:
    """Copy-phase seconds whose compression could not be separated from I/O: steps whose
    split says ``no ...`` (no NAR size, no profile) and found no compression."""
    if "compress_source" not in steps or "copy_s" not in steps:
        return 0.0
    source = steps["compress_source"].astype(str)
    unsplit = source.str.startswith("no ") & (steps["compress_s"].fillna(0.0) <= 0)
    return float(steps.loc[unsplit, "copy_s"].fillna(0.0).sum())
