"""Whether a farm is saturated rests on the share of the queue wait spent with every slot
taken; that share comes from status samples, so with few of them an even split is a close
call, said so, and with many it is not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from profiler.analyze.attribution import Attribution
from profiler.analyze.gauges import handing_over, waiting_series
from profiler.analyze.verdict import Pressure, throughput

CATS = ("scheduling", "io", "compression", "build", "post")


def _attribution(queue_s: float, wall_s: float) -> Attribution:
    return Attribution(
        seconds=dict.fromkeys(CATS, wall_s / 5),
        shares=dict.fromkeys(CATS, 0.2),
        estimated=dict.fromkeys(CATS, False),
        steps=10,
        wall_seconds=wall_s,
        queue_seconds=queue_s,
        notes=[],
    )


def _pressure(full_fraction: float, samples: int) -> Pressure:
    return Pressure(
        samples=2 * samples,
        interval_s=0.25,
        runnable_share=0.5,
        runnable_free_share=0.5 * (1 - full_fraction),
        runnable_full_share=0.5 * full_fraction,
        waiting_full_fraction=full_fraction,
        waiting_samples=samples,
    )


def test_an_even_split_over_few_samples_is_a_close_call() -> None:
    blame = {"builder-capacity": 0.9, "scheduling": 0.1}
    thr = throughput(_attribution(40.0, 100.0), _pressure(0.57, 16), blame)
    assert thr.saturated  # 0.4 x 0.57 of the time queued with every slot taken
    assert thr.split_close
    assert "within the samples' error" in thr.sentence()
    assert thr.as_dict()["split_close"] is True


def test_the_same_split_over_many_samples_or_a_clear_one_is_not() -> None:
    blame = {"builder-capacity": 0.9, "scheduling": 0.1}
    many = throughput(_attribution(40.0, 100.0), _pressure(0.57, 2000), blame)
    clear = throughput(_attribution(40.0, 100.0), _pressure(0.95, 16), blame)
    assert many.saturated and not many.split_close
    assert clear.saturated and not clear.split_close
    assert "samples' error" not in many.sentence()


def test_a_split_that_cannot_carry_saturation_is_not_a_close_call() -> None:
    # 10% queued: even all of it with every slot taken stays a latency question
    thr = throughput(_attribution(10.0, 100.0), _pressure(0.5, 4), {"scheduling": 1.0})
    assert not thr.saturated and not thr.split_close


def test_a_rust_step_being_handed_over_is_not_waiting() -> None:
    """Rust counts a step in steps_building only once the job was handed to the builder
    (hydra 14332fbf state/mod.rs:1145-1180); its runnable flag stays set, so runnable minus
    building counts it as waiting from its dispatch until then, while it holds a slot."""
    rows = [
        {"ts": float(t), "metric": m, "value": v, "machine": None, "source": "s"}
        for t in range(10)
        for m, v in (("steps_runnable", 3.0), ("steps_building", 1.0))
    ]
    samples = pd.DataFrame(rows)
    steps = pd.DataFrame({"start_ts": [2.0, 5.5], "prepare_s": [1.0, 0.0], "connect_s": [1.0, 0.0]})
    windows = handing_over(steps, "rust")
    assert windows.tolist() == [[2.0, 4.0]]  # a step with no such time has no window
    assert waiting_series(samples, "rust").tolist() == [2.0] * 10
    waiting = waiting_series(samples, "rust", windows)
    assert waiting.tolist() == [2.0, 2.0, 1.0, 1.0, *[2.0] * 6]
    # C++ leaves the runnable count at dispatch: nothing to take out
    assert handing_over(steps, "cxx").shape == (0, 2)
    assert np.array_equal(waiting_series(samples, "cxx").to_numpy(), np.full(10, 3.0))
