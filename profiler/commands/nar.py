"""hydra-profiler nar dump|hash|ls: NARs exactly as Nix makes and reads them."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from profiler import nar
from profiler.errors import PayloadError, UsageError

HELP = """\
examples:
  hydra-profiler nar dump /usr/lib/git-core > git-core.nar    # = nix-store --dump
  hydra-profiler nar hash /usr/lib/git-core                   # = nix-hash --type sha256 --base32
  hydra-profiler nar ls -lR git-core.nar                      # = nix nar ls -lR git-core.nar /
  hydra-profiler nar ls cache/nar/0abc....nar.xz /bin         # compressed NARs too
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "nar",
        help="dump, hash and list NARs",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", parser_class=type(p))
    verbs.required = True
    d = verbs.add_parser(
        "dump",
        help="write the NAR of PATH to stdout (like nix-store --dump)",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("path")
    d.set_defaults(run=run_dump)
    h = verbs.add_parser(
        "hash",
        help="print sha256:<nix32> of PATH's NAR (like nix-hash)",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    h.add_argument("path")
    h.add_argument("--size", action="store_true", help="also print NarSize in bytes")
    h.add_argument("--hex", action="store_true", help="base16 digest instead of nix32")
    h.set_defaults(run=run_hash)
    ls = verbs.add_parser(
        "ls",
        help="list and validate a NAR file (like nix nar ls)",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("file", help="a .nar, .nar.xz/.zst/.bz2/.br/.gz file, or - for stdin")
    ls.add_argument("inner", nargs="?", default="/", help="path inside the NAR (default /)")
    ls.add_argument("-R", "--recursive", action="store_true", help="list subdirectories too")
    ls.add_argument("-l", "--long", action="store_true", help="type, mode, size and target")
    ls.set_defaults(run=run_ls)


def run_dump(args: argparse.Namespace) -> int:
    if sys.stdout.isatty():
        raise UsageError(
            "nar dump: refusing to write a binary NAR to a terminal; "
            "redirect stdout to a file or a pipe"
        )
    sys.stdout.flush()
    nar.dump_to_fd(args.path, sys.stdout.fileno(), name="stdout")
    return 0


def run_hash(args: argparse.Namespace) -> int:
    digest, size = nar.hash_path(args.path)
    text = f"sha256:{digest.hex}" if args.hex else str(digest)
    print(f"{text} {size}" if args.size else text)
    return 0


def _open(file: str) -> Any:
    from profiler.codecs import open_decompressed
    from profiler.payloads.resolve import method_for_path

    if file == "-":
        return sys.stdin.buffer
    method = method_for_path(file) or "none"
    try:
        raw = open(file, "rb")
    except OSError as exc:
        raise PayloadError(f"{file}: {exc.strerror}") from None
    return open_decompressed(raw, method, file)


def run_ls(args: argparse.Namespace) -> int:
    from profiler.codecs import decode_errors

    inner = os.fsencode(args.inner.strip("/"))
    wanted = inner.split(b"/") if inner else []
    out = sys.stdout.buffer
    found = False
    try:
        with _open(args.file) as stream:
            for entry in nar.iter_entries(stream, source=args.file):
                # by depth first: a deep NAR costs nothing for the levels not listed
                depth = entry.depth
                if depth < len(wanted) or (not args.recursive and depth > len(wanted) + 1):
                    continue
                names = entry.components()
                if names[: len(wanted)] != wanted:
                    continue
                found = True
                rel = names[len(wanted) :]
                if rel:
                    out.write(_line(entry, b"./" + b"/".join(rel), args.long))
                elif entry.type != "directory":
                    out.write(_line(entry, wanted[-1], args.long))
    except BrokenPipeError:
        raise
    except decode_errors() as exc:
        raise PayloadError(f"{args.file}: cannot decompress: {exc}") from None
    if not found:
        raise PayloadError(f"{args.file}: no path {args.inner!r} in this NAR")
    return 0


def _line(entry: nar.NarEntry, shown: bytes, long: bool) -> bytes:
    if not long:
        return shown + b"\n"
    mode = {"directory": "dr-xr-xr-x", "symlink": "lrwxrwxrwx"}.get(
        entry.type, "-r-xr-xr-x" if entry.executable else "-r--r--r--"
    )
    line = f"{mode} {entry.size:20d} ".encode() + shown
    if entry.type == "symlink":
        line += b" -> " + entry.target
    return line + b"\n"
