"""Hydra's facts and message catalogue, each with the source lines it was read from.

:mod:`~profiler.hydra.facts` holds the vocabulary (generations, busy codes, phase categories,
time semantics, units, codec defaults); :mod:`~profiler.hydra.catalogue` the message model and
rendering; ``messages_cxx`` and ``messages_rust`` the call sites. Nothing here imports the
rest of the package.
"""

from __future__ import annotations

from profiler.hydra import messages_cxx, messages_rust
from profiler.hydra.catalogue import Message

CATALOGUE: tuple[Message, ...] = messages_cxx.MESSAGES + messages_rust.MESSAGES


def message(program: str, event: str, *, containing: str = "", era: str | None = None) -> Message:
    """The one catalogue entry of ``program`` for ``event`` whose format contains
    ``containing`` (of ``era`` if given; else the current wording when there are several);
    LookupError naming what is missing otherwise, so nothing renders a message the catalogue
    does not have."""
    found = [
        m for m in CATALOGUE if m.program == program and m.event == event and containing in m.format
    ]
    if era is not None:
        found = [m for m in found if m.era == era]
    elif len(found) > 1:
        found = [m for m in found if not m.era]
    if len(found) != 1:
        raise LookupError(
            f"catalogue: {len(found)} entries for {program} {event!r}"
            + (f" containing {containing!r}" if containing else "")
        )
    return found[0]


__all__ = ["CATALOGUE", "Message", "message"]
