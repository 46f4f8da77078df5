"""hydra-profiler payloads: list what would be measured, with NarSize and NarHash."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from profiler import atomic
from profiler.units import format_bytes

HELP = """\
payload specifications:
  PATH               a file, directory or symlink; a .nar/.nar.xz/.nar.zst/.nar.bz2/.nar.br
                     file; a .narinfo; or a binary cache directory (with nix-cache-info)
  store:GLOB         /nix/store paths whose name matches GLOB, e.g. store:*python3*
  closure:PATH       the closure of a store path (nix-store -qR)
  sample:N[:SEED]    N random store paths, reproducible with SEED (default 0)
  default | full     the built-in corpus of this machine's own files, quick or full

examples:
  hydra-profiler payloads                       # the quick built-in corpus
  hydra-profiler payloads full --manifest corpus.json
  hydra-profiler payloads ./cache store:*openssl* --format json
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "payloads",
        help="list payloads (NARs to measure) with size and hash",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("specs", nargs="*", metavar="PAYLOAD", default=["default"])
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--manifest", metavar="FILE", help="also write the manifest as JSON here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from profiler.payloads import corpus
    from profiler.payloads.resolve import resolve

    if args.manifest:
        atomic.check_writable(args.manifest)  # before reading every payload
    found = resolve(args.specs)
    rows = []
    for i, p in enumerate(found, 1):
        print(f"[{i}/{len(found)}] reading {p.name}: {p.describe()}", file=sys.stderr)
        rows.append(corpus.manifest_row(p, p.read()))
    doc = {"corpus": " ".join(args.specs), "payloads": rows}
    if args.manifest:
        atomic.write_text(args.manifest, json.dumps(doc, indent=2) + "\n")
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'payload':<18} {'class':<15} {'NarSize':>10}  NarHash")
    for r in rows:
        print(
            f"{r['name']:<18} {r['class']:<15} {format_bytes(r['nar_size_bytes']):>10}  "
            f"{r['nar_hash']}"
        )
    total = sum(r["nar_size_bytes"] for r in rows)
    print(f"{len(rows)} payloads, {format_bytes(total)} of NAR")
    return 0
