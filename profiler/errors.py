"""The exception hierarchy: every error a user can cause is a ``ProfilerError``.

``cli.main`` is the one place that turns these into a one-line message and an exit code
(1 for failures, 2 for usage); anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations


class ProfilerError(Exception):
    """Base of every error reported to the user as one line."""

    exit_code = 1


class UsageError(ProfilerError):
    """The command line or a specification given by the user is wrong."""

    exit_code = 2


class NarError(ProfilerError):
    """A path cannot be serialised as a NAR (unsupported file type, changed while read)."""


class NarFormatError(NarError):
    """A NAR stream is corrupt; carries the byte offset where the problem was found."""

    def __init__(self, message: str, offset: int, source: str = "") -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}corrupt NAR at byte {offset}: {message}")
        self.offset = offset
        self.reason = message
        self.source = source


class PayloadError(ProfilerError):
    """A payload (NAR file, cache entry, store path) is missing, unreadable or inconsistent."""


class ToolMissing(ProfilerError):
    """An external program this feature needs (e.g. ``nix-store``) is not installed."""


class BenchmarkError(ProfilerError):
    """A benchmark cannot run or its stored result cannot be used."""


class FormatVersionError(ProfilerError):
    """A stored result or run was written in a format this version cannot read."""


class CollectorError(ProfilerError):
    """A collected document (status JSON, metrics text) is not what its source should give."""


class StoreError(ProfilerError):
    """A run directory cannot be created, read or written (the message names the path)."""


class OutputError(ProfilerError):
    """Output cannot be written (stdout on a full disk, a closed or failing device)."""
