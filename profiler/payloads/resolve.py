"""The payload grammar of the command line: specifications into payloads.

Payload specifications on the command line (see :func:`resolve`)::

    PATH                      a file, directory or symlink (or a .nar*, .narinfo, cache dir)
    store:GLOB                /nix/store paths whose name matches GLOB (e.g. store:*python3*)
    closure:PATH              the closure of a store path (nix-store -qR)
    sample:N[:SEED]           N store paths picked at random with a fixed seed (default 0)
    default | full            the built-in corpus, quick or full (see profiler.payloads.corpus)

The only module of the package that imports the others: each source (model, nixstore,
binary_cache, corpus) stands alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from profiler.errors import PayloadError, UsageError
from profiler.payloads import binary_cache, corpus
from profiler.payloads.model import NarFilePayload, Payload, TreePayload
from profiler.payloads.nixstore import STORE_DIR, store_closure, store_paths_by_glob, store_sample

NAR_SUFFIXES = {
    ".nar": "none",
    ".nar.xz": "xz",
    ".nar.zst": "zstd",
    ".nar.bz2": "bzip2",
    ".nar.br": "br",
    ".nar.gz": "gzip",
}


def method_for_path(path: str) -> str | None:
    """Nix's compression method of a NAR file, by its suffix (``.nar.xz`` -> ``xz``, ``.nar``
    -> ``none``); None when the name is not a NAR file's."""
    suffix = _nar_suffix(path)
    return None if suffix is None else NAR_SUFFIXES[suffix]


def _nar_suffix(path: str) -> str | None:
    """The longest NAR suffix ``path`` ends with."""
    return next((s for s in sorted(NAR_SUFFIXES, key=len, reverse=True) if path.endswith(s)), None)


def nar_file(path: str) -> NarFilePayload:
    """A payload for a ``.nar`` or compressed ``.nar.*`` file, by its suffix."""
    suffix = _nar_suffix(path)
    if suffix is None:
        raise PayloadError(
            f"{path}: not a NAR file (expected one of {', '.join(sorted(NAR_SUFFIXES))})"
        )
    name = os.path.basename(path)[: -len(suffix)] or os.path.basename(path)
    return NarFilePayload(name, "nar-file", path, path=path, compression=NAR_SUFFIXES[suffix])


def tree(path: str, klass: str = "user", name: str | None = None) -> TreePayload:
    if not os.path.lexists(path):
        raise PayloadError(f"{path}: no such file or directory")
    label = name or os.path.basename(os.path.normpath(path)) or path
    return TreePayload(label, klass, path, root=path)


def _store_payloads(paths: Iterable[str]) -> list[Payload]:
    return [tree(p, "store", os.path.basename(p)[33:] or os.path.basename(p)) for p in paths]


def resolve(specs: Iterable[str]) -> list[Payload]:
    """Turn command-line payload specifications into payloads (see the module docstring)."""
    out: list[Payload] = []
    for spec in specs:
        kind, _, arg = spec.partition(":")
        if spec in ("default", "full"):
            out.extend(corpus.default_corpus(full=spec == "full"))
        elif kind == "store" and arg:
            found = store_paths_by_glob(arg)
            if not found:
                raise PayloadError(f"{spec}: no store path in {STORE_DIR} matches {arg!r}")
            out.extend(_store_payloads(found))
        elif kind == "closure" and arg:
            out.extend(_store_payloads(store_closure(arg)))
        elif kind == "sample" and arg:
            out.extend(_store_payloads(_sample(spec, arg)))
        elif os.path.isdir(spec) and os.path.exists(os.path.join(spec, "nix-cache-info")):
            out.extend(binary_cache.cache_payloads(spec))
        elif spec.endswith(".narinfo"):
            out.append(binary_cache.narinfo_payload(spec))
        elif method_for_path(spec) is not None and os.path.isfile(spec):
            out.append(nar_file(spec))
        elif os.path.lexists(spec):
            out.append(tree(spec))
        else:
            raise UsageError(
                f"payload {spec!r}: no such path, and not one of store:GLOB, "
                "closure:PATH, sample:N[:SEED], default, full"
            )
    return _unique_names(out)


def _sample(spec: str, arg: str) -> list[str]:
    count_text, _, seed_text = arg.partition(":")
    try:
        count = int(count_text)
    except ValueError:
        raise UsageError(
            f"{spec!r}: expected sample:N[:SEED]: N must be a whole number, got {count_text!r}"
        ) from None
    try:
        seed = int(seed_text or 0)
    except ValueError:
        raise UsageError(
            f"{spec!r}: expected sample:N[:SEED]: SEED must be a whole number, got {seed_text!r}"
        ) from None
    if count < 1:
        raise UsageError(f"{spec!r}: N must be positive (how many store paths), got {count}")
    return store_sample(count, seed)


def _unique_names(payloads: list[Payload]) -> list[Payload]:
    """Suffix repeated names with ``#2``, ``#3`` so every result row is distinct."""
    import dataclasses

    seen: dict[str, int] = {}
    out = []
    for p in payloads:
        seen[p.name] = seen.get(p.name, 0) + 1
        out.append(
            p if seen[p.name] == 1 else dataclasses.replace(p, name=f"{p.name}#{seen[p.name]}")
        )
    return out
