"""How long a bench has left: an estimate from the cells measured so far.

Cells differ by codec far more than by anything else (xz:9 takes 100x what zstd:1 does on
the same bytes), so each remaining cell is estimated at the mean time of the cells of its
codec measured so far, or at the mean over all cells while its codec has none yet. The
first payload's cells cannot be foreseen: no estimate is given before one cell is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


class Eta:
    """Remaining time of ``payloads`` x ``codecs`` cells, measured in that order."""

    def __init__(
        self, payloads: int, codecs: Sequence[str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._codecs = list(codecs)
        self._cells = payloads * len(self._codecs)
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self._seconds: dict[str, list[float]] = {c: [] for c in self._codecs}
        self.done = 0

    def cell_done(self, codec: str) -> None:
        """One cell of ``codec`` finished now."""
        now = self._clock()
        self._seconds.setdefault(codec, []).append(now - self._last)
        self._last = now
        self.done += 1

    def remaining_seconds(self) -> float | None:
        """Estimated seconds left; None before any cell is done."""
        every = [s for times in self._seconds.values() for s in times]
        if not every:
            return None
        mean = sum(every) / len(every)
        left = 0.0
        for i in range(self.done, self._cells):
            times = self._seconds.get(self._codecs[i % len(self._codecs)]) or []
            left += sum(times) / len(times) if times else mean
        return left

    def describe(self) -> str:
        """``ETA 3m20s (elapsed 1m05s)``, or the elapsed time alone when no estimate yet."""
        elapsed = f"elapsed {_clock_text(self._clock() - self._started)}"
        left = self.remaining_seconds()
        return elapsed if left is None else f"ETA {_clock_text(left)}, {elapsed}"


def _clock_text(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
