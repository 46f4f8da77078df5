"""hydra-profiler export: one table of a stored run as CSV, JSON or Parquet."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from profiler.errors import StoreError, UsageError
from profiler.units import to_jsonable

if TYPE_CHECKING:
    import pandas as pd

HELP = """\
Records come out in append order (compacted records first); columns are the union of the
records' keys, dict and list values are JSON text, and ts is UTC epoch seconds. CSV and
JSON (an array of objects, missing values as null) go to stdout unless -o is given;
Parquet needs -o. Lines skipped as damaged (a crash during a write) are reported on stderr.

examples:
  hydra-profiler export run/ samples > samples.csv
  hydra-profiler export run/ events --format json | jq '.[] | select(.event == "restart")'
  hydra-profiler export run/ samples --format parquet -o samples.parquet
  hydra-profiler export run/ rates > rates.csv     # counter rates, restarts and gaps handled
"""

FORMATS = ("csv", "json", "parquet")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write one table of a run as CSV, JSON or Parquet",
        description=__doc__,
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN", help="run directory (from collect or testbed)")
    p.add_argument("table", metavar="TABLE", help="table name, e.g. samples or events")
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="output format (default: from the -o suffix, else csv)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(run=run)


def json_text(df: pd.DataFrame) -> str:
    """The table as a JSON array of objects, one per line."""
    rows = (json.dumps(to_jsonable(row), allow_nan=False) for row in df.to_dict(orient="records"))
    body = ",\n".join(rows)
    return f"[\n{body}\n]\n" if body else "[]\n"


def _choose_format(args: argparse.Namespace) -> str:
    if args.format:
        fmt: str = args.format
    else:
        suffix = os.path.splitext(args.output or "")[1].lstrip(".").lower()
        fmt = suffix if suffix in FORMATS else "csv"
    if fmt == "parquet" and not args.output:
        raise UsageError("--format parquet needs -o FILE (Parquet is binary)")
    return fmt


def _write_text(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    from profiler import atomic

    with atomic.replacing(output, "w", newline="", error=StoreError) as f:
        f.write(text)


def run(args: argparse.Namespace) -> int:
    from profiler.store import read_run

    fmt = _choose_format(args)
    reader = read_run(args.run_dir)
    if args.table == "rates" and "rates" not in reader.tables():
        from profiler.analyze.rates import KEYS, counter_rates  # derived from samples on the fly

        samples = reader.table("samples")
        for key in ("kind", *KEYS):  # records may lack a key: that is a null value
            if key not in samples:
                samples[key] = None
        df = counter_rates(samples)
    else:
        df = reader.table(args.table)
    for warning in reader.warnings:
        print(f"hydra-profiler: warning: {args.run_dir}: {warning}", file=sys.stderr)
    if fmt == "csv":
        _write_text(df.to_csv(index=False, lineterminator="\n"), args.output)
    elif fmt == "json":
        _write_text(json_text(df), args.output)
    else:
        from profiler import atomic

        with atomic.replacing(args.output, "wb", error=StoreError) as f:
            df.to_parquet(f, index=False)
    return 0
