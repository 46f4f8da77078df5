# ruff: noqa: RUF001, RUF002  (format strings are verbatim, typographic quotes and all)
"""Messages of the C++ queue runner (2015-2026) and of the Nix code it runs, every era.

Each entry is one call site; ``era`` says when that wording was printed (empty: the whole C++
era). The C++ runner's own messages quote paths with ‘…’ (U+2018/U+2019); Nix's with '…'.
Levels are Nix's verbosity names; the NixOS unit runs ``hydra-queue-runner -v``, so talkative
and above reach the journal.
"""

from __future__ import annotations

from profiler.hydra.catalogue import Message
from profiler.hydra.sources import cxx

Q = "[\u2018']"  # opening quote: typographic (C++ runner) or ASCII (Nix)
E = "[\u2019']"  # closing quote
MESSAGES: tuple[Message, ...] = (
    Message(
        event="step_started",
        program="cxx-runner",
        level="info",
        format="performing step ‘%s’ %d times on ‘%s’ (needed by build %d and %d others)",
        pattern=(
            rf"performing step {Q}(?P<drv>[^\u2019']+){E} (?P<rounds>\d+) times on "
            rf"{Q}(?P<machine>[^\u2019']+){E} \(needed by build (?P<build_id>\d+) and "
            r"(?P<other_builds>\d+) others\)"
        ),
        types={"rounds": "int", "build_id": "int", "other_builds": "int"},
        source=cxx("builder.cc", 150),
        use="step start (journal-only steps; sharpens tracked steps' start)",
    ),
)
