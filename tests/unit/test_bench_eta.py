"""The bench's ETA: remaining cells estimated from the cells of their codec so far."""

from __future__ import annotations

from profiler.bench.eta import Eta


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_estimate_before_the_first_cell() -> None:
    clock = Clock()
    eta = Eta(2, ["xz:9", "zstd:1"], clock)
    clock.now += 5
    assert eta.remaining_seconds() is None
    assert eta.describe() == "elapsed 5s"


def test_remaining_cells_cost_what_their_codec_cost_so_far() -> None:
    clock = Clock()
    eta = Eta(3, ["xz:9", "zstd:1"], clock)
    clock.now += 100
    eta.cell_done("xz:9")
    # zstd:1 unseen yet: its 2 cells cost the mean so far (100), xz:9's 2 cells 100 each
    assert eta.remaining_seconds() == 500
    clock.now += 1
    eta.cell_done("zstd:1")
    # 2 payloads left: xz:9 100 s + zstd:1 1 s each
    assert eta.remaining_seconds() == 202
    assert eta.describe() == "ETA 3m22s, elapsed 1m41s"


def test_done_means_zero_left_and_hours_are_shown() -> None:
    clock = Clock()
    eta = Eta(1, ["xz:9"], clock)
    clock.now += 7300
    eta.cell_done("xz:9")
    assert eta.remaining_seconds() == 0
    assert eta.describe() == "ETA 0s, elapsed 2h01m"
