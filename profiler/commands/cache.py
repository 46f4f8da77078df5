"""hydra-profiler cache audit: what a binary cache really stores, how it was compressed, and
what another codec would cost on those NARs."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from typing import Any

from profiler import atomic
from profiler.commands.argtypes import codec_spec, integer, number, positive_int, seconds
from profiler.errors import UsageError

HELP = """\
CACHE is a binary cache, read-only:
  DIR or file:///path                  a local cache (nix copy --to file://...)
  http(s)://host[:port][/prefix]       any Nix binary cache server; give --paths unless the
                                       server lists its directory
  s3://bucket[/prefix]?region=R&endpoint=HOST[:PORT]&profile=P
                                       S3 or a compatible server, credentials from the usual
                                       chain (needs: pip install 'hydra-profiler[s3]')

For each sampled narinfo the NAR is fetched, FileHash/FileSize/NarHash/NarSize are checked,
and the writer is inferred by reproducing the stored bytes (xz presets 0-9 and extreme,
multithreaded blocks; zstd 1-22 streamed, long windows, Nix 2.35 frames; br; gzip; bzip2),
after reading what the headers say. The codecs given with --codec are measured on the same
NARs for the bill.

examples:
  hydra-profiler cache audit ./cache --sample all
  hydra-profiler cache audit 's3://nix-cache?region=eu-west-1' --sample 500 --seed 7 \\
      --configured 'compression=zstd&compression-level=19' --out audit/
  hydra-profiler cache audit https://cache.example.org --paths closure.txt --format json
"""


def _sample(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    return positive_int()(text)


def _size(text: str) -> int:
    """A size in bytes as :func:`profiler.units.parse_bytes` reads it (``256MiB``, ``1GB``),
    a bare ``K``/``M``/``G`` suffix meaning KiB/MiB/GiB (``256M``)."""
    from profiler.units import parse_bytes

    t = text.strip()
    if t[-1:].upper() in ("K", "M", "G"):
        t += "iB"
    try:
        value = int(parse_bytes(t))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a size such as 256M: {exc}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cache", help="binary cache tools (audit)", description=__doc__)
    csub = p.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", parser_class=type(p))
    csub.required = True
    a = csub.add_parser(
        "audit",
        help="what a binary cache stores, its writer per NAR, and the bill",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("cache", metavar="CACHE")
    a.add_argument(
        "--sample",
        type=_sample,
        default=200,
        metavar="N|all",
        help="narinfos to audit (default 200; 'all')",
    )
    a.add_argument("--seed", type=integer(0), default=0, help="of the random sample (default 0)")
    a.add_argument(
        "--order",
        choices=("random", "listing"),
        default="random",
        help="a seeded random sample, or the first N in listing order",
    )
    a.add_argument(
        "--since",
        metavar="TIME",
        help="only objects modified since (ISO time, epoch, or a span like 7d; "
        "local and s3 caches)",
    )
    a.add_argument(
        "--paths",
        metavar="FILE",
        help="store paths or hashes to audit, one per line ('-': stdin); "
        "needed for an HTTP cache that does not list its directory",
    )
    a.add_argument(
        "--codec",
        action="append",
        type=codec_spec,
        metavar="SPEC",
        help="codec to measure on the same NARs (repeatable; default xz:6, zstd:3, "
        "zstd:19); --codec none measures nothing",
    )
    a.add_argument(
        "--project-bytes",
        type=_size,
        default="256M",
        metavar="SIZE",
        help="measure the codecs on at most this much NAR (default 256M)",
    )
    a.add_argument(
        "--max-infer-bytes",
        type=_size,
        default="256M",
        metavar="SIZE",
        help="reproduce at most this much of a NAR; a longer one gets a prefix "
        "match, labelled (default 256M)",
    )
    a.add_argument(
        "--configured",
        metavar="SPEC",
        help="the farm's configured compression (a store URI query such as "
        "'compression=zstd&compression-level=19', or a spec like zstd:19)",
    )
    a.add_argument("--format", choices=("text", "json", "csv"), default="text")
    a.add_argument(
        "--out",
        metavar="DIR",
        help="also write audit.json, nars.csv, audit.md, audit.html and the plots",
    )
    a.add_argument(
        "--timeout", type=seconds("--timeout"), default="30s", help="per request (default 30s)"
    )
    a.add_argument(
        "--retries", type=integer(0, 20), default=4, help="per request, with backoff (default 4)"
    )
    a.add_argument(
        "--rate",
        type=number(lo=0.01),
        default=20.0,
        metavar="PER_SECOND",
        help="requests per second at most (default 20)",
    )
    a.add_argument(
        "--fail-on-fault", action="store_true", help="exit 3 when any object is missing or corrupt"
    )
    a.set_defaults(run=run)  # fmt: skip


def _read_paths(spec: str) -> list[str]:
    try:
        if spec == "-":
            text = sys.stdin.read()
        else:
            with open(spec, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(f"--paths: {spec}: {exc.strerror}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def run(args: argparse.Namespace) -> int:
    from profiler.audit import render
    from profiler.audit.run import DEFAULT_CODECS, AuditOptions, run_audit
    from profiler.audit.stores import open_store
    from profiler.commands.argtypes import parse_time

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        atomic.check_writable(os.path.join(args.out, "audit.json"))
    if args.configured:
        codec_spec(args.configured)
    codecs = [c for c in (args.codec or DEFAULT_CODECS) if c != "none"]
    since = None
    if args.since:
        since = dt.datetime.fromtimestamp(parse_time(args.since, time.time()), dt.UTC)
    paths = _read_paths(args.paths) if args.paths else None
    options = AuditOptions(
        sample=args.sample,
        seed=args.seed,
        order=args.order,
        since=since,
        codecs=codecs,
        project_bytes=args.project_bytes,
        max_infer_bytes=args.max_infer_bytes,
        configured=args.configured,
    )
    store = open_store(
        args.cache,
        timeout_seconds=args.timeout,
        retries=args.retries,
        requests_per_second=args.rate,
        paths=paths,
    )
    try:
        result = run_audit(store, options, progress=lambda m: print(m, file=sys.stderr))
    finally:
        store.close()
    doc = result.to_json()
    if args.out:
        _write_outputs(doc, args.out)
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=1, default=str)
        print()
    elif args.format == "csv":
        sys.stdout.write(render.csv(doc))
    else:
        sys.stdout.write(render.text(doc))
    if not result.nars and result.faults:
        first = result.faults[0]
        print(
            f"hydra-profiler: error: cache audit: no NAR could be read ({len(result.faults)} "
            f"fault(s); first: {first.line()})",
            file=sys.stderr,
        )
        return 1
    if args.fail_on_fault and result.faults:
        return 3
    return 130 if result.interrupted else 0


def _write_outputs(doc: dict[str, Any], out: str) -> None:
    from profiler.audit import render
    from profiler.units import to_jsonable

    atomic.write_text(os.path.join(out, "audit.json"), json.dumps(to_jsonable(doc), indent=1))
    atomic.write_text(os.path.join(out, "nars.csv"), render.csv(doc))
    images = render.plots(doc, out)
    atomic.write_text(os.path.join(out, "audit.md"), render.markdown(doc))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>cache audit</title></head>"
        f"<body>{render.html_section(doc, images)}</body></html>\n"
    )
    atomic.write_text(os.path.join(out, "audit.html"), page)
    print(f"wrote {out}/audit.json, nars.csv, audit.md, audit.html and plots", file=sys.stderr)
