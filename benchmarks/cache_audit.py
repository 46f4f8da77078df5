#!/usr/bin/env python3
"""``cache audit`` throughput, and what inferring a NAR's writer costs against decoding it.

Builds real binary caches with Debian's Nix (``nix copy --to file://...?compression=...``)
from store paths made of this machine's files (sizes from tens of KB to several MB), then
audits each cache (fetch, verify, headers, inference; no codec projections) and prints:

* audit throughput: NARs per second and MB per second (stored and NAR bytes);
* per NAR, the inference's wall time divided by one decode of the same object by the
  reference CLI (``xz -d`` / ``zstd -d`` / ``bzip2 -d`` / ``gzip -d`` to /dev/null),
  measured in the same run: median, p90 and the worst, per cache;
* how many NARs were reproduced exactly and with their level named.

Usage::

    python benchmarks/cache_audit.py [--paths 12] [--methods xz,zstd:19,zstd,bzip2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from profiler.audit.run import AuditOptions, run_audit
from profiler.audit.stores import open_store

NIX_ENV = {**os.environ, "NIX_CONFIG": "experimental-features = nix-command"}
ENCODERS = {"xz": ["xz", "-T1", "-c"], "zstd": ["zstd", "-c", "-q", "--single-thread"],
            "bzip2": ["bzip2", "-c"], "gzip": ["gzip", "-c", "-n"]}  # fmt: skip
DECODERS = {"xz": ["xz", "-dc"], "zstd": ["zstd", "-dcq"], "bzip2": ["bzip2", "-dc"],
            "gzip": ["gzip", "-dc"]}  # fmt: skip


def make_paths(root: Path, count: int) -> list[str]:
    """``count`` store paths of system files, growing from ~50 KB to a few MB."""
    roots = ("/usr/lib/python3.11", "/usr/bin", "/usr/share/doc")
    found = (p for d in roots for p in Path(d).rglob("*"))
    files = sorted((p for p in found if p.is_file() and not p.is_symlink()), key=str)
    out, i = [], 0
    for n in range(count):
        budget = int(50_000 * (1.6**n))
        d = root / f"p{n}"
        d.mkdir(parents=True)
        size = 0
        while size < budget and i < len(files):
            f = files[i]
            i += 1
            try:
                shutil.copy(f, d / f"{i}-{f.name}")
                size += f.stat().st_size
            except OSError:
                continue
        done = subprocess.run(["nix-store", "--add", str(d)], capture_output=True, text=True,
                              check=True, env=NIX_ENV)  # fmt: skip
        out.append(done.stdout.strip())
    return out


def cli_seconds(cmd: list[str], path: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        with open(path, "rb") as f:
            subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=12)
    ap.add_argument("--methods", default="xz,zstd,zstd:19,bzip2,gzip")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    try:
        paths = make_paths(work / "src", args.paths)
        top = 50 * 1.6 ** (len(paths) - 1) / 1000
        print(f"{len(paths)} store paths of this machine's files, ~50 KB to ~{top:.0f} MB")
        print(f"{'method':10s} {'NARs/s':>7s} {'MB/s stored':>11s} {'MB/s NAR':>9s} "
              f"{'exact':>6s} {'named':>6s}  infer/CLI decode: median   p90  worst"
              "   infer/CLI compress: median")  # fmt: skip
        for text in args.methods.split(","):
            method, _, level = text.partition(":")
            query = f"compression={method}" + (f"&compression-level={level}" if level else "")
            cache = work / query.replace("&", "_")
            subprocess.run(["nix", "copy", "--to", f"file://{cache}?{query}", *paths],
                           check=True, capture_output=True, env=NIX_ENV)  # fmt: skip
            store = open_store(str(cache))
            t0 = time.perf_counter()
            result = run_audit(store, AuditOptions(sample=None, codecs=[]))
            wall = time.perf_counter() - t0
            store.close()
            rows = result.nars
            stored = sum(r["file_size"] for r in rows)
            nar = sum(r["nar_size"] for r in rows)
            ratios = sorted(
                r["infer_seconds"] / cli_seconds(DECODERS[method], str(cache / r["url"]))
                for r in rows
            )
            p90 = ratios[min(len(ratios) - 1, int(0.9 * len(ratios)))]
            # against one compression of the NAR by the CLI at the level found (what the
            # writer paid): the floor of any inference by recompression
            nar_file = work / "nar.tmp"
            vs_writer = []
            for r in rows:
                with open(cache / r["url"], "rb") as f, open(nar_file, "wb") as o:
                    subprocess.run(DECODERS[method], stdin=f, stdout=o, check=True)
                level = [f"-{r['level']}"] if r["level"] is not None else []
                cmd = ENCODERS[method] + level + (["--ultra"] if method == "zstd" and
                                                  (r["level"] or 0) > 19 else [])  # fmt: skip
                vs_writer.append(r["infer_seconds"] / cli_seconds(cmd, str(nar_file), 1))
            named = sum(r["level"] is not None for r in rows)
            exact = sum(r["exact"] for r in rows)
            print(f"{text:10s} {len(rows) / wall:7.2f} {stored / wall / 1e6:11.2f} "
                  f"{nar / wall / 1e6:9.2f} {exact:3d}/{len(rows):<2d} {named:3d}/{len(rows):<2d}"
                  f"  {statistics.median(ratios):23.1f}x {p90:5.1f}x {ratios[-1]:5.1f}x"
                  f"  {statistics.median(vs_writer):26.2f}x")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
