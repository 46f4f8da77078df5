"""Copy lines joined to their steps by name and time: the step whose span holds the copy,
else the nearest; the same answer as comparing every step of the name, without doing so."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from profiler.analyze.journal_steps import SPAN_SLACK_S, join_outputs

HASH = "0" * 32


def _distance(start: float, end: float, ts: float) -> float:
    if start - SPAN_SLACK_S <= ts <= end + SPAN_SLACK_S:
        return 0.0
    return min(abs(ts - start), abs(ts - end))


spans = st.lists(
    st.tuples(st.sampled_from("abc"), st.floats(0, 100), st.floats(0, 20)), min_size=1, max_size=40
)
copies = st.lists(st.tuples(st.sampled_from("abcd"), st.floats(-10, 130)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(spans, copies)
@example([("a", 1.0, 0.0), ("a", 0.0, 0.0)], [("a", -2.2250738585e-313)])  # ts + 1 rounds
def test_each_copy_goes_to_a_nearest_step_of_its_name(
    rows: list[tuple[str, float, float]], lines: list[tuple[str, float]]
) -> None:
    steps = pd.DataFrame(
        {
            "drv_path": [f"/nix/store/{HASH}-{n}.drv" for n, _, _ in rows],
            "start_ts": [a for _, a, _ in rows],
            "end_ts": [a + d for _, a, d in rows],
        }
    )
    # one copy line at a time, each with its own size, so its step can be found again
    for k, (name, ts) in enumerate(lines):
        size = float(1 << k)
        copied = pd.DataFrame(
            {"name": [name], "ts": [ts], "nar_bytes": [size], "compressed_bytes": [1.0],
             "pipeline_s": [0.5]}
        )  # fmt: skip
        out = join_outputs(steps, copied)
        got = out.index[out["nar_bytes"] == size].tolist()
        same = [i for i, (n, _, _) in enumerate(rows) if n == name]
        if not same:
            assert got == []
            continue
        assert len(got) == 1 and got[0] in same
        best = min(_distance(rows[i][1], rows[i][1] + rows[i][2], ts) for i in same)
        i = got[0]
        assert math.isclose(_distance(rows[i][1], rows[i][1] + rows[i][2], ts), best)


def test_copies_of_one_name_add_up_and_unknown_names_are_left() -> None:
    steps = pd.DataFrame(
        {
            "drv_path": [f"/nix/store/{HASH}-source.drv"] * 3,
            "start_ts": [0.0, 10.0, 20.0],
            "end_ts": [5.0, 15.0, 25.0],
        }
    )
    copied = pd.DataFrame(
        {
            "name": ["source", "source", "source", "other"],
            "ts": [12.0, 14.0, 30.0, 12.0],
            "nar_bytes": [100.0, 50.0, 7.0, 1.0],
            "compressed_bytes": [10.0, 5.0, 1.0, 1.0],
            "pipeline_s": [0.1, 0.2, 0.3, 0.4],
        }
    )
    out = join_outputs(steps, copied)
    assert np.isnan(out["nar_bytes"][0])
    assert out["nar_bytes"][1] == 150.0 and out["pipeline_s"][1] == 0.1 + 0.2
    assert out["nar_bytes"][2] == 7.0  # 30 s: nearest is the step that ended at 25
