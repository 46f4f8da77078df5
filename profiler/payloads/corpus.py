"""The built-in corpus: real trees found on any Linux machine, one payload per class.

Each class stands for a kind of Nix store path with its own compression behaviour
(``reference/nar-and-compression.md`` §7): ELF libraries and binaries, near-duplicate
binaries (where a compressor's window decides the ratio), Python sources and bytecode,
documentation, locale data, and already-compressed files. Every class lists candidate
roots; the first one present with data is used, and a class with none is left out with a
note. A payload takes files from its root in NAR order up to a byte budget, so the quick
corpus (the default) and the full one are the same trees, cut at different sizes.

The manifest (:func:`manifest`) records each payload's class, source, NarSize and NarHash,
so two results can be checked to be on the same bytes.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
import stat
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypedDict

from profiler import nar
from profiler.payloads.model import Payload, TreePayload

MiB = 1 << 20
_COMPRESSED = ("*.gz", "*.xz", "*.bz2", "*.zst", "*.zip", "*.jar", "*.whl", "*.png", "*.jpg")


@dataclass(frozen=True)
class ClassSpec:
    """How to find one corpus class: candidate root globs, file-name patterns, budgets."""

    name: str
    klass: str
    roots: tuple[str, ...]
    include: tuple[str, ...] = ()
    quick_bytes: int = 4 * MiB
    full_bytes: int = 60 * MiB


def _stdlib() -> str:
    return sysconfig.get_paths()["stdlib"]


# quick budgets add up to ~18 MiB (xz-6 runs at ~2 MB/s on a slow 2-core VM); full to ~400 MiB
CLASSES: tuple[ClassSpec, ...] = (
    ClassSpec(
        "elf-libs",
        "elf",
        ("/usr/lib/*-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib"),
        ("*.so", "*.so.*"),
        3 * MiB,
        100 * MiB,
    ),
    ClassSpec("elf-bins", "elf", ("/usr/bin", "/bin"), (), 2 * MiB, 40 * MiB),
    ClassSpec(
        "near-duplicates",
        "near-duplicate",
        ("/usr/lib/git-core", "/usr/libexec/git-core", "/usr/lib/gcc/*/*", "/usr/libexec/gcc/*/*"),
        (),
        6 * MiB,
        120 * MiB,
    ),
    ClassSpec(
        "python", "python", ("{stdlib}", "/usr/lib/python3*"), ("*.py", "*.pyc"), 2 * MiB, 50 * MiB
    ),
    ClassSpec("docs", "docs", ("/usr/share/doc", "/usr/share/man"), (), 3 * MiB // 2, 60 * MiB),
    ClassSpec(
        "locale",
        "locale",
        ("/usr/share/locale", "/usr/share/i18n", "/usr/lib/locale"),
        (),
        3 * MiB // 2,
        80 * MiB,
    ),
    ClassSpec(
        "compressed", "compressed", ("/usr/share", "/usr/lib"), _COMPRESSED, 3 * MiB // 2, 40 * MiB
    ),
)


def candidates(spec: ClassSpec) -> Iterable[str]:
    """The roots a class may come from on this machine, in preference order."""
    for pattern in spec.roots:
        yield from sorted(glob.glob(pattern.replace("{stdlib}", _stdlib())))


def _nar_order(base: bytes) -> Iterable[tuple[bytes, os.DirEntry[bytes]]]:
    """Non-directory entries under ``base`` in NAR order, with their relative paths."""

    def listing(rel: bytes) -> Iterator[os.DirEntry[bytes]]:
        try:
            with os.scandir(base + b"/" + rel if rel else base) as it:
                return iter(sorted(it, key=lambda e: e.name))
        except OSError:
            return iter(())

    stack = [(b"", listing(b""))]
    while stack:
        rel, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        child = rel + b"/" + entry.name if rel else entry.name
        if entry.is_dir(follow_symlinks=False):
            stack.append((child, listing(child)))
        else:
            yield child, entry


def select_files(
    root: str, include: tuple[str, ...], budget_bytes: int
) -> tuple[frozenset[bytes], int]:
    """Pick regular files (and symlinks) under ``root`` in NAR order up to ``budget_bytes``.

    Returns the selection (relative paths, with the directories leading to them) and the
    bytes of file contents selected. Files that would overflow the budget are skipped and
    the walk goes on, so the budget fills with the files that fit. Unreadable entries and
    special files are skipped.
    """
    chosen: set[bytes] = set()
    total = 0
    pats = [p.encode() for p in include]
    for rel, entry in _nar_order(os.fsencode(root)):
        if pats and not any(fnmatch.fnmatchcase(entry.name, p) for p in pats):
            continue
        size = _regular_size(entry)
        if size is None or total + size > budget_bytes:
            continue
        total += size
        chosen.add(rel)
        if total >= budget_bytes:
            break
    return frozenset(with_parents(chosen)), total


def _regular_size(entry: os.DirEntry[bytes]) -> int | None:
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return 0
    if not stat.S_ISREG(st.st_mode) or not os.access(entry.path, os.R_OK):
        return None
    return st.st_size


def with_parents(paths: set[bytes]) -> set[bytes]:
    """``paths`` plus every directory leading to them (a selection the dumper can walk)."""
    out = set(paths)
    for p in paths:
        while b"/" in p:
            p = p.rsplit(b"/", 1)[0]
            out.add(p)
    return out


def default_corpus(
    full: bool = False, note: Callable[[str], object] | None = None
) -> list[TreePayload]:
    """The built-in corpus on this machine (quick by default, ``full=True`` for all of it)."""
    out = []
    for spec in CLASSES:
        payload = _find(spec, full)
        if payload is None:
            if note:
                note(
                    f"corpus: no data for class {spec.klass} ({spec.name}); looked in "
                    f"{', '.join(spec.roots)}"
                )
            continue
        out.append(payload)
    return out


def _find(spec: ClassSpec, full: bool) -> TreePayload | None:
    """The candidate root that fills most of the budget (the first one that fills it)."""
    budget = spec.full_bytes if full else spec.quick_bytes
    best: tuple[int, str, frozenset[bytes]] | None = None
    for root in candidates(spec):
        if not os.path.isdir(root) or os.path.islink(root):
            continue
        selection, total = select_files(root, spec.include, budget)
        if best is None or total > best[0]:
            best = (total, root, selection)
        if total >= budget * 0.95:
            break
    if best is None or best[0] < min(budget, MiB) // 4:
        return None
    total, root, selection = best
    pats = f", files {' '.join(spec.include)}" if spec.include else ""
    return TreePayload(
        spec.name,
        spec.klass,
        root,
        root=root,
        selection=selection,
        selection_note=f"first {total / MiB:.1f} MiB in NAR order{pats}",
    )


ManifestRow = TypedDict(
    "ManifestRow",
    {"name": str, "class": str, "source": str, "nar_size_bytes": int, "nar_hash": str},
)


def manifest_row(payload: Payload, data: bytes, sha256: bytes | None = None) -> ManifestRow:
    """One manifest row: the payload's identity and the NarSize/NarHash of ``data``."""
    digest = nar.Hash("sha256", sha256 or hashlib.sha256(data).digest())
    return {
        "name": payload.name,
        "class": payload.klass,
        "source": payload.describe(),
        "nar_size_bytes": len(data),
        "nar_hash": str(digest),
    }
