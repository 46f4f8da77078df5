"""How the collectors are run: the ``log`` they report through, and the signals that stop them.

A collector says what it is doing (retries, progress, one-line errors) through its ``log``
callback. Library code says nothing unless asked: the default is :func:`quiet`, and the
commands pass their printer (stderr). What a collector must not lose (errors, notes, gaps)
also goes to the run's ``events`` table, whatever ``log`` is.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

Log = Callable[[str], object]


def quiet(message: str) -> None:
    """The default ``log``: says nothing."""


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM end the collector cleanly: any wait or request in flight is cut short
    within about 0.1 s. A second signal while it closes the run ends the process at once
    (the run stays readable, as after a kill)."""

    def handler(signum: int, _frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
