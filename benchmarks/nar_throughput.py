#!/usr/bin/env python3
"""NAR serialisation throughput: ours against ``nix-store --dump`` and the read floor.

Everything runs in one process, on the same tree, interleaved round by round so that
machine noise hits every contender alike. The page cache is warmed first: this measures
the CPU cost of making a NAR, not the disk. Reported per contender: best and median wall
time over the rounds, MB/s of NAR, and the ratio to ``nix-store --dump`` measured in the
same run (> 1.00 means faster than Nix).

Contenders:

* ``read floor``: ``find -type f | xargs cat > /dev/null``, reading every file once;
* ``nix-store --dump | pipe``: Nix itself into a pipe (drained by ``cat > /dev/null``);
* ``ours CLI | pipe``: ``hydra-profiler nar dump`` the same way (includes interpreter start);
* ``ours in-process -> pipe``: ``nar.dump_to_fd`` into a pipe drained by ``cat``;
* ``nix-hash --type sha256``: Nix's NAR hash;
* ``ours in-process hash``: ``nar.hash_path`` (NAR into sha256, no pipe).

Usage::

    python benchmarks/nar_throughput.py [TREE] [--rounds 5]

TREE defaults to the largest system library tree present (``/usr/lib/<triplet>``).
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from profiler import nar


def default_tree() -> str:
    """``/usr/lib/<triplet>`` if present (the largest such), else /usr/lib64 or /usr/lib."""
    for group in (glob.glob("/usr/lib/*-linux-gnu"), ["/usr/lib64"], ["/usr/lib"]):
        present = [c for c in group if os.path.isdir(c) and not os.path.islink(c)]
        if present:
            return max(present, key=_tree_bytes)
    raise SystemExit("no system library tree found; pass TREE")


def _tree_bytes(root: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def shell(cmd: str) -> Callable[[], None]:
    def go() -> None:
        subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, stderr=subprocess.DEVNULL)

    return go


def in_process_to_pipe(tree: str) -> Callable[[], None]:
    def go() -> None:
        drain = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert drain.stdin is not None
        nar.dump_to_fd(tree, drain.stdin.fileno())
        drain.stdin.close()
        drain.wait()

    return go


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tree", nargs="?")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    tree = args.tree or default_tree()
    q = shlex.quote(tree)
    me = f"{shlex.quote(sys.executable)} -m profiler"
    contenders: dict[str, Callable[[], None]] = {
        "read floor (cat)": shell(f"find {q} -type f -print0 | xargs -0 cat > /dev/null"),
        "nix-store --dump | pipe": shell(f"nix-store --dump {q} | cat > /dev/null"),
        "ours CLI | pipe": shell(f"{me} nar dump {q} | cat > /dev/null"),
        "ours in-process -> pipe": in_process_to_pipe(tree),
        "nix-hash --type sha256": shell(f"nix-hash --type sha256 {q} > /dev/null"),
        "ours in-process hash": lambda: nar.hash_path(tree) and None,
    }
    digest, nar_bytes = nar.hash_path(tree)  # also warms the page cache
    print(f"tree {tree}: NarSize {nar_bytes / 1e6:.1f} MB, {digest}", flush=True)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for rnd in range(1, args.rounds + 1):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
        print(f"round {rnd}/{args.rounds} done", file=sys.stderr, flush=True)
    report(times, nar_bytes)
    return 0


def report(times: dict[str, list[float]], nar_bytes: int) -> None:
    ref = {
        "pipe": min(times["nix-store --dump | pipe"]),
        "hash": min(times["nix-hash --type sha256"]),
    }
    print(f"\n{'contender':<26} {'best s':>8} {'median s':>9} {'MB/s':>8}  vs Nix (best)")
    for name, ts in times.items():
        best = min(ts)
        kind = "hash" if "hash" in name else "pipe"
        ratio = f"{ref[kind] / best:5.2f}x {'nix-hash' if kind == 'hash' else 'nix-store --dump'}"
        print(
            f"{name:<26} {best:8.3f} {statistics.median(ts):9.3f} "
            f"{nar_bytes / best / 1e6:8.0f}  {ratio}"
        )
    print("\nratio = Nix's best time / this contender's best time; > 1.00 is faster than Nix")


if __name__ == "__main__":
    sys.exit(main())
