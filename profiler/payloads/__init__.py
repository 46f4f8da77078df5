"""Where the NARs to measure come from.

- :mod:`~profiler.payloads.model`: :class:`Payload` and its two kinds, a tree on disk
  (:class:`TreePayload`) and a NAR file, possibly compressed and checked against its narinfo
  (:class:`NarFilePayload`);
- :mod:`~profiler.payloads.nixstore`: the Nix store (paths by glob, seeded samples, closures);
- :mod:`~profiler.payloads.binary_cache`: local binary caches and their narinfos;
- :mod:`~profiler.payloads.corpus`: the built-in corpus of this machine's own files;
- :mod:`~profiler.payloads.resolve`: the command line's payload grammar (``PATH``,
  ``store:GLOB``, ``closure:PATH``, ``sample:N[:SEED]``, ``default``, ``full``), the one
  module that uses all the others.
"""

from __future__ import annotations

from profiler.payloads.model import NarFilePayload, Payload, TreePayload

__all__ = ["NarFilePayload", "Payload", "TreePayload"]
