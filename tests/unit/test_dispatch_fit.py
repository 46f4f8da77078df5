"""The replay's dispatch delay, fitted to observed dispatch times: farms whose dispatcher
lags are replayed with the lag (found within a grid step), and farms whose dispatcher keeps
up, idle or saturated, with none."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from profiler.analyze import dispatch_fit
from profiler.analyze.simulate import SimConfig, replay, simulate

X86 = "x86_64-linux"


def workload(n: int, seed: int, spread_s: float) -> pd.DataFrame:
    """``n`` independent steps released over ``spread_s`` seconds, with build, compression
    and upload phases of a few tenths of a second."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "step": [f"s{i}" for i in range(n)],
            "machine": "",
            "system": X86,
            "release_ts": np.sort(rng.uniform(0, spread_s, n)),
            "build_s": rng.exponential(0.8, n),
            "compress_s": rng.exponential(0.2, n),
            "upload_s": rng.exponential(0.1, n),
        }
    )


def observed_farm(steps: pd.DataFrame, config: SimConfig, delay_s: float) -> pd.DataFrame:
    """The steps as a farm with a dispatcher ``delay_s`` slow would have run them."""
    truth = simulate(steps, dataclasses.replace(config, dispatch_delay_s=delay_s)).steps
    out = steps.copy()
    out["machine"] = truth["machine"].astype(str).to_numpy()
    out["start_ts"] = truth["dispatch_ts"].to_numpy()
    out["end_ts"] = truth["end_ts"].to_numpy()
    return out


FARM = SimConfig(generation="rust", machines={"a": (4, (X86,)), "b": (4, (X86,))})


@pytest.mark.parametrize("delay_s", [0.3, 0.7])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_lagging_dispatcher_is_found_and_the_replay_then_matches(
    delay_s: float, seed: int
) -> None:
    steps = observed_farm(workload(60, seed, 40.0), FARM, delay_s)
    fit = dispatch_fit.fit(steps, FARM)
    waits = (steps["start_ts"] - steps["release_ts"]).to_numpy()
    grid_step = np.percentile(waits[waits > 0], 75) / (dispatch_fit.GRID_POINTS - 1) ** 2
    assert abs(fit.delay_s - delay_s) <= grid_step + 1e-9
    assert fit.error_with_s < 0.2 * fit.error_without_s
    before = replay(steps, FARM)
    after = replay(steps, dataclasses.replace(FARM, dispatch_delay_s=fit.delay_s))
    # without the lag the replay runs ahead: every step's wall time short by about it
    short = before.observed_p50_wall_s - before.simulated_p50_wall_s
    assert short == pytest.approx(delay_s, abs=0.1)
    assert abs(after.observed_p50_wall_s - after.simulated_p50_wall_s) <= grid_step + 0.02
    assert abs(after.makespan_rel_error) <= abs(before.makespan_rel_error)
    assert "fitted to the observed dispatch times" in str(fit.note())


def test_a_dispatcher_that_keeps_up_is_replayed_without_delay() -> None:
    steps = observed_farm(workload(60, 3, 40.0), FARM, 0.0)
    fit = dispatch_fit.fit(steps, FARM)
    assert fit.delay_s == 0.0
    assert fit.note() is None


def test_a_saturated_farm_waits_for_slots_not_for_the_dispatcher() -> None:
    # 80 steps released in 2 s on one slot: they wait minutes, all of it for the slot
    small = SimConfig(generation="cxx", machines={"a": (1, (X86,))})
    steps = observed_farm(workload(80, 4, 2.0), small, 0.0)
    assert (steps["start_ts"] - steps["release_ts"]).median() > 10
    assert dispatch_fit.fit(steps, small).delay_s == 0.0


def test_without_observed_waits_there_is_nothing_to_fit() -> None:
    steps = observed_farm(workload(20, 5, 40.0), FARM, 0.5)
    steps["release_ts"] = steps["start_ts"]  # no runnable gauge: released when dispatched
    assert dispatch_fit.fit(steps, FARM).delay_s == 0.0
    assert dispatch_fit.fit(steps.drop(columns="start_ts"), FARM).delay_s == 0.0


def test_a_large_table_is_fitted_on_its_middle_window(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = observed_farm(workload(240, 6, 160.0), FARM, 0.5)
    calls: list[int] = []
    real = dispatch_fit._error

    def counted(table: pd.DataFrame, config: SimConfig, delay_s: float) -> float:
        calls.append(len(table))
        return real(table, config, delay_s)

    monkeypatch.setattr(dispatch_fit, "MAX_FIT_STEPS", 60)
    monkeypatch.setattr(dispatch_fit, "_error", counted)
    fit = dispatch_fit.fit(steps, FARM)
    assert set(calls) == {60}
    assert fit.delay_s == pytest.approx(0.5, abs=0.1)
