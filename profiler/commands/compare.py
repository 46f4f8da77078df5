"""hydra-profiler compare: are two bench results faster, slower or the same, per codec?
Or, given one fleet directory (written by `bench --fleet`), its hosts side by side."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from profiler.commands.argtypes import number

HELP = """\
Compares timed runs of the codecs both results measured, over the payloads both measured
(checked by NarHash: payloads whose bytes differ are left out), with a Mann-Whitney U test.

Given one fleet directory (written by `bench --fleet`), shows its hosts side by side: a row
per codec, a column group per host (compress MB/s, ratio), each host's CPU model and cores,
and a flag (!) on a host more than 25% from the fleet's median speed.

examples:
  hydra-profiler compare results/builder-a results/builder-b
  hydra-profiler compare results/fleet
  hydra-profiler compare results/fleet/builder-1 results/fleet/builder-2
  hydra-profiler compare before-upgrade/ after-upgrade/ --alpha 0.01
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two bench results (significance per codec)",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("baseline", help="result directory A (the reference)")
    p.add_argument("candidate", nargs="?", help="result directory B (none: A is a fleet)")
    p.add_argument(
        "--alpha",
        type=number(above=0, below=1),
        default=0.05,
        help="significance level, between 0 and 1 (0.05)",
    )
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="output of a fleet: table (default) or json",
    )
    p.set_defaults(run=run)


def same_bytes(a: Any, b: Any) -> set[str]:
    """Payload names whose NarHash is the same in both manifests."""
    hashes_a = {r["name"]: r["nar_hash"] for r in a.meta["manifest"]["payloads"]}
    hashes_b = {r["name"]: r["nar_hash"] for r in b.meta["manifest"]["payloads"]}
    return {n for n, h in hashes_a.items() if hashes_b.get(n) == h}


def _fleet(args: argparse.Namespace) -> int:
    from profiler.bench import fleet_render, fleet_view
    from profiler.errors import UsageError

    if not fleet_view.is_fleet(args.baseline):
        raise UsageError(
            f"{args.baseline}: not a fleet directory (no fleet.json); compare two bench "
            "results: hydra-profiler compare A B"
        )
    loaded = fleet_view.load_fleet(args.baseline)
    render = fleet_render.fleet_json if args.format == "json" else fleet_render.fleet_text
    sys.stdout.write(render(loaded))
    return 0


def run(args: argparse.Namespace) -> int:
    from profiler.bench import compare, results
    from profiler.errors import BenchmarkError

    if args.candidate is None:
        return _fleet(args)
    a = results.load_result(args.baseline)
    b = results.load_result(args.candidate)
    common = same_bytes(a, b)
    if not common:
        raise BenchmarkError(
            f"{args.baseline} and {args.candidate} share no payload with the "
            "same NarHash; nothing to compare"
        )
    names = set(a.samples["payload"]) | set(b.samples["payload"])
    dropped = sorted(names - common)
    sa = a.samples[a.samples["payload"].isin(common)]
    sb = b.samples[b.samples["payload"].isin(common)]
    out = compare.compare_samples(sa, sb, alpha=args.alpha)
    print(compare.format_comparison(out))
    for line in compare.unmatched(a.samples, b.samples):
        print(f"not compared: {line}")
    if dropped:
        print(
            f"not compared (different bytes or missing on one side): {', '.join(dropped)}",
            file=sys.stderr,
        )
    return 0
