"""NAR serialisation, parsing and hashing, exact to Nix (``nix-store --dump``, ``nix-hash``).

See ``reference/nar-and-compression.md`` §1-2 for the format this implements.
"""

from __future__ import annotations

from profiler.nar.dump import dump, dump_bytes, dump_to_fd, hash_path, nar_str
from profiler.nar.hashes import Hash, parse_hash
from profiler.nar.read import NarDir, NarEntry, NarSummary, iter_entries, validate

__all__ = [
    "Hash",
    "NarDir",
    "NarEntry",
    "NarSummary",
    "dump",
    "dump_bytes",
    "dump_to_fd",
    "hash_path",
    "iter_entries",
    "nar_str",
    "parse_hash",
    "validate",
]
