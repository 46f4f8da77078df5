#!/usr/bin/env python3
"""Memory and time of listing deeply nested NARs: ours against ``nix nar ls``.

A NAR of DEPTH nested directories, each named with NAME_BYTES bytes, around one small file,
is written to a temporary directory (an untrusted NAR can be exactly this: 4,000 levels of
255-byte names fit in 1.7 MB). Each contender runs in its own process; its peak resident set
comes from the kernel (``ru_maxrss`` of the finished child). Listing the top level only
(``nar ls``) must cost memory linear in the NAR; ``-R`` prints every path, so its output is
quadratic in the depth (2 GB at 4,000 x 255 bytes) and goes to /dev/null.

Usage::

    python benchmarks/nar_deep.py [--depth 1000 4000 16000] [--name-bytes 255 1] [--recursive]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from profiler.nar.dump import nar_str


def write_deep_nar(path: str, depth: int, name: bytes) -> int:
    """A NAR of ``depth`` nested directories named ``name`` around one file; its size."""
    opening = b"".join(
        nar_str(t) for t in (b"(", b"type", b"directory", b"entry", b"(", b"name", name, b"node")
    )
    leaf = b"".join(nar_str(t) for t in (b"(", b"type", b"regular", b"contents", b"hi\n", b")"))
    closing = nar_str(b")") + nar_str(b")")
    with open(path, "wb") as f:
        f.write(nar_str(b"nix-archive-1"))
        for _ in range(depth):
            f.write(opening)
        f.write(leaf)
        for _ in range(depth):
            f.write(closing)
    return os.path.getsize(path)


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, exit code) of ``argv`` run with stdout to /dev/null."""
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
        "time.perf_counter() - t, rc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, check=True
    )
    kib, seconds, rc = done.stdout.split()
    return int(kib) / 1024, float(seconds), int(rc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--name-bytes", type=int, nargs="+", default=[255, 1])
    parser.add_argument("--recursive", action="store_true", help="also time nar ls -R")
    args = parser.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": here, "NIX_CONFIG": "experimental-features = nix-command"}
    nix = shutil.which("nix")
    ours = [sys.executable, "-m", "profiler", "nar", "ls"]
    print(f"{'depth':>6} {'name B':>6} {'NAR bytes':>10}  {'contender':<24} {'peak MiB':>9} "
          f"{'seconds':>8}  exit")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name_bytes in args.name_bytes:
            for depth in args.depth:
                path = os.path.join(tmp, f"deep-{depth}-{name_bytes}.nar")
                size = write_deep_nar(path, depth, b"n" * name_bytes)
                runs = [("hydra-profiler nar ls", [*ours, path])]
                if args.recursive:
                    runs.append(("hydra-profiler nar ls -R", [*ours, "-R", path]))
                if nix:
                    runs.append(("nix nar ls", [nix, "nar", "ls", path, "/"]))
                    if args.recursive:
                        runs.append(("nix nar ls -R", [nix, "nar", "ls", "-R", path, "/"]))
                for label, argv in runs:
                    peak, seconds, rc = measure(argv, env)
                    print(f"{depth:>6} {name_bytes:>6} {size:>10,}  {label:<24} {peak:>9.1f} "
                          f"{seconds:>8.2f}  {rc}", flush=True)  # fmt: skip
                os.remove(path)
    if not nix:
        print("(nix not installed: no comparison with nix nar ls)")
    print(f"max RSS of this driver: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KiB")


if __name__ == "__main__":
    main()
