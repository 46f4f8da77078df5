"""The verdict never claims more than its evidence (D11 of the reliability findings): a
cause named with confidence has a real share; near-zero evidence gives idle or a low
confidence; no ``nan`` in what it says."""

from __future__ import annotations

import math
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.analyze.attribution import Attribution, attribute, split_copy
from profiler.analyze.steps import build_step_table
from profiler.analyze.verdict import LATENCY_SHARE, Pressure, decide
from profiler.store import read_run
from tests.unit.test_analyze import PROFILE, cxx_run

CATEGORIES = ("scheduling", "io", "compression", "build", "post")
RESOURCE = {"scheduling": "scheduling", "io": "io", "compression": "compression",
            "post": "database"}  # fmt: skip


@cache
def _table() -> Any:
    tmp = Path(tempfile.mkdtemp(prefix="verdict-"))
    table = build_step_table(read_run(cxx_run(tmp, runnable=[0.0] * 40)))
    return table, split_copy(table, PROFILE)


def _attribution(shares: dict[str, float]) -> Attribution:
    table, steps = _table()
    att = attribute(table, steps)
    att.shares.update(shares)
    return att


pressures = st.sampled_from(
    [
        Pressure(),  # no samples at all (a journal-only run)
        Pressure(samples=10, interval_s=1, runnable_share=0.0, runnable_free_share=0.0,
                 runnable_full_share=0.0, slot_busy_share=0.1, capacity=4),
        Pressure(samples=10, interval_s=1, runnable_share=0.3, runnable_free_share=0.3,
                 runnable_full_share=0.0, slot_busy_share=0.4, capacity=4),
    ]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=5, max_size=5).filter(lambda w: sum(w) > 0),
    st.floats(0, 0.2),
    pressures,
)
def test_a_named_cause_has_a_real_share(weights: list[float], tiny: float, p: Pressure) -> None:
    total = sum(weights)
    shares = dict(zip(CATEGORIES, (w / total for w in weights), strict=True))
    # squeeze every cause but the build to at most ``tiny`` of the step time
    others = sum(v for c, v in shares.items() if c != "build")
    if others > tiny:
        scale = tiny / others
        shares = {c: (v * scale if c != "build" else v) for c, v in shares.items()}
        shares["build"] = 1 - sum(v for c, v in shares.items() if c != "build")
    _, steps = _table()
    v = decide(_attribution(shares), steps, "cxx", p)
    assert 0.0 <= v.confidence <= 1.0
    text = " ".join(v.evidence)
    assert "nan" not in text.lower().split() and "n/a" not in text
    if v.basis == "latency" and v.bottleneck != "idle":
        cause = next(c for c, r in RESOURCE.items() if r == v.bottleneck)
        assert shares[cause] >= LATENCY_SHARE  # the named cause is not noise
    if max(v for c, v in shares.items() if c != "build") < 0.03:
        # near-zero evidence: idle, or a confidence that admits it
        assert v.bottleneck == "idle" or v.confidence <= 0.3
    if math.isnan(p.runnable_share):
        assert v.confidence <= 0.6  # saturation not observed: never confident
