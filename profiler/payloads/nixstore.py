"""The Nix store as a source of payloads: its directory, store paths by glob, a seeded
sample of them, and a path's closure."""

from __future__ import annotations

import fnmatch
import os
import random
import re
import subprocess

from profiler.errors import PayloadError, ToolMissing

STORE_DIR = os.environ.get("NIX_STORE_DIR", "/nix/store")
_STORE_NAME = re.compile(r"^[0-9abcdfghijklmnpqrsvwxyz]{32}-.+")


def store_paths_by_glob(glob: str, store_dir: str = STORE_DIR) -> list[str]:
    """Store paths whose name (the part after ``<hash>-``) matches ``glob``, sorted."""
    return [
        os.path.join(store_dir, n)
        for n in _store_names(store_dir)
        if fnmatch.fnmatchcase(n[33:], glob)
    ]


def store_sample(count: int, seed: int = 0, store_dir: str = STORE_DIR) -> list[str]:
    """``count`` store paths (no .drv files) drawn with ``random.Random(seed)``, sorted."""
    names = [n for n in _store_names(store_dir) if not n.endswith(".drv")]
    if count > len(names):
        raise PayloadError(f"sample:{count}: the store {store_dir} has only {len(names)} paths")
    return sorted(os.path.join(store_dir, n) for n in random.Random(seed).sample(names, count))


def store_closure(path: str) -> list[str]:
    """The closure of ``path`` as ``nix-store -qR`` reports it."""
    try:
        done = subprocess.run(
            ["nix-store", "-qR", path], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise ToolMissing("closure: needs nix-store (Debian package nix-bin)") from None
    if done.returncode:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise PayloadError(f"closure:{path}: nix-store -qR: {message}")
    return sorted(done.stdout.split())


def _store_names(store_dir: str) -> list[str]:
    try:
        names = os.listdir(store_dir)
    except OSError as exc:
        raise PayloadError(f"{store_dir}: cannot list the Nix store: {exc.strerror}") from None
    return sorted(n for n in names if _STORE_NAME.match(n))
