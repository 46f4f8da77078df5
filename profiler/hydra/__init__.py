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

__all__ = ["CATALOGUE", "Message"]
