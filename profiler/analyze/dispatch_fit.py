"""The replay's dispatch delay, fitted to the observed dispatch times.

A step that becomes runnable is not started at once: the dispatcher runs in rounds. The Rust
runner pauses 500 ms after every round to coalesce the wake-ups finished builds send (hydra
d836b76b, 2026-06, subprojects/hydra-queue-runner/src/state/mod.rs at 14332fbf:1637-1638),
and a round over a large queue takes its own time (C++ ``doDispatch`` sorts every runnable
step each round, hydra a40d4286 subprojects/hydra/hydra-queue-runner/dispatcher.cc:194; the
status' ``dispatchTimeAvgMs``, hydra-queue-runner.cc:581). Neither is in the step table, so a
replay that starts a step the moment a slot is free runs ahead of the farm: by 20-70% of the
makespan on testbed scenarios with a slow dispatcher, and each what-if's change was then
measured against a baseline too short (a fixed delay the change leaves alone read as a
larger relative change).

:func:`fit` finds the one per-step delay (:attr:`SimConfig.dispatch_delay_s`: the slot is
reserved at the decision, the step starts that long after) that brings the replay's dispatch
times closest to the observed ones (mean absolute error over steps), on a grid from 0 to the
observed queue waits' upper quartile, refined once around the best. It is kept only when it
clearly helps (the error at least 10% lower than with none): a farm whose dispatcher keeps up
replays with no delay, as before. A saturated farm's waits are the slots' and the replay
already makes them, so a delay only adds error there and is not chosen. A table of more than
:data:`MAX_FIT_STEPS` steps is fitted on the middle window of that many, in release order
(dependencies outside it count as built, as in any replay of part of a table): the fit
replays the table some 17 times.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from profiler.analyze import simulate as sim

GRID_POINTS = 9
MIN_IMPROVEMENT = 0.10  # the fitted delay must cut the dispatch error by this share
MAX_FIT_STEPS = 20_000


@dataclass(frozen=True)
class DispatchFit:
    """The fitted delay and the replay's dispatch error (seconds) without and with it."""

    delay_s: float
    error_without_s: float
    error_with_s: float

    def note(self) -> str | None:
        """What the projection's notes say of it (nothing when no delay was fitted)."""
        if self.delay_s <= 0:
            return None
        return (
            f"dispatch: {self.delay_s:.2f} s per step between the dispatcher's decision and "
            "the step's start, fitted to the observed dispatch times (replay dispatch error "
            f"{self.error_without_s:.2f} s -> {self.error_with_s:.2f} s a step); the "
            "projection keeps it (a dispatcher round's time does not change with the what-if)"
        )


def _error(steps: pd.DataFrame, config: sim.SimConfig, delay_s: float) -> float:
    v = sim.replay(steps, dataclasses.replace(config, dispatch_delay_s=delay_s))
    return v.dispatch_mae_s


def fit(steps: pd.DataFrame, config: sim.SimConfig) -> DispatchFit:
    """The dispatch delay for replaying ``steps`` (the simulator's table, with the observed
    ``start_ts`` and the reconstructed ``release_ts``) on ``config``."""
    none = DispatchFit(0.0, math.nan, math.nan)
    if "start_ts" not in steps or "release_ts" not in steps:
        return none
    if len(steps) > MAX_FIT_STEPS:
        order = np.argsort(steps["release_ts"].to_numpy(float), kind="stable")
        first = (len(steps) - MAX_FIT_STEPS) // 2
        steps = steps.iloc[np.sort(order[first : first + MAX_FIT_STEPS])]
    waits = (steps["start_ts"].astype(float) - steps["release_ts"].astype(float)).to_numpy()
    waits = waits[np.isfinite(waits) & (waits > 0)]
    if not len(waits):
        return none
    high = float(np.percentile(waits, 75))
    base = _error(steps, config, 0.0)
    if not math.isfinite(base):
        return DispatchFit(0.0, base, base)
    grid = np.linspace(0.0, high, GRID_POINTS)[1:]
    errors = {0.0: base} | {float(d): _error(steps, config, float(d)) for d in grid}
    best = min(errors, key=lambda d: (errors[d], d))
    step = high / (GRID_POINTS - 1)
    for d in np.linspace(max(0.0, best - step), best + step, GRID_POINTS):
        errors.setdefault(float(d), _error(steps, config, float(d)))
    best = min(errors, key=lambda d: (errors[d], d))
    if best <= 0 or errors[best] > (1 - MIN_IMPROVEMENT) * base:
        return DispatchFit(0.0, base, base)
    return DispatchFit(best, base, errors[best])
